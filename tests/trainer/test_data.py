"""Datasets from real files: folders, zips, built-ins, and the bad data a user will bring."""
import zipfile

import numpy as np
import pytest
from PIL import Image

from trainer.config import DataConfig
from trainer.data.datasets import DataError, load_dataset


def _img(path, size, mode="RGB", colour=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "L" else (colour, 30, 200)).save(path)


def test_folder_mixed_sizes_modes_and_classes(tmp_path):
    _img(tmp_path / "cats" / "a.png", (40, 30))
    _img(tmp_path / "cats" / "deep" / "b.jpg", (17, 50), mode="L")
    _img(tmp_path / "dogs" / "c.bmp", (64, 64))
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(tmp_path / "dogs" / "d.png")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = load_dataset(DataConfig(source=str(tmp_path), resolution=16, conditional=True))
    assert ds.data.shape == (4, 3, 16, 16) and ds.data.dtype.is_floating_point is False
    assert ds.class_names == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert len(ds.skipped) == 1 and "broken.png" in ds.skipped[0][0]


def test_zip_archive_and_grey_auto(tmp_path):
    for i in range(3):
        _img(tmp_path / "src" / f"{i}.png", (10, 10), mode="L", colour=i * 100)
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(3):
            z.write(tmp_path / "src" / f"{i}.png", f"{i}.png")
    ds = load_dataset(DataConfig(source=str(archive), resolution=8))
    assert ds.data.shape == (3, 1, 8, 8) and ds.class_names == []
    assert ds.data[2].float().mean() > ds.data[0].float().mean()


def test_nvlabs_dataset_json_labels_win_over_folders(tmp_path):
    """NVlabs' dataset tool files images in 00000/, 00001/... by count; the class is in dataset.json."""
    import json
    archive = tmp_path / "nv.zip"
    members = ["00000/img00000000.png", "00000/img00000001.png", "00001/img00001000.png"]
    with zipfile.ZipFile(archive, "w") as z:
        for i, member in enumerate(members):
            _img(tmp_path / "src.png", (8, 8), mode="L", colour=i * 100)
            z.write(tmp_path / "src.png", member)
        z.writestr("dataset.json", json.dumps({"labels": [[members[0], 11], [members[1], 2], [members[2], 11]]}))
    ds = load_dataset(DataConfig(source=str(archive), resolution=8, conditional=True))
    # 12 classes by index (zero-padded names sort in index order); only 2 and 11 occur
    assert ds.class_names == ["02", "11"] and ds.labels.tolist() == [1, 0, 1]

    plain = tmp_path / "plain.zip"          # an unconditional NVlabs zip: labels null, no classes
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(plain, "w") as z:
        for member in members:
            z.writestr(member, src.read(member))
        z.writestr("dataset.json", json.dumps({"labels": None}))
    assert load_dataset(DataConfig(source=str(plain), resolution=8)).class_names == []

    folder = tmp_path / "folder"          # a folder with a malformed dataset.json: a message, not a guess
    _img(folder / "00000" / "a.png", (8, 8))
    (folder / "dataset.json").write_text('{"labels": [["00000/a.png", "shoe"]]}')
    with pytest.raises(DataError, match="dataset.json.*class index"):
        load_dataset(DataConfig(source=str(folder), resolution=8))


def test_bad_data_messages(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in folder"):
        load_dataset(DataConfig(source=str(tmp_path / "empty")))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of the 1 image files"):
        load_dataset(DataConfig(source=str(tmp_path / "junk")))
    _img(tmp_path / "one" / "only" / "a.png", (8, 8))
    with pytest.raises(DataError, match="at least two classes"):
        load_dataset(DataConfig(source=str(tmp_path / "one"), conditional=True))
    with pytest.raises(DataError, match="neither a built-in"):
        load_dataset(DataConfig(source=str(tmp_path / "nowhere")))


def test_builtins():
    digits = load_dataset(DataConfig(source="digits", resolution=16))
    assert digits.data.shape == (1797, 1, 16, 16) and len(digits.class_names) == 10
    ring = load_dataset(DataConfig(source="ring8"))
    assert ring.data.shape[1] == 2 and ring.modes.shape == (8, 2)
    dist = np.linalg.norm(ring.data.numpy()[:, None] - ring.modes[None], axis=2).min(axis=1)
    assert (dist < 3 * ring.mode_std * 1.5).mean() > 0.99
    grid = load_dataset(DataConfig(source="grid25"))
    assert grid.modes.shape == (25, 2)


def test_fashion_mnist_if_installed():
    import os
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    ds = load_dataset(DataConfig(source="fashion-mnist", resolution=32, split="test"))
    assert ds.data.shape == (10000, 1, 32, 32) and ds.class_names[9] == "Ankle boot"


def test_a_resumed_run_finds_its_data_or_is_told_how(tmp_path, monkeypatch):
    from trainer.data.sources import resumed_source, stored_source
    (tmp_path / "pics").mkdir()
    run_dir = tmp_path / "runs" / "00000-dcgan-pics"
    monkeypatch.chdir(tmp_path)
    assert stored_source("pics") == str(tmp_path / "pics") and stored_source("digits") == "digits"
    assert resumed_source("digits", None, run_dir) == ("digits", "")
    assert resumed_source("digits", "digits", run_dir) == ("digits", "")
    assert resumed_source("pics", None, run_dir) == (str(tmp_path / "pics"), "")      # recorded absolute from now on
    monkeypatch.chdir(run_dir.parent.parent.parent)                       # elsewhere: found where the run started
    source, note = resumed_source("pics", None, run_dir)
    assert source == str(tmp_path / "pics") and "read from" in note
    with pytest.raises(DataError, match="--data cannot change"):
        resumed_source(str(tmp_path / "pics"), "digits", run_dir)
    (tmp_path / "pics").rename(tmp_path / "moved")
    with pytest.raises(DataError, match=r"not found from here or from .*: if it moved, give its new place with --data"):
        resumed_source("pics", None, run_dir)
    with pytest.raises(DataError, match="only the run's own data"):
        resumed_source(str(tmp_path / "pics"), "fashion-mnist", run_dir)
    with pytest.raises(DataError, match="no such file or folder"):
        resumed_source(str(tmp_path / "pics"), str(tmp_path / "nowhere"), run_dir)
    source, note = resumed_source(str(tmp_path / "pics"), str(tmp_path / "moved"), run_dir)
    assert source == str(tmp_path / "moved") and "missing" in note
