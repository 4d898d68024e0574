"""StyleGAN v1 (trainer.models.stylegan1): the NVlabs generator API the studio relies on, w_avg
tracking and truncation, style mixing that splits coarse layout from fine detail, noise modes,
the level of detail of progressive growing, checkpoints with its own config, and a tiny
`--preset stylegan1` run that resumes exactly mid-fade."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_resume_reproduces, export_tiny
from trainer.checkpoint import load_generator, load_state, read_checkpoint
from trainer.config import ConfigError, ModelConfig
from trainer.events import read_events
from trainer.latents import layer_groups, mix_layers
from trainer.latents.synthesis import noise_layers, noise_override
from trainer.models import build_discriminator, build_generator, generator_config
from trainer.models.growing import upscale_nearest
from trainer.models.progan import ProGANDiscriminator
from trainer.models.stylegan1 import StyleGAN1Generator, StyleGAN1GeneratorConfig
from trainer.training.gan import GanTask
from trainer.training.loop import train
from trainer.training.presets import preset_config

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(resolution=32, seed=0, **overrides) -> StyleGAN1Generator:
    cfg = ModelConfig(arch="stylegan1", z_dim=16, w_dim=16, img_resolution=resolution, img_channels=1,
                      channel_base=128, channel_max=16, mapping_layers=2, **overrides)
    torch.manual_seed(seed)
    return build_generator(cfg).eval()


def z(n, seed=1, dim=16):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_nvlabs_api_shapes():
    G = tiny_model()
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels, G.num_ws) == (16, 0, 16, 32, 1, 8)
    assert [(b.resolution, b.num_conv) for b in G.synthesis.blocks] == [(4, 2), (8, 2), (16, 2), (32, 2)]
    ws = G.mapping(z(3), None)
    assert ws.shape == (3, 8, 16) and torch.equal(ws[:, 0], ws[:, 7])   # one w, repeated per layer
    img = G.synthesis(ws)
    assert img.shape == (3, 1, 32, 32) and torch.equal(G(z(3)), img)
    with pytest.raises(ValueError, match="expected"):
        G.synthesis(ws[:, :7])
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fresh")
    with pytest.raises(ValueError, match="block 8"):
        G.synthesis.b8(torch.zeros(1, 16, 8, 8), ws[:1, :2])   # the 8x8 block reads 4x4 features


def test_config_is_its_own_and_refuses_nonsense():
    cfg = generator_config(ModelConfig(arch="stylegan1", img_resolution=32, img_channels=1))
    assert isinstance(cfg, StyleGAN1GeneratorConfig) and cfg.blur_filter == [1.0, 2.0, 1.0]
    with pytest.raises(ConfigError, match="power of two"):
        StyleGAN1GeneratorConfig(img_resolution=24).validate()
    with pytest.raises(ConfigError, match="cond-g"):
        generator_config(ModelConfig(arch="stylegan1", c_dim=3, cond_g="concat"))


def test_w_avg_tracks_the_batch_mean_as_nvlabs():
    G = tiny_model()
    before = G.w_avg.clone()
    G.mapping(z(8), None)
    assert torch.equal(G.w_avg, before)                        # only when asked
    w = G.mapping(z(8), None, update_emas=True)[:, 0]
    assert torch.allclose(G.w_avg, w.mean(0).lerp(before, 0.995), atol=1e-7)


def test_truncation_psi_zero_draws_the_mean_and_cutoff_keeps_later_layers():
    G = tiny_model()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(16))
    ws = G.mapping(z(4), None, truncation_psi=0)
    assert torch.allclose(ws, G.w_avg.expand(4, 8, 16))
    mean_image = G.synthesis(G.w_avg.expand(1, 8, 16))
    assert torch.allclose(G(z(4), truncation_psi=0), mean_image.expand(4, -1, -1, -1), atol=1e-5)
    full, cut = G.mapping(z(4), None), G.mapping(z(4), None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.equal(cut[:, 2:], full[:, 2:]) and torch.allclose(cut[:, :2], G.w_avg.lerp(full[:, :2], 0.5))


def _layout_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - correlation of the 4x4-pooled images [N]: how much the layout moved, blind to overall
    brightness and contrast (which the fine styles are expected to change)."""
    a, b = F.avg_pool2d(a, a.shape[-1] // 4).flatten(1), F.avg_pool2d(b, b.shape[-1] // 4).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_style_mixing_coarse_layers_carry_the_layout_fine_ones_do_not(seed):
    # the studio's presets (layer_groups): coarse = 4-8 px layers, fine = 32 px at 32 px; at the
    # stylegan1 preset's widths (half its w), untrained (measured: layout change 0.69-0.81 coarse, 0.25-0.33 fine)
    torch.manual_seed(seed)
    G = build_generator(ModelConfig(arch="stylegan1", z_dim=64, w_dim=64, img_resolution=32, img_channels=1,
                                    channel_base=2048, channel_max=128)).eval()
    groups = layer_groups((4, 4, 8, 8, 16, 16, 32, 32))
    with torch.no_grad():
        base, style = G.mapping(z(48, seed, 64), None), G.mapping(z(48, seed + 100, 64), None)
        own, other = G.synthesis(base), G.synthesis(style)
        coarse = G.synthesis(mix_layers(base, style, groups["coarse"]))
        fine = G.synthesis(mix_layers(base, style, groups["fine"]))
    moved_coarse, moved_fine = _layout_change(own, coarse).mean(), _layout_change(own, fine).mean()
    assert moved_coarse > 1.5 * moved_fine
    # and the coarse mix takes its layout from the style source, the fine mix keeps its own
    assert _layout_change(other, coarse).mean() < _layout_change(other, fine).mean()


# A trained StyleGAN v1 (tests/data/make_stylegan1_mixing.py: the preset narrowed, 16 px, 20 + 20 kimg per
# level, 80 kimg): coarse (4 px) ws move the layout 0.34, fine (16 px) 0.06. Trained 1 + 1 kimg per level for
# 4 kimg it had the split the other way round (0.08 and 0.32): each new level's layers take the layout until
# the levels below have trained long enough (issue 29; benchmarks/results/stylegan1.md).
@pytest.mark.slow
def test_style_mixing_on_a_trained_checkpoint_gives_the_coarse_fine_split():
    G = load_generator(Path(__file__).parents[1] / "data" / "stylegan1-fmnist16.safetensors").eval()
    groups = layer_groups((4, 4, 8, 8, 16, 16))
    with torch.no_grad():
        base, style = G.mapping(z(200, 0, G.z_dim), None), G.mapping(z(200, 1, G.z_dim), None)
        own, other = G.synthesis(base), G.synthesis(style)
        coarse = G.synthesis(mix_layers(base, style, groups["coarse"]))
        fine = G.synthesis(mix_layers(base, style, groups["fine"]))
    assert _layout_change(own, coarse).mean() > 1.5 * _layout_change(own, fine).mean()
    assert _layout_change(other, coarse).mean() < _layout_change(other, fine).mean()


def test_noise_modes_and_per_image_maps():
    G = tiny_model()
    with torch.no_grad():
        for layer in noise_layers(G).values():
            layer.noise_strength.fill_(0.5)
    assert len(noise_layers(G)) == 8                           # every synthesis layer, as NVlabs
    ws = G.mapping(z(2), None)
    const = G.synthesis(ws, noise_mode="const")
    assert torch.equal(G.synthesis(ws, noise_mode="const"), const)
    assert not torch.allclose(G.synthesis(ws, noise_mode="none"), const)
    assert not torch.allclose(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    name, layer = next(iter(noise_layers(G).items()))
    maps = {name: torch.stack([layer.noise_const, torch.randn(4, 4)])[:, None]}   # [N, 1, H, W]
    with noise_override(G, maps):
        mixed = G.synthesis(ws, noise_mode="const")
    assert torch.equal(mixed[0], const[0]) and not torch.allclose(mixed[1], const[1])


def test_level_of_detail_is_the_smaller_model_upsampled():
    G = tiny_model()
    ws = G.mapping(z(2), None)
    for lod in (1, 2, 3):
        small = tiny_model(32 >> lod, seed=5)
        shared = {k: v for k, v in G.state_dict().items() if k in small.state_dict() and k != "synthesis.lod"}
        small.load_state_dict({**small.state_dict(), **shared})
        G.set_lod(lod)
        expected = upscale_nearest(small.synthesis(ws[:, :small.num_ws]), 2 ** lod)
        assert torch.allclose(G.synthesis(ws), expected, atol=1e-6), lod
    # mid-fade the image is the lerp of the two levels by alpha = 1 - fraction
    G.set_lod(1)
    at_16 = G.synthesis(ws)
    G.set_lod(2)
    at_8 = G.synthesis(ws)
    G.set_lod(1.25)
    assert torch.allclose(G.synthesis(ws), at_8 + (at_16 - at_8) * 0.75, atol=1e-5)
    assert G.synthesis(ws).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="outside"):
        G.set_lod(3.5)


def test_checkpoint_stores_its_own_config_and_the_lod(tmp_path):
    path = export_tiny(tmp_path / "sg1.safetensors", arch="stylegan1", c_dim=3, resolution=16)
    tensors, metadata = read_checkpoint(path)
    config = json.loads(metadata["config"])
    assert metadata["arch"] == "stylegan1" and config["blur_filter"] == [1.0, 2.0, 1.0]
    assert "width" not in config and "synthesis.lod" in tensors
    G = load_generator(path)
    assert isinstance(G, StyleGAN1Generator) and G.c_dim == 3 and float(G.lod) == 0.0
    c = torch.tensor([0, 2])
    assert torch.equal(G(z(2), c), G(z(2), c)) and not torch.allclose(G(z(2), c)[0], G(z(2), c.flip(0))[0])


def test_preset_builds_progans_discriminator_and_grows():
    cfg = preset_config("stylegan1", data={"source": "digits", "resolution": 16})
    GanTask.check(cfg, 1)
    m = ModelConfig.from_dict({**cfg.model.to_dict(), "img_resolution": 16, "img_channels": 1})
    assert isinstance(build_discriminator(m), ProGANDiscriminator)
    assert cfg.train.grow_kimg > 0 and cfg.train.style_mixing == 0.9 and cfg.train.loss == "nonsat"
    assert cfg.train.grow_start == 8                             # NVlabs' lod_initial_resolution


def _run_config(tiny, kimg):
    # 16 px: 4x4 for one step of 8 images, then 8x8 fades in over three steps, and so on
    return tiny("stylegan1", train={"kimg": kimg, "threads": 1, "grow_kimg": 0.008, "fade_kimg": 0.024, "grow_start": 4,
                                    "snapshot_kimg": 0.064, "sample_kimg": 0.064, "r1_every": 2})


@pytest.mark.slow
def test_preset_trains_and_resumes_exactly_mid_fade(tiny, tmp_path):
    full = train(_run_config(tiny, 0.064), outdir=tmp_path / "a", progress=False)
    half = train(_run_config(tiny, 0.024), outdir=tmp_path / "b", progress=False)
    assert 1 < float(load_state(half.run_dir / "state" / "last.pt")["G_ema"]["synthesis.lod"]) < 2
    state = assert_resume_reproduces(full, half, 0.064)
    # the last step (images 56-63) ran at lod 1 - 16/24: 16x16 two thirds faded in, in G, G_ema and D
    lods = {float(state[net][key]) for net, key in (("G", "synthesis.lod"), ("G_ema", "synthesis.lod"), ("D", "lod"))}
    assert len(lods) == 1 and lods.pop() == pytest.approx(1 / 3)
    assert state["G"]["mapping.w_avg"].abs().sum() > 0          # w_avg tracked in training
    events = list(read_events(full.run_dir / "events.jsonl"))
    scalars = [e["values"] for e in events if e["kind"] == "scalars"]
    assert [v["progress/resolution"] for v in scalars] == [4, 4, 8, 8, 8, 8, 16, 16]
    assert all("r1" in v for v in scalars[1::2])                 # R1 every second D step
    G = load_generator(full.run_dir)
    assert isinstance(G, StyleGAN1Generator) and float(G.lod) == pytest.approx(1 / 3)


def test_style_mixing_cutoff_is_drawn_among_the_layers_of_the_moment(tmp_path):
    # NVlabs' G_style: cutoff uniform in [1, num_layers - 2 * floor(lod)); over all 8 layers of a
    # 32 px G, most draws while it shows 4x4 or 8x8 would mix nothing it reads
    from conftest import tiny_config
    from trainer.training.loop import Trainer
    task = Trainer(tiny_config("stylegan1", resolution=32, train={"threads": 1, "style_mixing": 1.0,
                                                                   "grow_kimg": 1.0, "fade_kimg": 1.0}),
                   tmp_path, progress=False, log=lambda *_: None)
    G, z16 = task.G, torch.zeros(4, 16)
    for lod, active in ((3, 2), (2.5, 4), (2, 4), (1, 6), (0, 8)):
        G.set_lod(lod)
        assert G.num_active_ws == active
        cutoffs = {int(task._mixing(z16)[1]) for _ in range(200)}
        assert cutoffs == set(range(1, active)), lod
