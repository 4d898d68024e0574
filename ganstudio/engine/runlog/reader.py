"""Tailing events.jsonl with a cap on a line's length.

The trainer writes lines of a few hundred bytes (the longest, a fine-tuning run's first line, a
few tens of kilobytes). A line far beyond that is not ours: it is skipped, counted, and reading
goes on from the next line, without ever holding it whole.
"""
from __future__ import annotations

import os

from trainer.events import EventReader

MAX_LINE_BYTES = 2 << 20   # 2 MiB


class CappedEventReader(EventReader):
    """trainer.events.EventReader, except that a line longer than `max_line_bytes` is dropped as
    soon as it passes the cap (counted in `long_lines` and `bad_lines`). Joining an ever-growing
    unfinished line to each new chunk took quadratic time: the monitor froze on a 50 MB line."""

    def __init__(self, path: str | os.PathLike, max_line_bytes: int = MAX_LINE_BYTES):
        super().__init__(path)
        self.max_line_bytes = max_line_bytes
        self.long_lines = 0
        self._skipping = False   # inside a line over the cap: its bytes are dropped up to its newline

    def _read_lines(self, max_bytes: int | None) -> list[bytes]:
        lines = super()._read_lines(max_bytes)
        if self._skipping:
            if lines:                 # the long line ended in this chunk: lines[0] is its tail
                lines.pop(0)
                self._skipping = False
            else:                     # still inside it: keep nothing of it
                self._partial = b""
        if len(self._partial) > self.max_line_bytes:
            self._partial, self._skipping = b"", True
            self._count_long(1)
        kept = [line for line in lines if len(line) <= self.max_line_bytes]
        self._count_long(len(lines) - len(kept))
        return kept

    def _count_long(self, count: int) -> None:
        self.long_lines += count
        self.bad_lines += count
