"""Whole runs on 2 gloo processes under torchrun (`ganstudio-train --nproc 2`): one run directory
written by rank 0, a resume on 1 process that continues it, SIGTERM on one rank stopping both
with a checkpoint, and an image-to-image run on the same loop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import load_state
from trainer.events import read_events
from trainer.training.loop import train

TINY = ["--preset", "dcgan", "--data", "digits", "--resolution", "16", "--max-images", "64", "--z-dim", "16",
        "--width", "8", "--max-width", "16", "--batch", "8", "--log-every", "1", "--grid-size", "4",
        "--threads", "1", "--device", "cpu", "--xflip", "--augment", "color,translation", "--r1-gamma", "1",
        "--r1-every", "2"]
PIX2PIX = ["--preset", "pix2pix", "--resolution", "16", "--max-images", "16", "--g-width", "4", "--d-width", "4",
           "--batch", "4", "--log-every", "1", "--grid-size", "2", "--threads", "1", "--device", "cpu",
           "--metrics-images", "8"]
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="torchrun's local launcher is POSIX-only here"),
              pytest.mark.slow]


def launch(args: list[str], options: list[str] = TINY) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen([sys.executable, "-m", "trainer", "--nproc", "2", *options, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"2-process run did not finish within {timeout} s")
    return out


def statuses(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir / "events.jsonl") if e["kind"] == "status"]


def test_torchrun_run_resumed_on_one_process_continues_it(tmp_path):
    process = launch(["--kimg", "0.024", "--snapshot-kimg", "0.016", "--sample-kimg", "0.016",
                      "--outdir", str(tmp_path / "two")])
    out = finish(process)
    assert process.returncode == 0, out
    (run_dir,) = (tmp_path / "two").iterdir()   # one run directory for both ranks
    assert out.count("finished: ") == 1, out     # one report, from rank 0
    assert [s["state"] for s in statuses(run_dir)] == ["running", "finished"]
    assert "x 2 processes" in statuses(run_dir)[0]["message"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000002.safetensors",
                                                                         "step-000003.safetensors"]
    threads = torch.get_num_threads()
    try:
        resumed = train(run_dir=run_dir, resume=True, kimg=0.048, progress=False)
        assert resumed.state == "finished" and resumed.step == 6
        # the same run on one process from the start: the resume continued it, not a new one
        from trainer.config import RunConfig
        cfg = RunConfig.from_json((run_dir / "config.json").read_text())
        assert cfg.train.batch_gpu == 4   # resolved when it started, so 1 process does 2 rounds of 4
        cfg.train.kimg = 0.048
        alone = train(cfg, outdir=tmp_path / "one", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [s["state"] for s in statuses(run_dir)] == ["running", "finished", "running", "finished"]
    a, b = load_state(run_dir / "state" / "last.pt"), load_state(alone.run_dir / "state" / "last.pt")
    assert a["step"] == b["step"] == 6 and a["nimg"] == b["nimg"] == 48
    for net in ("G", "D", "G_ema"):
        for key, value in a[net].items():
            if "running_" not in key and "num_batches" not in key:   # batch-norm statistics: averaged, not chained
                assert torch.allclose(value, b[net][key], atol=1e-4), f"{net}.{key} differs"


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the ranks through /proc")
def test_sigterm_on_one_rank_stops_both_with_a_checkpoint(tmp_path):
    process = launch(["--kimg", "100", "--snapshot-kimg", "100", "--sample-kimg", "100",
                      "--outdir", str(tmp_path)])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:   # wait until both ranks are training
        found = list(tmp_path.glob("*/events.jsonl"))
        if found and sum(e["kind"] == "scalars" for e in read_events(found[0])) >= 3:
            break
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the 2-process run did not start training")
    (torchrun,) = _children(process.pid)
    ranks = _children(torchrun)
    assert len(ranks) == 2
    os.kill(ranks[-1], signal.SIGTERM)
    out = finish(process, timeout=120)
    assert process.returncode == 0, out
    (events,) = tmp_path.glob("*/events.jsonl")
    last = statuses(events.parent)[-1]
    assert last["state"] == "stopped", out
    state = load_state(events.parent / "state" / "last.pt")
    assert state["step"] == last["step"] > 0
    assert (events.parent / "checkpoints" / f"step-{last['step']:06d}.safetensors").is_file()


def test_a_translation_run_trains_on_two_processes_and_resumes_on_one(tmp_path):
    process = launch(["--kimg", "0.032", "--snapshot-kimg", "0.016", "--sample-kimg", "0.016", "--metrics", "l1",
                      "--metrics-kimg", "0.016", "--outdir", str(tmp_path)], PIX2PIX)
    out = finish(process)
    assert process.returncode == 0, out
    (run_dir,) = tmp_path.iterdir()
    assert out.count("finished: ") == 1, out
    assert [s["state"] for s in statuses(run_dir)] == ["running", "finished"]
    assert "x 2 processes" in statuses(run_dir)[0]["message"]
    events = read_events(run_dir / "events.jsonl")
    assert [e["step"] for e in events if e["kind"] == "scalars"] == list(range(1, 9))   # the global batch: 4 per step
    assert sorted({e["step"] for e in events if e["kind"] == "metric"}) == [4, 8]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000004.safetensors",
                                                                         "step-000008.safetensors"]
    threads = torch.get_num_threads()
    try:
        resumed = train(run_dir=run_dir, resume=True, kimg=0.048, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert resumed.state == "finished" and resumed.step == 12
    assert load_state(run_dir / "state" / "last.pt")["nimg"] == 48
