"""Fewer points that keep a curve's outline, for plots of far more points than pixels."""
from __future__ import annotations

import numpy as np


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

