"""The dataset tool on real photos (scikit-image's) with planted problems: the report's counts are
exact, the zip is what the loader and a training run read, the framing and the contact sheet are
right, and a failure leaves no half-written zip."""
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main as cli
from trainer.config import DataConfig
from trainer.data.dataset_tool import (DatasetSettings, SHEET_BACKGROUND, SHEET_CELL, SHEET_GAP, build_dataset, frame,
                                       nearest_power_of_two, normalise, sheet_layout)
from trainer.data.datasets import load_dataset

data = pytest.importorskip("skimage.data")
RESOLUTION = 32


def photo(name: str) -> Image.Image:
    """A scikit-image photo at half size (quicker to write and read)."""
    return Image.fromarray(getattr(data, name)()).reduce(2)


def planted_folder(root):
    """Two class folders, one loose picture, and one of each problem the report counts."""
    cats, things = root / "cats", root / "things"
    cats.mkdir(parents=True)
    things.mkdir()
    photo("chelsea").save(cats / "chelsea.png")
    photo("chelsea").save(cats / "chelsea_copy.bmp")                                  # exact duplicate
    photo("chelsea").resize((190, 126)).save(cats / "chelsea_small.jpg", quality=30)  # near duplicate
    photo("astronaut").convert("CMYK").save(things / "astronaut_cmyk.jpg")            # CMYK
    coffee = np.array(photo("coffee").convert("RGBA"))
    coffee[:50, :, 3] = 0
    Image.fromarray(coffee).save(things / "coffee_alpha.png")                         # alpha
    photo("immunohistochemistry").quantize(64).save(things / "cells_palette.png")    # palette
    Image.fromarray(data.camera()[::2, ::2].astype(np.uint16) * 257).save(things / "camera16.png")   # 16-bit grey
    exif = Image.Exif()
    exif[0x0112] = 6   # orientation: rotate 90 degrees clockwise to show
    photo("rocket").save(things / "rocket_sideways.jpg", exif=exif, quality=95)      # EXIF orientation
    photo("coins").resize((12, 10)).save(things / "coins_tiny.png")                  # too small
    (things / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 a JPEG header and nothing else")   # unreadable
    photo("brick").save(root / "loose.png")                                           # outside a class folder
    (root / "notes.txt").write_text("not a picture")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = planted_folder(tmp_path_factory.mktemp("photos") / "src")
    out = tmp_path_factory.mktemp("out")
    report = build_dataset(folder, out / "data.zip", DatasetSettings(resolution=RESOLUTION), out / "sheet.png")
    return report, out / "data.zip", out / "sheet.png"


def test_the_report_counts_each_planted_problem_exactly(built):
    report, _, _ = built
    assert report.skip_counts() == {"unreadable": 1, "too small": 1, "exact duplicate": 1, "near duplicate": 1,
                                    "outside a class folder": 1}
    assert report.seen == 11 and report.written == 6 and report.ignored == 1
    assert report.converted == {"EXIF orientation": 1, "CMYK": 1, "palette": 1, "alpha": 1, "16-bit": 1,
                                "grey to RGB": 1, "colour to grey": 0}
    assert report.class_names == ["cats", "things"] and report.per_class == {"cats": 1, "things": 5}
    named = {reason: [name for name, _ in items] for reason, items in report.skipped.items()}
    assert named["exact duplicate"] == ["cats/chelsea_copy.bmp"] and named["near duplicate"] == ["cats/chelsea_small.jpg"]
    assert named["unreadable"] == ["things/broken.jpg"] and named["too small"] == ["things/coins_tiny.png"]
    assert "the pixels of cats/chelsea.png" in report.skipped["exact duplicate"][0][1]
    text = report.text()
    assert "6 of 11 pictures" in text and "near duplicate" in text and "CMYK 1" in text


def test_the_zip_holds_labelled_pngs_the_loader_reads(built):
    report, path, _ = built
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("dataset.json"))
        pictures = {n: Image.open(io.BytesIO(archive.read(n))) for n in archive.namelist() if n.endswith(".png")}
    assert meta["class_names"] == ["cats", "things"] and len(meta["labels"]) == 6
    assert all(name.split("/")[0] == meta["class_names"][label] for name, label in meta["labels"])
    assert all(p.size == (RESOLUTION, RESOLUTION) and p.mode == "RGB" for p in pictures.values())
    loaded = load_dataset(DataConfig(source=str(path), resolution=RESOLUTION, conditional=True))
    assert loaded.class_names == ["cats", "things"] and len(loaded) == 6 and not loaded.skipped
    assert loaded.labels.tolist() == [label for _, label in sorted(meta["labels"])]


def test_a_class_left_empty_is_not_in_the_zip_and_the_indices_agree_with_the_loader(tmp_path):
    for folder, name in (("a", "astronaut"), ("b", "astronaut"), ("c", "coffee")):   # b's only picture: a copy
        (tmp_path / "src" / folder).mkdir(parents=True)
        photo(name).save(tmp_path / "src" / folder / "x.png")
    report = build_dataset(tmp_path / "src", tmp_path / "d.zip", DatasetSettings(resolution=16), None)
    assert report.class_names == ["a", "c"] and report.per_class == {"a": 1, "b": 0, "c": 1}
    assert "a class left empty is not in the zip" in report.text()
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        assert json.loads(archive.read("dataset.json"))["labels"] == [["a/img00000000.png", 0], ["c/img00000001.png", 1]]
    loaded = load_dataset(DataConfig(source=str(tmp_path / "d.zip"), resolution=16, conditional=True))
    assert loaded.class_names == ["a", "c"] and loaded.labels.tolist() == [0, 1]


def test_look_alikes_that_are_different_pictures_are_kept(tmp_path):
    """Aligned digits of one class share their hash's bits; their thumbnails tell them apart."""
    from sklearn.datasets import load_digits
    from trainer.data.dataset_tool import NearDuplicates, fingerprint
    digits = [Image.fromarray((d * 15).astype(np.uint8)).resize((64, 64), Image.NEAREST)
              for d in load_digits().images[:200]]
    prints = [fingerprint(d) for d in digits]
    bits = lambda a, b: bin(a ^ b).count("1")   # noqa: E731
    i, j = next((i, j) for i in range(len(prints)) for j in range(i) if bits(prints[i][0], prints[j][0]) <= 8)
    near = NearDuplicates(max_bits=8)
    near.add(*prints[j], "first")
    assert near.find(*prints[i]) is None                        # a different digit that looks alike stays
    assert near.find(*fingerprint(digits[j].resize((60, 60))))[0] == "first"   # the same one resized does not
    for k in (i, j):
        digits[k].save(tmp_path / f"{k}.png")
    assert build_dataset(tmp_path, tmp_path / "d.zip", DatasetSettings(resolution=64), None).written == 2


def test_conversions_turn_pictures_upright_and_flatten_alpha_onto_white():
    sideways = photo("rocket")
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", exif=exif)
    upright, done = normalise(Image.open(buffer), channels=3)
    assert done == ["EXIF orientation"] and upright.size == (sideways.height, sideways.width)
    clear = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    flat, done = normalise(clear, channels=1)
    assert done == ["alpha", "colour to grey"] and flat.mode == "L" and np.asarray(flat).min() == 255


def test_resolution_rounds_to_the_nearest_power_of_two():
    assert [nearest_power_of_two(r) for r in (2, 100, 300, 384, 1000)] == [4, 128, 256, 512, 1024]


@pytest.mark.parametrize("crop,band_axis", [("wide", 0), ("tall", 1)])
def test_wide_and_tall_framing_pad_to_the_aspect(crop, band_axis):
    white = Image.new("RGB", (300, 200), (255, 255, 255))
    framed = np.asarray(frame(white, 64, crop))[..., 0]
    lines = framed.mean(axis=1 - band_axis)   # per row for wide, per column for tall
    assert framed.shape == (64, 64)
    assert (lines[:16] == 0).all() and (lines[48:] == 0).all() and (lines[16:48] == 255).all()
    assert (np.asarray(frame(white, 64, "center")) == 255).all() and frame(white, 64, "squash").size == (64, 64)


def _filled_cells(sheet: Image.Image, count: int) -> list[bool]:
    columns, rows = sheet_layout(count)
    step, pixels = SHEET_CELL + SHEET_GAP, np.asarray(sheet)
    assert sheet.size == (columns * step - SHEET_GAP, rows * step - SHEET_GAP)
    return [bool((pixels[r * step:r * step + SHEET_CELL, c * step:c * step + SHEET_CELL] != SHEET_BACKGROUND).any())
            for r in range(rows) for c in range(columns)]


def test_the_contact_sheet_has_one_cell_per_picture(built, tmp_path):
    report, path, sheet = built
    assert report.sheet_cells == 6
    assert _filled_cells(Image.open(sheet), 6) == [True] * 6 + [False] * (len(_filled_cells(Image.open(sheet), 6)) - 6)
    from trainer.data.dataset_tool import write_contact_sheet
    assert write_contact_sheet(path, tmp_path / "few.png", max_cells=4) == 4
    assert sum(_filled_cells(Image.open(tmp_path / "few.png"), 4)) == 4


def test_an_interruption_leaves_no_zip_and_no_temporary_file(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        photo(name).save(folder / f"{name}.png")

    def interrupt_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(folder, tmp_path / "out" / "data.zip", DatasetSettings(resolution=16), None, interrupt_after_two)
    assert list((tmp_path / "out").iterdir()) == []


def test_video_frames_every_nth(tmp_path):
    import av
    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(12):   # each frame a different coarse pattern, so none is a near duplicate
            picture = np.kron(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    report = build_dataset(path, tmp_path / "frames.zip", DatasetSettings(resolution=32, every=4), None)
    assert report.seen == 3 and report.written == 3 and report.class_names == []
    with zipfile.ZipFile(tmp_path / "frames.zip") as archive:
        assert json.loads(archive.read("dataset.json"))["labels"] is None
        assert sorted(archive.namelist()) == ["dataset.json", "img00000000.png", "img00000001.png", "img00000002.png"]


def test_the_command_line_exit_codes_and_report(tmp_path, capsys):
    folder = tmp_path / "src"
    folder.mkdir()
    photo("astronaut").save(folder / "a.png")
    photo("coffee").save(folder / "b.png")
    out = tmp_path / "d.zip"
    assert cli(["dataset", str(folder), "--out", str(out), "--resolution", "20", "--channels", "1",
                "--report", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 pictures" in printed and "--resolution 20 rounded to 16" in printed and "colour to grey 2" in printed
    assert json.loads((tmp_path / "r.json").read_text())["skip_counts"]["unreadable"] == 0
    assert (tmp_path / "d-sheet.png").is_file()
    assert cli(["dataset", str(folder), "--out", str(out)]) == 1                 # exists: needs --force
    assert cli(["dataset", str(tmp_path / "none"), "--out", str(tmp_path / "e.zip")]) == 2
    assert cli(["dataset", str(folder), "--out", str(tmp_path / "e.zip"), "--min-size", "9999"]) == 2
    assert "none of its 2 pictures could be used (2 too small)" in capsys.readouterr().err
    assert not (tmp_path / "e.zip").exists()


@pytest.mark.slow
def test_the_zip_trains_a_conditional_model(built, tmp_path, one_thread):
    _, path, _ = built
    assert cli(["--data", str(path), "--conditional", "--preset", "cgan", "--resolution", "16", "--kimg", "0.05",
                "--threads", "1", "--outdir", str(tmp_path)]) == 0
    run = next(tmp_path.iterdir())
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["c_dim"] == 2 and config["data"]["conditional"]
    assert list((run / "checkpoints").glob("*.safetensors"))
