"""How fast the training monitor reads a run log, and whether the window stays responsive.

Writes a synthetic events.jsonl shaped like a StyleGAN2 run's (scalars every line, a sample grid
and a checkpoint every 100 lines, FID and KID with an interval every 1,000), then measures:
  1. the Qt-free RunLog reading it whole, in chunks, before and after it was made fast: the
     run model of an earlier commit (--before, read from git) against today's, in turns in this
     one process, the median of --repeat turns each, with a check that both hold the same points;
  2. the MonitorWidget (offscreen) opening it: time until every line is read and drawn, and the
     window's frame time meanwhile (gaps between ticks of a 5 ms probe timer: what a user
     feels as lag);
  3. 1,000 new lines appended to the loaded log: time until they are on the plots, with the
     frame time while that happens;
and, as the baseline, re-reading the whole file (trainer.events.read_events), which is what a
monitor without tailing would do for each update.

  python benchmarks/monitor_tail.py [--lines 1000000] [--repeat 3] [--before REV]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
# The last commit whose run model read a log line by line with json (ganstudio/engine/runlog.py).
BEFORE = "271256f2411350790d0ff4feff1f8b2aeb98360a"


def load_before(rev: str, folder: Path):
    """The RunLog class of commit `rev` (its runlog.py and the trainer.events it read with), or
    None when git or the commit is not at hand."""
    sources = {}
    for name, path in (("events_before", "trainer/events.py"), ("runlog_before", "ganstudio/engine/runlog.py")):
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True)
        if shown.returncode:
            return None
        sources[name] = shown.stdout.replace("from trainer.events import", "from events_before import")
    sys.path.insert(0, str(folder))
    for name, text in sources.items():
        (folder / f"{name}.py").write_text(text)
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["runlog_before"].RunLog


def read_whole(run_class, run_dir: Path):
    """-> (seconds to read the whole log in 4 MB chunks, the run)."""
    t0 = time.perf_counter()
    run = run_class(run_dir)
    while run.backlog():
        run.poll(4 << 20)
    return time.perf_counter() - t0, run


def turns(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in seconds)


def same_points(a, b) -> bool:
    """Whether two run models hold the same series, point for point (NaN equal to NaN)."""
    import numpy as np
    for mine, theirs in ((a.scalars, b.scalars), (a.metrics, b.metrics)):
        if list(mine) != list(theirs):
            return False
        for name, series in mine.items():
            if not all(np.array_equal(series.column(c), theirs[name].column(c), equal_nan=True)
                       for c in series.columns):
                return False
    return True


def write_log(path: Path, start: int, count: int, seed: int = 0) -> None:
    rng = random.Random(seed + start)
    with open(path, "a", encoding="utf-8") as f:
        if start == 0:
            f.write('{"kind": "status", "step": 0, "kimg": 0.0, "time": 0.0, "state": "running", '
                    '"message": "started on cpu; 60000 training items"}\n')
        for i in range(start, start + count):
            step = (i + 1) * 20
            kimg, t = step * 0.032, step * 0.05
            d = 1.1 + 0.2 * rng.random()
            f.write(f'{{"kind": "scalars", "step": {step}, "kimg": {kimg:.4f}, "time": {t:.3f}, "values": '
                    f'{{"loss/D": {d!r}, "D/real": {0.5 + 0.1 * rng.random()!r}, '
                    f'"D/fake": {0.4 + 0.1 * rng.random()!r}, "loss/G": {2.5 - d + 0.1 * rng.random()!r}, '
                    f'"pl": {0.2 * rng.random()!r}, "r1": {0.03 * rng.random()!r}, "lr/G": 0.0025, '
                    f'"lr/D": 0.0025, "speed/img_s": {600 + 50 * rng.random()!r}}}}}\n')
            if i % 100 == 99:
                f.write(f'{{"kind": "samples", "step": {step}, "kimg": {kimg:.4f}, "time": {t:.3f}, '
                        f'"path": "samples/step-{step:06d}.png"}}\n')
                f.write(f'{{"kind": "checkpoint", "step": {step}, "kimg": {kimg:.4f}, "time": {t:.3f}, '
                        f'"path": "checkpoints/step-{step:06d}.safetensors"}}\n')
            if i % 1000 == 999:
                fid = 200 / (1 + i / 1e5)
                f.write(f'{{"kind": "metric", "step": {step}, "kimg": {kimg:.4f}, "time": {t:.3f}, '
                        f'"name": "fid", "value": {fid!r}, "num_samples": 2000, "features": "inception-2015-12-05"}}\n')
                f.write(f'{{"kind": "metric", "step": {step}, "kimg": {kimg:.4f}, "time": {t:.3f}, '
                        f'"name": "kid", "value": {fid / 5000!r}, "std": {fid / 50000!r}, "ci95": {fid / 80000!r}, '
                        f'"num_samples": 2000, "features": "inception-2015-12-05"}}\n')


def percentiles(gaps_ms: list[float]) -> str:
    if not gaps_ms:
        return "no frames"
    s = sorted(gaps_ms)
    pick = lambda q: s[min(int(q * len(s)), len(s) - 1)]   # noqa: E731
    return f"median {pick(0.5):.1f} ms, p95 {pick(0.95):.1f} ms, max {s[-1]:.1f} ms over {len(s)} frames"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="scalar lines in the synthetic log")
    p.add_argument("--new-lines", type=int, default=1000, help="lines appended after the load")
    p.add_argument("--repeat", type=int, default=3, help="turns of reading the log before and after")
    p.add_argument("--before", default=BEFORE, help="commit whose run model is the 'before'")
    args = p.parse_args()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ganstudio.engine.runlog import RunLog
    from ganstudio.widgets.monitor import MonitorWidget
    from trainer.events import read_events

    tmp = Path(tempfile.mkdtemp(prefix="monitor-tail-"))
    run_dir = tmp / "00000-stylegan2-synthetic"
    run_dir.mkdir()
    log = run_dir / "events.jsonl"
    t0 = time.perf_counter()
    write_log(log, 0, args.lines)
    size = log.stat().st_size
    print(f"log: {args.lines:,} scalar lines (+ samples/checkpoints/metrics), {size / 1e6:.0f} MB, "
          f"written in {time.perf_counter() - t0:.1f} s; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")

    # 1. The run model alone, before and after, in turns.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    before_class = load_before(args.before, tmp)
    before_s, after_s = [], []
    for _ in range(args.repeat):
        if before_class is not None:
            seconds, before_run = read_whole(before_class, run_dir)
            before_s.append(seconds)
        seconds, run = read_whole(RunLog, run_dir)
        after_s.append(seconds)
        if before_class is not None:
            if not same_points(before_run, run):
                raise SystemExit("the run models before and after disagree on this log")
            del before_run
    engine_s = statistics.median(after_s)
    lines = run.events_read
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"RunLog, whole log in 4 MB chunks, median of {args.repeat} turns (load average {load:.1f} before, "
          f"{load_after:.1f} after):")
    if before_class is not None:
        before = statistics.median(before_s)
        print(f"  before ({args.before[:10]}): {before:.2f} s ({lines / before:,.0f} lines/s); "
              f"turns {turns(before_s)} s")
    print(f"  after:  {engine_s:.2f} s ({lines / engine_s:,.0f} lines/s); turns {turns(after_s)} s; "
          f"{len(run.scalars)} scalars x {len(run.scalars['loss/D']):,} points")
    if before_class is not None:
        print(f"  -> {before / engine_s:.1f}x faster, the same points in both")
    else:
        print(f"  (no 'before': git or commit {args.before} not at hand)")
    engine_run = run

    # 2. The widget opening it.
    app = QApplication.instance() or QApplication([])
    widget = MonitorWidget()
    widget.resize(1500, 900)
    widget.show()
    gaps: list[float] = []
    last = [time.perf_counter()]

    def probe():
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now
    probe_timer = QTimer(interval=5)
    probe_timer.timeout.connect(probe)

    def run_until(condition, timeout_s=3600):
        gaps.clear()
        last[0] = time.perf_counter()
        probe_timer.start()
        start = time.perf_counter()
        while not condition():
            app.processEvents()
            if time.perf_counter() - start > timeout_s:
                raise TimeoutError
            time.sleep(0.0005)   # what an idle event loop does between events
        probe_timer.stop()
        return time.perf_counter() - start

    t0 = time.perf_counter()
    run = widget.add_run(run_dir)
    load_s = run_until(lambda: not widget.is_loading())
    points = len(widget.plots.curve_data(run, "loss/D")[0])
    print(f"MonitorWidget, open and draw: {load_s:.2f} s until all {points:,} points of each curve were on "
          f"the plots; frame time meanwhile: {percentiles(gaps)}")

    # 3. 1,000 new lines on a loaded log (and, for comparison, on a short one).
    def take_in(widget, run, log, start):
        target = len(widget.plots.curve_data(run, "loss/D")[0]) + args.new_lines
        write_log(log, start, args.new_lines, seed=1)
        return run_until(lambda: len(widget.plots.curve_data(run, "loss/D")[0]) >= target)

    ingest_s = take_in(widget, run, log, args.lines)
    big_gaps = list(gaps)
    print(f"MonitorWidget, {args.new_lines:,} new lines: on the plots {ingest_s * 1000:.0f} ms after they "
          f"were written (poll interval {widget.poll_interval_ms} ms); frame time meanwhile: {percentiles(gaps)}")
    widget.remove_run(run)
    small_dir = tmp / "00001-short"
    small_dir.mkdir()
    write_log(small_dir / "events.jsonl", 0, 1000)
    small = widget.add_run(small_dir)
    run_until(lambda: not widget.is_loading())
    small_s = take_in(widget, small, small_dir / "events.jsonl", 1000)
    print(f"  the same on a 1,000-line log: {small_s * 1000:.0f} ms; frame time: {percentiles(gaps)}; "
          f"worst frame {max(big_gaps) / max(max(gaps), 1e-9):.2f}x the short log's")

    # Tailing against the baseline: re-reading the whole log for an update.
    t0 = time.perf_counter()
    new_events = engine_run.poll(None)
    tail_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    events = read_events(log)
    reread_s = time.perf_counter() - t0
    print(f"RunLog tailing {new_events:,} new lines: {tail_s * 1000:.1f} ms; baseline, re-reading the whole "
          f"log (read_events): {reread_s:.2f} s for {len(events):,} events -> tailing is "
          f"{reread_s / max(tail_s, 1e-9):,.0f}x faster")
    widget.shutdown()
    import shutil
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
