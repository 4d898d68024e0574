"""The formulas, on feature arrays: FID, KID, improved precision/recall, collapse alarm.

Everything here takes numpy arrays of features [N, D] (any feature network) and returns plain
floats, so it can be checked against independent formulas on fixed inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, D] -> (mean [D], covariance [D, D]) in float64; N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D] for a covariance, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrtm(sigma1 @ sigma2)) for covariance matrices (symmetric, positive semi-definite).

    sigma1 @ sigma2 is not symmetric, and the usual scipy.linalg.sqrtm of it fails or returns
    complex parts when the covariances are singular (fewer samples than dimensions, constant
    features). It has the same eigenvalues as sqrt(s1) s2 sqrt(s1), which is symmetric PSD, so
    the trace is the sum of the square roots of that matrix's eigenvalues: two symmetric
    eigendecompositions (scipy.linalg.eigh), real by construction, with negative round-off
    clipped to zero. This is also several times faster than sqrtm at 2048 dimensions."""
    s1 = (sigma1 + sigma1.T) / 2
    w, v = scipy.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    eig = scipy.linalg.eigh((inner + inner.T) / 2, eigvals_only=True)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


SQRT_METHOD = "trace of sqrtm(S1 S2) from scipy.linalg.eigh of sqrt(S1) S2 sqrt(S1)"


def frechet_distance(mu1, sigma1, mu2, sigma2) -> tuple[float, str]:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2) -> (value, how the
    matrix square root was taken)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0), SQRT_METHOD


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> tuple[float, str]:
    """FID between feature sets [N1, D] and [N2, D] -> (value, method).

    With fewer samples than dimensions the D x D route wastes time on matrices of rank < N:
    writing S1 = A^T A and S2 = B^T B (A, B the centred features over sqrt(N - 1)), the non-zero
    eigenvalues of S1 S2 are those of (A B^T)(A B^T)^T, so tr sqrtm(S1 S2) is the sum of the
    singular values of the N1 x N2 matrix A B^T. Exact, and real by construction."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(x), len(y)) > x.shape[1]:
        return frechet_distance(*feature_stats(x), *feature_stats(y))
    if min(len(x), len(y)) < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need [N, D] feature sets with N >= 2 and equal D, got {x.shape} and {y.shape}")
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    a = (x - mu1) / np.sqrt(len(x) - 1)
    b = (y - mu2) / np.sqrt(len(y) - 1)
    nuclear = scipy.linalg.svdvals(a @ b.T).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * nuclear)
    return max(value, 0.0), "trace of sqrtm(S1 S2) as the nuclear norm of the centred cross-product (N < D)"


@dataclass
class KIDResult:
    value: float       # mean of the unbiased MMD^2 estimates over subsets
    std: float         # standard deviation of those estimates
    ci95: float | None # half-width of a 95% interval for `value` (disjoint subsets only)
    num_subsets: int
    subset_size: int


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / D + 1)^3 (Bińkowski et al.)."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, disjoint: bool = False, seed: int = 0) -> KIDResult:
    """KID between feature sets [N, D] and [M, D].

    disjoint=False: the usual estimate (StyleGAN, clean-fid): `num_subsets` subsets of
    `subset_size` drawn without replacement within each subset; `std` over subsets.
    disjoint=True: both sets are split into as many disjoint blocks as fit (at most
    `num_subsets`), giving independent estimates and so a 95% confidence interval (Student t)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    if disjoint:
        size = min(subset_size, n // 2) if n >= 4 else n
        blocks = max(1, min(num_subsets, n // size))
        pr, pf = rng.permutation(len(real)), rng.permutation(len(fake))
        values = [mmd2_unbiased(real[pr[i * size:(i + 1) * size]], fake[pf[i * size:(i + 1) * size]])
                  for i in range(blocks)]
    elif len(real) <= subset_size and len(fake) <= subset_size:
        # every subset would be the whole of both sets: one estimate, no spread to report
        size, blocks = n, 1
        values = [mmd2_unbiased(real, fake)]
    else:
        size = min(subset_size, n)
        blocks = num_subsets
        values = [mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                                fake[rng.choice(len(fake), size, replace=False)]) for _ in range(blocks)]
    values = np.array(values)
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    ci95 = None
    if disjoint and len(values) > 1:
        from scipy.stats import t
        ci95 = float(t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))
    return KIDResult(float(values.mean()), std, ci95, blocks, size)


def _pairwise_distances(a: np.ndarray, b: np.ndarray, batch: int = 2048) -> np.ndarray:
    import torch
    ta, tb = torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))
    return torch.cat([torch.cdist(chunk, tb) for chunk in ta.split(batch)]).numpy()


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each vector to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(features) <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, got {len(features)}")
    d = _pairwise_distances(features, features)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019): the manifold of a set is the
    union of balls reaching each vector's k-th neighbour; precision is the share of fake vectors
    inside the real manifold, recall the share of real vectors inside the fake one."""
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    d = _pairwise_distances(fake, real)                      # [n_fake, n_real]
    precision = float((d <= real_r[None, :]).any(axis=1).mean())
    recall = float((d.T <= fake_r[None, :]).any(axis=1).mean())
    return precision, recall


@dataclass
class CollapseReport:
    cosine_mean: float          # mean pairwise cosine similarity of generated vectors
    cosine_mean_real: float     # the same for the real vectors (the healthy level)
    near_duplicates: float      # share of generated vectors with a generated neighbour closer than
    #                             the 1st percentile of real nearest-neighbour distances (~0.01 is healthy)
    threshold: float            # that distance


def mean_pairwise_cosine(features: np.ndarray) -> float:
    f = np.asarray(features, np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    n = len(f)
    s = f.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))   # sum over i != j of cos(f_i, f_j), without an N^2 matrix


def collapse_report(real: np.ndarray, fake: np.ndarray) -> CollapseReport:
    """A quick collapse alarm; `real` and `fake` should hold the same number of vectors, since
    nearest-neighbour distances shrink as a set grows."""
    real_nn = knn_radii(real, 1)
    threshold = float(np.percentile(real_nn, 1))
    fake_nn = knn_radii(fake, 1)
    return CollapseReport(mean_pairwise_cosine(fake), mean_pairwise_cosine(real),
                          float((fake_nn < threshold).mean()), threshold)
