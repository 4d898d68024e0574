"""The monitor's Qt-free model: open runs, what to read when, and training processes started as
`python -m trainer` (real processes, real run directories in tmp_path)."""
import json
import time

import pytest

from ganstudio.engine.monitor_model import MonitorModel
from ganstudio.engine.training_process import NewRunRequest, TrainingProcess


def _write_scalars(path, steps, start=0):
    with open(path, "a") as f:
        for step in range(start, start + steps):
            f.write(json.dumps({"kind": "scalars", "step": step, "kimg": step / 100, "time": step / 10,
                                "values": {"loss/D": 0.5, "loss/G": 1.0}}) + "\n")


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "00000-hand-written"
    d.mkdir()
    _write_scalars(d / "events.jsonl", 5)
    return d


def test_runs_are_opened_once_and_their_events_reach_the_views(run_dir, tmp_path):
    model = MonitorModel()
    added, removed = [], []
    model.events.run_added.connect(added.append)
    model.events.run_removed.connect(removed.append)
    run = model.add_run(run_dir)
    assert model.add_run(run_dir / "events.jsonl") is run and added == [run]     # the log names its run
    assert model.find_run(run_dir) is run
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        model.add_run(tmp_path / "missing")
    tick = model.poll()
    assert not tick.catching_up and tick.redraw and tick.update_list and tick.next_poll_s == model.poll_interval_s
    assert run.last_step == 4 and model.read_fraction() == 1.0
    model.remove_run(run)
    model.remove_run(run)
    assert removed == [run] and model.runs == []
    assert model.poll().next_poll_s is None                                    # nothing left to watch


def test_a_big_log_is_read_within_the_budget_and_drawn_now_and_then(run_dir):
    _write_scalars(run_dir / "events.jsonl", 20_000, start=5)
    model = MonitorModel(tick_budget_s=0.0, chunk_bytes=4096)
    run = model.add_run(run_dir)
    first = model.poll(now=100.0)
    assert first.catching_up and first.next_poll_s == 0.0 and 0 < model.read_fraction() < 1
    assert first.redraw and first.update_list                                  # the first chunk shows at once
    soon = model.poll(now=100.1)
    assert soon.catching_up and not soon.redraw and not soon.update_list    # too soon: keep reading
    later = model.poll(now=100.3)
    assert later.update_list and not later.redraw                           # the list more often than the plots
    assert model.poll(now=101.5).redraw
    model.tick_budget_s = 10.0
    while model.poll().catching_up:
        pass
    assert run.last_step == 20_004 and not model.is_reading()


def test_state_and_buttons_follow_the_run_and_its_state_file(run_dir):
    model = MonitorModel()
    run = model.add_run(run_dir)
    model.poll()
    assert model.state_text(run) == "no log"                    # scalars only: no status line yet
    assert not model.can_resume(run) and model.can_close(run) and not model.can_stop(run)
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(json.dumps({"kind": "status", "step": 4, "kimg": 0.04, "time": 1, "state": "stopped",
                            "message": "stopped at step 4"}) + "\n")
    model.poll()
    assert model.state_text(run) == "stopped" and not model.can_resume(run)  # nothing to resume from
    (run_dir / "state").mkdir()
    (run_dir / "state" / "last.pt").write_bytes(b"")
    assert model.can_resume(run)
    output = []
    model.events.output.connect(output.append)
    (run_dir / "state" / "last.pt").unlink()
    assert model.resume_run(run) is None and "has no state/last.pt" in output[0]
    assert not model.can_resume(None) and not model.can_close(None)


def test_a_trainer_that_refuses_its_options_ends_with_its_message(tmp_path):
    model = MonitorModel(poll_interval_s=0.05)
    output, changes = [], []
    model.events.output.connect(output.append)
    model.events.processes.connect(changes.append)
    request = NewRunRequest("toy-gan", "ring8", 16, 1.0, str(tmp_path / "runs"), extra="--no-such-option 3")
    process = model.start_run(request)
    assert model.pending == [process] and len(changes) == 1
    deadline = time.monotonic() + 120
    while model.pending and time.monotonic() < deadline:
        model.poll()
        time.sleep(0.05)
    console = "".join(output)
    assert not model.pending and process.exit_code == 2 and len(changes) == 2
    assert console.startswith("$ ") and "-m trainer --preset toy-gan" in console
    assert "--no-such-option" in console.split("\n", 1)[1]                   # the trainer's own usage message
    assert console.rstrip().endswith("[monitor] trainer exited with code 2")
    with pytest.raises(ValueError):                                           # unbalanced quotes: nothing starts
        model.start_run(NewRunRequest("toy-gan", "ring8", 16, 1.0, str(tmp_path / "runs"), extra="--x '"))
    assert model.pending == []


@pytest.mark.slow
def test_a_run_started_here_is_opened_stopped_cleanly_and_resumed(tmp_path):
    model = MonitorModel(poll_interval_s=0.05)
    output, started = [], []
    model.events.output.connect(output.append)
    model.events.run_started.connect(started.append)
    model.start_run(NewRunRequest("toy-gan", "ring8", 16, 5000.0, str(tmp_path / "runs"), threads=1,
                                  extra="--log-every 4 --batch 32"))

    def poll_until(done, seconds=90):
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            model.poll()
            time.sleep(0.05)
        assert done(), "".join(output)[-2000:]

    poll_until(lambda: started and started[0].last_step >= 8)
    run = started[0]
    assert model.runs == [run] and run.run_dir.parent == (tmp_path / "runs").resolve()
    assert model.can_stop(run) and not model.can_close(run) and not model.can_resume(run)
    assert model.state_text(run) == "running"
    model.stop_run(run)
    poll_until(lambda: run.state == "stopped" and not model.processes)
    stopped_at = run.last_step
    assert model.can_resume(run) and "[monitor] stopping" in "".join(output)
    process = model.resume_run(run, kimg=5000.0)
    assert isinstance(process, TrainingProcess) and model.process_of(run) is process
    assert model.resume_run(run) is None                                    # one process per run
    poll_until(lambda: run.resumes == [stopped_at] and run.last_step >= stopped_at + 8)
    model.shutdown()
    assert not process.is_running() and process.wait(1.0)
    console = "".join(output)
    assert "--resume" in console and "exited with code 0" in console
