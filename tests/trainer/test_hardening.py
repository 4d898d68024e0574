"""Hardening (issue 24): one process per run directory, sizes checked before anything is allocated,
every number read has a range, deeply nested JSON is an error, and wrong kinds of input get a
message. Each test would fail on the old behaviour: real processes, real files, the real CLI."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import export_tiny, tiny_config
from trainer.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, export_generator, load_generator, load_state
from trainer.cli import main as cli
from trainer.config import TranslationModelConfig
from trainer.files import DirectoryInUse, DirectoryLock, JSONFileError, parse_json
from trainer.models import ARCHS, build_generator
from trainer.training.loop import RunLoop, train

TRAINER = [sys.executable, "-m", "trainer"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def refused(capsys, argv, *words, code=2):
    """Run the CLI in this process: it must exit `code` with each of `words` on stderr, no traceback."""
    assert cli(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(word in err for word in words), err
    return err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    result = train(tiny_config("dcgan"), outdir=tmp_path_factory.mktemp("runs"), progress=False)
    assert result.state == "finished"
    return result.run_dir


# ---- the run directory's lock ----
def wait_until_locked(run_dir, process, seconds=120):
    """Wait until `process` holds the run directory's lock. It logs "resumed" only after taking the
    lock, so the probe (a real flock, tried from here) waits for that line: probing earlier could take
    the lock in the instant the process reaches for it, and refuse it."""
    log = run_dir / "events.jsonl"
    resumed_before = log.read_text(encoding="utf-8").count("resumed at step")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        if log.read_text(encoding="utf-8").count("resumed at step") > resumed_before:
            with pytest.raises(DirectoryInUse):
                DirectoryLock(run_dir).acquire()
            return
        time.sleep(0.2)
    pytest.fail("the first trainer never took the lock")


@pytest.mark.slow
def test_a_second_resume_is_refused_with_the_first_pid_and_a_killed_run_leaves_no_lock(finished_run):
    first = subprocess.Popen([*TRAINER, "--resume", str(finished_run), "--kimg", "1000", "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_until_locked(finished_run, first)
        started = time.monotonic()
        second = subprocess.run([*TRAINER, "--resume", str(finished_run), "--kimg", "1000", "--threads", "1"],
                                capture_output=True, text=True, env=ENV, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"process {first.pid} is training in it" in second.stderr and "Traceback" not in second.stderr
        assert time.monotonic() - started < 60   # refused at once, not after training
        assert first.poll() is None              # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    # no stale lock: a resume after the kill trains on from the killed run's last state
    kimg = load_state(finished_run / "state" / "last.pt")["nimg"] / 1000
    result = train(run_dir=finished_run, resume=True, kimg=kimg + 0.016, progress=False)
    assert result.state == "finished" and result.kimg > kimg


@pytest.mark.slow
def test_the_lock_is_held_for_the_run_and_released_after(tmp_path):
    cfg = tiny_config("dcgan", train={"kimg": 0.008})
    with DirectoryLock(tmp_path / "run"):
        with pytest.raises(DirectoryInUse, match=f"process {os.getpid()}"):
            train(cfg, run_dir=tmp_path / "run", progress=False)
        assert not (tmp_path / "run" / "config.json").exists()   # refused before anything was written
    assert train(cfg, run_dir=tmp_path / "run", progress=False).state == "finished"
    DirectoryLock(tmp_path / "run").acquire().release()   # free again once the run has ended
    with RunLoop(cfg, tmp_path / "run", resume=True, progress=False):   # opened, never run: closing frees it
        with pytest.raises(DirectoryInUse):
            DirectoryLock(tmp_path / "run").acquire()
    DirectoryLock(tmp_path / "run").acquire().release()


# ---- sizes are checked before anything is allocated ----
def _absurd(config: dict) -> dict:
    """A stored config with its latent or feature-map size set to something no machine holds."""
    key = next(k for k in ("z_dim", "g_width", "channel_base") if k in config)
    return {**config, key: 10**9}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_an_absurd_size_in_a_stored_config_is_refused_before_allocating(tmp_path, arch):
    config_type = ARCHS[arch].config_type
    config = config_type(arch=arch).to_dict() if "arch" in config_type.__dataclass_fields__ else config_type().to_dict()
    path = tmp_path / f"{arch}.safetensors"
    save_file({"weight": torch.zeros(8)}, str(path), metadata={
        "format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch, "config": json.dumps(_absurd(config)),
        "step": "0", "kimg": "0", "dataset": "{}", "direction": "AtoB"})
    started = time.monotonic()
    with pytest.raises(CheckpointError) as refusal:
        load_generator(path)
    message = str(refusal.value)
    assert time.monotonic() - started < 20                          # nothing was built for real
    assert f"{arch}.safetensors" in message and ("refused before allocating" in message or "must be at most"
                                                   in message or "unusable" in message), message


def test_a_stored_config_far_larger_than_its_file_is_refused_before_allocating(tmp_path):
    path = export_tiny(tmp_path / "tiny.safetensors", arch="dcgan")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    config = {**json.loads(meta["config"]), "width": 60000, "max_width": 60000}   # within each field's range
    save_file(load_file(str(path)), str(path), metadata={**meta, "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match=r"over [\d,]+ values \([\d,.]+ GB as float32\), but the file stores"):
        load_generator(path)


def test_a_model_too_large_to_train_is_refused_before_a_run_directory_exists(capsys, tmp_path):
    refused(capsys, ["--data", "digits", "--preset", "dcgan", "--outdir", str(tmp_path / "runs"),
                     "--width", "60000", "--max-width", "60000"], "this machine's memory", "generator")
    refused(capsys, ["--data", "digits", "--outdir", str(tmp_path / "runs"), "--resolution", "100000"],
            "--resolution 100000", "at most 8192")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    from conftest import tiny_config   # the library refuses it too, not only the CLI
    from trainer.config import ConfigError
    from trainer.training.loop import train
    with pytest.raises(ConfigError, match="this machine's memory"):
        train(tiny_config("dcgan", model={"width": 60000, "max_width": 60000}), outdir=tmp_path / "library")
    assert not (tmp_path / "library").exists() or not any((tmp_path / "library").iterdir())


def test_data_too_large_at_the_asked_resolution_is_refused_before_it_is_made(capsys, tmp_path):
    # 8192 px (the largest resolution a config takes): 112 GiB of digits, refused on any ordinary machine
    refused(capsys, ["--data", "digits", "--outdir", str(tmp_path / "runs"), "--resolution", "8192", "--threads", "1"],
            "'digits' at --resolution 8192", "GiB")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---- every number read has a range ----
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", c_dim=3)


@pytest.mark.parametrize("extra,words", [
    (["--psi", "1e30"], ("--psi 1e+30", "from -5 to 5")),
    (["--threads", "-1"], ("--threads -1", "from 0 to")),
    (["--seeds", "0-999999"], ("too many seeds", "at most 65536")),
])
def test_generate_refuses_numbers_out_of_range(capsys, tmp_path, ckpt, extra, words):
    refused(capsys, ["generate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "g.png"), *extra], *words)
    assert not (tmp_path / "g.png").exists()


def test_generate_refuses_an_output_larger_than_memory_before_rendering(capsys, tmp_path):
    big = export_tiny(tmp_path / "big.safetensors", c_dim=0, resolution=128)   # 16,384 values a sample
    refused(capsys, ["generate", "--checkpoint", str(big), "--out", str(tmp_path / "g.npz"), "--seeds", "0-65535"],
            "65,536 samples of 1x128x128", "at most 16,384 samples")


@pytest.mark.parametrize("fields,words", [
    ({"class_index": 99}, ("class_index 99 is out of range", "0-2")),
    ({"base_ws": [[0.0] * 3] * 2}, ("base_ws", "shape (2, 3)")),
    ({"psi": 1e300}, ("psi 1e+300",)),
])
def test_a_workspace_that_does_not_fit_the_model_is_refused(capsys, tmp_path, ckpt, fields, words):
    workspace = tmp_path / "view.json"
    workspace.write_text(json.dumps({"format": "ganstudio.workspace", "version": 1, "checkpoint": str(ckpt),
                                     **fields}))
    refused(capsys, ["generate", "--workspace", str(workspace), "--out", str(tmp_path / "g.png")], *words)


def _timeline(duration=2.0, fps=30.0):
    key = {"state": {"seed": 1}, "duration": duration}
    return {"format": "ganstudio.timeline", "version": 1, "fps": fps, "keyframes": [key, {**key, "state": {"seed": 2}}]}


@pytest.mark.parametrize("timeline,extra,words", [
    (_timeline(fps=0), [], ("fps 0",)),
    (_timeline(duration=1e9), [], ("keyframe duration 1000000000.0", "at most 3600")),
    (_timeline(), ["--fps", "0"], ("--fps 0.0", "above 0")),
])
def test_render_video_refuses_a_frame_rate_of_zero_and_endless_keyframes(capsys, tmp_path, ckpt, timeline, extra,
                                                                          words):
    path = tmp_path / "film.timeline.json"
    path.write_text(json.dumps({**timeline, "checkpoint": str(ckpt)}))
    refused(capsys, ["render-video", str(path), "--out", str(tmp_path / "film.gif"), *extra], *words)
    assert not (tmp_path / "film.gif").exists()


# ---- deeply nested JSON is an error, never a RecursionError ----
DEEP = '{"a": ' * 100_000


def test_a_deeply_nested_config_workspace_timeline_or_checkpoint_metadata_is_a_message(capsys, tmp_path, ckpt):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    refused(capsys, ["--config", str(deep), "--outdir", str(tmp_path / "runs")], "nests more than 100 levels")
    refused(capsys, ["generate", "--workspace", str(deep), "--out", str(tmp_path / "g.png")], "nests more than 100")
    refused(capsys, ["render-video", str(deep), "--out", str(tmp_path / "f.gif")], "nests more than 100")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(DEEP)
    refused(capsys, ["--resume", str(run)], "nests more than 100")
    tensors = load_file(str(ckpt))
    with safe_open(str(ckpt), framework="pt") as f:
        meta = dict(f.metadata())
    for key in ("config", "dataset"):
        save_file(tensors, str(tmp_path / "deep.safetensors"), metadata={**meta, key: DEEP})
        with pytest.raises(CheckpointError, match="nests more than 100"):
            load_generator(tmp_path / "deep.safetensors")
    with pytest.raises(JSONFileError, match="nests"):
        parse_json("[" * 101 + "]" * 101, "text")
    assert parse_json('["[[[[", {"b": "\\"{{{{"}]', "text") == ["[[[[", {"b": '"{{{{'}]   # brackets in strings


# ---- wrong kinds of input get a message, not a traceback ----
@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
    cfg = TranslationModelConfig(arch="pix2pix", img_resolution=16, g_width=4, d_width=4)
    path = tmp_path_factory.mktemp("p2p") / "p2p.safetensors"
    export_generator(build_generator(cfg), path, cfg, 0, 0.0, {"name": "tiny"},
                     {"direction": "AtoB", "in_channels": "1", "out_channels": "1", "resolution": "16"})
    return path


def test_translation_and_gan_checkpoints_given_to_the_wrong_command(capsys, tmp_path, ckpt, pix2pix):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(photo)
    for command in (["generate", "--out", str(tmp_path / "g.png")], ["render-video", "--preset", "seed-walk", "--out",
                    str(tmp_path / "v.gif")], ["metrics", "--data", "digits", "--metrics", "kid50"]):
        refused(capsys, [*command, "--checkpoint", str(pix2pix)], "image-to-image model", "ganstudio-train translate")
    refused(capsys, ["translate", "--checkpoint", str(pix2pix), str(photo), "--out", str(tmp_path / "t"),
                     "--round-trip"], "--round-trip needs a CycleGAN", "one-way pix2pix")
    refused(capsys, ["translate", "--checkpoint", str(ckpt), str(photo), "--out", str(tmp_path / "t")],
            "not an image-to-image model", "generate")
    (tmp_path / "taken").write_text("the user's file")
    for command in ("invert", "translate"):
        refused(capsys, [command, "--checkpoint", str(pix2pix if command == "translate" else ckpt), str(photo),
                         "--out", str(tmp_path / "taken")], "--out", "is a file")
    assert (tmp_path / "taken").read_text() == "the user's file"
