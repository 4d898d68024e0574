"""RunLog: one run directory read while the trainer writes it.

It tails `<run>/events.jsonl` incrementally (never re-reading it whole), keeps every scalar and
metric as growable numpy columns (step, kimg, time, value[, low, high]), lists the sample grids
and checkpoints, follows the run's status, cuts what a resume abandoned, and raises alerts.

No Qt here: the monitor widget polls a RunLog from a timer and draws what it holds.
"""
from __future__ import annotations

import gc
import json
import math
import os
import re
import time
from contextlib import contextmanager
from itertools import compress, repeat
from operator import eq, not_
from pathlib import Path, PurePath

import numpy as np

from trainer.events import to_float

from .alerts import Alert, CollapseWatch, is_stalled, scalar_alerts
from .parsing import event_position, metric_band, scalar_columns
from .reader import CappedEventReader
from .series import METRIC_COLUMNS, Series
from .snapshots import Snapshot, checkpoint_step, existing_snapshots, mtime_ns

RUN_STATES = ("running", "finished", "stopped", "failed")
_RESUMED = re.compile(r"resumed at step (\d+)")
# Collapse figures logged as scalars that can raise the alarm on their own (cosine_mean needs the
# real data's figure, which only its metric line carries).
_COLLAPSE_SCALARS = ("collapse/near_duplicates", "collapse/alarm")


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
        self._reader = CappedEventReader(self.events_path)
        self._alerts: dict[tuple[str, str], Alert] = {}   # historic: first NaN, collapse of D, ...
        self._collapse = CollapseWatch()                    # current: from the newest evaluation
        self._checked: dict[str, int] = {}   # per scalar: rows already seen by the detectors
        self._last_growth = self._file_mtime() or time.time()
        self._reserved = False

    # -- reading ----------------------------------------------------------------------------------
    @property
    def bad_lines(self) -> int:
        """Lines skipped because they were not JSON objects with a "kind" (foreign or garbage)."""
        return self._reader.bad_lines

    @property
    def long_lines(self) -> int:
        """Lines over MAX_LINE_BYTES skipped unread (also counted in bad_lines)."""
        return self._reader.long_lines

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
        taken = 0
        with _collector_paused():
            for events in self._reader.poll_batches(max_bytes):   # each batch taken in before the next is parsed
                self._take(events)
                taken += len(events)
        if self._reader.offset != before:
            self._last_growth = time.time()
        if taken:
            self._taken_in(taken)
            if not self._reserved:
                self._reserve_for_backlog()
        return taken

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

    def ingest(self, events: list[dict]) -> None:
        """Take in parsed events (dicts, in log order); unknown kinds and keys are ignored."""
        self._take(events)
        self._taken_in(len(events))

    def _taken_in(self, count: int) -> None:
        self.events_read += count
        self._detect()
        self.version += 1

    def _take(self, events: list[dict]) -> None:
        """Scalars lines go into the series in bulk, as long runs as possible: only a status line
        (which may cut a resumed run's abandoned segment) and a metric line (whose collapse figure
        is judged in turn with the scalars') need the points before them in place first. The
        other lines (snapshots, unknown kinds) do not touch the series: they are taken as met."""
        kinds = list(map(dict.get, events, repeat("kind")))
        is_scalars = list(map(eq, kinds, repeat("scalars")))
        cuts = ([i for i, kind in enumerate(kinds) if kind == "status" or kind == "metric"]
                if "status" in kinds or "metric" in kinds else [])
        start = 0
        for cut in (*cuts, len(events)):
            segment, scalars = events[start:cut], is_scalars[start:cut]
            for event in compress(segment, map(not_, scalars)):
                self._take_event(event)
            self._take_scalars(list(compress(segment, scalars)))
            if cut < len(events):
                self._take_event(events[cut])
            start = cut + 1
        self._note_last_position(events)

    def _take_scalars(self, events: list[dict]) -> None:
        if not events:
            return
        columns = scalar_columns(events)
        position = columns.position
        for name, (rows, values) in columns.values.items():
            series = self.scalars.get(name)
            if series is None:
                series = self.scalars[name] = Series(name)
            series.extend_columns((*(position if rows is None else position[:, rows]), values))
        for name in _COLLAPSE_SCALARS:   # judged in log order, with the metric lines
            if name in columns.values:
                rows, values = columns.values[name]
                steps = position[0] if rows is None else position[0, rows]
                for value, step in zip(values.tolist(), steps.tolist()):
                    self._collapse.judge(name, value, int(step))

    def _take_event(self, event: dict) -> None:
        """One line that is not scalars: a metric, a snapshot, a status, or a kind we ignore."""
        position = event_position(event)
        if position is None:
            return
        step, kimg, t = position
        kind = event.get("kind")
        if kind == "metric":
            self._take_metric(event, step, kimg, t)
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
                self._resume_at(int(resumed.group(1)))
            if isinstance(state, str):
                self.state, self.status_message = state, message

    def _note_last_position(self, events: list[dict]) -> None:
        """last_step: that of the last line with a step; last_kimg: the last such line's kimg that
        is a number. (Lines are taken in out of order above, so this is done once, at the end.)"""
        step_found = False
        for event in reversed(events):
            position = event_position(event)
            if position is None:
                continue
            if not step_found:
                self.last_step, step_found = int(position[0]), True
            if position[1] == position[1]:   # not NaN
                self.last_kimg = position[1]
                return

    def _take_metric(self, event: dict, step: float, kimg: float, t: float) -> None:
        name = event.get("name")
        if not isinstance(name, str) or not name:
            return
        value = to_float(event.get("value"))
        low, high = metric_band(event, value)
        series = self.metrics.get(name)
        if series is None:
            series = self.metrics[name] = Series(name, METRIC_COLUMNS)
        series.extend(np.array([step, kimg, t, value, low, high]))
        info = {k: v for k, v in event.items() if k not in ("kind", "step", "kimg", "time", "name", "value")}
        self.metric_info[name] = info
        if isinstance(info.get("error"), str):
            self._raise(Alert("metric_error", name, int(step),
                              f"{name} could not be computed at step {int(step)}: {info['error']}"))
        provenance = info.get("provenance")
        real_cosine = provenance.get("cosine_mean_real") if isinstance(provenance, dict) else None
        self._collapse.judge(name, value, int(step), to_float(real_cosine) if real_cosine is not None else None)

    def _add_snapshot(self, listing: dict[int, Snapshot], step: float, kimg: float, rel) -> None:
        if not isinstance(rel, str) or not rel:
            return
        rel = PurePath(rel)
        if rel.is_absolute() or ".." in rel.parts:   # a path pointing outside the run: ignore
            return
        step = int(step)
        if listing and step < next(reversed(listing)):   # out of order: keep the dict sorted by step
            listing[step] = None
            ordered = dict(sorted(listing.items()))
            listing.clear()
            listing.update(ordered)
        listing[step] = Snapshot(step, kimg if math.isfinite(kimg) else 0.0, self.run_dir / rel)
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
        self._collapse.forget_after(step)
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
            for alert in scalar_alerts(name, series.column("step"), series.column("value"), done, loss_kind):
                self._raise(alert)
            self._checked[name] = len(series)

    @property
    def alerts(self) -> list[Alert]:
        """Alerts raised so far, plus the ones that describe the run's current state."""
        found = sorted([*self._alerts.values(), *self._collapse.alerts], key=lambda a: (a.step, a.kind))
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
        return self._on_disk("samples", lambda: existing_snapshots(self.samples, self.run_dir / "samples", "*.png"))

    def checkpoint_files(self) -> list[Snapshot]:
        """Checkpoints that exist on disk, by step (log entries, checkpoints/, and *.safetensors
        at the top of the run directory, whose step is read from the file's metadata)."""
        def scan():
            found = existing_snapshots(self.checkpoints, self.run_dir / "checkpoints", "*.safetensors")
            steps = {s.step for s in found}
            for path in sorted(self.run_dir.glob("*.safetensors")):
                step, kimg = checkpoint_step(path)
                if step is not None and step not in steps:
                    found.append(Snapshot(step, kimg, path))
            return sorted(found, key=lambda s: s.step)
        return self._on_disk("checkpoints", scan)

    def _on_disk(self, folder: str, scan) -> list[Snapshot]:
        """scan() again only when the log named new files or a folder changed (its mtime)."""
        key = (self._snapshot_version, mtime_ns(self.run_dir / folder), mtime_ns(self.run_dir))
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


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for a while. Parsing a chunk of the log makes two
    dicts per line, all freed by reference counting when their batch is done; the collector,
    woken every 700 new objects, finds no cycles among them but walks them and the app's heap
    all the same: a quarter of the time of reading a big log."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

