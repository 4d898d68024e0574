"""Metrics researchers trust, offline and during training.

    from trainer.metrics import compute_metrics
    results = compute_metrics("runs/00003-stylegan2-cond-fashion-mnist", DataConfig("fashion-mnist", split="test"),
                              metrics="fid10k,kid,pr", device="auto")
    for r in results: print(r)           # value, spread, sample count, feature network

FID/KID/precision-recall use NVlabs' inception-2015-12-05 network (a plain-module port, see
inception.py); IS and the class histogram use a small classifier trained on the dataset;
`modes` covers the 2-D mixtures. Every MetricResult records its provenance (feature network
and file hash, sample counts, resize filter, dataset split).
"""
from trainer.metrics.compute import METRIC_NAMES, MetricError, MetricResult, MetricSpec, compute_metrics, parse_metrics
from trainer.metrics.distances import (collapse_report, feature_stats, fid_from_features, frechet_distance,
                        kernel_inception_distance, precision_recall)
from trainer.metrics.inception import FeatureNetError, InceptionV3, load_inception
from trainer.metrics.modes import ModeReport, mode_report

__all__ = ["compute_metrics", "MetricResult", "MetricSpec", "MetricError", "METRIC_NAMES", "parse_metrics",
           "frechet_distance", "fid_from_features", "feature_stats", "kernel_inception_distance",
           "precision_recall", "collapse_report", "InceptionV3", "load_inception", "FeatureNetError",
           "mode_report", "ModeReport"]
