"""The monitor's Qt-free run model: tailing events.jsonl, series, resume, alerts, export."""
import csv
import json
import math
import os
import time

import numpy as np
import pytest

from ganstudio.engine.runlog import (EmaSmoother, RunLog, Series, detect_d_collapse, detect_divergence,
                                     collapse_alarm, ema_smooth, first_nonfinite, is_stalled, regular_scalar_columns,
                                     scalar_columns, scalar_columns_line_by_line, write_csv)
from trainer.events import EventReader, EventWriter, parse_lines, read_events, to_float


def _scalars(writer, step, **values):
    writer.write("scalars", step, step * 0.064, values={k.replace("_", "/"): v for k, v in values.items()})


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "00000-test-run"
    d.mkdir()
    return d


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
    _scalars(w, 1, loss_D=1.0, loss_G=2.0)
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
        _scalars(w, step, loss_D=1 / step, loss_G=math.log(step))
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
        _scalars(w, step, loss_D=1.0, loss_G=1.0)
        if step == 6:
            w.write("checkpoint", 6, 0.4, path="checkpoints/step-000006.safetensors")
        if step == 8:
            w.write("samples", 8, 0.5, path="samples/step-000008.png")
    # The trainer was killed at step 10; it resumes from its snapshot at step 6 and logs 7.. again.
    w.write("status", 6, 0.4, state="running", message="resumed at step 6 on cpu; 100 training items")
    for step in range(7, 13):
        _scalars(w, step, loss_D=2.0, loss_G=2.0)
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
        _scalars(w, step, loss_D=0.001 if step > 20 else 0.7, loss_G=1.0)
    run = RunLog(run_dir)
    run.poll()
    assert [(a.kind, a.series, a.step) for a in run.alerts] == [("d_collapse", "loss/D", 30)]
    _scalars(w, 41, loss_D=float("nan"), loss_G=1.0)   # written as the string "nan"
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
        _scalars(w, step, loss_D=0.001, loss_G=0.1)
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
    _scalars(w, 1, loss_D=1.0)
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
            _scalars(w, step, loss_D=step + i)
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
        _scalars(w, step, loss_D=1.0)
    run = RunLog(run_dir)
    run.poll()
    generation = run.scalars["loss/D"].generation
    (run_dir / "events.jsonl").write_text("")   # a new run written over the old one
    w = EventWriter(run_dir / "events.jsonl")
    for step in range(1, 4):
        _scalars(w, step, loss_D=2.0)
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


# -- the fast path: orjson, scalars in bulk, the collector paused --------------------------------
def _read_as_json_does(lines):
    """The reader's meaning of a batch of lines, written plainly: json line by line."""
    events, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            bad += 1
            continue
        if isinstance(record, dict) and "kind" in record:
            events.append(record)
        else:
            bad += 1
    return events, bad


def test_orjson_and_the_standard_json_read_every_kind_of_line_alike():
    import orjson
    from trainer import events as event_module
    assert event_module._fast_loads is orjson.loads   # a dependency: the fast path is the one tested here
    good = json.dumps({"kind": "scalars", "step": 1, "kimg": 0.1, "time": 1.0,
                       "values": {"loss/D": 0.5, "loss/G": "nan"}}).encode()
    lines = [
        good, b"", b"   ", b"\r", b"this is not json", b"[1, 2, 3]", b'{"no_kind": true}', b'"text"', b"42",
        b'{"kind": "scalars", "step": 3, "kimg": 0.1, "time": 1.0, "values": {"loss/D": NaN, "loss/G": -Infinity}}',
        b'{"kind": "scalars", "step": 4, "values": {"loss/D": 1e999, "loss/G": 1}}',   # json: inf; orjson refuses
        b'{"kind": "status", "step": 5, "message": "\\ud800"}',                         # a lone surrogate
        b'\xef\xbb\xbf{"kind": "status", "step": 6}',                                   # a byte-order mark
        b'{"kind": "status", "message": "\xff"}',                                       # not UTF-8
        b'{"kind": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}",                   # too deep for both
        b'{"kind": "telemetry", "step": 7, "gpu": 0.5, "kind2": {"a": [1, {"b": null}]}}',
        b'{"kind": "scalars", "kind": "status", "step": 8, "state": "running"}',        # a key twice: the last wins
        b'{"kind": "scalars", "step": 9, "kimg',                                        # half-written
    ]
    reference_events, reference_bad = _read_as_json_does(lines)
    assert len(reference_events) == 7 and reference_bad == 8
    for loads in (orjson.loads, json.loads):
        for batch in (lines, [good] * 3):   # a batch with bad lines, and one orjson reads at once
            events, bad = parse_lines(batch, loads)
            expected = _read_as_json_does(batch)
            assert repr(events) == repr(expected[0]) and bad == expected[1]   # repr: NaN equals NaN


def _trainer_scalars(step, **values):
    return {"kind": "scalars", "step": step, "kimg": round(step * 0.064, 4), "time": step * 0.5,
            "values": {"loss/D": 1.0 / step, "loss/G": float(step), "lr/G": 0.002, "pl": 3, **values}}


def _assert_same_columns(a, b):
    np.testing.assert_array_equal(a.position, b.position)
    assert list(a.values) == list(b.values)
    for name in a.values:
        rows_a, values_a = a.values[name]
        rows_b, values_b = b.values[name]
        assert (rows_a is None) == (rows_b is None)
        if rows_a is not None:
            np.testing.assert_array_equal(rows_a, rows_b)
        np.testing.assert_array_equal(values_a, values_b)   # NaN where NaN, inf where inf


def test_scalars_in_bulk_agree_with_reading_them_line_by_line():
    regular = [_trainer_scalars(step) for step in range(1, 51)]
    regular[7]["values"] = dict(reversed(list(regular[7]["values"].items())))   # the same names, reordered
    bulk = regular_scalar_columns(regular)
    assert bulk is not None   # the trainer's lines do take the bulk path
    _assert_same_columns(bulk, scalar_columns_line_by_line(regular))
    assert list(bulk.values) == ["loss/D", "loss/G", "lr/G", "pl"] and bulk.position.shape == (3, 50)

    odd_lines = {
        "a nan string": _trainer_scalars(11, pl="nan"),
        "a bool": _trainer_scalars(11, pl=True),
        "a null": _trainer_scalars(11, pl=None),
        "a list": _trainer_scalars(11, pl=[1.0]),
        "an extra name": _trainer_scalars(11, extra=1.0),
        "a missing name": {**_trainer_scalars(11), "values": {"loss/D": 1.0, "loss/G": 2.0, "lr/G": 0.1}},
        "a step as text": {**_trainer_scalars(11), "step": "11"},
        "a step of NaN": {**_trainer_scalars(11), "step": math.nan},
        "no step": {k: v for k, v in _trainer_scalars(11).items() if k != "step"},
        "no kimg": {k: v for k, v in _trainer_scalars(11).items() if k != "kimg"},
        "a null kimg": {**_trainer_scalars(11), "kimg": None},
        "values not a dict": {**_trainer_scalars(11), "values": [1, 2]},
        "an integer beyond float": _trainer_scalars(11, pl=10 ** 400),
    }
    for what, line in odd_lines.items():
        batch = regular[:10] + [line] + regular[11:]
        assert regular_scalar_columns(batch) is None, what
        _assert_same_columns(scalar_columns(batch), scalar_columns_line_by_line(batch))
    single_name = [{**line, "values": {"loss/D": 1.0}} for line in regular]
    _assert_same_columns(scalar_columns(single_name), scalar_columns_line_by_line(single_name))
    beyond = scalar_columns(regular[:10] + [odd_lines["an integer beyond float"]])
    assert beyond.values["pl"][1][-1] == math.inf and to_float(-10 ** 400) == -math.inf


def _nasty_log(path):
    """A log with everything a reader must survive, ending in a half-written line."""
    w = EventWriter(path)
    w.write("status", 0, 0, state="running", message="started on cpu")
    for step in range(1, 31):
        _scalars(w, step, loss_D=float("nan") if step == 12 else 1.0 / step, loss_G=float(step))
        if step % 10 == 0:
            w.write("samples", step, step * 0.064, path=f"samples/step-{step:06d}.png")
            w.write("metric", step, step * 0.064, name="fid", value=100.0 / step, std=1.0, extra_key=[1, 2])
        if step == 13:
            w.close()
            with open(path, "a") as f:
                f.write('{"kind": "scalars", "step": 13, "kimg": 0.8, "time": 1, "values": {"loss/D": NaN}}\n')
                f.write("garbage\n\n[1]\n")
                f.write('{"kind": "telemetry", "step": 13, "gpu": 0.5}\n')
                f.write('{"kind": "scalars", "step": 13, "kimg": 0.8, "time": 1, "unknown": {"a": 1}, '
                        '"values": {"loss/G": "inf", "speed/img_s": true}}\n')
            w = EventWriter(path)
    w.write("status", 20, 1.28, state="running", message="resumed at step 20 on cpu; 100 training items")
    for step in range(21, 26):
        _scalars(w, step, loss_D=2.0, loss_G=-1.0)
    w.close()
    with open(path, "a") as f:
        f.write('{"kind": "scalars", "step": 26, "kimg": 1.6, "ti')


def _run_state(run):
    # (A replaced log's series are emptied in place, not removed: the plots hold them.)
    series = {(group, name): [s.column(c).tolist() for c in s.columns]
              for group, named in (("scalar", run.scalars), ("metric", run.metrics)) for name, s in named.items()
              if len(s)}
    return (repr(series), run.bad_lines, run.events_read, run.state, run.last_step, run.last_kimg, run.resumes,
            [(a.kind, a.series, a.step) for a in run.alerts], [(s.step, s.path) for s in run.samples],
            repr(run.metric_info))


def test_a_nasty_log_gives_the_same_run_whatever_the_chunks_and_after_being_replaced(run_dir):
    _nasty_log(run_dir / "events.jsonl")
    whole = RunLog(run_dir)
    whole.poll(None)
    steps = whole.scalars["loss/D"].column("step")
    np.testing.assert_array_equal(steps, [*range(1, 14), 13, *range(14, 26)])   # 21..30 cut by the resume
    values = whole.scalars["loss/D"].column("value")
    assert np.isnan(values[11]) and np.isnan(values[13]) and values[-1] == 2.0   # "nan" and a NaN literal
    assert whole.scalars["loss/G"].column("value")[13] == math.inf   # the "inf" string of line 13
    assert np.isnan(whole.scalars["speed/img_s"].column("value")).all()   # true is no number
    assert whole.bad_lines == 2 and whole.resumes == [20] and whole.last_step == 25 and whole.last_kimg == 1.6
    assert sorted((a.kind, a.series, a.step) for a in whole.alerts) == [
        ("nan", "loss/D", 12), ("nan", "loss/G", 13), ("nan", "speed/img_s", 13)]
    assert [s.step for s in whole.samples] == [10, 20] and whole.metrics["fid"].column("step").tolist() == [10, 20]
    for chunk in (37, 500, 4096):
        chunked = RunLog(run_dir)
        while chunked.backlog() > len(b'{"kind": "scalars", "step": 26, "kimg": 1.6, "ti'):
            chunked.poll(chunk)
        assert _run_state(chunked) == _run_state(whole), chunk

    w = EventWriter(run_dir / "events.jsonl.new")
    for step in range(1, 4):
        _scalars(w, step, loss_D=3.0)
    w.close()
    os.replace(run_dir / "events.jsonl.new", run_dir / "events.jsonl")   # a shorter log in its place
    whole.poll(None)
    fresh = RunLog(run_dir)
    fresh.poll(None)
    after, fresh_state = _run_state(whole), _run_state(fresh)
    assert after[0] == fresh_state[0] and after[2:] == fresh_state[2:]
    assert whole.bad_lines == 2   # as before the split: bad lines are counted over the reader's life
    assert whole.scalars["loss/D"].column("value").tolist() == [3.0] * 3


def test_reading_pauses_the_garbage_collector_and_gives_it_back_as_it_was(run_dir):
    import gc
    _nasty_log(run_dir / "events.jsonl")
    run = RunLog(run_dir)
    assert gc.isenabled()
    run.poll(2000)
    assert gc.isenabled()
    gc.disable()
    try:
        run.poll(2000)
        assert not gc.isenabled()   # an application that turned it off keeps it off
    finally:
        gc.enable()


def test_the_event_reader_reads_at_once_and_parses_in_batches(run_dir):
    w = EventWriter(run_dir / "events.jsonl")
    for step in range(1, 8):
        _scalars(w, step, loss_D=1.0)
    w.close()
    with open(run_dir / "events.jsonl", "a") as f:
        f.write("garbage\n")
    reader = EventReader(run_dir / "events.jsonl")
    batches = reader.poll_batches(lines_per_batch=3)
    assert reader.offset == (run_dir / "events.jsonl").stat().st_size   # read before any batch is asked for
    assert [len(b) for b in batches] == [3, 3, 1] and reader.bad_lines == 1
    assert [e["step"] for e in read_events(run_dir / "events.jsonl")] == list(range(1, 8))


def test_a_series_takes_columns_as_it_takes_rows():
    rows = np.arange(40, dtype=np.float64).reshape(10, 4)
    by_rows, by_columns = Series("a"), Series("a")
    by_rows.extend(rows)
    by_columns.extend_columns(tuple(rows.T))
    for name in by_rows.columns:
        np.testing.assert_array_equal(by_rows.column(name), by_columns.column(name))
    with pytest.raises(ValueError, match="3 columns given, 4 expected"):
        by_columns.extend_columns(tuple(rows.T[:3]))


def test_without_orjson_the_standard_json_reads_the_same_run(run_dir):
    import subprocess
    import sys
    _nasty_log(run_dir / "events.jsonl")
    code = ("import sys; sys.modules['orjson'] = None\n"   # as if it were not installed
            "import json; from trainer import events\n"
            "assert events._fast_loads is json.loads\n"
            "from test_monitor_runlog import _run_state; from ganstudio.engine.runlog import RunLog\n"
            f"run = RunLog({str(run_dir)!r}); run.poll(700)\n"
            "while run.backlog() > 60: run.poll(700)\n"
            "print(repr(_run_state(run)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(__file__))
    assert out.returncode == 0, out.stderr
    run = RunLog(run_dir)
    run.poll(None)
    assert out.stdout.strip() == repr(_run_state(run))
