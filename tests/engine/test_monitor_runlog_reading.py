"""How the monitor reads a run log: orjson and the standard json alike, scalars lines in bulk,
the garbage collector paused while reading, and a cap on a line's length."""
import json
import math
import os

import numpy as np
import pytest

from ganstudio.engine.runlog import (MAX_LINE_BYTES, CappedEventReader, RunLog, Series, regular_scalar_columns,
                                     scalar_columns, scalar_columns_line_by_line)
from trainer.events import EventReader, EventWriter, parse_lines, read_events, to_float
from conftest import write_scalars


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


def _trainerwrite_scalars(step, **values):
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
    regular = [_trainerwrite_scalars(step) for step in range(1, 51)]
    regular[7]["values"] = dict(reversed(list(regular[7]["values"].items())))   # the same names, reordered
    bulk = regular_scalar_columns(regular)
    assert bulk is not None   # the trainer's lines do take the bulk path
    _assert_same_columns(bulk, scalar_columns_line_by_line(regular))
    assert list(bulk.values) == ["loss/D", "loss/G", "lr/G", "pl"] and bulk.position.shape == (3, 50)

    odd_lines = {
        "a nan string": _trainerwrite_scalars(11, pl="nan"),
        "a bool": _trainerwrite_scalars(11, pl=True),
        "a null": _trainerwrite_scalars(11, pl=None),
        "a list": _trainerwrite_scalars(11, pl=[1.0]),
        "an extra name": _trainerwrite_scalars(11, extra=1.0),
        "a missing name": {**_trainerwrite_scalars(11), "values": {"loss/D": 1.0, "loss/G": 2.0, "lr/G": 0.1}},
        "a step as text": {**_trainerwrite_scalars(11), "step": "11"},
        "a step of NaN": {**_trainerwrite_scalars(11), "step": math.nan},
        "no step": {k: v for k, v in _trainerwrite_scalars(11).items() if k != "step"},
        "no kimg": {k: v for k, v in _trainerwrite_scalars(11).items() if k != "kimg"},
        "a null kimg": {**_trainerwrite_scalars(11), "kimg": None},
        "values not a dict": {**_trainerwrite_scalars(11), "values": [1, 2]},
        "an integer beyond float": _trainerwrite_scalars(11, pl=10 ** 400),
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
        write_scalars(w, step, loss_D=float("nan") if step == 12 else 1.0 / step, loss_G=float(step))
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
        write_scalars(w, step, loss_D=2.0, loss_G=-1.0)
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
        write_scalars(w, step, loss_D=3.0)
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
        write_scalars(w, step, loss_D=1.0)
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
            f"sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})\n"   # tests/: its conftest
            "import json; from trainer import events\n"
            "assert events._fast_loads is json.loads\n"
            "from test_monitor_runlog_reading import _run_state; from ganstudio.engine.runlog import RunLog\n"
            f"run = RunLog({str(run_dir)!r}); run.poll(700)\n"
            "while run.backlog() > 60: run.poll(700)\n"
            "print(repr(_run_state(run)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(__file__))
    assert out.returncode == 0, out.stderr
    run = RunLog(run_dir)
    run.poll(None)
    assert out.stdout.strip() == repr(_run_state(run))


# -- a cap on a line's length ------------------------------------------------------------------
def _log_with_a_long_line(path, long_bytes):
    w = EventWriter(path)
    write_scalars(w, 1, loss_D=1.0, loss_G=2.0)
    w.close()
    with open(path, "a") as f:
        f.write('{"kind": "scalars", "step": 2, "values": {"loss/D": 9.0}, "pad": "' + "x" * long_bytes + '"}\n')
    w = EventWriter(path)
    write_scalars(w, 3, loss_D=1.5, loss_G=2.5)
    w.close()


@pytest.mark.parametrize("chunk", [7, 4096, None])
def test_a_line_over_the_cap_is_skipped_and_counted_whatever_the_chunks(tmp_path, chunk):
    path = tmp_path / "events.jsonl"
    _log_with_a_long_line(path, 5000)
    reader = CappedEventReader(path, max_line_bytes=1000)
    steps = []
    while reader.offset < path.stat().st_size:
        steps += [e["step"] for e in reader.poll(chunk)]
    assert steps == [1, 3] and reader.long_lines == 1 and reader.bad_lines == 1
    plain = EventReader(path)   # under the cap, the same line is read like any other
    assert [e["step"] for e in plain.poll()] == [1, 2, 3]


@pytest.mark.slow
def test_the_monitor_reads_past_a_50_mb_line_without_freezing(run_dir):
    import time
    _log_with_a_long_line(run_dir / "events.jsonl", 50_000_000)
    run = RunLog(run_dir)
    started = time.perf_counter()
    while run.backlog():
        run.poll(32 << 10)   # the monitor's chunk while catching up
    # trainer.events.EventReader alone took 42 s here, re-joining the growing line to every chunk
    assert time.perf_counter() - started < 5
    assert run.long_lines == 1 and list(run.scalars["loss/D"].column("step")) == [1, 3]
    assert MAX_LINE_BYTES < 50_000_000
