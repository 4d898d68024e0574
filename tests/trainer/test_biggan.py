"""BigGAN (trainer.models.biggan): shapes, the class reaching every block through the shared
embedding and hierarchical z, BigGAN's orthogonal regularisation, truncation by resampling, and
a tiny `--preset biggan` run that resumes exactly and exports a G that draws in eval mode."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import assert_resume_reproduces
from trainer import load_generator
from trainer.checkpoint import load_state
from trainer.events import read_events
from trainer.latents.space import sample_z
from trainer.models import build_discriminator, build_generator
from trainer.models.biggan import BigGANDiscriminator, BigGANGenerator, z_chunk_sizes
from trainer.training.losses import orthogonal_penalty
from trainer.training.loop import train
from trainer.training.presets import preset_config


def small_generator(resolution=32, c_dim=10, z_dim=20):
    torch.manual_seed(0)
    return BigGANGenerator(z_dim, c_dim, resolution, 1, width=8, max_width=32)


@pytest.mark.parametrize("resolution", [16, 32])
def test_shapes_of_g_and_d(resolution):
    G = small_generator(resolution)
    D = BigGANDiscriminator(10, resolution, 1, width=8, max_width=32)
    z, c = torch.randn(4, 20), torch.tensor([0, 3, 9, 3])
    img = G(z, c)
    assert img.shape == (4, 1, resolution, resolution) and img.abs().max() <= 1
    logits, aux = D(img, c)
    assert logits.shape == (4,) and aux is None
    assert [b.resolution for b in G.blocks] == [2 ** k for k in range(3, resolution.bit_length())]
    assert G.z_chunks == z_chunk_sizes(20, len(G.blocks) + 1) and sum(G.z_chunks) == 20
    with pytest.raises(ValueError, match="expected \\(N, 20\\)"):
        G(torch.randn(4, 19), c)
    with pytest.raises(ValueError, match="pass c"):
        G(z)


def test_spectral_norm_everywhere_but_the_shared_embedding():
    G, D = small_generator(), BigGANDiscriminator(10, 32, 1, width=8, max_width=32)
    layers = [(name, m) for net in (G, D) for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    unnormed = [name for name, m in layers if not hasattr(m, "parametrizations")]
    assert unnormed == ["shared"]


def test_the_class_reaches_every_block_and_each_z_chunk_only_its_own():
    G = small_generator().eval()
    z = torch.randn(2, 20)
    first, conditions = G.block_inputs(z, torch.tensor([1, 1]))
    _, other_class = G.block_inputs(z, torch.tensor([7, 7]))
    x = G.linear(first).reshape(2, -1, 4, 4)
    with torch.no_grad():
        for block, y, y_other in zip(G.blocks, conditions, other_class):
            # the same input features, only the class differs: the block's output changes
            assert not torch.allclose(block(x, y), block(x, y_other))
            x = block(x, y)
    # hierarchical z: changing one block's chunk changes that block's condition and no other
    sizes = G.z_chunks
    for k in range(1, len(sizes)):
        moved = z.clone()
        start = sum(sizes[:k])
        moved[:, start:start + sizes[k]] += 1
        _, changed = G.block_inputs(moved, torch.tensor([1, 1]))
        assert [not torch.equal(a, b) for a, b in zip(conditions, changed)] == [i == k - 1 for i in range(len(sizes) - 1)]


def test_orthogonal_penalty_on_a_known_matrix():
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    # W W^T = [[2, 1], [1, 1]]: the off-diagonal terms squared give 2; the diagonal is not penalised
    assert orthogonal_penalty(layer).item() == pytest.approx(2.0)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, -2.0]]))   # orthogonal rows of any norm: 0
    assert orthogonal_penalty(layer).item() == 0.0
    conv = nn.Conv2d(1, 2, 1, bias=False)   # kernels flattened to [out, in*k*k]
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1))
    assert orthogonal_penalty(conv).item() == pytest.approx(2 * 2.0 ** 2)
    # BigGAN leaves the shared class embedding out
    G = small_generator()
    with torch.no_grad():
        G.shared.weight.mul_(100)
    before = orthogonal_penalty(G)
    with torch.no_grad():
        G.shared.weight.mul_(100)
    assert torch.equal(orthogonal_penalty(G), before) and before > 0


def test_truncation_by_resampling_keeps_z_under_the_threshold():
    z = sample_z(5, 120, threshold=0.5, count=200)
    assert np.abs(z).max() <= 0.5 and z.std() > 0.2     # resampled, not clipped to the edge
    assert not np.array_equal(z[0], sample_z(5, 120)[0])
    G = small_generator().eval()
    with pytest.raises(ValueError, match="no W space"):
        G(torch.from_numpy(z[:2]), torch.tensor([0, 1]), truncation_psi=0.7)


@pytest.mark.slow
def test_eval_mode_uses_running_statistics_that_match_training():
    G = small_generator(16)
    fresh = small_generator(16).eval()   # running statistics as initialised: mean 0, variance 1
    c = torch.arange(32) % 10
    with torch.no_grad():
        for k in range(80):   # running statistics settle on G's own batches (momentum 0.1: 0.9^80 left)
            G(torch.randn(32, 20, generator=torch.Generator().manual_seed(k)), c)
        z = torch.randn(32, 20)
        trained = G(z, c)
        evaluated, unsettled = G.eval()(z, c), fresh(z, c)
    error = (trained - evaluated).abs().mean()
    assert error < 0.2 * trained.abs().mean() and error < 0.3 * (trained - unsettled).abs().mean()
    assert evaluated.std(dim=0).mean() > 1e-3   # the images differ from each other


def tiny_biggan(tiny, kimg):
    return tiny("biggan", data={"conditional": True, "max_images": 64},
                train={"kimg": kimg, "snapshot_kimg": 0.032, "sample_kimg": 0.032, "threads": 1, "batch": 8})


@pytest.mark.slow
def test_a_tiny_biggan_run_resumes_exactly_and_exports_a_g_that_draws(tiny, tmp_path):
    full = train(tiny_biggan(tiny, 0.064), outdir=tmp_path / "a", progress=False)
    half = train(tiny_biggan(tiny, 0.032), outdir=tmp_path / "b", progress=False)
    state = assert_resume_reproduces(full, half, 0.064)
    assert full.step == 4   # 2 D steps of 8 images per G step: 64 images in 4 G steps
    assert any(k.endswith("running_var") for k in state["G"])
    config = json.loads((full.run_dir / "config.json").read_text())
    assert config["model"]["arch"] == "biggan" and config["train"]["ortho_reg"] == 1e-4
    assert config["train"]["n_critic"] == 2 and config["train"]["loss"] == "hinge" and config["model"]["c_dim"] == 10
    scalars = [e for e in read_events(full.run_dir / "events.jsonl") if e["kind"] == "scalars"]
    assert all(e["values"]["ortho"] > 0 for e in scalars)

    G = load_generator(full.run_dir)
    assert type(G).__name__ == "BigGANGenerator" and not G.training and G.checkpoint_info["config"]["arch"] == "biggan"
    reference = build_generator(preset_config("biggan", model=G.checkpoint_info["config"]).model)
    reference.load_state_dict(load_state(full.run_dir / "state" / "last.pt")["G_ema"])
    z, c = torch.randn(16, G.z_dim), torch.arange(16) % 10
    images = G(z, c)
    assert torch.equal(images, reference.eval()(z, c))            # the export is G_ema, in eval mode
    assert torch.isfinite(images).all() and images.std(dim=0).mean() > 1e-3
    assert not torch.equal(G(z, torch.zeros(16, dtype=torch.long)), G(z, torch.ones(16, dtype=torch.long)))


def test_the_registry_builds_biggan_from_a_run_config():
    cfg = preset_config("biggan", model={"c_dim": 10, "img_resolution": 32, "img_channels": 1})
    G, D = build_generator(cfg.model), build_discriminator(cfg.model)
    assert G.z_chunks == [30, 30, 30, 30] and isinstance(D, BigGANDiscriminator)
    assert cfg.train.beta1 == 0 and cfg.train.beta2 == 0.999 and cfg.train.d_lr == 4 * cfg.train.g_lr


def test_spectral_norm_option_is_refused_before_a_run_starts(tiny, tmp_path):
    from trainer.config import ConfigError
    cfg = tiny("biggan", model={"spectral_norm": True})
    with pytest.raises(ConfigError, match="spectral norm in every layer already"):
        train(cfg, outdir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())   # refused before a run directory was made
