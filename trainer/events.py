"""The run log `events.jsonl`: one JSON object per line, appended and flushed.

The writer is used by the training loop; the reader by the studio's monitor and by tests. The
reader tails a growing file: it keeps its byte offset, leaves a half-written last line for the
next read, and skips lines that are not JSON objects with a "kind", counting them. It parses
with orjson when installed, and a line orjson refuses is given to json, so the two agree.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

try:   # a C parser, several times faster than json on the monitor's million-line logs
    from orjson import loads as _fast_loads
except ImportError:   # the standard library reads the same lines, only slower
    _fast_loads = json.loads


def _finite_or_str(value):
    """JSON has no NaN: non-finite floats are written as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


class EventWriter:
    def __init__(self, path: str | os.PathLike, start_time: float | None = None, elapsed: float = 0.0):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")
        self._t0 = (start_time or time.time()) - elapsed

    def elapsed(self) -> float:
        return time.time() - self._t0

    def write(self, kind: str, step: int, kimg: float, **fields: Any) -> dict:
        record = {"kind": kind, "step": int(step), "kimg": round(float(kimg), 4),
                  "time": round(self.elapsed(), 3)}
        if "values" in fields:
            fields["values"] = {k: _finite_or_str(float(v)) for k, v in fields["values"].items()}
        record.update({k: _finite_or_str(v) for k, v in fields.items()})
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        return record

    def close(self) -> None:
        self._file.close()


def to_float(value) -> float:
    """A logged value as a float; "nan"/"inf" strings become the non-finite floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:   # an integer beyond float's range (json reads any length)
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


class EventReader:
    """Reads new complete lines of an events.jsonl each time `poll()` is called."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0
        self._partial = b""

    def poll(self, max_bytes: int | None = None) -> list[dict]:
        """Every complete new event (a dict with a "kind"), in log order, from at most
        `max_bytes` new bytes (None: all of them)."""
        return [event for batch in self.poll_batches(max_bytes) for event in batch]

    def poll_batches(self, max_bytes: int | None = None,
                     lines_per_batch: int = 1024) -> Iterator[list[dict]]:
        """poll() in batches of at most `lines_per_batch` lines, each parsed only when the
        caller asks for it: a caller that is done with a batch before taking the next keeps
        few parsed objects alive, which spares the garbage collector (with a 4 MB chunk of
        parsed lines alive at once, its collections took nearly as long as the parsing)."""
        return self._parse_batches(self._read_lines(max_bytes), lines_per_batch)   # read now, parse lazily

    def _parse_batches(self, lines: list[bytes], lines_per_batch: int) -> Iterator[list[dict]]:
        for start in range(0, len(lines), lines_per_batch):
            events, bad = parse_lines(lines[start:start + lines_per_batch])
            self.bad_lines += bad
            yield events

    def _read_lines(self, max_bytes: int | None) -> list[bytes]:
        """The new complete lines; an unfinished last line waits for the next call."""
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # file was replaced or truncated: start again
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                chunk = f.read() if max_bytes is None else f.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = chunk.split(b"\n")
        lines[0] = self._partial + lines[0]   # (joined after the split: no copy of the whole chunk)
        self._partial = lines.pop()
        return lines


def parse_lines(lines: list[bytes], loads: Callable[[bytes], Any] = _fast_loads) -> tuple[list[dict], int]:
    """Lines of a run log -> (the events among them in order, how many lines were not events).

    An event is a JSON object with a "kind"; blank lines are neither events nor bad. `loads`
    parses the whole batch first; a batch holding any line it refuses (garbage, a blank line,
    NaN or 1e999, which orjson does not accept) is parsed line by line, each line that `loads`
    refuses going to the standard library's json, so a line means what json says. (Except an
    integer beyond 64 bits, which orjson reads as a float and json as an int.)"""
    try:
        parsed = list(map(loads, lines))
    except (ValueError, RecursionError):   # orjson.JSONDecodeError is a ValueError
        return _parse_line_by_line(lines, loads)
    events = [record for record in parsed if type(record) is dict and "kind" in record]
    return events, len(parsed) - len(events)


def _parse_line_by_line(lines: list[bytes], loads: Callable[[bytes], Any]) -> tuple[list[dict], int]:
    events, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = loads(line)
        except (ValueError, RecursionError):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):   # JSONDecodeError, UnicodeDecodeError, too deep
                bad += 1
                continue
        if isinstance(record, dict) and "kind" in record:
            events.append(record)
        else:
            bad += 1
    return events, bad


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every complete, well-formed event of a run log."""
    return EventReader(path).poll()
