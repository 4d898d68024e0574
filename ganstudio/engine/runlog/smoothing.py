"""Exponential smoothing of a growing series, updated in time proportional to the new points."""
from __future__ import annotations

import math

import numpy as np


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

