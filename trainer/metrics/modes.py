"""Mode-collapse figures for the 2-D mixtures (as in VEEGAN and PacGAN): a sample is
"high quality" when it lies within 3 standard deviations of a mode centre; a mode is captured
when it holds at least `min_count` high-quality samples; reverse KL compares the histogram of
high-quality samples over modes with the uniform one."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ModeReport:
    modes_total: int
    modes_captured: int
    high_quality: float      # share of samples within 3 sigma of some mode
    reverse_kl: float        # KL(generated mode histogram || uniform), 0 is perfect
    num_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def mode_report(points: np.ndarray, modes: np.ndarray, std: float, min_count: int | None = None) -> ModeReport:
    """points [N, 2], modes [M, 2] -> ModeReport."""
    points = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(points).all(axis=1)
    dist = np.linalg.norm(points[finite, None, :] - modes[None], axis=2)  # [N, M]
    nearest, closest = dist.argmin(axis=1), dist.min(axis=1)
    good = closest <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(modes))
    threshold = min_count if min_count is not None else max(1, int(0.02 * len(points) / len(modes)))
    if counts.sum():
        p = counts / counts.sum()
        nz = p > 0
        reverse_kl = float((p[nz] * np.log(p[nz] * len(modes))).sum())
    else:
        reverse_kl = float("inf")
    return ModeReport(len(modes), int((counts >= threshold).sum()), float(good.sum() / len(points)),
                      reverse_kl, len(points))
