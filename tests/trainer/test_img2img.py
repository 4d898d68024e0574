"""Pix2Pix and CycleGAN in the trainer: shapes, real training steps on real images, exports the
loader opens, exact resume, and the data layouts with their errors."""
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.checkpoint import load_generator, load_state
from trainer.data.datasets import DataError
from trainer.data.edges import canny_edges
from trainer.events import read_events
from trainer.files import read_safetensors_metadata
from trainer.models.cyclegan import CycleGANGenerators, ResNetGenerator
from trainer.models.pix2pix import ConditionalPatchDiscriminator, PatchDiscriminator, UNetGenerator
from trainer.translation import translate_pixels
from trainer.config import TranslationDataConfig
from trainer.training.loop import train
from trainer.training.presets import preset_config
from trainer.data.paired import load_translation_data

TINY_MODEL = {"g_width": 4, "d_width": 4, "resnet_blocks": 1}
TINY_TRAIN = {"batch": 4, "kimg": 0.032, "log_every": 2, "sample_kimg": 0.016, "snapshot_kimg": 0.016,
              "grid_size": 4, "threads": 1, "metrics_images": 16}


def tiny(preset, **sections):
    values = {"data": {"resolution": 16, "max_images": 24}, "model": TINY_MODEL, "train": TINY_TRAIN}
    for section, extra in sections.items():
        values[section] = {**values.get(section, {}), **extra}
    return preset_config(preset, **values)


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_unet_and_patchgan_shapes(resolution):
    G = UNetGenerator(1, 3, resolution, width=4)
    x = torch.rand(2, 1, resolution, resolution) * 2 - 1
    y = G(x)
    assert y.shape == (2, 3, resolution, resolution) and y.abs().max() <= 1
    D = ConditionalPatchDiscriminator(4, width=4, layers=1)
    assert D(x, y).shape == (2, 1, resolution // 2 - 2, resolution // 2 - 2)   # 16x16 patches
    with pytest.raises(ValueError, match=r"\[N, 1, %d, %d\]" % (resolution, resolution)):
        G(torch.zeros(2, 3, resolution, resolution))


def test_patchgan_receptive_field_is_70_pixels():
    D = PatchDiscriminator(1, width=2, layers=3, norm="batch").eval()   # instance norm would mix all pixels
    x = torch.zeros(1, 1, 140, 140, requires_grad=True)
    D(x)[0, 0, 5, 5].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
    assert rows.max() - rows.min() + 1 == 70


def test_resnet_generators_translate_both_ways():
    G = CycleGANGenerators(1, 3, 16, width=4, blocks=2)
    a = torch.rand(2, 1, 16, 16) * 2 - 1
    assert G.translate(a, "AtoB").shape == (2, 3, 16, 16)
    assert G.round_trip(a).shape == a.shape
    assert ResNetGenerator(3, 3, 32, 4, 1)(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="divide by 4"):
        ResNetGenerator(1, 1, 18)


def test_canny_draws_the_outline_of_a_square():
    img = torch.zeros(1, 1, 24, 24, dtype=torch.uint8)
    img[..., 6:18, 6:18] = 255
    edges = canny_edges(img)[0, 0]
    assert edges[12, 5:8].any() and edges[12, 16:19].any()          # left and right sides found
    assert not edges[10:14, 10:14].any() and not edges[:3].any()    # nothing inside or far away


@pytest.mark.slow
def test_pix2pix_trains_logs_exports_and_translates(tmp_path, capsys):
    result = train(tiny("pix2pix"), outdir=tmp_path, progress=False)
    assert result.state == "finished" and result.step == 8
    events = read_events(result.run_dir / "events.jsonl")
    scalars = [e["values"] for e in events if e["kind"] == "scalars"]
    assert {"loss/D", "loss/G", "loss/adversarial", "loss/l1", "D/real", "D/fake", "lr/G"} <= set(scalars[0])
    metrics = {e["name"]: e["value"] for e in events if e["kind"] == "metric"}
    assert {"translation/l1", "translation/psnr", "translation/ssim"} <= set(metrics)
    assert 0 < metrics["translation/l1"] < 1
    strip = np.asarray(Image.open(result.run_dir / "samples" / "step-000008.png"))
    assert strip.shape == (3 * 16, 4 * 16, 3)                     # input | output | target rows
    ckpt = sorted((result.run_dir / "checkpoints").glob("*.safetensors"))[-1]
    meta = read_safetensors_metadata(ckpt)
    assert meta["arch"] == "pix2pix" and meta["direction"] == "AtoB"
    assert (meta["in_channels"], meta["out_channels"], meta["resolution"]) == ("1", "1", "16")
    G = load_generator(result.run_dir)
    assert G.translates and not G.training
    out = translate_pixels(G, np.full((40, 30), 200, np.uint8))
    assert out.output.shape == (16, 16, 3) and out.round_trip is None
    from trainer.cli import main           # headless, the same path: files in, translations out
    Image.new("L", (30, 20), 255).save(tmp_path / "drawing.png")
    (tmp_path / "notes.png").write_text("not an image")
    code = main(["translate", "--checkpoint", str(result.run_dir), str(tmp_path / "drawing.png"),
                 str(tmp_path / "notes.png"), "--out", str(tmp_path / "out")])
    assert code == 2 and Image.open(tmp_path / "out" / "drawing-translated.png").size == (16, 16)
    assert "notes.png is not an image file" in capsys.readouterr().err


@pytest.mark.slow
def test_pix2pix_lr_decays_linearly_to_zero(tmp_path):
    result = train(tiny("pix2pix", train={"kimg": 0.064, "log_every": 1, "metrics": ""}),
                               outdir=tmp_path, progress=False)
    lrs = [e["values"]["lr/G"] for e in read_events(result.run_dir / "events.jsonl") if e["kind"] == "scalars"]
    assert lrs[0] == lrs[len(lrs) // 2 - 1] == pytest.approx(2e-4)          # constant for the first half
    assert lrs[-1] == pytest.approx(2e-4 * 4 / 32) and lrs[-1] < lrs[-2] < lrs[len(lrs) // 2]


@pytest.mark.slow
def test_cyclegan_trains_with_every_loss_and_exports_both_generators(tmp_path):
    result = train(tiny("cyclegan"), outdir=tmp_path, progress=False)
    assert result.state == "finished"
    events = read_events(result.run_dir / "events.jsonl")
    scalars = [e["values"] for e in events if e["kind"] == "scalars"]
    assert {"loss/adversarial", "loss/cycle_A", "loss/cycle_B", "loss/identity"} <= set(scalars[-1])
    assert "translation/cycle" in {e["name"] for e in events if e["kind"] == "metric"}
    G = load_generator(result.run_dir)
    names = set(G.state_dict())
    assert any(n.startswith("a_to_b.") for n in names) and any(n.startswith("b_to_a.") for n in names)
    out = translate_pixels(G, np.zeros((16, 16, 3), np.uint8), "BtoA", round_trip=True)
    assert out.direction == "BtoA" and out.round_trip.shape == (16, 16, 3)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["pix2pix", "cyclegan"])
def test_resume_reproduces_uninterrupted_run(preset, tmp_path):
    schedule = {"constant_kimg": 0.02, "decay_kimg": 0.04, "metrics": "", "pool_size": 3}
    full = train(tiny(preset, train={"kimg": 0.048, **schedule}, data={"xflip": True}),
                             outdir=tmp_path / "a", progress=False)
    half = train(tiny(preset, train={"kimg": 0.024, **schedule}, data={"xflip": True}),
                             outdir=tmp_path / "b", progress=False)
    assert half.step < full.step
    resumed = train(run_dir=half.run_dir, resume=True, kimg=0.048, progress=False)
    assert resumed.step == full.step and resumed.state == "finished"
    resumed_line = [e for e in read_events(half.run_dir / "events.jsonl") if e["kind"] == "status"][2]["message"]
    assert resumed_line.endswith("changed since the state was saved: train.kimg 0.024 -> 0.048"), resumed_line
    a = load_state(full.run_dir / "state" / "last.pt")
    b = load_state(half.run_dir / "state" / "last.pt")
    for net in ("G", "D"):
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), f"{net}.{key} differs after resume"
    assert torch.equal(a["pool_a"], b["pool_a"])


@pytest.mark.slow
def test_resume_refuses_a_model_change(tmp_path):
    first = train(tiny("pix2pix", train={"metrics": ""}), outdir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="cannot change when resuming"):
        train(run_dir=first.run_dir, resume=True, resume_overrides={"l1_weight": 1.0})


@pytest.mark.slow
def test_cli_trains_a_translation_preset_and_resumes_it(tmp_path, capsys):
    from trainer.cli import main
    args = ["--preset", "pix2pix", "--outdir", str(tmp_path), "--resolution", "16", "--max-images", "16",
            "--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.016", "--threads", "1", "--metrics", ""]
    assert main(args) == 0
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "config.json").read_text())["task"] == "translation"
    assert main(["--resume", str(run_dir), "--kimg", "0.032"]) == 0
    assert "at step 8" in capsys.readouterr().out
    assert main(["presets"]) == 0 and "cyclegan" in capsys.readouterr().out


# ---- data layouts ---------------------------------------------------------------------------

def _save(path, value=128, size=(12, 12), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def _cfg(source, split="train"):
    return TranslationDataConfig(source=str(source), resolution=8, split=split)


def test_two_folders_pair_by_name_and_name_the_first_missing_partner(tmp_path):
    for name, value in (("shoe1", 10), ("shoe2", 20)):
        _save(tmp_path / "A" / f"{name}.png", value)
        _save(tmp_path / "B" / f"{name}.jpg", (255 - value,) * 3, mode="RGB")
    data = load_translation_data(_cfg(tmp_path), paired=True)
    assert data.paired and data.a.shape == (2, 1, 8, 8) and data.b.shape == (2, 3, 8, 8)
    assert data.describe()["source"] == str(tmp_path)          # checkpoints say where the folder is
    assert data.a[1].float().mean() == 20 and abs(data.b[1].float().mean() - 235) < 2   # partners stay together
    _save(tmp_path / "A" / "boot7.png")
    with pytest.raises(DataError, match=r"boot7\.png has no partner in .*B' \(no file named boot7\.\* there\)"):
        load_translation_data(_cfg(tmp_path), paired=True)
    assert not load_translation_data(_cfg(tmp_path), paired=False).paired   # unpaired use needs no partners


def test_side_by_side_pairs_split_in_halves_and_bad_files_are_skipped(tmp_path):
    img = Image.new("L", (24, 12), 0)
    img.paste(255, (12, 0, 24, 12))                  # A black | B white
    img.save(tmp_path / "pair.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("L", (12, 12)).save(tmp_path / "square.png")
    data = load_translation_data(_cfg(tmp_path), paired=True)
    assert len(data.a) == 1 and data.a.max() == 0 and data.b.min() == 255
    reasons = dict(data.skipped)
    assert any("broken.png" in p for p in reasons) and any("not twice as wide" in r for r in reasons.values())


def test_unpaired_zip_with_train_and_test_folders(tmp_path):
    archive = tmp_path / "horses.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for folder, count in (("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 1)):
            for i in range(count):
                z.writestr(f"{folder}/{i}.png", _png_bytes(40 * i))
    train = load_translation_data(_cfg(archive), paired=False)
    assert (len(train.a), len(train.b)) == (3, 2) and train.domains == ("trainA", "trainB")
    assert len(load_translation_data(_cfg(archive, "test"), paired=False).a) == 1
    with pytest.raises(DataError, match="has no partner"):
        load_translation_data(_cfg(archive), paired=True)


def test_unpaired_data_needs_two_domains_and_pix2pix_needs_pairs(tmp_path):
    _save(tmp_path / "cats" / "1.png")
    with pytest.raises(DataError, match="trainA/ and trainB/"):
        load_translation_data(_cfg(tmp_path), paired=False)
    with pytest.raises(DataError, match="unpaired"):
        load_translation_data(TranslationDataConfig(source="sneakers2boots", max_images=4), paired=True)


def _png_bytes(value):
    import io
    buffer = io.BytesIO()
    Image.new("L", (10, 10), value).save(buffer, format="PNG")
    return buffer.getvalue()
