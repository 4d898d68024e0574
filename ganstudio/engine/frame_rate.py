"""The frame rate the status bar shows: measured while images stream in (a control being dragged),
or, for a single change, what the renderer could sustain at that render time. Qt-free."""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

STREAM_GAP_S = 0.25        # frames further apart than this are separate changes, not a stream
STREAM_MIN_FRAMES = 3      # a stream needs this many frames ...
STREAM_MIN_SPAN_S = 0.2    # ... over at least this long before its rate means anything


class FrameRate:
    def __init__(self,
                 frames: int = 30,                  # the measured rate averages over this many frames
                 stream_gap_s: float = STREAM_GAP_S,
                 clock: Callable[[], float] = time.perf_counter):   # seconds, monotonic
        self.stream_gap_s, self.clock = stream_gap_s, clock
        self._times: deque[float] = deque(maxlen=frames)

    def frame_shown(self, now: float | None = None) -> None:
        """A new image went on screen (now, or at `now` on the clock)."""
        now = self.clock() if now is None else now
        if self._times and now - self._times[-1] > self.stream_gap_s:
            self._times.clear()   # a pause: the next frames start a new stream
        self._times.append(now)

    def streaming_fps(self) -> float | None:
        """Frames per second of the stream going on, or None when images are not streaming."""
        span = self._times[-1] - self._times[0] if self._times else 0.0
        if len(self._times) >= STREAM_MIN_FRAMES and span >= STREAM_MIN_SPAN_S:
            return (len(self._times) - 1) / span
        return None

    def describe(self, render_ms: float) -> str:
        """The status bar's text after a frame that took `render_ms` to render."""
        fps = self.streaming_fps()
        if fps is not None:
            return f"{fps:.1f} fps"
        return f"up to {1000 / max(render_ms, 1e-3):.0f} fps"
