"""A logged quantity as growable numpy columns: what the run model stores and the plots read."""
from __future__ import annotations

import numpy as np

X_AXES = ("step", "kimg", "time")
SCALAR_COLUMNS = ("step", "kimg", "time", "value")
METRIC_COLUMNS = ("step", "kimg", "time", "value", "low", "high")


class Series:
    """One logged quantity of one run as growable float64 columns (`columns`), in log order."""

    def __init__(self, name: str, columns: tuple[str, ...] = SCALAR_COLUMNS):
        self.name = name
        self.columns = columns
        self._index = {c: i for i, c in enumerate(columns)}
        self._data = np.empty((len(columns), 64), dtype=np.float64)
        self._size = 0
        # Bumped whenever rows are removed, so caches built on a prefix know to start again.
        self.generation = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, rows: np.ndarray) -> None:
        """rows [K, len(columns)] appended at the end; capacity doubles as needed."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.columns))
        self.extend_columns(rows.T)

    def extend_columns(self, columns) -> None:
        """extend() by columns: len(columns) arrays of K values each, in the order of `columns`
        (the run model has its points as columns already: no transposed copy of them)."""
        if len(columns) != len(self.columns):
            raise ValueError(f"{self.name}: {len(columns)} columns given, {len(self.columns)} expected")
        count = len(columns[0])
        need = self._size + count
        if need > self._data.shape[1]:
            capacity = max(need, 2 * self._data.shape[1])
            grown = np.empty((len(self.columns), capacity), dtype=np.float64)
            grown[:, :self._size] = self._data[:, :self._size]
            self._data = grown
        for row, column in zip(self._data, columns):
            row[self._size:need] = column
        self._size = need

    def reserve(self, rows: int) -> None:
        """Make room for `rows` rows at once (growing by doubling copies everything each time,
        which a million-row series feels as a pause)."""
        if rows > self._data.shape[1]:
            grown = np.empty((len(self.columns), rows), dtype=np.float64)
            grown[:, :self._size] = self._data[:, :self._size]
            self._data = grown

    def column(self, name: str) -> np.ndarray:
        """A read-only view of one column, valid until the next extend()."""
        view = self._data[self._index[name], :self._size]
        view.flags.writeable = False
        return view

    def drop_after(self, step: int) -> int:
        """Remove the rows logged at a step above `step` (an abandoned segment); -> rows removed."""
        keep = self._data[0, :self._size] <= step
        removed = int(self._size - keep.sum())
        if removed:
            kept = self._data[:, :self._size][:, keep]
            self._data[:, :kept.shape[1]] = kept
            self._size = kept.shape[1]
            self.generation += 1
        return removed

