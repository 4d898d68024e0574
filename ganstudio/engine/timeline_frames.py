"""Timeline frames for the studio: rendered on the renderer's thread in aligned chunks, cached here.

Qt-free. One job ("timeline frames") serves the frames the Timeline panel wants: it takes the newest
wish from a one-place slot, renders that chunk with trainer.film.render, sends it back through
the job's preview channel, and lingers a moment for the next wish (so scrubbing and playback do not
start a job per chunk), then ends, leaving the renderer's thread to the explorer. A wish replaces
the one waiting, so the panel never builds a backlog; `stop()` ends the job at once.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

import numpy as np

from trainer.film.timeline import Timeline
from trainer.film.render import CHUNK_FRAMES, TimelineRenderer

JOB_NAME = "timeline frames"
CACHE_BYTES = 256 * 2**20     # rendered chunks kept for scrubbing back and replaying
LINGER_S = 0.4                # the serving job waits this long for another wish before it ends
POLL_S = 0.02                 # how often a lingering job looks for a stop


class _RendererSide:
    """Touched only on the renderer's thread: one TimelineRenderer for the newest timeline and model."""

    def __init__(self):
        self._timeline: Timeline | None = None
        self._key = None
        self._renderer: TimelineRenderer | None = None

    def chunk(self, renderer, timeline: Timeline, index: int) -> np.ndarray:
        key = (renderer.generation, renderer.device, renderer.half)
        if self._timeline is not timeline or self._key != key:
            self._renderer = renderer.timeline_renderer(timeline)
            self._timeline, self._key = timeline, key
        return self._renderer.render_chunk(index)


class TimelineFrames:
    def __init__(self,
                 controller,                     # RenderController: runs the serving job
                 on_chunk: Callable[[Timeline, int], None],   # a chunk arrived (GUI thread): (timeline, chunk index)
                 on_error: Callable[[str], None],             # rendering failed ("" = cancelled by the user)
                 linger_s: float = LINGER_S,     # 0 for controllers that run jobs inline (scripts, tests)
                 ):
        self.controller, self.on_chunk, self.on_error, self.linger_s = controller, on_chunk, on_error, linger_s
        self._lock = threading.Lock()
        self._wish: tuple[Timeline, int] | None = None
        self._wish_event = threading.Event()
        self._stop = threading.Event()
        self._running = False
        self._side = _RendererSide()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_timeline: Timeline | None = None
        self.chunks_rendered = 0

    # ---- GUI thread ----
    def frame(self, timeline: Timeline, index: int) -> np.ndarray | None:
        """uint8 [H, W, 3] frame `index` if it is rendered, else None (ask with `want`)."""
        self._forget_other(timeline)
        chunk = self._cache.get(index // CHUNK_FRAMES)
        if chunk is None:
            return None
        self._cache.move_to_end(index // CHUNK_FRAMES)
        return chunk[index % CHUNK_FRAMES]

    def has_chunk(self, timeline: Timeline, chunk: int) -> bool:
        self._forget_other(timeline)
        return chunk in self._cache

    def want(self, timeline: Timeline, chunk: int) -> None:
        """Ask for a chunk; replaces the wish still waiting. Starts the serving job if none runs."""
        with self._lock:
            self._wish = (timeline, chunk)
            self._wish_event.set()
            start = not self._running
            if start:
                self._running = True
                self._stop.clear()
        if start:
            self.controller.run_job(JOB_NAME, self._serve, self._on_finished, self._on_failed, self._on_preview,
                                    message="rendering timeline frames")

    def stop(self) -> None:
        """End the serving job now and drop the waiting wish (the explorer needs the renderer)."""
        with self._lock:
            self._wish = None
            self._stop.set()
            self._wish_event.set()

    @property
    def busy(self) -> bool:
        return self._running

    def _forget_other(self, timeline: Timeline) -> None:
        if self._cache_timeline is not timeline:
            self._cache.clear()
            self._cache_timeline = timeline

    def _on_preview(self, payload) -> None:
        timeline, chunk, frames = payload
        self._forget_other(timeline)
        self._cache[chunk] = frames
        while sum(c.nbytes for c in self._cache.values()) > CACHE_BYTES and len(self._cache) > 1:
            self._cache.popitem(last=False)
        self.on_chunk(timeline, chunk)

    def _on_finished(self, _result) -> None:
        self._end()

    def _on_failed(self, message: str) -> None:
        """An error, or "" when the user cancelled: either way the waiting wish is dropped."""
        with self._lock:
            self._running = False
            self._wish = None
            self._stop.clear()
        self.on_error(message)

    def _end(self) -> None:
        with self._lock:
            self._running = False
            pending = self._wish          # stop() clears the wish: one here came after it, or as the job ended
            self._stop.clear()
        if pending is not None:
            self.want(*pending)

    # ---- the renderer's thread ----
    def _serve(self, renderer, progress, preview) -> int:
        served = 0
        idle_since = time.perf_counter()
        while not self._stop.is_set():
            with self._lock:
                wish, self._wish = self._wish, None
                self._wish_event.clear()
            if wish is None:
                if time.perf_counter() - idle_since >= self.linger_s:
                    with self._lock:
                        if self._wish is None:   # decided under the lock, so no wish is stranded
                            return served
                    continue
                self._wish_event.wait(POLL_S)
                continue
            timeline, chunk = wish
            frames = self._side.chunk(renderer, timeline, chunk)
            served += 1
            self.chunks_rendered += 1
            preview((timeline, chunk, frames))
            progress(0.0, f"timeline frames {chunk * CHUNK_FRAMES + 1}-{chunk * CHUNK_FRAMES + len(frames)}")
            idle_since = time.perf_counter()
        return served
