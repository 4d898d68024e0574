"""Where each frame's milliseconds go: request, mapping, synthesis, copy (measured by the renderer)
and paint (the window taking the image, timed by the controller). Qt-free.

On the CPU the stages are read off time.perf_counter. On CUDA they are CUDA events recorded on the
stream between the stages, so timing adds no host sync: the image (and the latents the panels
show) go to pinned host memory without blocking, then the frame's last event is waited on, the one
sync a frame makes, after which every event's time is known.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

STAGES = ("request", "mapping", "synthesis", "copy", "paint")
MARKS = ("start", *STAGES[:4])   # the renderer's marks: each stage runs from the mark before to its own


@dataclass(frozen=True)
class FrameTiming:
    """Milliseconds of one single-image frame by stage."""
    request: float = 0.0     # checks, blend weights, the latent's z on the device
    mapping: float = 0.0     # z -> final ws: mapping network, mixing, truncation, offsets
    synthesis: float = 0.0   # ws -> image on the device
    copy: float = 0.0        # image -> uint8 on the host (and the latents the panels show)
    paint: float = 0.0       # the window taking the image (0 until the controller has shown it)
    clock: str = "cpu"       # "cpu": perf_counter; "cuda": CUDA events

    def stages(self) -> tuple[tuple[str, float], ...]:
        return tuple((name, getattr(self, name)) for name in STAGES)

    @property
    def total(self) -> float:
        return sum(ms for _, ms in self.stages())

    def describe(self) -> str:
        """'request 0.1 · mapping 0.4 · synthesis 5.2 · copy 0.3 · paint 0.8 = 6.8 ms'"""
        return " · ".join(f"{name} {ms:.1f}" for name, ms in self.stages()) + f" = {self.total:.1f} ms"

    def table(self, bar: int = 20) -> str:
        """A line per stage: name, ms and a bar of its share of the frame (the overlay's text)."""
        total = max(self.total, 1e-9)
        rows = [f"{name:<9} {ms:6.1f} ms {'█' * round(bar * ms / total)}" for name, ms in self.stages()]
        return "\n".join(rows + [f"{'frame':<9} {self.total:6.1f} ms ({self.clock} clock)"])


class StageClock:
    """The marks between a frame's stages on the renderer's device. start(), then mark(stage) as each
    stage ends, then to_host(...) for the copy, then timing() (the copy is its last mark)."""

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        self._events = {} if not self.cuda else {name: torch.cuda.Event(enable_timing=True)
                                                  for name in MARKS}   # reused every frame
        self._stamps: dict = {}   # mark -> perf_counter seconds, or its recorded CUDA event

    def start(self) -> None:
        self._stamps = {}
        self._mark("start")

    def mark(self, stage: str) -> None:
        """`stage` (request, mapping or synthesis) ends now; a stage before it that was not marked
        (no mapping in a model without W) takes no time."""
        index = MARKS.index(stage)
        for before, name in zip(MARKS[:index], MARKS[1:index]):
            self._stamps.setdefault(name, self._stamps[before])
        self._mark(stage)

    def _mark(self, name: str) -> None:
        if self.cuda:
            self._events[name].record()
            self._stamps[name] = self._events[name]
        else:
            self._stamps[name] = time.perf_counter()

    def to_host(self, *tensors: torch.Tensor) -> list[np.ndarray]:
        """The copy stage: tensors on the device -> numpy arrays; on CUDA through pinned memory
        without blocking, then one wait for the frame's last event."""
        self.mark("synthesis")
        if not self.cuda:
            out = [t.cpu().numpy() for t in tensors]
            self._mark("copy")
            return out
        hosts = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
        for host, t in zip(hosts, tensors):
            host.copy_(t, non_blocking=True)
        self._mark("copy")
        self._events["copy"].synchronize()   # the frame's one host sync
        return [host.numpy() for host in hosts]

    def timing(self) -> FrameTiming:
        """The stages since start(); a stage never marked takes no time."""
        if "copy" not in self._stamps:   # a frame drawn without to_host (2-D points): ends now
            self.mark("copy")
            if self.cuda:
                self._events["copy"].synchronize()
        spans = zip(MARKS, MARKS[1:])
        at = self._stamps
        if self.cuda:
            return FrameTiming(**{b: at[a].elapsed_time(at[b]) for a, b in spans}, clock="cuda")
        return FrameTiming(**{b: 1000 * (at[b] - at[a]) for a, b in spans})


class PaintClock:
    """The controller's side: how long the window took to take the newest image; `latest` is the
    newest shown frame's timing with its paint filled in."""

    def __init__(self):
        self.latest: FrameTiming | None = None

    @contextlib.contextmanager
    def painting(self, timing: FrameTiming | None):
        start = time.perf_counter()
        try:
            yield
        finally:
            if timing is not None:
                self.latest = replace(timing, paint=1000 * (time.perf_counter() - start))
