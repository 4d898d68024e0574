"""Every architecture with every loss: shapes, and real optimisation steps that change weights."""
import copy

import pytest
import torch

from trainer.training.loop import Trainer
from trainer.models import build_discriminator, build_generator
from trainer.config import ModelConfig

LOSSES = ["minimax", "nonsat", "lsgan", "hinge", "wgan", "wgan-gp"]
ARCH_DATA = {"mlp": ("toy-gan", "ring8", 32), "dcgan": ("dcgan", "digits", 16),
             "stylegan2": ("stylegan2", "digits", 16)}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("arch", sorted(ARCH_DATA))
def test_training_steps_change_weights(arch, loss, tiny, tmp_path):
    preset, source, res = ARCH_DATA[arch]
    model = {"d_norm": "layer"} if arch == "dcgan" and loss == "wgan-gp" else {}
    cfg = tiny(preset, source, res, train={"loss": loss, "n_critic": 2 if "wgan" in loss else 1},
               model=model)
    trainer = Trainer(cfg, tmp_path, progress=False)
    before_g = copy.deepcopy(trainer.G.state_dict())
    before_d = copy.deepcopy(trainer.D.state_dict())
    for _ in range(2):
        stats = trainer.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert "loss/D" in stats and "loss/G" in stats
    assert ("wasserstein" in stats) == (loss in ("wgan", "wgan-gp"))
    assert ("gp" in stats) == (loss == "wgan-gp")
    changed_g = any(not torch.equal(before_g[k], v) for k, v in trainer.G.state_dict().items())
    changed_d = any(not torch.equal(before_d[k], v) for k, v in trainer.D.state_dict().items())
    assert changed_g and changed_d
    if loss == "wgan":
        assert max(p.abs().max().item() for p in trainer.D.parameters()) <= cfg.train.clip + 1e-7
    z = torch.randn(3, cfg.model.z_dim)
    out = trainer.G_ema(z)
    if arch == "mlp":
        assert out.shape == (3, 2)
    else:
        assert out.shape == (3, 1, res, res)
        logits, aux = trainer.D(out)
        assert logits.shape == (3,) and aux is None


@pytest.mark.parametrize("arch, cond_d", [(arch, cond_d) for arch in ("dcgan", "stylegan2", "mlp")
                                           for cond_d in ("projection", "acgan", "concat")
                                           if arch != "stylegan2" or cond_d == "projection"])
def test_conditional_heads(arch, cond_d, tiny, tmp_path):
    preset, source, res = ARCH_DATA[arch]
    cfg = tiny(preset, source, res, data={"conditional": True}, model={"cond_d": cond_d})
    trainer = Trainer(cfg, tmp_path, progress=False)
    stats = trainer.train_step()
    assert cfg.model.c_dim == (10 if source == "digits" else 8)
    z = torch.randn(4, cfg.model.z_dim)
    a = trainer.G_ema(z, torch.tensor([0, 1, 2, 3]))
    b = trainer.G_ema(z, torch.tensor([3, 2, 1, 0]))
    assert not torch.allclose(a, b)  # the label reaches the output
    logits, aux = trainer.D(a, torch.tensor([0, 1, 2, 3]))
    assert (aux is not None) == (cond_d == "acgan")
    assert torch.isfinite(torch.tensor(stats["loss/D"]))


@pytest.mark.parametrize("cond_d", ["acgan", "concat"])
def test_exact_stylegan_conditions_only_by_projection(cond_d, tiny, tmp_path):
    """NVlabs' D conditions by projecting onto the mapped label: another head is refused, by name."""
    cfg = tiny("stylegan2-cond", "digits", 16, model={"cond_d": cond_d})
    with pytest.raises(ValueError, match=f"--cond-d {cond_d}.*projection"):
        Trainer(cfg, tmp_path, progress=False)


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan2-compact"])
def test_stylegan2_api(arch):
    cfg = ModelConfig(arch=arch, z_dim=16, w_dim=24, img_resolution=32, img_channels=3, width=8,
                      max_width=16, channel_base=256, channel_max=16, mapping_layers=2)
    G = build_generator(cfg).eval()
    assert type(G).__name__ == {"stylegan2": "NVlabsGenerator", "stylegan2-compact": "StyleGAN2Generator"}[arch]
    assert G.num_ws == 8 and G.w_avg.shape == (24,)
    z = torch.randn(2, 16)
    ws = G.mapping(z, None)
    assert ws.shape == (2, 8, 24) and torch.equal(ws[:, 0], ws[:, 7])
    with torch.no_grad():
        for block in G.synthesis.blocks:
            block.conv1.noise_strength.fill_(0.5)  # starts at zero in training
    img = G.synthesis(ws, noise_mode="const")
    assert img.shape == (2, 3, 32, 32)
    assert torch.equal(img, G.synthesis(ws, noise_mode="const"))          # const noise: deterministic
    assert not torch.equal(img, G.synthesis(ws, noise_mode="random"))     # random noise: not
    # Truncation pulls w toward w_avg, only below the cutoff.
    G.mapping.w_avg.normal_()
    ws_t = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.allclose(ws_t[:, 3:], ws[:, 3:])
    assert torch.allclose(ws_t[:, :3], G.w_avg.lerp(ws[:, :3], 0.5), atol=1e-6)
    with pytest.raises(ValueError, match="ws has shape"):
        G.synthesis(ws[:, :5])


def test_spectral_norm_bounds_d_layers():
    cfg = ModelConfig(arch="dcgan", img_resolution=16, img_channels=1, width=8, spectral_norm=True, d_norm="none")
    D = build_discriminator(cfg)
    for _ in range(20):  # power iteration converges during forward passes
        D(torch.randn(4, 1, 16, 16))
    conv = D.net[0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, rel=0.05)


def test_dcgan_resolutions_and_init():
    for res in (16, 32, 64, 128):
        cfg = ModelConfig(arch="dcgan", img_resolution=res, img_channels=3, width=4, max_width=32)
        G, D = build_generator(cfg), build_discriminator(cfg)
        img = G(torch.randn(2, cfg.z_dim))
        assert img.shape == (2, 3, res, res) and img.abs().max() <= 1
        assert D(img)[0].shape == (2,)
    w = G.net[0].weight
    assert abs(w.std().item() - 0.02) < 0.005
    with pytest.raises(ValueError, match="power-of-two"):
        build_generator(ModelConfig(arch="dcgan", img_resolution=24))


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan2-compact"])
def test_spectral_norm_on_equalised_layers_keeps_d_discriminating(arch):
    """Spectral normalisation replaces the equalised-lr gain (both would shrink every layer by
    1/sqrt(fan-in)): each effective weight has unit spectral norm and D's logits still vary."""
    cfg = ModelConfig(arch=arch, img_resolution=16, img_channels=1, width=8, max_width=16, channel_base=128,
                      channel_max=16, spectral_norm=True)
    torch.manual_seed(0)
    D = build_discriminator(cfg)
    x = torch.randn(8, 1, 16, 16)
    for _ in range(20):  # power iteration converges during forward passes
        logits, _ = D(x)
    conv = next(m for m in D.modules() if getattr(m, "equalized", False) and m.weight.ndim == 4)
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1) * conv.weight_gain, ord=2).item()
    assert sigma == pytest.approx(1.0, rel=0.05)
    assert logits.std() > 1e-3
