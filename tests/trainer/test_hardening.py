"""Hardening (issue 24): one process per run directory, sizes checked before anything is allocated,
every number read has a range, deeply nested JSON is an error, and wrong kinds of input get a
message. Each test would fail on the old behaviour: real processes, real files, the real CLI."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import export_tiny, tiny_config
from trainer.checkpoint import load_state
from trainer.cli import main as cli
from trainer.files import DirectoryInUse, DirectoryLock
from trainer.training.loop import train

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
    """Wait until `process` holds the run directory's lock (a real flock, tried from here)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            DirectoryLock(run_dir).acquire().release()
        except DirectoryInUse:
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
