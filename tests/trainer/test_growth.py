"""Progressive growing as a schedule of the GAN task: the lod at the edges of each phase (NVlabs'
TrainingSchedule), real images faded like G's, the refusal on an arch that does not grow, the
scalars in the log, and a tiny run stopped mid-fade that resumes bit for bit."""
import pytest
import torch

from conftest import assert_resume_reproduces
from trainer.checkpoint import load_state
from trainer.config import ConfigError
from trainer.events import read_events
from trainer.models.growing import downscale_avg, level, max_lod, resolution_at, upscale_nearest
from trainer.training.gan import GanTask
from trainer.training.growth import fade_reals, growth_scalars, schedule_lod, start_lod
from trainer.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lod_counts_halvings_from_full_resolution():
    assert max_lod(32) == 3 and max_lod(4) == 0 and max_lod(1024) == 8
    assert level(2.0) == (2, 1.0) and level(1.25) == (1, 0.75) and level(0.0) == (0, 1.0)
    assert resolution_at(32, 3.0) == 4 and resolution_at(32, 2.5) == 8 and resolution_at(32, 0.1) == 32
    with pytest.raises(ValueError):
        max_lod(24)


@pytest.mark.parametrize("kimg, lod", [
    (0.0, 3.0), (3.9, 3.0), (4.0, 3.0),          # 4x4 stable for grow_kimg
    (5.0, 2.5), (5.999, 2.0005),                 # 8x8 fading in over fade_kimg
    (6.0, 2.0), (9.9, 2.0), (10.0, 2.0),         # 8x8 stable
    (11.0, 1.5), (12.0, 1.0), (17.0, 0.5),       # 16x16 fades in, stable, 32x32 fades in
    (18.0, 0.0), (100.0, 0.0),                   # fully grown from 3 phases x 6 kimg on
])
def test_schedule_gives_the_lod_at_phase_edges(kimg, lod):
    assert schedule_lod(kimg, 32, grow_kimg=4.0, fade_kimg=2.0) == pytest.approx(lod, abs=1e-9)


def test_schedule_without_a_stable_part_or_without_growth():
    assert schedule_lod(1.0, 32, 0.0, 2.0) == pytest.approx(2.5)   # fades only, from the first image
    assert schedule_lod(5.0, 32, 0.0, 0.0) == 0.0                 # no growing: full resolution


@pytest.mark.parametrize("kimg, lod", [
    (0.0, 2.0), (3.0, 2.0),                      # 8x8 stable from the first image (NVlabs' lod_initial_resolution)
    (4.5, 1.5), (6.0, 1.0), (10.5, 0.5),         # 16x16 fades in, stable, 32x32 fades in
    (12.0, 0.0), (50.0, 0.0),                    # fully grown after 2 phases
])
def test_schedule_can_start_above_4x4(kimg, lod):
    assert schedule_lod(kimg, 32, grow_kimg=3.0, fade_kimg=3.0, start_resolution=8) == pytest.approx(lod, abs=1e-9)


def test_start_resolution_must_be_a_power_of_two_within_the_image():
    assert start_lod(32, 4) == 3 and start_lod(32, 8) == 2 and start_lod(32, 32) == 0
    for bad in (2, 12, 64):
        with pytest.raises(ConfigError, match="--grow-start"):
            start_lod(32, bad)


def test_scalars_say_the_resolution_of_the_moment_and_its_fade():
    assert growth_scalars(32, 3.0) == {"progress/resolution": 4.0, "progress/alpha": 1.0}
    assert growth_scalars(32, 2.75) == {"progress/resolution": 8.0, "progress/alpha": 0.25}
    assert growth_scalars(32, 0.0) == {"progress/resolution": 32.0, "progress/alpha": 1.0}


def test_reals_are_faded_as_g_grows():
    img = torch.randn(2, 1, 16, 16)
    assert torch.equal(fade_reals(img, 0.0), img)                                  # full resolution: untouched
    coarse = upscale_nearest(downscale_avg(img, 4), 4)
    assert torch.allclose(fade_reals(img, 2.0), coarse, atol=1e-6)                # 4x4, blocks of 4x4
    finer = upscale_nearest(downscale_avg(img, 2), 2)
    # lod 1.25: the 8x8 level three quarters faded in over its 4x4 average
    assert torch.allclose(fade_reals(img, 1.25), coarse + (finer - coarse) * 0.75, atol=1e-6)


def test_growing_an_arch_without_lod_is_refused(tiny):
    cfg = tiny("dcgan", train={"grow_kimg": 1.0, "fade_kimg": 1.0})
    with pytest.raises(ConfigError, match="does not grow"):
        GanTask.check(cfg, 1)
    GanTask.check(tiny("progan", train={"grow_kimg": 1.0, "fade_kimg": 1.0}), 1)


def _config(tiny, kimg):
    # 16 px: 4x4 for one step (8 images), then 8x8 fades in over three steps, and so on
    return tiny("progan", train={"kimg": kimg, "threads": 1, "grow_kimg": 0.008, "fade_kimg": 0.024,
                                 "snapshot_kimg": 0.064, "sample_kimg": 0.064})


@pytest.mark.slow
def test_growth_is_logged_and_resumes_exactly_mid_fade(tiny, tmp_path):
    full = train(_config(tiny, 0.064), outdir=tmp_path / "a", progress=False)
    half = train(_config(tiny, 0.024), outdir=tmp_path / "b", progress=False)
    lod = float(load_state(half.run_dir / "state" / "last.pt")["G_ema"]["lod"])
    assert 1 < lod < 2                                   # the half run stops with 8x8 fading in
    state = assert_resume_reproduces(full, half, 0.064)
    assert float(state["G"]["lod"]) == float(state["D"]["lod"]) == float(state["G_ema"]["lod"])
    scalars = [e["values"] for e in read_events(full.run_dir / "events.jsonl") if e["kind"] == "scalars"]
    assert [v["progress/resolution"] for v in scalars] == [4, 4, 8, 8, 8, 8, 16, 16]
    assert [round(v["progress/alpha"], 4) for v in scalars] == [1, 1, 0.3333, 0.6667, 1, 1, 0.3333, 0.6667]


@pytest.mark.slow
def test_a_run_grown_from_8x8_never_shows_4x4(tiny, tmp_path):
    cfg = tiny("progan", train={"kimg": 0.032, "threads": 1, "grow_kimg": 0.008, "fade_kimg": 0.016, "grow_start": 8})
    result = train(cfg, outdir=tmp_path, progress=False)
    scalars = [e["values"] for e in read_events(result.run_dir / "events.jsonl") if e["kind"] == "scalars"]
    assert [v["progress/resolution"] for v in scalars] == [8, 8, 16, 16]   # lod 1 at the first image
    assert [round(v["progress/alpha"], 4) for v in scalars] == [1, 1, 0.5, 1]
    with pytest.raises(ConfigError, match="--grow-start"):
        GanTask.check(tiny("progan", train={"grow_kimg": 1.0, "grow_start": 32}), 1)
