"""The run log `events.jsonl`: one JSON object per line, appended and flushed.

The writer is used by the training loop; the reader by the studio's monitor and by tests. The
reader tails a growing file: it keeps its byte offset, leaves a half-written last line for the
next read, and skips lines that are not JSON objects, counting them.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


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
        return float(value)
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
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next poll
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.bad_lines += 1
                continue
            if not isinstance(record, dict) or "kind" not in record:
                self.bad_lines += 1
                continue
            events.append(record)
        return events


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every complete, well-formed event of a run log."""
    return EventReader(path).poll()
