"""Metrics during training: called by the loop every `--metrics-kimg` (alias `--metrics-every`)
and at the end of a run; results go to events.jsonl as `metric` lines for the monitor.

A metric named without a count uses IN_TRAINING_SAMPLES generated images, so the curve stays
affordable on a CPU (KID is unbiased at that size and comes with a 95% interval; FID is not,
and its lines say how many samples they used). The same latents are used at every evaluation,
so the curve shows the generator changing, not the sampling noise. Real features come from
the dataset's test split when it has one, and are cached after the first evaluation.
"""
from __future__ import annotations

import math

from trainer.config import DataConfig
from trainer.data.datasets import DataError, load_dataset
from trainer.metrics.compute import INCEPTION_METRICS, MetricError, compute_metrics, feature_network, parse_metrics, reference_config
from trainer.metrics.sharded import sharded_generator_features
from trainer.metrics.inception import FeatureNetError

IN_TRAINING_SAMPLES = 2000
SPLIT_DATASETS = ("fashion-mnist",)  # built-ins with a held-out test split


def reference_for_training(data: DataConfig) -> DataConfig:
    values = dict(data.to_dict(), conditional=False, xflip=False, max_images=0)
    if data.source in SPLIT_DATASETS:
        values["split"] = "test"
    return DataConfig.from_dict(values)


def log_training_metrics(trainer) -> list:
    """Compute trainer.cfg.train.metrics on trainer.G_ema and append them to the run log.
    A metric that cannot be computed is logged as a `metric` line with value NaN and an
    `error` message; training goes on."""
    cfg = trainer.cfg
    results = []
    try:
        specs = parse_metrics(cfg.train.metrics)
    except MetricError as exc:
        trainer.writer.write("metric", trainer.step, trainer.kimg, name="error", value=math.nan, error=str(exc))
        trainer.log(f"metrics: {exc}")
        return results
    reference = reference_for_training(cfg.data)
    fake_features = _features_from_all_ranks(trainer, reference, specs)
    if not trainer.ranks.is_main:
        return results

    def evaluate(group):
        return compute_metrics(trainer.G_ema, reference, group, num_samples=IN_TRAINING_SAMPLES,
                               device=trainer.device, progress=trainer.progress, seed=0,
                               fake_features=fake_features)

    # One evaluation for all metrics, so the generated images and their features are shared;
    # only when it fails, one per metric, so each failing metric gets its own NaN line.
    try:
        outcomes = [evaluate(specs)]
    except (MetricError, FeatureNetError, DataError, ValueError):
        outcomes = []
        for spec in specs:
            try:
                outcomes.append(evaluate([spec]))
            except (MetricError, FeatureNetError, DataError, ValueError) as exc:
                outcomes.append((spec, exc))
    for outcome in outcomes:  # in the order the metrics were asked for
        if isinstance(outcome, tuple):
            spec, exc = outcome
            trainer.writer.write("metric", trainer.step, trainer.kimg, name=spec.label, value=math.nan,
                                 num_samples=0, features="", error=str(exc))
            trainer.log(f"metrics: {spec.label}: {exc}")
            continue
        for result in outcome:
            trainer.writer.write("metric", trainer.step, trainer.kimg, **result.event_fields())
        results.extend(outcome)
    alarm = {f"collapse/{r.name}": r.value for r in results if r.name in ("cosine_mean", "near_duplicates")}
    if alarm:
        trainer.writer.write("scalars", trainer.step, trainer.kimg, values=alarm)
    shares = class_shares(results)
    if shares:
        trainer.writer.write("scalars", trainer.step, trainer.kimg, values=shares)
    return results


def _features_from_all_ranks(trainer, reference: DataConfig, specs):
    """On several processes: the Inception features of the generated samples, each rank embedding
    its share (the costly part of FID/KID/PR), gathered on rank 0. None on one process, when no
    Inception metric is asked for, and on ranks other than 0."""
    counts = [spec.num_samples or IN_TRAINING_SAMPLES for spec in specs if spec.name in INCEPTION_METRICS]
    if not trainer.ranks.active or not counts or not trainer.dataset.is_image:
        return None
    G = trainer.G_ema
    labels = load_dataset(reference_config(reference, G.img_resolution, G.img_channels)).labels
    net, _ = feature_network(device=trainer.device)
    return sharded_generator_features(net, G, max(counts), 64, trainer.device, trainer.ranks, seed=0, labels=labels)


def class_shares(results) -> dict[str, float]:
    """The generated class histogram as scalars `classes/<name>`, so the monitor draws each
    class's share over training and a class that dies out is seen as its line falls to zero."""
    for r in results:
        if r.name == "class_tvd":
            names, shares = r.provenance.get("class_names", []), r.provenance.get("generated_histogram", [])
            return {f"classes/{name}": float(share) for name, share in zip(names, shares)}
    return {}
