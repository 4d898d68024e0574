"""trainer.metrics: the formulas against independent ones, the Inception port against the
TorchScript it was ported from, caches, the CLI and metrics logged during training."""
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from trainer.metrics import distances
from trainer.metrics.compute import MetricError, parse_metrics


# ---------------------------------------------------------------------------------------------
# Formulas

def independent_fid(x, y):
    """FID from first principles: ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 sum sqrt(eig(S1 S2)).
    The eigenvalues of S1 S2 are real and >= 0 for covariances; numpy's general eig finds them."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1 = (x - mu1).T @ (x - mu1) / (len(x) - 1)
    s2 = (y - mu2).T @ (y - mu2) / (len(y) - 1)
    eig = np.linalg.eigvals(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig.real, 0, None)).sum())


def test_fid_agrees_with_an_independent_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 32)) @ rng.standard_normal((32, 32))
    y = 0.5 + rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32))
    ours, method = distances.fid_from_features(x, y)
    assert method.startswith("scipy.linalg.sqrtm")
    ref = independent_fid(x, y)
    assert ref > 1
    assert abs(ours - ref) / ref < 1e-6


def test_fid_of_identical_sets_is_zero_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 16))
    assert distances.fid_from_features(x, x)[0] == pytest.approx(0, abs=1e-6)
    shifted = [distances.fid_from_features(x, x + d)[0] for d in (0.5, 1.0, 2.0)]
    # a shift by d in every one of 16 dims adds exactly 16 d^2
    assert shifted == pytest.approx([16 * 0.25, 16 * 1.0, 16 * 4.0], rel=1e-6)


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_correct():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((20, 64)), rng.standard_normal((25, 64)) + 0.3
    value, _ = distances.fid_from_features(x, y)
    assert math.isfinite(value)
    mu1, s1 = distances.feature_stats(x)
    mu2, s2 = distances.feature_stats(y)
    exact = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * distances.trace_sqrt_product_eigh(s1, s2)
    assert value == pytest.approx(exact, rel=1e-4)


def test_singular_covariance_and_complex_sqrtm_parts_give_a_real_finite_fid():
    rng = np.random.default_rng(3)
    x = np.zeros((50, 10))
    x[:, :3] = rng.standard_normal((50, 3))          # 7 dimensions never vary: singular covariance
    y = np.zeros((50, 10))
    y[:, 5:7] = rng.standard_normal((50, 2))          # overlaps x's support nowhere
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    import scipy.linalg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = scipy.linalg.sqrtm(s1 @ s2)             # what a naive implementation would use
    assert not np.isrealobj(raw) or not np.isfinite(raw).all() or np.allclose(raw, 0, atol=1e-6)
    value, _ = distances.fid_from_features(x, y)
    assert isinstance(value, float) and math.isfinite(value)
    assert value == pytest.approx(np.trace(s1) + np.trace(s2) + ((x.mean(0) - y.mean(0)) ** 2).sum(), rel=1e-4)
    # a product whose sqrtm comes back complex: rank-deficient covariances from very few samples
    a, b = rng.standard_normal((5, 40)), rng.standard_normal((6, 40))
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    trace, method = distances.trace_sqrt_product(sa, sb)
    assert isinstance(trace, float) and math.isfinite(trace)
    assert trace == pytest.approx(distances.trace_sqrt_product_eigh(sa, sb), rel=1e-3, abs=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2000, 64)), rng.standard_normal((2000, 64))
    same = distances.kernel_inception_distance(a, b, num_subsets=50, subset_size=500, seed=0)
    assert abs(same.value) < 3 * same.std / math.sqrt(same.num_subsets) + 1e-4
    blocks = distances.kernel_inception_distance(a, b, subset_size=500, disjoint=True)
    assert blocks.num_subsets == 4 and blocks.ci95 is not None
    assert abs(blocks.value) <= blocks.ci95 * 2  # zero lies in (about) the interval
    other = distances.kernel_inception_distance(a, b + 0.5, num_subsets=50, subset_size=500)
    assert other.value > 10 * max(same.std, 1e-6)


def test_kid_unbiased_estimate_matches_a_direct_double_sum():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((9, 3)) + 0.2
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert distances.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_precision_recall_see_quality_and_coverage_separately():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((500, 8))
    p, r = distances.precision_recall(real, rng.standard_normal((500, 8)))
    assert p > 0.8 and r > 0.8
    collapsed = real[:25].repeat(20, 0) + 0.01 * rng.standard_normal((500, 8))   # good samples, few modes
    p, r = distances.precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.3
    far = rng.standard_normal((500, 8)) + 10
    assert distances.precision_recall(real, far) == (0.0, 0.0)


def test_collapse_alarm_fires_on_duplicates_only():
    rng = np.random.default_rng(7)
    real = rng.standard_normal((1500, 16)) + 1
    healthy = distances.collapse_report(real, rng.standard_normal((1500, 16)) + 1)
    assert healthy.near_duplicates < 0.04
    assert healthy.cosine_mean == pytest.approx(healthy.cosine_mean_real, abs=0.05)
    dup = np.repeat(rng.standard_normal((50, 16)) + 1, 30, axis=0)
    collapsed = distances.collapse_report(real, dup + 1e-4 * rng.standard_normal(dup.shape))
    assert collapsed.near_duplicates > 0.9
    assert distances.mean_pairwise_cosine(dup) > healthy.cosine_mean


def test_mode_report_on_perfect_and_collapsed_samples():
    from trainer.data import TOY_STD, toy_modes
    from trainer.metrics.modes import mode_report
    modes, std = toy_modes("grid25"), TOY_STD["grid25"]
    rng = np.random.default_rng(8)
    perfect = modes[rng.integers(0, 25, 5000)] + std * rng.standard_normal((5000, 2))
    r = mode_report(perfect, modes, std)
    assert r.modes_captured == 25 and r.high_quality > 0.98 and r.reverse_kl < 0.01
    one = modes[3] + std * rng.standard_normal((5000, 2))
    r = mode_report(one, modes, std)
    assert r.modes_captured == 1 and r.reverse_kl == pytest.approx(math.log(25), rel=1e-6)


def test_metric_specs_parse_counts_and_refuse_unknown_names():
    specs = parse_metrics("fid10k, kid,kid500,pr2.5k")
    assert [(s.name, s.num_samples) for s in specs] == [("fid", 10000), ("kid", None), ("kid", 500), ("pr", 2500)]
    assert [s.label for s in specs] == ["fid10k", "kid", "kid500", "pr2500"]
    with pytest.raises(MetricError, match="unknown metric 'lpips'.*fid"):
        parse_metrics("fid,lpips")
