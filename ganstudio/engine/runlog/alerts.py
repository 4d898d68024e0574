"""What the monitor warns about. The detectors are pure functions of numpy arrays, so that they
can be tested on their own; `scalar_alerts` runs them over the new rows of one series."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Losses whose D loss is a signed critic score: near zero there is not a collapse. (The same list
# as trainer.training.losses.CRITIC_LOSSES, which cannot be imported here without importing torch.)
CRITIC_LOSSES = ("wgan", "wgan-gp")


@dataclass(frozen=True)
class Alert:
    kind: str       # "nan" | "d_collapse" | "diverging" | "collapse_alarm" | "metric_error" | "stalled" | "failed"
    series: str     # the scalar or metric concerned; "" for the run as a whole
    step: int       # first step at which it showed; -1 when it has no step (stalled)
    message: str    # one line for a person

    @property
    def short(self) -> str:
        return ALERT_TITLES.get(self.kind, self.kind)


ALERT_TITLES = {"nan": "NaN", "d_collapse": "D loss at 0", "diverging": "diverging",
                "collapse_alarm": "collapse alarm", "metric_error": "metric error", "stalled": "stalled",
                "failed": "failed"}



# Each detector returns the index of the first offending point, or None.
def first_nonfinite(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if len(bad) else None


def detect_d_collapse(d_loss: np.ndarray, window: int = 10, threshold: float = 1e-2) -> int | None:
    """D's loss below `threshold` (and not negative) for `window` logged points in a row: D wins
    outright and G gets no useful gradient. -> index of the point that completes the run."""
    near_zero = np.isfinite(d_loss) & (d_loss >= 0) & (d_loss < threshold)
    if len(near_zero) < window:
        return None
    run = np.convolve(near_zero.astype(np.int32), np.ones(window, dtype=np.int32), mode="valid")
    hits = np.flatnonzero(run == window)
    return int(hits[0] + window - 1) if len(hits) else None


def detect_divergence(loss: np.ndarray, window: int = 20, factor: float = 10.0,
                      floor: float = 50.0) -> int | None:
    """A loss whose magnitude keeps growing: the median |loss| of a block of `window` points is
    above `floor` and `factor` times the smallest block median before it. -> index of the end of
    the first such block. Blocks are counted from the end so the newest block is always whole."""
    values = np.abs(loss[np.isfinite(loss)]) if len(loss) else loss
    positions = np.flatnonzero(np.isfinite(loss))
    blocks = len(values) // window
    if blocks < 2:
        return None
    start = len(values) - blocks * window
    # The median of each block, as np.median computes it, from a sort: np.median's own checks cost
    # more than the sort of these short rows, and the monitor runs this on every poll.
    ordered = np.sort(values[start:].reshape(blocks, window), axis=1)
    middle = window // 2
    medians = ordered[:, middle] if window % 2 else (ordered[:, middle - 1] + ordered[:, middle]) / 2
    lowest_before = np.minimum.accumulate(medians)[:-1]
    bad = np.flatnonzero((medians[1:] > floor) & (medians[1:] > factor * lowest_before))
    if not len(bad):
        return None
    return int(positions[start + (bad[0] + 2) * window - 1])


# trainer.metrics' quick collapse alarm logs two numbers; these are where they turn alarming.
NEAR_DUPLICATES_ALARM = 0.10   # share of near-duplicate samples; about 0.01 when healthy (by construction)
COSINE_SPREAD_ALARM = 0.5      # (1 - cosine_mean) of the samples over that of real data


def collapse_alarm(name: str, value: float, real_cosine_mean: float | None = None) -> str | None:
    """Whether a logged collapse figure is alarming -> a reason for a person, or None.

    near_duplicates: share of samples with a generated neighbour closer than almost all real
    pairs (about 0.01 when healthy). cosine_mean: mean pairwise cosine similarity of samples;
    alarming when the samples are less than half as spread as the real data. A quantity named
    ".../alarm" is alarming when it is non-zero."""
    if not math.isfinite(value):
        return None
    base = name.rsplit("/", 1)[-1]
    if base == "near_duplicates" and value > NEAR_DUPLICATES_ALARM:
        return f"{value:.0%} of samples are near-duplicates (about 1% when healthy)"
    if base == "cosine_mean" and real_cosine_mean is not None and math.isfinite(real_cosine_mean):
        spread, real_spread = 1 - value, 1 - real_cosine_mean
        if real_spread > 0 and spread / real_spread < COSINE_SPREAD_ALARM:
            return (f"samples are alike: mean cosine similarity {value:.3f} against {real_cosine_mean:.3f} "
                    "for real data")
    if base == "alarm" and "collapse" in name and value > 0:
        return f"{name} = {value:g}"
    return None


def is_stalled(state: str, seconds_since_last_line: float, threshold: float) -> bool:
    """A run that says it is running but has written nothing for `threshold` seconds."""
    return state == "running" and seconds_since_last_line > threshold



def scalar_alerts(name: str, steps: np.ndarray, values: np.ndarray, done: int, loss_kind: str) -> list[Alert]:
    """The alerts one scalar series raises in its rows from `done` on (the rows before it were
    judged already; the detectors look back as far as they need). steps, values [N]."""
    found = []
    bad = first_nonfinite(values[done:])
    if bad is not None:
        found.append(Alert("nan", name, int(steps[done + bad]),
                           f"{name} is {values[done + bad]} at step {int(steps[done + bad])}"))
    if name == "loss/D" and loss_kind not in CRITIC_LOSSES:
        window = 10
        lo = max(done - window + 1, 0)
        hit = detect_d_collapse(values[lo:], window)
        if hit is not None:
            found.append(Alert("d_collapse", name, int(steps[lo + hit]),
                               f"D loss has stayed near 0 since step {int(steps[lo + hit])}: "
                               "D wins outright and G learns nothing"))
    if name.startswith("loss/"):
        lo = max(len(values) - 2000, 0)   # the recent past is what matters; bounded cost
        hit = detect_divergence(values[lo:])
        if hit is not None:
            found.append(Alert("diverging", name, int(steps[lo + hit]),
                               f"{name} is growing without bound ({values[lo + hit]:.3g} "
                               f"at step {int(steps[lo + hit])})"))
    return found


class CollapseWatch:
    """The collapse alarm, which follows the newest evaluation: a later healthy figure clears it.
    One alarm per quantity (its last name part), marked at the step where its streak began."""

    def __init__(self):
        self._alarms: dict[str, Alert] = {}

    @property
    def alerts(self) -> list[Alert]:
        return list(self._alarms.values())

    def judge(self, name: str, value: float, step: int, real_cosine: float | None = None) -> None:
        key = name.rsplit("/", 1)[-1]
        reason = collapse_alarm(name, value, real_cosine)
        if reason:
            since = self._alarms[key].step if key in self._alarms else step   # the streak's start
            self._alarms[key] = Alert("collapse_alarm", name, since,
                                      f"collapse alarm since step {since} (newest at {step}): {reason}")
        elif math.isfinite(value) and (key in ("near_duplicates", "alarm") or real_cosine is not None):
            self._alarms.pop(key, None)

    def forget_after(self, step: int) -> None:
        """An abandoned segment's alarms go with it."""
        self._alarms = {k: a for k, a in self._alarms.items() if a.step <= step}

    def clear(self) -> None:
        self._alarms.clear()
