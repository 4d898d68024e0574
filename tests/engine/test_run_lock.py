"""The monitor's Resume on a run another process trains in: the trainer's refusal, with that
process's pid, reaches the monitor's console (a real lock, a real `python -m trainer`)."""
import os
import time

import pytest

from conftest import tiny_config
from ganstudio.engine.monitor_model import MonitorModel
from trainer.files import DirectoryLock
from trainer.training.loop import train


@pytest.mark.slow
def test_resume_on_a_locked_run_shows_the_refusal_and_the_holder(tmp_path):
    run_dir = train(tiny_config("dcgan", train={"kimg": 0.008}), outdir=tmp_path, progress=False).run_dir
    model = MonitorModel(poll_interval_s=0.05)
    output = []
    model.events.output.connect(output.append)
    run = model.add_run(run_dir)
    with DirectoryLock(run_dir):   # as a trainer started elsewhere (a terminal, another monitor) holds it
        process = model.resume_run(run, kimg=1.0)
        deadline = time.monotonic() + 120
        while process.exit_code is None and time.monotonic() < deadline:
            model.poll()
            time.sleep(0.05)
    console = "".join(output)
    assert process.exit_code == 2, console
    assert f"is in use: process {os.getpid()} is training in it" in console and "Traceback" not in console
    assert console.rstrip().endswith("[monitor] trainer exited with code 2")
