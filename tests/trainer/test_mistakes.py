"""Every user mistake gets a message and exit status 2, never a traceback, and nothing is left
half-written: the real CLIs (in this process, or in a subprocess where Qt or the process exit is
what is tested), real files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import export_tiny
from trainer import CheckpointError, load_generator
from trainer.cli import main as cli
from trainer.events import read_events
from trainer.training.loop import train

TINY = ["--width", "8", "--max-width", "16", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2",
        "--batch", "8", "--max-images", "64", "--grid-size", "4"]


def refused(capsys, argv, *words):
    """Run the CLI; it must exit 2 with each of `words` in its message and no traceback."""
    code = cli(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import tiny_config
    result = train(tiny_config("dcgan"), outdir=tmp_path_factory.mktemp("runs"), progress=False)
    assert result.state == "finished"
    return result


@pytest.mark.parametrize("option,value,words", [
    ("--kimg", "-1", ("--kimg -1", "greater than 0")),
    ("--batch", "0", ("--batch 0", "at least 1")),
    ("--resolution", "0", ("--resolution 0", "at least 4")),
    ("--g-lr", "nan", ("--g-lr nan", "finite")),
])
def test_bad_training_options_are_refused_before_anything_is_written(capsys, tmp_path, option, value, words):
    refused(capsys, ["--data", "digits", "--preset", "dcgan", "--outdir", str(tmp_path / "runs"), *TINY,
                     option, value], *words)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_that_cannot_start_leaves_no_directory(capsys, tmp_path):
    refused(capsys, ["--data", str(tmp_path / "no-such-folder"), "--outdir", str(tmp_path / "runs"), *TINY],
            "no-such-folder")
    assert not any((tmp_path / "runs").iterdir())


def test_resume_to_a_kimg_already_reached_says_so_and_leaves_the_log_alone(capsys, finished_run):
    log = finished_run.run_dir / "events.jsonl"
    before = log.read_bytes()
    refused(capsys, ["--resume", str(finished_run.run_dir), "--kimg", "0.016"], "already at", "larger --kimg")
    refused(capsys, ["--resume", str(finished_run.run_dir), "--kimg", "-3"], "--kimg -3")
    assert log.read_bytes() == before and read_events(log)[-1]["state"] == "finished"
    refused(capsys, ["--resume", str(finished_run.run_dir.parent), "--kimg", "1"], "not a run directory")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", c_dim=3)


@pytest.mark.parametrize("extra,words", [
    (["--class", "99"], ("class 99 is out of range",)),
    (["--columns", "-2"], ("--columns -2",)),
    (["--psi", "nan"], ("--psi nan", "finite")),
    (["--trunc", "inf"], ("--psi inf", "finite")),
    (["--seeds", "3-1"], ("cannot read seeds",)),
    (["--noise-mode", "loud"], ("invalid choice",)),
])
def test_generate_refuses_bad_settings(capsys, tmp_path, ckpt, extra, words):
    argv = ["generate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "g.png"), *extra]
    if "--noise-mode" in extra:   # argparse's own refusal: exit 2 through SystemExit
        with pytest.raises(SystemExit) as stop:
            cli(argv)
        assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err
        return
    refused(capsys, argv, *words)
    assert not (tmp_path / "g.png").exists()


def test_generate_output_names(capsys, tmp_path, ckpt):
    refused(capsys, ["generate", "--checkpoint", str(ckpt), "--out", str(tmp_path)], "is a folder")
    refused(capsys, ["generate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "g.gif")], ".png", ".jpg")
    assert cli(["generate", "--checkpoint", str(ckpt), "--seeds", "0-3", "--out", str(tmp_path / "g.jpg")]) == 0
    assert (tmp_path / "g.jpg").read_bytes()[:3] == b"\xff\xd8\xff"          # a JPEG, not PNG bytes
    assert cli(["generate", "--checkpoint", str(ckpt), "--seeds", "0-3", "--out", str(tmp_path / "g.PNG")]) == 0
    assert (tmp_path / "g.PNG").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_generate_on_a_missing_device(capsys, tmp_path, ckpt):
    refused(capsys, ["generate", "--checkpoint", str(ckpt), "--device", "cuda", "--out", str(tmp_path / "g.png")],
            "device 'cuda' is not available", "cpu")


def _rewrite(src, dst, metadata=None, tensors=None):
    from safetensors import safe_open
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    meta.update(metadata or {})
    save_file(tensors if tensors is not None else load_file(str(src)), str(dst), metadata=meta)
    return dst


def test_damaged_metadata_is_named(capsys, tmp_path, ckpt):
    bad_step = _rewrite(ckpt, tmp_path / "step.safetensors", {"step": "abc"})
    err = refused(capsys, ["generate", "--checkpoint", str(bad_step), "--out", str(tmp_path / "g.png")],
                  "step.safetensors", "progress metadata")
    refused(capsys, ["metrics", "--checkpoint", str(bad_step), "--metrics", "kid50", "--data", "digits"],
            "step.safetensors")
    bad_dataset = _rewrite(ckpt, tmp_path / "ds.safetensors", {"dataset": "[1, 2"})
    err = refused(capsys, ["generate", "--checkpoint", str(bad_dataset), "--out", str(tmp_path / "g.png")],
                  "dataset metadata")
    assert "model config" not in err


def test_flipped_bytes_and_nan_weights_are_caught(tmp_path, ckpt):
    data = bytearray(ckpt.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    rng = np.random.RandomState(0)
    for i in rng.choice(np.arange(header, len(data)), 100, replace=False):
        data[i] ^= 0xFF
    (tmp_path / "flipped.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="flipped.safetensors is damaged"):
        load_generator(tmp_path / "flipped.safetensors")
    tensors = load_file(str(ckpt))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name][0] = float("nan")
    no_sum = {k: v for k, v in tensors.items()}
    _rewrite(ckpt, tmp_path / "nan.safetensors", tensors=no_sum)
    # the NaN file keeps the old checksum, so drop it to reach the NaN check itself
    from safetensors import safe_open
    with safe_open(str(tmp_path / "nan.safetensors"), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "tensors_sha256"}
    save_file(no_sum, str(tmp_path / "nan.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="NaN or infinite values in " + name.replace(".", r"\.")):
        load_generator(tmp_path / "nan.safetensors")
    # a file from before checksums loads, with a note saying it was not verified
    good = {k: v for k, v in load_file(str(ckpt)).items()}
    save_file(good, str(tmp_path / "old.safetensors"), metadata=meta)
    G = load_generator(tmp_path / "old.safetensors")
    assert "no checksum" in G.checkpoint_info["note"] and load_generator(ckpt).checkpoint_info["note"] == ""


def test_refused_resume_state_message_gives_no_unsafe_advice(tmp_path):
    import argparse
    from trainer.checkpoint import load_state
    torch.save({"x": argparse.Namespace(a=1)}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError) as refusal:
        load_state(tmp_path / "last.pt")
    text = str(refusal.value)
    assert "argparse.Namespace" in text and "weights_only" not in text and "\x1b" not in text


def _studio(*args, timeout=120):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "ganstudio.app", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
def test_studio_command_line_mistakes(tmp_path, ckpt):
    out = _studio("--monitor", str(tmp_path / "nonexistent"))
    assert out.returncode == 2 and "not a run directory" in out.stderr and "Traceback" not in out.stderr
    out = _studio("--size", "abc")
    assert out.returncode == 2 and "WIDTHxHEIGHT" in out.stderr
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    out = _studio(str(tmp_path / "model.pkl"), "--screenshot", str(tmp_path / "shot.png"))
    assert out.returncode == 1 and "model.pkl" in out.stderr and "pickle" in out.stderr


@pytest.mark.slow
def test_a_training_run_prints_no_tqdm_warning(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="error::Warning")
    out = subprocess.run([sys.executable, "-W", "always", "-m", "trainer", "--data", "digits", "--preset",
                          "dcgan", "--resolution", "16", "--kimg", "0.04", "--outdir", str(tmp_path), *TINY],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "TqdmWarning" not in out.stderr and "clamping" not in out.stderr
    assert json.loads((next(tmp_path.iterdir()) / "events.jsonl").read_text().splitlines()[-1])["state"] == "finished"


@pytest.mark.parametrize("extra,words", [(["--num-samples", "-5"], "--num-samples -5"), (["--batch", "0"], "--batch 0"),
                                         (["--trunc", "nan"], "--trunc nan")])
def test_metrics_refuses_bad_counts(capsys, ckpt, extra, words):
    refused(capsys, ["metrics", "--checkpoint", str(ckpt), "--metrics", "kid50", "--data", "digits", *extra], words)
