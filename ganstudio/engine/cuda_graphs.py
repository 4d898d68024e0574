"""The single image's synthesis as a CUDA graph: the kernels of one fixed request shape recorded once
and replayed, so a frame costs one launch instead of hundreds. Qt-free.

A graph belongs to one key (the synthesis module, the model's generation, device, precision and
settings, the ws shape and dtype, the noise mode). The first WARMUP frames of a key render eagerly
(allocations settle, cuDNN picks its kernels); the next captures, and later frames of the same key
replay. A new key drops the graph and starts over, and a key whose capture failed (an op that syncs
with the host, say) renders eagerly from then on. Only where CUDA exists: `graphs_wanted`.
"""
from __future__ import annotations

import torch

WARMUP = 2   # eager frames of a key before it is captured


def graphs_wanted(device: str, cuda_available: bool | None = None) -> bool:
    """CUDA graphs only for a CUDA device on a machine that has one (never tried on CPU or MPS)."""
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    return str(device).startswith("cuda") and available


class GraphedSynthesis:
    def __init__(self, warmup: int = WARMUP):
        self.warmup = warmup
        self.key = None
        self.seen = 0                  # frames of this key so far
        self.failed: set = set()       # keys whose capture raised: eager for good
        self.captures = self.replays = 0
        self._graph = self._ws = self._out = None

    def plan(self, key) -> str:
        """What the frame of `key` does: "eager", "capture" or "replay" (and the bookkeeping)."""
        if key != self.key:
            self.key, self.seen = key, 0
            self._graph = self._ws = self._out = None   # the old shape's graph and buffers go
        self.seen += 1
        if key in self.failed or self.seen <= self.warmup:
            return "eager"
        return "replay" if self._graph is not None else "capture"

    def run(self, synthesis, ws: torch.Tensor, noise_mode: str, key) -> torch.Tensor | None:
        """Images [N, C, H, W] from the graph (valid until the next call), or None: render eagerly."""
        action = self.plan(key)
        if action == "capture":
            try:
                self._capture(synthesis, ws, noise_mode)
            except Exception:  # noqa: BLE001 - a model that cannot be captured renders eagerly
                self.failed.add(key)
                self._graph = self._ws = self._out = None
                return None
        elif action == "eager":
            return None
        self._ws.copy_(ws)
        self._graph.replay()
        self.replays += 1
        return self._out

    def _capture(self, synthesis, ws: torch.Tensor, noise_mode: str) -> None:
        self._ws = ws.clone()
        side = torch.cuda.Stream()   # capture wants its warm-up off the default stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            synthesis(self._ws, noise_mode=noise_mode)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._out = synthesis(self._ws, noise_mode=noise_mode)
        self._graph = graph
        self.captures += 1
