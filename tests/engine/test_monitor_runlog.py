"""The monitor's Qt-free run model: tailing events.jsonl, series, resume, alerts, export.
(How lines are read and parsed, fast and capped: test_monitor_runlog_reading.py.)"""
import csv
import json
import math
import os
import time

import numpy as np
import pytest

from ganstudio.engine.runlog import (EmaSmoother, RunLog, Series, detect_d_collapse, detect_divergence,
                                     collapse_alarm, ema_smooth, first_nonfinite, is_stalled, write_csv)
from trainer.events import EventWriter
from conftest import write_scalars


# -- series -----------------------------------------------------------------------------------
def test_series_grows_past_its_capacity_and_drops_an_abandoned_segment():
    s = Series("loss/D")
    rows = np.stack([np.arange(200), np.arange(200) / 10, np.arange(200) * 2, np.sin(np.arange(200))], axis=1)
    for chunk in np.split(rows, [1, 70, 71, 200]):
        s.extend(chunk)
    assert len(s) == 200
    np.testing.assert_array_equal(s.column("step"), np.arange(200))
    np.testing.assert_allclose(s.column("value"), np.sin(np.arange(200)))
    assert s.drop_after(149) == 50 and len(s) == 150 and s.generation == 1
    assert s.column("step")[-1] == 149
    assert s.drop_after(1000) == 0 and s.generation == 1
    with pytest.raises(ValueError):
        s.column("value")[0] = 5.0   # views handed out are read-only


# -- a real run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_runlog_reads_a_real_tiny_training_run(tmp_path, tiny):
    from trainer.training.loop import train
    result = train(tiny("dcgan"), outdir=tmp_path, progress=False)
    run = RunLog(result.run_dir)
    assert run.poll() > 0
    assert run.state == "finished"
    steps = run.scalars["loss/D"].column("step")
    assert len(steps) == result.step and steps[-1] == result.step   # log_every 1
    assert np.all(np.diff(steps) > 0)
    assert {"loss/G", "D/real", "D/fake", "lr/G", "lr/D", "speed/img_s"} <= set(run.scalars)
    assert np.all(np.diff(run.scalars["loss/D"].column("time")) >= 0)
    grids = run.sample_grids()
    assert grids and grids[0].step == 0 and all(g.path.is_file() for g in grids)
    ckpts = run.checkpoint_files()
    assert [c.step for c in ckpts] == [2, 4]
    assert run.nearest_checkpoint(0).step == 2 and run.nearest_checkpoint(3).step == 2   # tie: earlier
    assert run.nearest_checkpoint(100).step == 4
    assert run.alerts == []
    assert run.poll() == 0   # nothing new: nothing read again


# -- tailing --------------------------------------------------------------------------------------
def test_tailing_takes_only_new_lines_and_survives_half_written_and_foreign_lines(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    w.write("status", 0, 0, state="running", message="started")
    write_scalars(w, 1, loss_D=1.0, loss_G=2.0)
    run = RunLog(run_dir)
    assert run.poll() == 2 and len(run.scalars["loss/D"]) == 1 and run.state == "running"
    version = run.version
    assert run.poll() == 0 and run.version == version

    line = json.dumps({"kind": "scalars", "step": 2, "kimg": 0.1, "time": 1.0, "values": {"loss/D": 0.5}})
    with open(run_dir / "events.jsonl", "a") as f:
        f.write("this is not json\n")                      # garbage
        f.write('[1, 2, 3]\n{"no_kind": true}\n')        # JSON, but not an event
        f.write('{"kind": "telemetry", "step": 2, "gpu": 0.5}\n')   # a kind we do not know
        f.write(line[:25])                                  # half-written: the writer is mid-line
        f.flush()
        assert run.poll() == 1                              # the unknown kind passes through harmlessly
        assert len(run.scalars["loss/D"]) == 1 and run.bad_lines == 3
        f.write(line[25:] + "\n")
    assert run.poll() == 1
    np.testing.assert_array_equal(run.scalars["loss/D"].column("value"), [1.0, 0.5])
    assert run.bad_lines == 3 and run.backlog() == 0


def test_reading_in_small_chunks_gives_the_same_run_as_reading_at_once(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    for step in range(1, 301):
        write_scalars(w, step, loss_D=1 / step, loss_G=math.log(step))
        if step % 100 == 0:
            w.write("metric", step, step * 0.064, name="fid", value=100.0 / step, num_samples=500)
    whole, chunked = RunLog(run_dir), RunLog(run_dir)
    whole.poll(None)
    polls = 0
    while chunked.backlog():
        chunked.poll(max_bytes=1000)   # a few lines per call, cutting lines in half
        polls += 1
    assert polls > 20
    for name in ("loss/D", "loss/G"):
        np.testing.assert_array_equal(whole.scalars[name].column("value"), chunked.scalars[name].column("value"))
    np.testing.assert_array_equal(whole.metrics["fid"].column("step"), [100, 200, 300])
    assert chunked.bad_lines == 0


def test_resume_drops_the_abandoned_segment_so_curves_do_not_double_back(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    w.write("status", 0, 0, state="running", message="started on cpu")
    for step in range(1, 11):
        write_scalars(w, step, loss_D=1.0, loss_G=1.0)
        if step == 6:
            w.write("checkpoint", 6, 0.4, path="checkpoints/step-000006.safetensors")
        if step == 8:
            w.write("samples", 8, 0.5, path="samples/step-000008.png")
    # The trainer was killed at step 10; it resumes from its snapshot at step 6 and logs 7.. again.
    w.write("status", 6, 0.4, state="running", message="resumed at step 6 on cpu; 100 training items")
    for step in range(7, 13):
        write_scalars(w, step, loss_D=2.0, loss_G=2.0)
    run = RunLog(run_dir)
    run.poll(max_bytes=700)   # the resume line arrives in a later chunk than the first segment
    while run.backlog():
        run.poll(max_bytes=700)
    steps = run.scalars["loss/D"].column("step")
    np.testing.assert_array_equal(steps, np.arange(1, 13))
    np.testing.assert_array_equal(run.scalars["loss/D"].column("value"), [1.0] * 6 + [2.0] * 6)
    assert run.resumes == [6]
    assert [s.step for s in run.checkpoints] == [6] and run.samples == []
    assert run.state == "running"


# -- alerts ---------------------------------------------------------------------------------------
def test_detectors_on_arrays():
    assert first_nonfinite(np.array([1.0, 2.0])) is None
    assert first_nonfinite(np.array([1.0, np.nan, np.inf])) == 1

    healthy = np.abs(np.random.RandomState(0).normal(0.7, 0.2, 200))
    assert detect_d_collapse(healthy) is None
    collapsed = np.concatenate([healthy[:50], np.full(30, 1e-4)])
    assert detect_d_collapse(collapsed, window=10) == 59
    dip = np.concatenate([healthy[:50], np.full(5, 1e-4), healthy[:50]])
    assert detect_d_collapse(dip, window=10) is None   # a brief dip is not a collapse

    assert detect_divergence(healthy) is None
    noisy_but_bounded = np.random.RandomState(1).normal(0, 30, 400)   # a critic's loss swings
    assert detect_divergence(noisy_but_bounded) is None
    exploding = np.concatenate([healthy, np.geomspace(1, 1e5, 100)])
    hit = detect_divergence(exploding)
    assert hit is not None and hit >= 200 and exploding[hit] > 50
    assert detect_divergence(np.full(100, np.nan)) is None

    assert collapse_alarm("near_duplicates", 0.4) and collapse_alarm("collapse/near_duplicates", 0.2)
    assert not collapse_alarm("near_duplicates", 0.012) and not collapse_alarm("near_duplicates", float("nan"))
    assert collapse_alarm("cosine_mean", 0.9, real_cosine_mean=0.3)     # spread 0.1 against 0.7
    assert not collapse_alarm("cosine_mean", 0.4, real_cosine_mean=0.3)
    assert not collapse_alarm("collapse/cosine_mean", 0.9)               # no real figure to compare with
    assert collapse_alarm("collapse/alarm", 1.0) and not collapse_alarm("collapse/alarm", 0.0)
    assert not collapse_alarm("fid", 500.0)
    assert is_stalled("running", 301, 300) and not is_stalled("finished", 1e6, 300)
    assert not is_stalled("running", 10, 300)


def test_runlog_raises_nan_collapse_divergence_and_failed_alerts(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    w.write("status", 0, 0, state="running", message="started")
    for step in range(1, 41):
        write_scalars(w, step, loss_D=0.001 if step > 20 else 0.7, loss_G=1.0)
    run = RunLog(run_dir)
    run.poll()
    assert [(a.kind, a.series, a.step) for a in run.alerts] == [("d_collapse", "loss/D", 30)]
    write_scalars(w, 41, loss_D=float("nan"), loss_G=1.0)   # written as the string "nan"
    w.write("metric", 41, 2.6, name="collapse/alarm", value=1.0, num_samples=256)
    w.write("status", 41, 2.6, state="failed", message="loss/D became nan at step 41")
    run.poll()
    kinds = {a.kind: a for a in run.alerts}
    assert kinds["nan"].step == 41 and kinds["nan"].series == "loss/D"
    assert kinds["collapse_alarm"].series == "collapse/alarm"
    assert kinds["failed"].message == "loss/D became nan at step 41"
    assert math.isnan(run.scalars["loss/D"].column("value")[-1])


def test_collapse_alarm_follows_the_newest_evaluation_and_metric_errors_show(run_dir):
    # The lines trainer.metrics.training writes: metric lines with provenance, then the alarm scalars.
    w = EventWriter(run_dir / "events.jsonl")
    prov = {"cosine_mean_real": 0.25, "near_duplicate_threshold": 0.1}
    w.write("metric", 100, 3.2, name="cosine_mean", value=0.95, num_samples=2000, features="inception",
            provenance=prov)
    w.write("metric", 100, 3.2, name="near_duplicates", value=0.35, num_samples=2000, features="inception",
            provenance=prov)
    w.write("scalars", 100, 3.2, values={"collapse/cosine_mean": 0.95, "collapse/near_duplicates": 0.35})
    w.write("metric", 150, 4.8, name="near_duplicates", value=0.5, num_samples=2000, provenance=prov)
    run = RunLog(run_dir)
    run.poll()
    alarms = [a for a in run.alerts if a.kind == "collapse_alarm"]
    assert sorted(a.series.rsplit("/", 1)[-1] for a in alarms) == ["cosine_mean", "near_duplicates"]
    assert all(a.step == 100 for a in alarms)   # marked where the alarming streak began
    assert "newest at 150" in [a for a in alarms if "near" in a.series][0].message
    w.write("metric", 200, 6.4, name="cosine_mean", value=0.3, num_samples=2000, provenance=prov)
    w.write("metric", 200, 6.4, name="near_duplicates", value=0.011, num_samples=2000, provenance=prov)
    w.write("scalars", 200, 6.4, values={"collapse/cosine_mean": 0.3, "collapse/near_duplicates": 0.011})
    w.write("metric", 200, 6.4, name="fid", value=float("nan"), num_samples=0, features="",
            error="no Inception weights found")
    w.write("metric", 200, 6.4, name="kid", value=0.02, std=0.004, ci95=0.003, num_samples=2000)
    run.poll()
    assert [a.kind for a in run.alerts] == ["metric_error"]
    assert "no Inception weights found" in run.alerts[0].message
    np.testing.assert_allclose([run.metrics["kid"].column("low")[0], run.metrics["kid"].column("high")[0]],
                               [0.017, 0.023])   # the 95% interval is preferred to +-1 std


def test_critic_losses_are_not_flagged_as_d_collapse(run_dir):
    (run_dir / "config.json").write_text(json.dumps({"train": {"loss": "wgan-gp"}}))
    w = EventWriter(run_dir / "events.jsonl")
    for step in range(1, 41):
        write_scalars(w, step, loss_D=0.001, loss_G=0.1)
    run = RunLog(run_dir)
    run.poll()
    assert run.alerts == []


def test_a_silent_running_run_is_stalled_until_a_line_arrives(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    w.write("status", 0, 0, state="running", message="started")
    long_ago = time.time() - 3600
    os.utime(run_dir / "events.jsonl", (long_ago, long_ago))
    run = RunLog(run_dir, stall_seconds=600)
    run.poll()
    run._last_growth = long_ago   # as if the line had been read an hour ago
    assert [a.kind for a in run.alerts] == ["stalled"]
    write_scalars(w, 1, loss_D=1.0)
    run.poll()
    assert run.alerts == []


# -- metrics, smoothing, export -------------------------------------------------------------------
def test_metric_bands_from_ci_or_std_and_odd_values_do_not_crash(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    w.write("metric", 10, 1, name="kid", value=0.02, std=0.005, num_samples=1000, features="inception")
    w.write("metric", 20, 2, name="kid", value=0.01, ci_low=0.008, ci_high=0.013, num_samples=1000)
    w.write("metric", 30, 3, name="fid", value=25.0, num_samples=1000)
    with open(run_dir / "events.jsonl", "a") as f:
        f.write('{"kind": "metric", "step": 40, "name": "fid", "value": null}\n')
        f.write('{"kind": "metric", "step": 50, "name": "fid", "value": "many"}\n')
        f.write('{"kind": "metric", "step": 60, "value": 3}\n')              # no name
        f.write('{"kind": "scalars", "step": 70, "values": [1, 2]}\n')       # values not a dict
        f.write('{"kind": "samples", "step": 70, "path": "../../etc/passwd"}\n')   # outside the run
        f.write('{"kind": "status", "state": "running"}\n')                  # no step at all
    run = RunLog(run_dir)
    run.poll()
    kid = run.metrics["kid"]
    np.testing.assert_allclose(kid.column("low"), [0.015, 0.008])
    np.testing.assert_allclose(kid.column("high"), [0.025, 0.013])
    fid = run.metrics["fid"]
    assert np.isnan(fid.column("low")[0]) and len(fid) == 3 and np.isnan(fid.column("value")[1:]).all()
    assert run.metric_info["kid"]["num_samples"] == 1000
    assert run.samples == [] and run.bad_lines == 0


@pytest.mark.parametrize("w", [0.9, 0.01, 0.999])
def test_ema_smoothing_matches_the_definition_and_updates_incrementally(w):
    rng = np.random.RandomState(0)
    values = rng.normal(size=3000) + 100
    values[[10, 200]] = np.nan
    expected, acc, n = [], 0.0, 0
    for v in values:
        if np.isnan(v):
            expected.append(np.nan)
            continue
        acc, n = w * acc + (1 - w) * v, n + 1
        expected.append(acc / (1 - w ** n))
    np.testing.assert_allclose(ema_smooth(values, w), expected)
    np.testing.assert_array_equal(ema_smooth(values, 0.0), values)

    smoother = EmaSmoother(w)
    for end in (1, 11, 12, 300, 2999, 3000):
        out = smoother.update(values[:end], generation=0)
    np.testing.assert_allclose(out, expected)
    restarted = smoother.update(values[:100] + 1, generation=1)   # rows dropped: start again
    np.testing.assert_allclose(restarted, ema_smooth(values[:100] + 1, w))


def test_csv_export_holds_every_point_of_every_run(tmp_path):
    runs = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        d.mkdir()
        w = EventWriter(d / "events.jsonl")
        for step in range(1, 6):
            write_scalars(w, step, loss_D=step + i)
        w.write("metric", 5, 0.3, name="fid", value=12.5, ci_low=11.0, ci_high=14.0)
        run = RunLog(d)
        run.poll()
        runs.append(run)
    out = tmp_path / "export.csv"
    assert write_csv(runs, out) == 12
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 12 and rows[0].keys() == {"run", "name", "step", "kimg", "time", "value", "low", "high"}
    run1_d = [float(r["value"]) for r in rows if r["run"] == "run1" and r["name"] == "loss/D"]
    assert run1_d == [2, 3, 4, 5, 6]
    fid = [r for r in rows if r["name"] == "fid"]
    assert fid[0]["low"] == "11.0" and fid[0]["high"] == "14.0" and rows[0]["low"] == ""


def test_a_missing_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunLog(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    run = RunLog(empty)   # a run whose trainer has not written its log yet
    assert run.poll() == 0 and run.state == "unknown" and run.alerts == []


def test_the_run_model_imports_no_qt():
    import subprocess
    import sys
    code = ("import sys, ganstudio.engine.runlog; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_min_max_envelope_keeps_the_outline_of_a_growing_series():
    from ganstudio.engine.runlog import MinMaxEnvelope, peak_decimate
    rng = np.random.RandomState(0)
    y = rng.normal(size=100_000)
    y[[5000, 77_777]] = [50.0, -40.0]   # spikes the outline must keep
    y[1000:1010] = np.nan
    x = np.arange(len(y), dtype=np.float64) * 0.5
    env = MinMaxEnvelope(bins=500)
    for end in (10, 999, 1001, 5003, 40_000, 40_001, 99_999, 100_000):   # grows in odd steps
        xs, ys = env.update(x[:end], y[:end], key=0)
        assert len(xs) == len(ys) <= 2 * 2 * 500 + env.k
        assert np.nanmax(ys) == np.nanmax(y[:end]) and np.nanmin(ys) == np.nanmin(y[:end])
        assert xs[0] == 0 and xs[-1] == x[end - 1] and np.all(np.diff(xs) >= 0)
    assert env.k > 1 and 500 <= env._n <= 1000
    # The same outline as decimating at once with that bin size.
    whole = (len(y) // env.k) * env.k
    direct = y[:whole].reshape(-1, env.k)
    np.testing.assert_array_equal(ys[0:2 * len(direct):2], np.fmin.reduce(direct, axis=1))
    np.testing.assert_array_equal(ys[1:2 * len(direct):2], np.fmax.reduce(direct, axis=1))
    short_x, short_y = env.update(x[:100], y[:100] + 1, key=1)   # changed earlier points: start again
    np.testing.assert_array_equal(short_y, y[:100] + 1)
    px, py = peak_decimate(x, y, 1000)
    assert len(px) <= 2000 + 100 and py.max() == 50.0 and py.min() == -40.0


def test_a_replaced_log_is_read_again_from_the_start(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    for step in range(1, 21):
        write_scalars(w, step, loss_D=1.0)
    run = RunLog(run_dir)
    run.poll()
    generation = run.scalars["loss/D"].generation
    (run_dir / "events.jsonl").write_text("")   # a new run written over the old one
    w = EventWriter(run_dir / "events.jsonl")
    for step in range(1, 4):
        write_scalars(w, step, loss_D=2.0)
    run.poll()
    np.testing.assert_array_equal(run.scalars["loss/D"].column("value"), [2.0, 2.0, 2.0])
    assert run.scalars["loss/D"].generation > generation and run.events_read == 3


def test_a_big_log_reserves_its_series_once_instead_of_growing_them_step_by_step(run_dir):
    line = '{"kind": "scalars", "step": %d, "kimg": 0.0, "time": 0.0, "values": {"loss/D": 1.0}}\n'
    with open(run_dir / "events.jsonl", "w") as f:
        f.writelines(line % i for i in range(1, 30_001))
    run = RunLog(run_dir)
    run.poll(max_bytes=64 << 10)
    series = run.scalars["loss/D"]
    capacity = series._data.shape[1]
    assert 30_000 <= capacity <= 33_000
    while run.backlog():
        run.poll(max_bytes=64 << 10)
    assert series._data.shape[1] == capacity and len(series) == 30_000
    np.testing.assert_array_equal(series.column("step"), np.arange(1, 30_001))
