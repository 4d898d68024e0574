"""The exact StyleGANs train here (issue 23): `--preset stylegan2` trains NVlabs' classes and its
checkpoint is the kind an imported pickle is; StyleGAN3-T and -R train and resume bit for bit on
CPU; the generator's running statistics move only where NVlabs moves them; the trained
checkpoints open in trainer.load_generator and in the studio's renderer."""
from __future__ import annotations

import pytest
import torch

from trainer import load_generator
from trainer.checkpoint import load_state, read_checkpoint
from trainer.training.loop import Trainer, train
from trainer.training.presets import preset_config

from conftest import assert_resume_reproduces

TINY_CLI = ["--data", "digits", "--resolution", "16", "--max-images", "64", "--batch", "8", "--kimg", "0.016",
            "--z-dim", "16", "--w-dim", "16", "--channel-base", "128", "--channel-max", "16", "--mapping-layers", "2",
            "--sample-kimg", "0.016", "--snapshot-kimg", "0.016", "--grid-size", "2", "--threads", "1"]


def magnitudes(G) -> torch.Tensor:
    return torch.stack([layer.magnitude_ema.clone() for layer in G.synthesis.layers])


@pytest.mark.slow
def test_preset_stylegan2_trains_the_exact_model(tmp_path):
    from trainer.cli import main
    assert main(["--preset", "stylegan2", *TINY_CLI, "--outdir", str(tmp_path)]) == 0
    run = next(tmp_path.iterdir())
    G = load_generator(run)
    _, meta = read_checkpoint(sorted((run / "checkpoints").glob("*.safetensors"))[-1])
    assert meta["arch"] == "stylegan2" and type(G).__name__ == "NVlabsGenerator"   # what imports open in
    assert G.checkpoint_info["config"]["channel_base"] == 128 and G.num_ws == 6
    assert G.w_avg.abs().sum() > 0                                     # w_avg tracked while training
    state = load_state(run / "state" / "last.pt")
    assert "b16.conv0.weight" in state["D"] and "synthesis.b16.conv0.affine.weight" in state["G"]   # NVlabs' names
    assert G(torch.randn(2, 16)).shape == (2, 1, 16, 16)


def test_nvlabs_cfg_table_applies_under_the_options_given():
    cfg = preset_config("stylegan2", model={"cfg": "paper256", "channel_base": 2048}, data={"resolution": 16})
    assert (cfg.model.channel_base, cfg.model.channel_max, cfg.model.mapping_layers, cfg.model.mbstd_group) == \
        (2048, 512, 8, 8)
    assert (cfg.train.batch, cfg.train.g_lr, cfg.train.r1_gamma, cfg.train.ema_kimg) == (64, 0.0025, 1, 20)
    assert preset_config("stylegan2", model={"cfg": "stylegan2"}).model.channel_base == 32768
    with pytest.raises(ValueError, match="--cfg paper512"):
        preset_config("dcgan", model={"cfg": "paper512"})


def test_stylegan3_presets_follow_nvlabs():
    t = preset_config("stylegan3-t", data={"resolution": 256})
    assert t.model.mapping_layers == 2 and t.train.g_lr == 0.0025 and t.train.d_lr == 0.002
    assert t.train.pl_weight == 0 and t.train.style_mixing == 0 and t.train.r1_gamma == 2.0
    assert t.train.blur_fade_kimg == 0
    r = preset_config("stylegan3-r", data={"resolution": 32}, train={"batch": 64})
    assert r.train.blur_sigma == 10 and r.train.blur_fade_kimg == 64 * 200 / 32
    assert r.train.r1_gamma == pytest.approx(2 * (32 / 256) ** 2)
    assert preset_config("stylegan3-r", train={"r1_gamma": 0.5}).train.r1_gamma == 0.5   # given: kept


@pytest.mark.slow
def test_stylegan3_running_statistics_move_only_when_generating_for_d(tiny, tmp_path):
    trainer = Trainer(tiny("stylegan3-t", train={"threads": 1, "r1_every": 100}), tmp_path, progress=False)
    G = trainer.G
    assert G.synthesis.layers[0].magnitude_ema_beta == pytest.approx(0.5 ** (8 / 20000))   # from the batch
    z = torch.randn(8, 16)
    before, w_before = magnitudes(G), G.w_avg.clone()
    with torch.no_grad():
        trainer._generate(z, None, trainer.G_fast)            # G's step and path length: nothing moves
    assert torch.equal(magnitudes(G), before) and torch.equal(G.w_avg, w_before)
    with torch.no_grad():
        trainer._generate(z, None, update_emas=True)           # D's step: the magnitude EMAs move
    assert not torch.equal(magnitudes(G), before)
    trainer.train_step()
    assert not torch.equal(G.w_avg, w_before)                  # w_avg moved once, from the global batch


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["stylegan3-t", "stylegan3-r"])
def test_stylegan3_trains_and_resumes_exactly(preset, tiny, tmp_path):
    def config(kimg):
        return tiny(preset, train={"kimg": kimg, "snapshot_kimg": 0.032, "sample_kimg": 0.032, "r1_every": 2,
                                   "threads": 1}, data={"xflip": True, "max_images": 64})
    full = train(config(0.064), outdir=tmp_path / "a", progress=False)
    half = train(config(0.032), outdir=tmp_path / "b", progress=False)
    a = assert_resume_reproduces(full, half, 0.064)
    assert all(v != 1 for k, v in a["G"].items() if k.endswith("magnitude_ema"))   # the magnitude EMAs moved
    if preset == "stylegan3-r":
        assert full.run_dir.joinpath("config.json").read_text().count('"blur_sigma": 10.0') == 1

    G = load_generator(full.run_dir)
    assert type(G).__name__ == "StyleGAN3Generator" and G.checkpoint_info["config"]["arch"] == preset
    assert G.checkpoint_info["config"]["conv_kernel"] == (1 if preset == "stylegan3-r" else 3)
    from ganstudio.engine.renderer import Renderer, RenderRequest
    from trainer.latents import LatentState
    renderer = Renderer("cpu")
    info = renderer.load(full.run_dir)
    assert info.arch == preset and info.num_ws == G.num_ws
    shown = [renderer.render(RenderRequest(k, renderer.generation, LatentState(seed=seed)))
             for k, seed in enumerate((1, 2), start=1)]
    assert not shown[0].error and not shown[1].error
    assert shown[0].image.shape == (16, 16, 3) and not (shown[0].image == shown[1].image).all()
