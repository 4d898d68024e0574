"""From parsed events to numbers: where a line sits (step, kimg, time), the scalars lines of a
batch as columns, and a metric's band.

Scalars lines are most of a log (a million in a long run), so they are turned into columns in
bulk: when a run of them is regular (every line has the same names and plain numbers everywhere,
which is what the trainer writes) the numbers go into numpy arrays without a Python loop over
the lines. Anything else (a "nan" string, a missing key, a foreign line) takes
the line-by-line path, which gives every value the meaning `trainer.events.to_float` gives it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

import numpy as np

from trainer.events import to_float

_POSITION = itemgetter("step", "kimg", "time")
_VALUES = itemgetter("values")
_PLAIN_NUMBERS = {int, float}   # bool is a type of its own here: to_float reads it as NaN


def event_position(event: dict) -> tuple[float, float, float] | None:
    """(step, kimg, time) of an event, or None when its step is not a finite number (every line
    a trainer writes has a step: such a line is not ours)."""
    step, kimg, t = event.get("step"), event.get("kimg"), event.get("time")
    if type(step) is not int:
        step = to_float(step)
        if not math.isfinite(step):
            return None
    return step, kimg if type(kimg) is float else to_float(kimg), t if type(t) is float else to_float(t)


@dataclass
class ScalarColumns:
    """The scalars lines of a batch as columns."""
    position: np.ndarray                                   # [3, N] step, kimg, time of the N lines with values
    values: dict[str, tuple[np.ndarray | None, np.ndarray]]  # name -> (rows of `position` where it was
    #                                                        logged, None: every row; values [K] float64)


def scalar_columns(events: list[dict]) -> ScalarColumns:
    """Events of kind "scalars", in log order -> their numbers as columns."""
    return regular_scalar_columns(events) or scalar_columns_line_by_line(events)


def regular_scalar_columns(events: list[dict]) -> ScalarColumns | None:
    """scalar_columns() in bulk, or None when the batch is not regular: not every line has a
    dict of the same two or more names and plain numbers (int, float) everywhere."""
    try:
        values = list(map(_VALUES, events))
        position = list(chain.from_iterable(map(_POSITION, events)))
    except KeyError:
        return None
    if not events or set(map(type, values)) != {dict}:
        return None
    names = tuple(values[0])
    if len(names) < 2 or set(map(len, values)) != {len(names)}:   # (one name: itemgetter gives no tuple)
        return None
    try:   # every line has the first line's names (and as many): the same names, in any order
        flat = list(chain.from_iterable(map(itemgetter(*names), values)))
    except KeyError:
        return None
    if not (set(map(type, position)) <= _PLAIN_NUMBERS and set(map(type, flat)) <= _PLAIN_NUMBERS):
        return None
    try:
        position = np.array(position, dtype=np.float64).reshape(-1, 3).T
        table = np.array(flat, dtype=np.float64).reshape(len(events), len(names))
    except OverflowError:   # an integer beyond float's range, which to_float reads as infinite
        return None
    if not np.isfinite(position[0]).all():   # a float step of NaN (json reads the literal): not ours
        return None
    return ScalarColumns(position, {name: (None, table[:, i]) for i, name in enumerate(names)})


def scalar_columns_line_by_line(events: list[dict]) -> ScalarColumns:
    """scalar_columns() for any batch, line by line: the meaning the bulk path must agree with.
    A line without a finite step or without a dict of values is left out; a name missing from a
    line has no point there; every value is read by to_float."""
    positions: list[tuple[float, float, float]] = []
    line_of: dict[str, list[int]] = {}
    value_of: dict[str, list[float]] = {}
    for event in events:
        position = event_position(event)
        values = event.get("values")
        if position is None or not isinstance(values, dict):
            continue
        line = len(positions)
        positions.append(position)
        for name, value in values.items():
            found = value_of.get(name)
            if found is None:
                found = value_of[name] = []
                line_of[name] = []
            found.append(value if type(value) is float else to_float(value))
            line_of[name].append(line)
    position = np.array(positions, dtype=np.float64).reshape(-1, 3).T
    columns = {name: (None if len(line_of[name]) == len(positions) else np.array(line_of[name]),
                      np.array(found, dtype=np.float64)) for name, found in value_of.items()}
    return ScalarColumns(position, columns)


def metric_band(event: dict, value: float) -> tuple[float, float]:
    """A metric's band: (ci_low, ci_high) when logged, else value -/+ ci95 (half-width of a 95%
    interval), else value -/+ std, else NaN."""
    if "ci_low" in event or "ci_high" in event:
        return to_float(event.get("ci_low")), to_float(event.get("ci_high"))
    if "ci95" in event:
        half = to_float(event.get("ci95"))
        return value - half, value + half
    if "std" in event:
        std = to_float(event.get("std"))
        return value - std, value + std
    return math.nan, math.nan
