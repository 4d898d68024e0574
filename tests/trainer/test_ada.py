"""Adaptive discriminator augmentation: each op of the pipeline on real images (identity at p=0,
its transform at p=1), the geometric path's anti-aliasing (a check that fails without the
filter), gradients through the pipe, and in training: p rises on a tiny set and not on a large
one, ada/p and ada/rt in the log and on the monitor's plot, exact resume."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import assert_resume_reproduces
from trainer.config import ConfigError, DataConfig
from trainer.data.datasets import load_dataset
from trainer.events import read_events
from trainer.training.ada import (AdaptiveAugment, augment, geometric_matrices, pipe_ops, resample)
from trainer.training.distributed import Ranks
from trainer.training.gan import GanTask
from trainer.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def grey():
    """16 Fashion-MNIST images at 32 px in [-1, 1]. [16, 1, 32, 32]"""
    data = load_dataset(DataConfig(source="fashion-mnist", resolution=32, max_images=16)).data
    return data.float() / 127.5 - 1


@pytest.fixture(scope="module")
def rgb():
    """16 crops of a real photo (scikit-learn's china.jpg) at 32 px in [-1, 1]. [16, 3, 32, 32]"""
    from sklearn.datasets import load_sample_image
    photo = torch.from_numpy(np.array(load_sample_image("china.jpg"))).permute(2, 0, 1).float() / 127.5 - 1
    crops = [photo[:, y:y + 128, x:x + 128] for y in (0, 100, 200, 290) for x in (0, 170, 340, 500)]
    return F.avg_pool2d(torch.stack(crops), 4)


def draw(x, p, ops, seed=0):
    torch.manual_seed(seed)
    return augment(x, p, ops)


def grey_part(x):
    """The grey component of RGB images [N, 3, H, W] or [3, H, W]: the channels' mean."""
    return x.mean(dim=-3, keepdim=True)


# ---- each op ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", pipe_ops("bgc"))
def test_every_op_is_the_identity_at_p0_and_changes_images_at_p1(op, grey, rgb):
    images = rgb if op in ("hue", "saturation") else grey   # hue and saturation leave grey alone
    assert torch.equal(draw(images, 0.0, (op,)), images)
    changed = (draw(images, 1.0, (op,)) - images).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.sum() >= 4, f"{op} at p=1 changed {int(changed.sum())} of 16 images"


def test_p_is_the_chance_of_each_op(grey):
    x = grey.repeat(16, 1, 1, 1)   # 256 images
    changed = (draw(x, 0.3, ("brightness",)) != x).flatten(1).any(dim=1).float().mean()
    assert 0.2 < changed < 0.4


def test_xflip_flips(grey):
    out = draw(grey, 1.0, ("xflip",))
    flipped = [torch.equal(o, x.flip(-1)) for o, x in zip(out, grey)]
    kept = [torch.equal(o, x) for o, x in zip(out, grey)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_rotate90_rotates_by_quarter_turns(grey):
    out = draw(grey, 1.0, ("rotate90",), seed=1)
    turns = [[torch.equal(o, x.rot90(k, dims=(-2, -1))) for k in range(4)] for o, x in zip(out, grey)]
    assert all(any(t) for t in turns)
    assert len({t.index(True) for t in turns}) >= 3


def test_integer_translation_shifts_by_whole_pixels(grey):
    out = draw(grey, 1.0, ("xint",), seed=2)
    shifts = []
    for o, x in zip(out, grey):
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if torch.equal(o[:, 4:-4, 4:-4], x.roll((dy, dx), dims=(-2, -1))[:, 4:-4, 4:-4])]
        assert found, "not a whole-pixel shift of at most 1/8 of the size"
        shifts.append(found[0])
    assert len(set(shifts)) >= 6


def test_brightness_shifts_every_pixel_by_one_amount(grey):
    x = grey.repeat(8, 1, 1, 1)
    delta = (draw(x, 1.0, ("brightness",)) - x).flatten(1)
    assert (delta.amax(dim=1) - delta.amin(dim=1)).max() < 1e-5
    assert 0.15 < delta[:, 0].std() < 0.25           # the paper's std 0.2


def test_contrast_scales_by_a_log_normal_factor(grey):
    x = grey.repeat(8, 1, 1, 1)
    out = draw(x, 1.0, ("contrast",))
    gain = (out * x).flatten(1).sum(1) / x.square().flatten(1).sum(1)
    assert torch.allclose(out, x * gain[:, None, None, None], atol=1e-5)
    assert 0.4 < gain.log2().std() < 0.6             # log2 std 0.5


def test_luma_flip_negates_grey_and_reflects_rgb_through_the_grey_axis(grey, rgb):
    out = draw(grey, 1.0, ("lumaflip",))
    assert all(torch.equal(o, x) or torch.allclose(o, -x, atol=1e-6) for o, x in zip(out, grey))
    out = draw(rgb, 1.0, ("lumaflip",))
    assert torch.allclose(out - grey_part(out), rgb - grey_part(rgb), atol=1e-5)   # colour kept
    flipped = [torch.allclose(grey_part(o), -grey_part(x), atol=1e-5) for o, x in zip(out, rgb)]
    kept = [torch.equal(o, x) for o, x in zip(out, rgb)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_hue_rotates_colour_around_the_grey_axis(rgb):
    out = draw(rgb, 1.0, ("hue",))
    assert torch.allclose(grey_part(out), grey_part(rgb), atol=1e-5)   # brightness kept
    chroma_in, chroma_out = rgb - grey_part(rgb), out - grey_part(out)
    assert torch.allclose(chroma_out.norm(dim=1), chroma_in.norm(dim=1), atol=1e-4)   # saturation kept
    assert (chroma_out - chroma_in).abs().amax() > 0.1


def test_saturation_scales_colour_only(rgb):
    out = draw(rgb, 1.0, ("saturation",))
    assert torch.allclose(grey_part(out), grey_part(rgb), atol=1e-5)
    chroma_in, chroma_out = rgb - grey_part(rgb), out - grey_part(out)
    gain = (chroma_out * chroma_in).flatten(1).sum(1) / chroma_in.square().flatten(1).sum(1)
    assert torch.allclose(chroma_out, chroma_in * gain[:, None, None, None], atol=1e-4)
    assert gain.min() < 0.8 and gain.max() > 1.25


def test_geometric_ops_draw_the_papers_distributions():
    torch.manual_seed(0)
    n = 4000
    scale = geometric_matrices(n, 32, 1.0, ("scale",), "cpu")
    assert torch.allclose(scale[:, 0, 0], scale[:, 1, 1]) and 0.18 < scale[:, 0, 0].log2().std() < 0.22
    aniso = geometric_matrices(n, 32, 1.0, ("aniso",), "cpu")
    assert torch.allclose(aniso[:, 0, 0] * aniso[:, 1, 1], torch.ones(n), atol=1e-5)
    angles = torch.atan2(*geometric_matrices(n, 32, 1.0, ("rotate",), "cpu")[:, [1, 0], 0].T)
    assert (angles.abs() > 3 * math.pi / 4).float().mean() > 0.2          # uniform: every angle occurs
    shift = geometric_matrices(n, 32, 1.0, ("xfrac",), "cpu")[:, :2, 2] / 32
    assert 0.11 < shift.std() < 0.14                                       # std 1/8 of the size
    assert torch.equal(geometric_matrices(8, 32, 0.0, pipe_ops("g"), "cpu"), torch.eye(3).repeat(8, 1, 1))


def blob(size=32, cx=15.5, cy=15.5, sigma=2.0):
    yy, xx = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    return torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))[None, None]


def centroid(img):
    yy, xx = torch.meshgrid(torch.arange(img.shape[-2] * 1.0), torch.arange(img.shape[-1] * 1.0), indexing="ij")
    w = img[0, 0].clamp(min=0)
    return float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())


def affine(a=1.0, b=0.0, c=0.0, d=1.0, tx=0.0, ty=0.0):
    return torch.tensor([[a, b, tx], [c, d, ty], [0, 0, 1.0]])[None]


def test_resampling_moves_turns_and_scales_an_image_as_its_matrix_says():
    x = blob()
    assert (resample(x, affine()) - x).abs().max() < 1e-2                       # identity
    cx, cy = centroid(resample(x, affine(tx=2.5, ty=-1.25)))                  # output reads input at o + t
    assert abs(cx - 13.0) < 0.02 and abs(cy - 16.75) < 0.02
    off_centre = blob(cx=10, cy=20)
    quarter = resample(off_centre, affine(0, -1, 1, 0))
    assert torch.allclose(quarter, off_centre.rot90(1, dims=(-2, -1)), atol=1e-2)
    zoomed = resample(x, affine(0.5, 0, 0, 0.5))                              # 2x magnification
    spread = lambda img: float((img[0, 0].clamp(min=0) * (torch.arange(32.0) - 15.5) ** 2).sum() / img.clamp(min=0).sum())
    assert math.sqrt(spread(zoomed)) == pytest.approx(2 * math.sqrt(spread(x)), rel=0.05)


def test_geometric_path_pads_by_reflection():
    """A flat image stays flat under any transform: no dark corners from zero padding."""
    flat = torch.full((16, 3, 32, 32), 0.7)
    out = draw(flat, 1.0, pipe_ops("bg"))
    assert (out - 0.7).abs().max() < 1e-4


# ---- aliasing -----------------------------------------------------------------------------------
def cosine(f, size=64):
    """A vertical-stripe pattern at f cycles per pixel. [1, 1, size, size]"""
    return torch.cos(2 * math.pi * f * torch.arange(size * 1.0)).expand(size, size)[None, None].clone()


@pytest.mark.parametrize("filtered", [True, False])
def test_zooming_out_a_fine_pattern_does_not_alias(filtered):
    """Stripes at 0.375 cycles/pixel zoomed out 2x would be at 0.75, past Nyquist: a correct
    resampler removes them (grey); sampling without the low-pass folds them into false stripes
    at 0.25 cycles/pixel. The check fails without the filter."""
    x = cosine(0.375)
    out = resample(x, affine(2, 0, 0, 2), filtered=filtered)[0, 0, 16:48, 16:48]
    left = float(out.var() / x.var())
    if filtered:
        assert left < 0.02
    else:
        assert left > 0.1


def spectral_purity(img, fx, fy):
    """The share of a centre crop's (Hann-windowed) spectral energy within 2.5 bins of +-(fx, fy)."""
    crop = img[16:48, 16:48] - img[16:48, 16:48].mean()
    window = torch.hann_window(32, periodic=False)
    energy = torch.fft.fftshift(torch.fft.fft2(crop * window[:, None] * window[None])).abs().square()
    freqs = torch.fft.fftshift(torch.fft.fftfreq(32))
    gy, gx = torch.meshgrid(freqs, freqs, indexing="ij")
    near = ((gx - fx) ** 2 + (gy - fy) ** 2 < (2.5 / 32) ** 2) | ((gx + fx) ** 2 + (gy + fy) ** 2 < (2.5 / 32) ** 2)
    return float(energy[near].sum() / energy.sum())


@pytest.mark.parametrize("filtered", [True, False])
def test_rotating_a_fine_pattern_makes_no_new_spectral_peaks(filtered):
    """Stripes at 0.4 cycles/pixel turned by 17, 30 and 45 degrees: the filtered path keeps >= 98%
    of the energy at the turned frequency with most of the amplitude; plain bilinear sampling
    leaks ~17% into false peaks and loses half the energy. The check fails without the filter."""
    x = cosine(0.4)
    for degrees in (17, 30, 45):
        t = math.radians(degrees)
        out = resample(x, affine(math.cos(t), -math.sin(t), math.sin(t), math.cos(t)), filtered=filtered)[0, 0]
        purity = spectral_purity(out, 0.4 * math.cos(t), -0.4 * math.sin(t))
        kept = float(out[16:48, 16:48].var() / x.var())
        if filtered:
            assert purity > 0.98 and 0.45 < kept <= 1.05, (degrees, purity, kept)
        else:
            assert purity < 0.9 or kept < 0.45


# ---- gradients, randomness ----------------------------------------------------------------------
def test_gradients_flow_through_the_pipe_twice(rgb):
    """G learns through the pipe on fakes; R1 differentiates D's gradient w.r.t. the un-augmented
    reals a second time."""
    x = rgb.clone().requires_grad_(True)
    out = draw(x, 1.0, pipe_ops("bgc"))
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
    (second,) = torch.autograd.grad(grad.square().sum(), x)
    assert second.abs().sum() > 0


def test_the_same_seed_draws_the_same_augmentations(rgb):
    assert torch.equal(draw(rgb, 0.5, pipe_ops("bgc"), seed=3), draw(rgb, 0.5, pipe_ops("bgc"), seed=3))
    assert not torch.equal(draw(rgb, 0.5, pipe_ops("bgc"), seed=3), draw(rgb, 0.5, pipe_ops("bgc"), seed=4))


# ---- the adaptive p -----------------------------------------------------------------------------
def test_p_moves_by_the_sign_of_rt_minus_the_target_every_four_d_steps():
    ada = AdaptiveAugment("bgc", 0.5, 0.6, kimg=1.0, batch=32, ranks=Ranks(), device=torch.device("cpu"))
    for d_steps in range(1, 5):
        ada.observe(torch.tensor([1.0, 1.0, 1.0, -1.0]))   # r_t 0.5 < 0.6
        ada.after_d_step(d_steps)
        assert ada.p == (0.5 if d_steps < 4 else pytest.approx(0.5 - 32 * 4 / 1000))
    for d_steps in range(5, 9):
        ada.observe(torch.tensor([1.0, 1.0, 1.0, 1.0]))     # r_t 1 > 0.6
        ada.after_d_step(d_steps)
    assert ada.p == pytest.approx(0.5)
    assert ada.scalars() == {"ada/p": pytest.approx(0.5), "ada/rt": 0.75}
    fixed = AdaptiveAugment("bgc", 0.3, 0.0, kimg=1.0, batch=32, ranks=Ranks(), device=torch.device("cpu"))
    for d_steps in range(1, 9):
        fixed.observe(torch.ones(4))
        fixed.after_d_step(d_steps)
    assert fixed.p == 0.3


def test_ada_is_refused_where_its_signal_means_nothing(tiny):
    for preset, train_options, expected in (("wgan-gp", {}, "sign of D's outputs"),
                                            ("toy-gan", {}, "2-D points")):
        cfg = tiny(preset, train={"augment": "ada", **train_options},
                   **({"data": {"source": "ring8"}} if preset == "toy-gan" else {}))
        with pytest.raises(ConfigError, match=expected):
            GanTask.check(cfg, 1)
    GanTask.check(tiny("wgan-gp", train={"augment": "ada", "ada_target": 0.0, "augment_p": 0.2}), 1)


def ada_run(tiny, tmp_path, name, **train_options):
    cfg = tiny("stylegan2", train={"augment": "ada", "threads": 1, "r1_every": 2, **train_options})
    return train(cfg, outdir=tmp_path / name, progress=False)


@pytest.mark.slow
def test_ada_scalars_are_logged_and_plotted(tiny, tmp_path):
    from ganstudio.engine.plot_layout import plot_for
    run = ada_run(tiny, tmp_path, "a", augment_p=0.5, ada_kimg=1.0)
    scalars = [e["values"] for e in read_events(run.run_dir / "events.jsonl") if e["kind"] == "scalars"]
    assert all({"ada/p", "ada/rt"} <= set(v) for v in scalars)
    assert all(-1 <= v["ada/rt"] <= 1 and 0 <= v["ada/p"] <= 1 for v in scalars)
    assert len({v["ada/p"] for v in scalars}) > 1                       # p moved
    assert plot_for("ada/p", False) == plot_for("ada/rt", False) == "ada"


@pytest.mark.slow
def test_ada_resumes_exactly(tiny, tmp_path):
    def config(kimg):
        return tiny("stylegan2", train={"kimg": kimg, "snapshot_kimg": 0.032, "sample_kimg": 0.032, "r1_every": 2,
                                        "threads": 1, "augment": "ada", "augment_p": 0.3, "ada_kimg": 1.0})
    full = train(config(0.064), outdir=tmp_path / "a", progress=False)
    half = train(config(0.032), outdir=tmp_path / "b", progress=False)
    state = assert_resume_reproduces(full, half, 0.064)
    from trainer.checkpoint import load_state
    resumed = load_state(half.run_dir / "state" / "last.pt")
    assert state["ada"]["p"] == resumed["ada"]["p"] != 0.3            # p moved and resumed with the rest
    assert torch.equal(state["ada"]["signs"], resumed["ada"]["signs"])


@pytest.mark.slow
def test_p_rises_and_stays_up_on_a_tiny_set_and_falls_to_zero_on_a_large_one(tiny, tmp_path):
    """Real Fashion-MNIST at 16 px, the same small DCGAN and settings, 960 steps, p from 0 with
    --ada-kimg 5 (fast, to see it in a test). Both start with r_t near 1 (a fresh D tells noise from
    clothes) and p climbs; then on 10,000 images D has nothing to learn by heart, r_t falls below
    the target and p goes back to ~0, while on 16 images D memorises them and p stays where it
    holds r_t at the target (seen: 0.08 against 0.00-0.01)."""
    def p_curve(images):
        cfg = tiny("dcgan", source="fashion-mnist", data={"max_images": images},
                   model={"width": 16, "max_width": 32},
                   train={"augment": "ada", "ada_kimg": 5.0, "r1_gamma": 0.0, "kimg": 7.68, "log_every": 48,
                          "sample_kimg": 100, "snapshot_kimg": 100, "threads": 1})
        run = train(cfg, outdir=tmp_path / str(images), progress=False)
        return [e["values"]["ada/p"] for e in read_events(run.run_dir / "events.jsonl") if e["kind"] == "scalars"]
    tiny_set, large_set = p_curve(16), p_curve(10000)
    assert max(tiny_set) > 0.2 and max(large_set) > 0.2            # both climb while D wins on everything
    assert large_set[-1] <= 0.03 < tiny_set[-1]
    assert min(tiny_set[-5:]) > max(large_set[-5:])                 # the tiny set keeps p up over the last stretch
