"""ProGAN's G and D: G at lod k draws the nearest-upsampled image of its level, mid-fade the lerp
of the two levels; D at lod k sees only the pooled image; equalised weights and pixel norm; a
checkpoint exported mid-fade reopens at its lod; the preset trains and samples."""
import numpy as np
import pytest
import torch

from trainer.checkpoint import export_generator, load_generator
from trainer.config import ModelConfig
from trainer.models import build_discriminator, build_generator
from trainer.models.growing import downscale_avg, is_progressive, pixel_norm, upscale_nearest
from trainer.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(**kwargs) -> ModelConfig:
    return ModelConfig(**{"arch": "progan", "z_dim": 16, "img_resolution": 32, "img_channels": 1, "channel_base": 256,
                          "channel_max": 16, **kwargs})


def test_g_at_lod_k_is_the_nearest_upsampled_image_of_its_level():
    torch.manual_seed(0)
    G = build_generator(tiny_model())
    z = torch.randn(3, 16)
    with torch.no_grad():
        full = G(z)
        assert not torch.equal(full, upscale_nearest(full[:, :, ::2, ::2], 2))   # lod 0: detail at every pixel
        for k in (1, 2, 3):
            G.set_lod(float(k))
            img = G(z)
            assert img.shape == (3, 1, 32, 32)
            level_image = img[:, :, ::2 ** k, ::2 ** k]   # [N, 1, 32 / 2**k, 32 / 2**k]
            assert torch.equal(img, upscale_nearest(level_image, 2 ** k))
            assert not torch.equal(level_image, upscale_nearest(level_image[:, :, ::2, ::2], 2))


@pytest.mark.parametrize("lod", [0.25, 1.5, 2.9])
def test_g_mid_fade_is_the_lerp_of_its_two_levels(lod):
    torch.manual_seed(1)
    G = build_generator(tiny_model())
    z = torch.randn(2, 16)
    with torch.no_grad():
        G.set_lod(lod)
        mid = G(z)
        k = int(lod)
        G.set_lod(float(k))
        fine = G(z)
        G.set_lod(float(k + 1))
        coarse = G(z)
    alpha = 1 - (lod - k)
    assert torch.allclose(mid, coarse + (fine - coarse) * alpha, atol=1e-5)


def test_d_at_lod_k_sees_only_the_pooled_image():
    torch.manual_seed(2)
    D = build_discriminator(tiny_model())
    img = torch.randn(4, 1, 32, 32)
    blocky = upscale_nearest(downscale_avg(img, 4), 4)
    with torch.no_grad():
        assert not torch.allclose(D(img)[0], D(blocky)[0], atol=1e-4)
        D.set_lod(2.0)
        assert torch.allclose(D(img)[0], D(blocky)[0], atol=1e-5)
        D.set_lod(1.5)   # mid-fade the 8x8 level reads 8x8 detail again
        assert not torch.allclose(D(img)[0], D(blocky)[0], atol=1e-4)


def test_lod_is_a_buffer_g_and_d_carry_and_refuse_out_of_range():
    G, D = build_generator(tiny_model()), build_discriminator(tiny_model())
    assert is_progressive(G) and is_progressive(D)
    assert "lod" in G.state_dict() and "lod" in D.state_dict() and G.state_dict()["lod"].shape == ()
    with pytest.raises(ValueError):
        G.set_lod(3.5)


def test_equalised_layers_and_pixel_norm():
    x = torch.randn(8, 32, 4, 4) * 7
    assert torch.allclose(pixel_norm(x).square().mean(dim=1), torch.ones(8, 4, 4), atol=1e-4)
    G = build_generator(tiny_model())
    assert all(p.std() > 0.5 for name, p in G.named_parameters() if name.endswith("weight"))   # N(0, 1) stored


def test_checkpoint_exported_mid_fade_reopens_with_its_lod(tmp_path):
    cfg = tiny_model(c_dim=3)
    torch.manual_seed(3)
    G = build_generator(cfg)
    G.set_lod(1.25)
    z, c = torch.randn(2, 16), torch.tensor([0, 2])
    export_generator(G, tmp_path / "g.safetensors", cfg, 10, 0.32, {"name": "t", "resolution": 32, "channels": 1,
                                                                    "class_names": ["a", "b", "c"], "size": 1})
    reopened = load_generator(tmp_path / "g.safetensors")
    assert float(reopened.lod) == 1.25 and reopened.num_ws == 0
    with torch.no_grad():
        assert torch.equal(reopened(z, c), G(z, c))


@pytest.mark.slow
def test_preset_trains_grows_and_samples(tiny, tmp_path):
    from PIL import Image
    cfg = tiny("progan", resolution=16, train={"threads": 1, "grow_kimg": 0.008, "fade_kimg": 0.008})
    assert cfg.train.loss == "wgan-gp" and cfg.train.drift_weight == 0.001
    run = train(cfg, outdir=tmp_path, progress=False)
    G = load_generator(sorted((run.run_dir / "checkpoints").glob("*.safetensors"))[-1])
    assert float(G.lod) < 2   # grown past 4x4
    grid = np.asarray(Image.open(sorted((run.run_dir / "samples").glob("*.png"))[-1]))
    assert grid.shape[:2] == (4 * 16, 4 * 16) and grid.std() > 0


@pytest.mark.slow
def test_init_from_a_mid_fade_checkpoint_trains_at_the_new_runs_level(tiny, tmp_path):
    """--init copies weights, not the source's schedule: a run without growing starts at full
    resolution (lod 0), a growing one at its own 4x4 start."""
    cfg = tiny_model(c_dim=0)
    G = build_generator(cfg)
    G.set_lod(1.5)
    source = tmp_path / "mid-fade.safetensors"
    export_generator(G, source, cfg, 10, 0.32, {"name": "t", "resolution": 32, "channels": 1, "size": 1})
    for grow, expected in ((0.0, 0.0), (1.0, 3.0)):
        run_cfg = tiny("progan", resolution=32, model={"channel_base": 256, "channel_max": 16, "z_dim": 16},
                       train={"threads": 1, "init": str(source), "grow_kimg": grow, "fade_kimg": grow, "kimg": 0.004})
        run = train(run_cfg, outdir=tmp_path / f"grow-{grow}", progress=False)
        G_run = load_generator(sorted((run.run_dir / "checkpoints").glob("*.safetensors"))[-1])
        assert float(G_run.lod) == expected
