"""CSV export of runs' series."""
from __future__ import annotations

import csv
import math
import os
from typing import TYPE_CHECKING, Iterable

import numpy as np

from trainer.files import atomic_write

from .series import METRIC_COLUMNS

if TYPE_CHECKING:
    from .runlog import RunLog


def write_csv(runs: Iterable[RunLog], path: str | os.PathLike) -> int:
    """Every scalar and metric of `runs` as one long table (run, name, step, kimg, time, value,
    low, high) -> rows written. Written to a temporary name, then renamed into place."""
    rows = 0

    def write(tmp):
        nonlocal rows
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["run", "name", *METRIC_COLUMNS])
            for run in runs:
                for group in (run.scalars, run.metrics):
                    for name in sorted(group):
                        series = group[name]
                        cols = [series.column(c) if c in series.columns else np.full(len(series), np.nan)
                                for c in METRIC_COLUMNS]
                        for i in range(len(series)):
                            out.writerow([run.name, name, int(cols[0][i]),
                                          *(_csv_number(c[i]) for c in cols[1:])])
                        rows += len(series)

    atomic_write(path, write)  # a failed write leaves no half file and no temporary behind
    return rows


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))
