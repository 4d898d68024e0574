"""The run model behind the training monitor: a run directory read while the trainer writes it.

`RunLog` tails `<run>/events.jsonl` incrementally (never re-reading it whole), keeps every scalar
and metric as growable numpy columns (step, kimg, time, value[, low, high]), lists the sample
grids and checkpoints that exist on disk, follows the run's status, and raises alerts. The alert
detectors are plain functions of numpy arrays so that they can be tested on their own.

No Qt here: the monitor widget polls a RunLog from a timer and draws what it holds.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from trainer.checkpoint import atomic_write
from trainer.events import EventReader, to_float

X_AXES = ("step", "kimg", "time")
SCALAR_COLUMNS = ("step", "kimg", "time", "value")
METRIC_COLUMNS = ("step", "kimg", "time", "value", "low", "high")
RUN_STATES = ("running", "finished", "stopped", "failed")
# Losses whose D loss is a signed critic score: near zero there is not a collapse.
CRITIC_LOSSES = ("wgan", "wgan-gp")
_RESUMED = re.compile(r"resumed at step (\d+)")
# Collapse figures logged as scalars that can raise the alarm on their own (cosine_mean needs the
# real data's figure, which only its metric line carries).
_COLLAPSE_SCALARS = ("collapse/near_duplicates", "collapse/alarm")
_STEP_IN_NAME = re.compile(r"step-(\d+)")


# ----------------------------------------------------------------------------------------------
class Series:
    """One logged quantity of one run as growable float64 columns (`columns`), in log order."""

    def __init__(self, name: str, columns: tuple[str, ...] = SCALAR_COLUMNS):
        self.name = name
        self.columns = columns
        self._index = {c: i for i, c in enumerate(columns)}
        self._data = np.empty((len(columns), 64), dtype=np.float64)
        self._size = 0
        # Bumped whenever rows are removed, so caches built on a prefix know to start again.
        self.generation = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, rows: np.ndarray) -> None:
        """rows [K, len(columns)] appended at the end; capacity doubles as needed."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.columns))
        need = self._size + len(rows)
        if need > self._data.shape[1]:
            capacity = max(need, 2 * self._data.shape[1])
            grown = np.empty((len(self.columns), capacity), dtype=np.float64)
            grown[:, :self._size] = self._data[:, :self._size]
            self._data = grown
        self._data[:, self._size:need] = rows.T
        self._size = need

    def reserve(self, rows: int) -> None:
        """Make room for `rows` rows at once (growing by doubling copies everything each time,
        which a million-row series feels as a pause)."""
        if rows > self._data.shape[1]:
            grown = np.empty((len(self.columns), rows), dtype=np.float64)
            grown[:, :self._size] = self._data[:, :self._size]
            self._data = grown

    def column(self, name: str) -> np.ndarray:
        """A read-only view of one column, valid until the next extend()."""
        view = self._data[self._index[name], :self._size]
        view.flags.writeable = False
        return view

    def drop_after(self, step: int) -> int:
        """Remove the rows logged at a step above `step` (an abandoned segment); -> rows removed."""
        keep = self._data[0, :self._size] <= step
        removed = int(self._size - keep.sum())
        if removed:
            kept = self._data[:, :self._size][:, keep]
            self._data[:, :kept.shape[1]] = kept
            self._size = kept.shape[1]
            self.generation += 1
        return removed


@dataclass(frozen=True)
class Alert:
    kind: str       # "nan" | "d_collapse" | "diverging" | "collapse_alarm" | "metric_error" | "stalled" | "failed"
    series: str     # the scalar or metric concerned; "" for the run as a whole
    step: int       # first step at which it showed; -1 when it has no step (stalled)
    message: str    # one line for a person

    @property
    def short(self) -> str:
        return ALERT_TITLES.get(self.kind, self.kind)


ALERT_TITLES = {"nan": "NaN", "d_collapse": "D loss at 0", "diverging": "diverging",
                "collapse_alarm": "collapse alarm", "metric_error": "metric error", "stalled": "stalled",
                "failed": "failed"}


@dataclass(frozen=True)
class Snapshot:
    """A sample grid or a checkpoint that exists on disk."""
    step: int
    kimg: float
    path: Path


# ----------------------------------------------------------------------------------------------
# Alert detectors: pure functions of arrays. Each returns the index of the first offending
# point, or None.

def first_nonfinite(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if len(bad) else None


def detect_d_collapse(d_loss: np.ndarray, window: int = 10, threshold: float = 1e-2) -> int | None:
    """D's loss below `threshold` (and not negative) for `window` logged points in a row: D wins
    outright and G gets no useful gradient. -> index of the point that completes the run."""
    near_zero = np.isfinite(d_loss) & (d_loss >= 0) & (d_loss < threshold)
    if len(near_zero) < window:
        return None
    run = np.convolve(near_zero.astype(np.int32), np.ones(window, dtype=np.int32), mode="valid")
    hits = np.flatnonzero(run == window)
    return int(hits[0] + window - 1) if len(hits) else None


def detect_divergence(loss: np.ndarray, window: int = 20, factor: float = 10.0,
                      floor: float = 50.0) -> int | None:
    """A loss whose magnitude keeps growing: the median |loss| of a block of `window` points is
    above `floor` and `factor` times the smallest block median before it. -> index of the end of
    the first such block. Blocks are counted from the end so the newest block is always whole."""
    values = np.abs(loss[np.isfinite(loss)]) if len(loss) else loss
    positions = np.flatnonzero(np.isfinite(loss))
    blocks = len(values) // window
    if blocks < 2:
        return None
    start = len(values) - blocks * window
    medians = np.median(values[start:].reshape(blocks, window), axis=1)
    lowest_before = np.minimum.accumulate(medians)[:-1]
    bad = np.flatnonzero((medians[1:] > floor) & (medians[1:] > factor * lowest_before))
    if not len(bad):
        return None
    return int(positions[start + (bad[0] + 2) * window - 1])


# trainer.metrics' quick collapse alarm logs two numbers; these are where they turn alarming.
NEAR_DUPLICATES_ALARM = 0.10   # share of near-duplicate samples; about 0.01 when healthy (by construction)
COSINE_SPREAD_ALARM = 0.5      # (1 - cosine_mean) of the samples over that of real data


def collapse_alarm(name: str, value: float, real_cosine_mean: float | None = None) -> str | None:
    """Whether a logged collapse figure is alarming -> a reason for a person, or None.

    near_duplicates: share of samples with a generated neighbour closer than almost all real
    pairs (about 0.01 when healthy). cosine_mean: mean pairwise cosine similarity of samples;
    alarming when the samples are less than half as spread as the real data. A quantity named
    ".../alarm" is alarming when it is non-zero."""
    if not math.isfinite(value):
        return None
    base = name.rsplit("/", 1)[-1]
    if base == "near_duplicates" and value > NEAR_DUPLICATES_ALARM:
        return f"{value:.0%} of samples are near-duplicates (about 1% when healthy)"
    if base == "cosine_mean" and real_cosine_mean is not None and math.isfinite(real_cosine_mean):
        spread, real_spread = 1 - value, 1 - real_cosine_mean
        if real_spread > 0 and spread / real_spread < COSINE_SPREAD_ALARM:
            return (f"samples are alike: mean cosine similarity {value:.3f} against {real_cosine_mean:.3f} "
                    "for real data")
    if base == "alarm" and "collapse" in name and value > 0:
        return f"{name} = {value:g}"
    return None


def is_stalled(state: str, seconds_since_last_line: float, threshold: float) -> bool:
    """A run that says it is running but has written nothing for `threshold` seconds."""
    return state == "running" and seconds_since_last_line > threshold


def ema_smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (0 <= weight < 1; 0 returns the values). Non-finite
    points are left out of the average and stay non-finite in the result."""
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or len(values) == 0:
        return values.copy()
    return EmaSmoother(weight).update(values, generation=0)


class EmaSmoother:
    """ema_smooth() kept up to date as a series grows: only the new points are filtered.

    Pass the series' generation: when it changes (rows were dropped) the cache starts again."""

    def __init__(self, weight: float):
        self.weight = float(weight)
        self._reset(None)

    def _reset(self, generation) -> None:
        self._out = np.empty(64)
        self._size = 0
        self._state = 0.0       # the undebiased average so far
        self._count = 0         # finite points averaged so far
        self._generation = generation

    def update(self, values: np.ndarray, generation: int) -> np.ndarray:
        """values [N] (the whole series so far) -> smoothed [N] (a view, valid until the next call)."""
        values = np.asarray(values, dtype=np.float64)
        if self.weight <= 0:
            return values
        if generation != self._generation or len(values) < self._size:
            self._reset(generation)
        new = values[self._size:]
        if len(new):
            w = self.weight
            finite = np.isfinite(new)
            x = new[finite]
            smoothed = np.full(len(new), np.nan)
            if len(x):
                # s_k = w s_{k-1} + (1 - w) x_k, started from the carried state, then debiased.
                acc = _ema_filter(x, w, self._state)
                counts = self._count + np.arange(1, len(x) + 1)
                smoothed[finite] = acc / (1 - w ** counts)
                self._state, self._count = float(acc[-1]), int(counts[-1])
            self._out = _append(self._out, self._size, smoothed)
            self._size += len(new)
        return self._out[:self._size]


def _ema_filter(x: np.ndarray, w: float, state: float) -> np.ndarray:
    """s_j = w s_{j-1} + (1 - w) x_j from s_{-1} = state, vectorised by blocks:
    s_j = w^(j+1) state + (1 - w) w^j sum_{i<=j} w^(-i) x_i. Blocks are short enough that
    w^(-i) stays below e^300; the rounding error stays near eps * max|x| / (1 - w)."""
    out = np.empty(len(x))
    block = int(min(1024, max(8, 300.0 / -math.log(w))))
    powers = w ** np.arange(block + 1, dtype=np.float64)   # w^0 .. w^block
    inverse = 1.0 / powers[:block]                           # w^0 .. w^-(block-1)
    for start in range(0, len(x), block):
        seg = x[start:start + block]
        n = len(seg)
        out[start:start + n] = powers[1:n + 1] * state + (1 - w) * powers[:n] * np.cumsum(seg * inverse[:n])
        state = out[start + n - 1]
    return out


def _append(buffer: np.ndarray, size: int, new: np.ndarray) -> np.ndarray:
    """Write `new` after the first `size` entries of `buffer`, doubling it when full."""
    need = size + len(new)
    if need > len(buffer):
        grown = np.empty(max(need, 2 * len(buffer)), dtype=buffer.dtype)
        grown[:size] = buffer[:size]
        buffer = grown
    buffer[size:need] = new
    return buffer


def peak_decimate(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2*bins points that keep the outline of (x, y): the min and max of each run of
    consecutive points. NaNs are skipped within a bin (a bin of NaNs stays NaN)."""
    n = len(y)
    if n <= 2 * bins:
        return x, y
    k = -(-n // bins)   # points per bin, rounded up
    whole = (n // k) * k
    block = y[:whole].reshape(-1, k)
    xs = np.column_stack([x[:whole:k], x[k - 1:whole:k]]).ravel()
    ys = np.column_stack([np.fmin.reduce(block, axis=1), np.fmax.reduce(block, axis=1)]).ravel()
    return np.concatenate([xs, x[whole:]]), np.concatenate([ys, y[whole:]])


class MinMaxEnvelope:
    """peak_decimate() of a growing series, kept up to date in time proportional to the new
    points: bins of k points whose min and max are kept; when there are more than 2*bins bins,
    neighbours merge and k doubles. What a plot draws when a curve has far more points than the
    screen has pixels (a million-line log)."""

    def __init__(self,
                 bins: int = 2048):   # bins kept between bins and 2*bins once the series is long
        self.bins = bins
        self.reset(None)

    def reset(self, key) -> None:
        self.k = 1
        self._key = key
        self._done = 0                       # points summarised in whole bins
        self._lo = np.empty((4, 64))         # per bin: x first, x last, min, max
        self._n = 0

    def update(self, x: np.ndarray, y: np.ndarray, key) -> tuple[np.ndarray, np.ndarray]:
        """x, y [N]: the whole series so far; `key` changes when earlier points changed.
        -> (x, y) to draw."""
        if key != self._key or len(y) < self._done:
            self.reset(key)
        n = len(y)
        if n <= 2 * self.bins and self.k == 1:
            return x, y
        if self.k == 1 and self._n == 0:   # first time past the limit: start with coarser bins
            self.k = -(-n // self.bins)
        whole = self._done + ((n - self._done) // self.k) * self.k
        if whole > self._done:
            block = y[self._done:whole].reshape(-1, self.k)
            rows = np.stack([x[self._done:whole:self.k], x[self._done + self.k - 1:whole:self.k],
                             np.fmin.reduce(block, axis=1), np.fmax.reduce(block, axis=1)])
            if self._n + rows.shape[1] > self._lo.shape[1]:
                grown = np.empty((4, max(2 * self._lo.shape[1], self._n + rows.shape[1])))
                grown[:, :self._n] = self._lo[:, :self._n]
                self._lo = grown
            self._lo[:, self._n:self._n + rows.shape[1]] = rows
            self._n += rows.shape[1]
            self._done = whole
        while self._n > 2 * self.bins:
            if self._n % 2:   # an odd bin out goes back to the tail, to be summarised again
                self._n -= 1
                self._done -= self.k
            a, b = self._lo[:, 0:self._n:2], self._lo[:, 1:self._n:2]
            merged = np.stack([a[0], b[1], np.fmin(a[2], b[2]), np.fmax(a[3], b[3])])
            self._n //= 2
            self._lo[:, :self._n] = merged
            self.k *= 2
        lo = self._lo[:, :self._n]
        xs = np.column_stack([lo[0], lo[1]]).ravel()
        ys = np.column_stack([lo[2], lo[3]]).ravel()
        return np.concatenate([xs, x[self._done:]]), np.concatenate([ys, y[self._done:]])


# ----------------------------------------------------------------------------------------------
class RunLog:
    """The state of one run directory as far as its events.jsonl has been read.

    Call `poll()` repeatedly (from a timer): each call reads at most `max_bytes` of new lines and
    returns how many events it took in. `version` increases whenever anything visible changed.
    """

    def __init__(self,
                 run_dir: str | os.PathLike,   # a run directory, or its events.jsonl
                 stall_seconds: float = 300.0):  # a running run silent this long is "stalled"
        path = Path(run_dir).resolve()
        if path.is_file() or path.suffix == ".jsonl":
            path = path.parent
        self.run_dir = path
        self.events_path = path / "events.jsonl"
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a run directory (no such folder)")
        self.stall_seconds = stall_seconds
        self.name = path.name
        self.config = self._read_config()
        self.scalars: dict[str, Series] = {}
        self.metrics: dict[str, Series] = {}
        self.metric_info: dict[str, dict] = {}   # last provenance of each metric (features, ...)
        self._samples: dict[int, Snapshot] = {}
        self._checkpoints: dict[int, Snapshot] = {}
        self._snapshot_version = 0
        self._on_disk_cache: dict[str, tuple] = {}
        self.state = "unknown"
        self.status_message = ""
        self.last_step = 0
        self.last_kimg = 0.0
        self.events_read = 0
        self.resumes: list[int] = []
        self.version = 0
        self._reader = EventReader(self.events_path)
        self._alerts: dict[tuple[str, str], Alert] = {}   # historic: first NaN, collapse of D, ...
        self._collapse: dict[str, Alert] = {}              # current: from the newest evaluation
        self._checked: dict[str, int] = {}   # per scalar: rows already seen by the detectors
        self._last_growth = self._file_mtime() or time.time()
        self._reserved = False

    # -- reading ----------------------------------------------------------------------------------
    @property
    def bad_lines(self) -> int:
        """Lines skipped because they were not JSON objects with a "kind" (foreign or garbage)."""
        return self._reader.bad_lines

    @property
    def bytes_read(self) -> int:
        return self._reader.offset

    def file_size(self) -> int:
        try:
            return self.events_path.stat().st_size
        except OSError:
            return 0

    def backlog(self) -> int:
        """Bytes written to the log that have not been read yet."""
        return max(self.file_size() - self._reader.offset, 0)

    def poll(self, max_bytes: int | None = 1 << 20) -> int:
        """Read up to `max_bytes` of new complete lines; -> number of events taken in."""
        if self.file_size() < self._reader.offset:
            self._forget_everything()   # the log was replaced or truncated: the reader starts over
        before = self._reader.offset
        events = self._reader.poll(max_bytes)
        if self._reader.offset != before:
            self._last_growth = time.time()
        if events:
            self.ingest(events)
            if not self._reserved:
                self._reserve_for_backlog()
        return len(events)

    def _reserve_for_backlog(self) -> None:
        """Once, after the first chunk of a big log: size every series for the whole file, from
        the lines per byte seen so far."""
        self._reserved = True
        if self.backlog() < (1 << 20) or not self.events_read:
            return
        expected_events = self.events_read * self.file_size() / max(self.bytes_read, 1)
        for series in self.scalars.values():
            share = len(series) / self.events_read
            series.reserve(int(share * expected_events * 1.05) + 64)

    def ingest(self, events: Iterable[dict]) -> None:
        """Take in parsed events (in log order); unknown kinds and keys are ignored."""
        # Scalars are gathered per batch as plain lists (one entry per line for step, kimg and
        # time; per name, the line index and value) and turned into arrays once per batch.
        steps: list[float] = []
        kimgs: list[float] = []
        times: list[float] = []
        line_of: dict[str, list[int]] = {}
        value_of: dict[str, list[float]] = {}
        metric_rows: dict[str, list] = {}
        count = 0

        def flush():
            if steps:
                columns = np.array([steps, kimgs, times], dtype=np.float64)
                for name, values in value_of.items():
                    lines = line_of[name]
                    block = np.empty((len(values), 4))
                    if len(lines) == len(steps):   # the usual case: logged on every line
                        block[:, :3] = columns.T
                    else:
                        block[:, :3] = columns[:, lines].T
                    block[:, 3] = values
                    self.scalars.setdefault(name, Series(name)).extend(block)
            for name, rows in metric_rows.items():
                self.metrics.setdefault(name, Series(name, METRIC_COLUMNS)).extend(rows)
            for batch in (steps, kimgs, times, metric_rows, line_of, value_of):
                batch.clear()

        for event in events:
            count += 1
            step, kimg, t = event.get("step"), event.get("kimg"), event.get("time")
            if type(step) is not int:
                step = to_float(step)
                if not math.isfinite(step):   # every line of a trainer's log has a step: not ours
                    continue
            if type(kimg) is not float:
                kimg = to_float(kimg)
            if type(t) is not float:
                t = to_float(t)
            kind = event.get("kind")
            if kind == "scalars":
                values = event.get("values")
                if isinstance(values, dict):
                    line = len(steps)
                    steps.append(step)
                    kimgs.append(kimg)
                    times.append(t)
                    for name, value in values.items():
                        found = value_of.get(name)
                        if found is None:
                            found = value_of[name] = []
                            line_of[name] = []
                        found.append(value if type(value) is float else to_float(value))
                        line_of[name].append(line)
                    for name in _COLLAPSE_SCALARS:   # judged in log order, with the metric lines
                        if name in values:
                            self._judge_collapse(name, to_float(values[name]), int(step))
            elif kind == "metric":
                name = event.get("name")
                if isinstance(name, str) and name:
                    value = to_float(event.get("value"))
                    low, high = _band(event, value)
                    metric_rows.setdefault(name, []).append((step, kimg, t, value, low, high))
                    info = {k: v for k, v in event.items()
                            if k not in ("kind", "step", "kimg", "time", "name", "value")}
                    self.metric_info[name] = info
                    if isinstance(info.get("error"), str):
                        self._raise(Alert("metric_error", name, int(step),
                                          f"{name} could not be computed at step {int(step)}: {info['error']}"))
                    provenance = info.get("provenance")
                    real_cosine = provenance.get("cosine_mean_real") if isinstance(provenance, dict) else None
                    self._judge_collapse(name, value, int(step), to_float(real_cosine)
                                         if real_cosine is not None else None)
            elif kind == "samples":
                self._add_snapshot(self._samples, step, kimg, event.get("path"))
            elif kind == "checkpoint":
                self._add_snapshot(self._checkpoints, step, kimg, event.get("path"))
            elif kind == "status":
                state = event.get("state")
                message = event.get("message")
                message = message if isinstance(message, str) else ""
                resumed = _RESUMED.search(message)
                if state == "running" and resumed:
                    # Points already in hand are in order: write them before cutting the
                    # abandoned segment, which would otherwise double back on the curves.
                    flush()
                    self._resume_at(int(resumed.group(1)))
                if isinstance(state, str):
                    self.state, self.status_message = state, message
            self.last_step = int(step)
            if kimg == kimg:   # not NaN
                self.last_kimg = kimg
        flush()
        self.events_read += count
        self._detect()
        self.version += 1

    def _add_snapshot(self, listing: dict[int, Snapshot], step: float, kimg: float, rel) -> None:
        if not isinstance(rel, str) or not rel:
            return
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts:   # a path pointing outside the run: ignore
            return
        step = int(step)
        if listing and step < next(reversed(listing)):   # out of order: keep the dict sorted by step
            listing[step] = None
            ordered = dict(sorted(listing.items()))
            listing.clear()
            listing.update(ordered)
        listing[step] = Snapshot(step, kimg if math.isfinite(kimg) else 0.0, self.run_dir.joinpath(*parts))
        self._snapshot_version += 1

    @property
    def samples(self) -> list[Snapshot]:
        """Sample grids named by the log, by step (whether or not the files still exist)."""
        return list(self._samples.values())

    @property
    def checkpoints(self) -> list[Snapshot]:
        """Checkpoints named by the log, by step (whether or not the files still exist)."""
        return list(self._checkpoints.values())

    def _forget_everything(self) -> None:
        for series in (*self.scalars.values(), *self.metrics.values()):
            series.drop_after(-math.inf)   # emptied in place: the generation tells the views
        self.metric_info.clear()
        self._samples.clear()
        self._checkpoints.clear()
        self._snapshot_version += 1
        self._alerts.clear()
        self._collapse.clear()
        self._checked.clear()
        self.state, self.status_message, self.last_step, self.last_kimg = "unknown", "", 0, 0.0
        self.resumes.clear()
        self.events_read = 0
        self.version += 1

    def _resume_at(self, step: int) -> None:
        """The trainer went back to its snapshot at `step`: forget what the abandoned segment
        logged after it. (A point at `step` itself was logged before that snapshot was taken.)"""
        self.resumes.append(step)
        for series in (*self.scalars.values(), *self.metrics.values()):
            series.drop_after(step)
        for listing in (self._samples, self._checkpoints):
            for later in [k for k in listing if k > step]:
                del listing[later]
        self._snapshot_version += 1
        self._alerts = {k: a for k, a in self._alerts.items() if a.step <= step}
        self._collapse = {k: a for k, a in self._collapse.items() if a.step <= step}
        self._checked = {name: min(n, len(self.scalars[name])) for name, n in self._checked.items()
                         if name in self.scalars}

    # -- alerts -----------------------------------------------------------------------------------
    def _raise(self, alert: Alert) -> None:
        self._alerts.setdefault((alert.kind, alert.series), alert)

    def _detect(self) -> None:
        """Run the detectors over the rows added since the last call (plus the context they need)."""
        loss_kind = self.config.get("train", {}).get("loss", "") if isinstance(self.config, dict) else ""
        for name, series in self.scalars.items():
            done = self._checked.get(name, 0)
            if done == len(series):
                continue
            steps, values = series.column("step"), series.column("value")
            bad = first_nonfinite(values[done:])
            if bad is not None:
                self._raise(Alert("nan", name, int(steps[done + bad]),
                                  f"{name} is {values[done + bad]} at step {int(steps[done + bad])}"))
            if name == "loss/D" and loss_kind not in CRITIC_LOSSES:
                window = 10
                lo = max(done - window + 1, 0)
                hit = detect_d_collapse(values[lo:], window)
                if hit is not None:
                    self._raise(Alert("d_collapse", name, int(steps[lo + hit]),
                                      f"D loss has stayed near 0 since step {int(steps[lo + hit])}: "
                                      "D wins outright and G learns nothing"))
            if name.startswith("loss/"):
                lo = max(len(values) - 2000, 0)   # the recent past is what matters; bounded cost
                hit = detect_divergence(values[lo:])
                if hit is not None:
                    self._raise(Alert("diverging", name, int(steps[lo + hit]),
                                      f"{name} is growing without bound ({values[lo + hit]:.3g} "
                                      f"at step {int(steps[lo + hit])})"))
            self._checked[name] = len(series)

    def _judge_collapse(self, name: str, value: float, step: int, real_cosine: float | None = None) -> None:
        """The collapse alarm follows the newest evaluation: a later healthy figure clears it."""
        key = name.rsplit("/", 1)[-1]
        reason = collapse_alarm(name, value, real_cosine)
        if reason:
            since = self._collapse[key].step if key in self._collapse else step   # the streak's start
            self._collapse[key] = Alert("collapse_alarm", name, since,
                                        f"collapse alarm since step {since} (newest at {step}): {reason}")
        elif math.isfinite(value) and (key in ("near_duplicates", "alarm") or real_cosine is not None):
            self._collapse.pop(key, None)

    @property
    def alerts(self) -> list[Alert]:
        """Alerts raised so far, plus the ones that describe the run's current state."""
        found = sorted([*self._alerts.values(), *self._collapse.values()], key=lambda a: (a.step, a.kind))
        if self.state == "failed":
            found.append(Alert("failed", "", self.last_step, self.status_message or "the run failed"))
        if is_stalled(self.state, self.seconds_since_last_line(), self.stall_seconds):
            found.append(Alert("stalled", "", -1, f"no new line for {self.seconds_since_last_line() / 60:.0f} min "
                                                  "although the run says it is running"))
        return found

    def seconds_since_last_line(self) -> float:
        return max(time.time() - max(self._last_growth, self._file_mtime()), 0.0)

    # -- snapshots --------------------------------------------------------------------------------
    def sample_grids(self) -> list[Snapshot]:
        """Sample grids that exist on disk, by step: those the log names, plus any found in
        samples/ (a bundled run may carry files its log does not mention, or fewer)."""
        return self._on_disk("samples", lambda: _existing(self.samples, self.run_dir / "samples", "*.png"))

    def checkpoint_files(self) -> list[Snapshot]:
        """Checkpoints that exist on disk, by step (log entries, checkpoints/, and *.safetensors
        at the top of the run directory, whose step is read from the file's metadata)."""
        def scan():
            found = _existing(self.checkpoints, self.run_dir / "checkpoints", "*.safetensors")
            steps = {s.step for s in found}
            for path in sorted(self.run_dir.glob("*.safetensors")):
                step, kimg = _checkpoint_step(path)
                if step is not None and step not in steps:
                    found.append(Snapshot(step, kimg, path))
            return sorted(found, key=lambda s: s.step)
        return self._on_disk("checkpoints", scan)

    def _on_disk(self, folder: str, scan) -> list[Snapshot]:
        """scan() again only when the log named new files or a folder changed (its mtime)."""
        key = (self._snapshot_version, _mtime_ns(self.run_dir / folder), _mtime_ns(self.run_dir))
        cached = self._on_disk_cache.get(folder)
        if cached is None or cached[0] != key:
            cached = self._on_disk_cache[folder] = (key, scan())
        return list(cached[1])

    def nearest_checkpoint(self, step: int) -> Snapshot | None:
        """The checkpoint on disk whose step is closest to `step` (the earlier one on a tie)."""
        files = self.checkpoint_files()
        if not files:
            return None
        return min(files, key=lambda s: (abs(s.step - step), s.step))

    # -- export -----------------------------------------------------------------------------------
    def series_names(self) -> list[str]:
        return sorted(self.scalars) + sorted(self.metrics)

    # -- helpers ----------------------------------------------------------------------------------
    def _read_config(self) -> dict:
        try:
            config = json.loads((self.run_dir / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return config if isinstance(config, dict) else {}

    def _file_mtime(self) -> float:
        try:
            return self.events_path.stat().st_mtime
        except OSError:
            return 0.0


def _band(event: dict, value: float) -> tuple[float, float]:
    """A metric's band: (ci_low, ci_high) when logged, else value -/+ ci95 (half-width of a 95%
    interval), else value -/+ std, else NaN."""
    if "ci_low" in event or "ci_high" in event:
        return to_float(event.get("ci_low")), to_float(event.get("ci_high"))
    if "ci95" in event:
        half = to_float(event.get("ci95"))
        return value - half, value + half
    if "std" in event:
        std = to_float(event.get("std"))
        return value - std, value + std
    return math.nan, math.nan


def _existing(logged: list[Snapshot], folder: Path, pattern: str) -> list[Snapshot]:
    by_step = {s.step: s for s in logged if s.path.is_file()}
    if folder.is_dir():
        for path in folder.glob(pattern):
            match = _STEP_IN_NAME.search(path.stem)
            if match and int(match.group(1)) not in by_step:
                by_step[int(match.group(1))] = Snapshot(int(match.group(1)), math.nan, path)
    return [by_step[k] for k in sorted(by_step)]


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _checkpoint_step(path: Path) -> tuple[int | None, float]:
    """(step, kimg) from a .safetensors file's name or its header metadata (plain JSON)."""
    match = _STEP_IN_NAME.search(path.stem)
    if match:
        return int(match.group(1)), math.nan
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < (1 << 24):
                return None, math.nan
            metadata = json.loads(f.read(size)).get("__metadata__", {}) or {}
        return int(metadata["step"]), to_float(metadata.get("kimg"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, math.nan


# ----------------------------------------------------------------------------------------------
def write_csv(runs: Iterable[RunLog], path: str | os.PathLike) -> int:
    """Every scalar and metric of `runs` as one long table (run, name, step, kimg, time, value,
    low, high) -> rows written. Written to a temporary name, then renamed into place."""
    rows = 0

    def write(tmp):
        nonlocal rows
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["run", "name", *METRIC_COLUMNS])
            for run in runs:
                for group in (run.scalars, run.metrics):
                    for name in sorted(group):
                        series = group[name]
                        cols = [series.column(c) if c in series.columns else np.full(len(series), np.nan)
                                for c in METRIC_COLUMNS]
                        for i in range(len(series)):
                            out.writerow([run.name, name, int(cols[0][i]),
                                          *(_csv_number(c[i]) for c in cols[1:])])
                        rows += len(series)

    atomic_write(path, write)  # a failed write leaves no half file and no temporary behind
    return rows


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))
