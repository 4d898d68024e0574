"""compute_metrics: a generator (or a folder of its images) against a dataset -> MetricResults,
each carrying how it was computed.

Metric names (a count may follow: `fid10k`, `kid2k`, `kid500`):
  fid       Fréchet Inception Distance (NVlabs inception-2015-12-05 pool features)
  kid       Kernel Inception Distance (unbiased, cubic kernel; std over subsets, 95% CI from disjoint blocks)
  pr        improved precision and recall (k=3 nearest neighbours in Inception space)
  is        Inception-Score formula under the dataset's own classifier (labelled image data only)
  classes   class histogram of generated samples by that classifier vs the real one
  collapse  mean pairwise cosine similarity and near-duplicate share (quick mode-collapse alarm)
  modes     2-D mixtures (ring8, grid25): modes captured, high-quality share, reverse KL
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer.config import DataConfig
from trainer.data.datasets import Dataset, load_dataset
from trainer.device import select_device
from trainer.metrics import distances
from trainer.metrics.features import (ImageSource, cached_real_features, dataset_source, extract_features, generator_batches,
                       generator_source, subset_indices)

METRIC_NAMES = ("fid", "kid", "pr", "is", "classes", "collapse", "modes")
INCEPTION_METRICS = {"fid", "kid", "pr"}
CLASSIFIER_METRICS = {"is", "classes"}
POINT_METRICS = {"modes", "collapse"}


class MetricError(ValueError):
    """A metric request that cannot be carried out; the message says why and what would work."""


@dataclass
class MetricResult:
    name: str                       # "fid", "kid", "precision", "recall", "is", "class_tvd", ...
    value: float
    num_samples: int                # generated samples used
    features: str                   # the network (or space) the figure was computed in
    std: float | None = None        # spread over subsets / splits, where the metric has one
    ci95: float | None = None       # half-width of a 95% confidence interval, where available
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def event_fields(self) -> dict:
        """Keyword fields for EventWriter.write("metric", ...)."""
        fields = {"name": self.name, "value": self.value, "num_samples": self.num_samples, "features": self.features}
        if self.std is not None:
            fields["std"] = self.std
        if self.ci95 is not None:
            fields["ci95"] = self.ci95
        fields["provenance"] = self.provenance
        return fields

    def __str__(self) -> str:
        spread = f" ± {self.ci95:.4g} (95% CI)" if self.ci95 is not None else \
            (f" (std {self.std:.3g})" if self.std is not None else "")
        return f"{self.name} = {self.value:.6g}{spread}  [{self.num_samples} samples, {self.features}]"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    num_samples: int | None   # None: the caller's default

    @property
    def label(self) -> str:
        if self.num_samples is None:
            return self.name
        n = self.num_samples
        return f"{self.name}{n // 1000}k" if n % 1000 == 0 else f"{self.name}{n}"


def parse_metrics(spec) -> list[MetricSpec]:
    """'fid10k,kid' or ['fid10k', 'kid'] -> [MetricSpec('fid', 10000), MetricSpec('kid', None)]."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        if isinstance(item, MetricSpec):
            out.append(item)
            continue
        item = item.strip().lower()
        if not item:
            continue
        m = re.fullmatch(r"([a-z]+?)(\d+(?:\.\d+)?k?)?", item)
        if not m or m.group(1) not in METRIC_NAMES:
            raise MetricError(f"unknown metric '{item}'; known: {', '.join(METRIC_NAMES)} "
                              "(a sample count may follow, e.g. fid10k, kid2k, kid500)")
        count = None
        if m.group(2):
            text = m.group(2)
            count = int(round(float(text[:-1]) * 1000)) if text.endswith("k") else int(text)
            if count < 2:
                raise MetricError(f"'{item}': need at least 2 samples")
        out.append(MetricSpec(m.group(1), count))
    if not out:
        raise MetricError("no metrics named")
    return out


# ---------------------------------------------------------------------------------------------

_NET_CACHE: dict = {}


def feature_network(path=None, device="cpu"):
    """The Inception port, loaded once per (weights path, device) in this process."""
    import dataclasses
    from trainer.metrics.inception import find_weights, load_inception
    file, source = find_weights(path)
    key = (str(file), str(device))
    if key not in _NET_CACHE:
        net, info = load_inception(file, device=device)
        _NET_CACHE[key] = net, dataclasses.replace(info, source=source)  # where it was found, not "user path"
    return _NET_CACHE[key]


def _resolve_device(device) -> torch.device:
    return select_device(str(device)) if str(device) == "auto" else torch.device(device)


def _resolve_subject(subject, device):
    """-> (generator or None, image folder Path or None)."""
    if isinstance(subject, torch.nn.Module):
        return subject.to(device).eval(), None
    path = Path(subject)
    from trainer.checkpoint import load_generator
    if path.is_file() or (path.is_dir() and (path / "checkpoints").is_dir()):
        return load_generator(path, device=device), None
    if path.is_dir():
        return None, path
    raise MetricError(f"'{subject}' is neither a checkpoint, a run directory nor a folder of images")


def reference_config(data_cfg, resolution: int | None = None, channels: int | None = None) -> DataConfig:
    """The reference data as a DataConfig at the evaluation resolution, unconditional, no flips."""
    if isinstance(data_cfg, str):
        data_cfg = DataConfig(source=data_cfg)
    values = dict(data_cfg.to_dict(), conditional=False, xflip=False, max_images=0)
    if resolution:
        values["resolution"] = resolution
    if channels:
        values["channels"] = channels
    return DataConfig.from_dict(values)


def compute_metrics(subject, data_cfg, metrics=("fid",), num_samples: int = 10000, num_real: int | None = None,
                    device="auto", batch: int = 64, progress: bool = True, seed: int = 0,
                    feature_net_path=None, truncation_psi: float = 1.0,
                    fake_features: np.ndarray | None = None) -> list[MetricResult]:
    """Evaluate a generator against a dataset.

    subject: a generator module, a checkpoint file, a run directory (newest checkpoint) or a
      folder of images (loaded at data_cfg's resolution, as the trainer loads data).
    data_cfg: DataConfig or dataset name for the reference images; its split is used as is
      (pass split="test" for a held-out set). Resolution and channels follow the generator.
    metrics: names or 'fid10k,kid'-style specs (see the module docstring).
    num_samples: generated samples for a metric named without a count.
    num_real: reference images (default: as many as generated, at most the whole split).
    fake_features: Inception features of G's samples computed already (by the ranks of a
      distributed run, trainer.metrics.sharded), in the order generator_source gives them.
    Returns one MetricResult per figure (pr gives precision and recall, classes several).
    """
    specs = parse_metrics(metrics)
    device = _resolve_device(device)
    G, folder = _resolve_subject(subject, device)
    if G is not None:
        point_data = G.img_resolution == 0
        data = reference_config(data_cfg, None if point_data else G.img_resolution,
                                None if point_data else G.img_channels)
    else:
        data = reference_config(data_cfg)
    reference = load_dataset(data)
    if not reference.is_image:
        return _point_metrics(G, reference, data, specs, num_samples, device, seed)
    if G is None and folder is not None:
        generated_ds = load_dataset(DataConfig(source=str(folder), resolution=reference.resolution,
                                               channels=reference.channels))
    else:
        generated_ds = None
    evaluator = _ImageEvaluation(G, generated_ds, reference, data, device, batch, progress, seed,
                                 feature_net_path, truncation_psi, num_samples, num_real)
    evaluator._fake_feats = fake_features
    results = []
    for spec in specs:
        results.extend(evaluator.run(spec, {s.name for s in specs}))
    return results


class _ImageEvaluation:
    """Shared state of one compute_metrics call on images: features are extracted once for the
    largest count asked for and reused by every metric."""

    def __init__(self, G, generated_ds: Dataset | None, reference: Dataset, data: DataConfig, device, batch,
                 progress, seed, feature_net_path, truncation_psi, num_samples, num_real):
        self.G, self.generated_ds, self.reference, self.data = G, generated_ds, reference, data
        self.device, self.batch, self.progress, self.seed = device, batch, progress, seed
        self.feature_net_path, self.truncation_psi = feature_net_path, truncation_psi
        self.num_samples, self.num_real = num_samples, num_real
        self._fake_feats: np.ndarray | None = None
        self._real: tuple | None = None
        self._net = None
        self._classifier = None
        self._fake_probs = None

    # -- sources --------------------------------------------------------------------------------
    def fake_count(self, spec: MetricSpec) -> int:
        n = spec.num_samples or self.num_samples
        if self.generated_ds is not None:
            n = min(n, len(self.generated_ds))
        return n

    def real_count(self, fake_n: int) -> int:
        return min(len(self.reference), self.num_real or fake_n)

    def _fake_source(self, n: int) -> ImageSource:
        if self.generated_ds is not None:
            src = dataset_source(self.generated_ds, n, seed=self.seed)
            src.describe = {"images": self.generated_ds.name, "images_found": len(self.generated_ds),
                            "images_resize": f"Lanczos to {self.reference.resolution}px (trainer.data.datasets)"}
            return src
        return generator_source(self.G, n, self.device, self.seed, self.reference.labels, self.truncation_psi)

    def common(self, fake_n: int, real_n: int) -> dict:
        prov = {"dataset": self.reference.name, "split": self.data.split, "resolution": self.reference.resolution,
                "channels": self.reference.channels, "num_real": real_n, "num_fake": fake_n,
                "device": str(self.device), "torch": torch.__version__}
        prov.update(self._fake_source(0).describe)
        return prov

    # -- Inception features -----------------------------------------------------------------------
    def net(self):
        if self._net is None:
            self._net = feature_network(self.feature_net_path, self.device)
        return self._net

    def fake_features(self, n: int) -> np.ndarray:
        if self._fake_feats is None or len(self._fake_feats) < n:
            net, _ = self.net()
            self._fake_feats = extract_features(net, self._fake_source(n), self.batch, self.device, self.progress,
                                                desc=f"Inception features of {n} generated images")
        return self._fake_feats[:n]

    def real_features(self, n: int):
        """-> (features [n, D], mu, sigma, from_cache) for the first n of a fixed random subset."""
        if self._real is None or self._real[0] != n:
            net, info = self.net()
            key = {"dataset": self.reference.name, "source": self.data.source, "split": self.data.split,
                   "resolution": self.reference.resolution, "channels": self.reference.channels,
                   "dataset_size": len(self.reference), "num_images": n, "subset_seed": 0,
                   "features": info.name, "features_sha256": info.sha256}

            def compute():
                return extract_features(net, dataset_source(self.reference, n, seed=0), self.batch, self.device,
                                        self.progress, desc=f"Inception features of {n} real images")

            self._real = (n, *cached_real_features(key, compute))
        return self._real[1:]

    def inception_provenance(self) -> dict:
        from trainer.metrics.inception import RESIZE_FILTER
        _, info = self.net()
        return dict(info.provenance(), resize_filter=RESIZE_FILTER)

    # -- classifier -------------------------------------------------------------------------------
    def classifier(self):
        if self._classifier is None:
            from trainer.metrics.classifier import load_or_train_classifier
            if len(self.reference.class_names) < 2:
                raise MetricError(f"'{self.reference.name}' has no class labels: is/classes need a labelled dataset")
            self._classifier = load_or_train_classifier(self.data, device=self.device, progress=self.progress)
        return self._classifier

    def fake_images_and_classes(self, n: int):
        if self.generated_ds is not None:
            idx = subset_indices(len(self.generated_ds), n, self.seed)
            return self.generated_ds.data[idx], None
        images, conds = [], []
        for imgs, c in generator_batches(self.G, n, self.batch, self.device, self.seed, self.reference.labels,
                                         self.truncation_psi):
            images.append(imgs.cpu())
            if c is not None:
                conds.append(c.cpu())
        return torch.cat(images), (torch.cat(conds) if conds else None)

    # -- metrics ----------------------------------------------------------------------------------
    def run(self, spec: MetricSpec, requested: set[str]) -> list[MetricResult]:
        t0 = time.time()
        n = self.fake_count(spec)
        results = getattr(self, f"_{spec.name}")(spec, n, requested)
        for r in results:
            r.provenance["seconds"] = round(time.time() - t0, 2)
            r.provenance["spec"] = spec.label
        return results

    def _fid(self, spec, n, requested):
        fake = self.fake_features(n)
        real_n = self.real_count(n)
        real, mu_r, sigma_r, cached = self.real_features(real_n)
        if min(n, real_n) <= fake.shape[1]:
            value, method = distances.fid_from_features(real, fake)   # exact and fast for N < D
        else:
            value, method = distances.frechet_distance(mu_r, sigma_r, *distances.feature_stats(fake))
        prov = dict(self.common(n, real_n), **self.inception_provenance(), sqrtm=method, real_stats_cached=cached)
        return [MetricResult("fid", value, n, "inception-2015-12-05", provenance=prov)]

    def _kid(self, spec, n, requested):
        fake = self.fake_features(n)
        real_n = self.real_count(n)
        real, _, _, cached = self.real_features(real_n)
        standard = distances.kernel_inception_distance(real, fake, num_subsets=100, subset_size=1000, seed=self.seed)
        blocks = distances.kernel_inception_distance(real, fake, num_subsets=100, subset_size=1000, disjoint=True,
                                                     seed=self.seed)
        prov = dict(self.common(n, real_n), **self.inception_provenance(), real_stats_cached=cached,
                    subsets=standard.num_subsets, subset_size=standard.subset_size,
                    ci_blocks=blocks.num_subsets, ci_block_size=blocks.subset_size, ci_block_mean=blocks.value)
        std = standard.std if math.isfinite(standard.std) else None
        return [MetricResult("kid", standard.value, n, "inception-2015-12-05", std=std, ci95=blocks.ci95,
                             provenance=prov)]

    def _pr(self, spec, n, requested):
        fake = self.fake_features(n)
        real_n = min(self.real_count(n), n)  # the k-NN radii depend on set size: compare equal sizes
        real, _, _, cached = self.real_features(self.real_count(n))
        precision, recall = distances.precision_recall(real[:real_n], fake[:real_n], k=3)
        prov = dict(self.common(real_n, real_n), **self.inception_provenance(), k=3)
        return [MetricResult("precision", precision, real_n, "inception-2015-12-05", provenance=dict(prov)),
                MetricResult("recall", recall, real_n, "inception-2015-12-05", provenance=dict(prov))]

    def _classifier_probs(self, n):
        clf = self.classifier()
        if self._fake_probs is None or len(self._fake_probs[0]) < n:
            images, conds = self.fake_images_and_classes(n)
            self._fake_probs = (clf.probabilities(images), conds)
        probs, conds = self._fake_probs
        return clf, probs[:n], (conds[:n] if conds is not None else None)

    def _is(self, spec, n, requested):
        from trainer.metrics.classifier import inception_score
        clf, probs, _ = self._classifier_probs(n)
        mean, std = inception_score(probs)
        prov = dict(self.common(n, 0), **clf.provenance(), splits=10,
                    note=f"Inception-Score formula under the {clf.dataset} classifier, not the Inception network")
        return [MetricResult("is", mean, n, f"{clf.dataset} classifier", std=std, provenance=prov)]

    def _classes(self, spec, n, requested):
        from trainer.metrics.classifier import class_histogram_report
        clf, probs, conds = self._classifier_probs(n)
        pred = probs.argmax(axis=1)
        report = class_histogram_report(pred, self.reference.labels.numpy(), len(clf.class_names))
        prov = dict(self.common(n, len(self.reference)), **clf.provenance(), generated_histogram=report.generated,
                    real_histogram=report.real, class_names=clf.class_names)
        feats = f"{clf.dataset} classifier"
        out = [MetricResult("class_tvd", report.total_variation, n, feats, provenance=dict(prov)),
               MetricResult("class_kl", report.kl_real_generated, n, feats, provenance=dict(prov)),
               MetricResult("classes_covered", float(report.classes_covered), n, feats,
                            provenance=dict(prov, num_classes=report.num_classes))]
        if conds is not None:
            accuracy = float((pred == conds.numpy()).mean())
            out.append(MetricResult("class_accuracy", accuracy, n, feats,
                                    provenance=dict(prov, note="share of samples the classifier puts in the "
                                                               "class they were generated for")))
        return out

    def _collapse(self, spec, n, requested):
        real_n = min(self.real_count(n), n)
        use_inception = bool(requested & INCEPTION_METRICS) or len(self.reference.class_names) < 2
        if use_inception:
            fake = self.fake_features(n)[:real_n]
            real = self.real_features(self.real_count(n))[0][:real_n]
            space, prov_net = "inception-2015-12-05", self.inception_provenance()
        else:
            clf = self.classifier()
            images, _ = self.fake_images_and_classes(real_n)
            idx = subset_indices(len(self.reference), real_n, seed=0)
            fake, real = clf.features(images), clf.features(self.reference.data[idx])
            space, prov_net = f"{clf.dataset} classifier (128-d penultimate layer)", clf.provenance()
        report = distances.collapse_report(real, fake)
        prov = dict(self.common(real_n, real_n), **prov_net, cosine_mean_real=report.cosine_mean_real,
                    near_duplicate_threshold=report.threshold)
        return [MetricResult("cosine_mean", report.cosine_mean, real_n, space, provenance=dict(prov)),
                MetricResult("near_duplicates", report.near_duplicates, real_n, space,
                             provenance=dict(prov, note="share of samples with a generated neighbour closer than "
                                                        "the 1st percentile of real nearest-neighbour distances; "
                                                        "about 0.01 for a healthy generator"))]

    def _modes(self, spec, n, requested):
        raise MetricError("'modes' is for the 2-D mixtures (ring8, grid25); for images use 'classes'")


def _point_metrics(G, reference: Dataset, data: DataConfig, specs, num_samples, device, seed) -> list[MetricResult]:
    from trainer.metrics.modes import mode_report
    if G is None:
        raise MetricError(f"'{reference.name}' holds 2-D points; evaluate a checkpoint, not a folder of images")
    results = []
    for spec in specs:
        if spec.name not in POINT_METRICS:
            raise MetricError(f"'{spec.name}' needs images, and '{reference.name}' holds 2-D points: "
                              f"use {' or '.join(sorted(POINT_METRICS))}")
        n = spec.num_samples or num_samples
        gen = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            points = torch.cat([G(torch.randn(min(4096, n - i), G.z_dim, generator=gen).to(device)).cpu()
                                for i in range(0, n, 4096)]).numpy()
        prov = {"dataset": reference.name, "split": data.split, "num_fake": n, "mode_std": reference.mode_std,
                "generator": (getattr(G, "checkpoint_info", None) or {}).get("path", type(G).__name__)}
        if spec.name == "modes":
            r = mode_report(points, reference.modes, reference.mode_std)
            prov.update(modes_total=r.modes_total, high_quality_radius="3 sigma")
            results += [MetricResult("modes_captured", float(r.modes_captured), n, "2-D points", provenance=dict(prov)),
                        MetricResult("high_quality", r.high_quality, n, "2-D points", provenance=dict(prov)),
                        MetricResult("reverse_kl", r.reverse_kl, n, "2-D points", provenance=dict(prov))]
        else:
            real = reference.data[subset_indices(len(reference), n, 0)].numpy()
            fin = np.isfinite(points).all(axis=1)
            report = distances.collapse_report(real[:fin.sum()], points[fin])
            prov.update(cosine_mean_real=report.cosine_mean_real, near_duplicate_threshold=report.threshold)
            results += [MetricResult("cosine_mean", report.cosine_mean, n, "2-D points", provenance=dict(prov)),
                        MetricResult("near_duplicates", report.near_duplicates, n, "2-D points", provenance=dict(prov))]
    for r in results:
        if isinstance(r.value, float) and not math.isfinite(r.value):
            r.provenance["note"] = "not finite: no sample fell within 3 sigma of any mode"
    return results
