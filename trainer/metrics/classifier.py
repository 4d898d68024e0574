"""A small CNN classifier per labelled dataset, for the class histogram of generated samples
(mode coverage) and an Inception-Score-like figure under that classifier.

The shipped Inception weights have no classifier head, so IS here is computed with this
dataset's own classifier and always labelled so ("IS under the fashion-mnist classifier"); it
is not comparable with the Inception Score of papers. The classifier is trained once on the
dataset's train split at the evaluation resolution, cached as safetensors with its test
accuracy in the metadata, and reloaded from there.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.files import parse_json, write_safetensors
from trainer.config import DataConfig
from trainer.data.datasets import Dataset, cache_dir, load_dataset

CLASSIFIER_VERSION = "1"


class SmallCNN(nn.Module):
    """uint8 images [N, C, R, R] -> logits [N, classes]; `features` gives the 128-d penultimate layer."""

    def __init__(self,
                 channels: int,      # image channels, 1 or 3
                 resolution: int,    # image side in pixels (>= 8)
                 num_classes: int,   # outputs
                 width: int = 16):   # feature maps of the first convolution; doubles twice
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(16 * width, 128), nn.ReLU())
        self.head = nn.Linear(128, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images.float() / 127.5 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@dataclass
class Classifier:
    net: SmallCNN
    dataset: str
    resolution: int
    channels: int
    class_names: list[str]
    test_accuracy: float
    test_split: str
    path: str

    def describe(self) -> str:
        return (f"ganstudio SmallCNN trained on {self.dataset} (train split, {self.resolution}px), "
                f"accuracy {self.test_accuracy:.3f} on {self.test_split}")

    def provenance(self) -> dict:
        return {"classifier": self.describe(), "classifier_file": self.path,
                "classifier_accuracy": round(self.test_accuracy, 4)}

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor, batch: int = 512) -> np.ndarray:
        device = next(self.net.parameters()).device
        return np.concatenate([F.softmax(self.net(b.to(device)), dim=1).cpu().numpy() for b in images.split(batch)])

    @torch.inference_mode()
    def features(self, images: torch.Tensor, batch: int = 512) -> np.ndarray:
        device = next(self.net.parameters()).device
        return np.concatenate([self.net.features(b.to(device)).cpu().numpy() for b in images.split(batch)])


def _cache_path(data_cfg: DataConfig) -> Path:
    key = json.dumps({"source": data_cfg.source, "resolution": data_cfg.resolution, "channels": data_cfg.channels,
                      "version": CLASSIFIER_VERSION}, sort_keys=True)
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(data_cfg.source).name or "data")
    return cache_dir() / "metrics" / "classifiers" / \
        f"{name}-{data_cfg.resolution}px-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors"


def _split_for_training(data_cfg: DataConfig) -> tuple[Dataset, Dataset, str]:
    """(train set, held-out set, name of the held-out part). Built-ins with an official split
    use it; others hold out a fixed 20% of their images."""
    base = dict(data_cfg.to_dict(), conditional=False, xflip=False, max_images=0)
    if data_cfg.source == "fashion-mnist":
        train = load_dataset(DataConfig.from_dict(dict(base, split="train")))
        test = load_dataset(DataConfig.from_dict(dict(base, split="test")))
        return train, test, "the test split"
    ds = load_dataset(DataConfig.from_dict(dict(base, split="all")))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    cut = int(len(ds) * 0.8)

    def part(idx):
        return Dataset(ds.name, ds.data[idx], ds.labels[idx], ds.class_names)

    return part(order[:cut]), part(order[cut:]), "a held-out 20%"


def train_classifier(data_cfg: DataConfig, epochs: int = 3, batch: int = 128, device="cpu",
                     progress: bool = True, seed: int = 0, max_steps: int = 800) -> Classifier:
    """Train a SmallCNN on the dataset's train split and measure it on the held-out part."""
    from tqdm import tqdm
    train, test, test_name = _split_for_training(data_cfg)
    if len(train.class_names) < 2:
        raise ValueError(f"'{data_cfg.source}' has no class labels; the class histogram and classifier IS "
                         "need a labelled dataset (class sub-folders for a folder)")
    torch.manual_seed(seed)
    device = torch.device(device)
    net = SmallCNN(train.channels, train.resolution, len(train.class_names)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    per_epoch = math.ceil(len(train) / batch)
    # Small datasets need more passes to converge; large ones stop early to keep CPU time bounded
    # (the held-out accuracy reached is recorded with every figure that uses the classifier).
    steps = min(max(epochs * per_epoch, 200), max_steps)
    epochs = math.ceil(steps / per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    with tqdm(total=steps, desc=f"training {train.name} classifier", unit="step", disable=not progress,
              leave=False) as bar:
        done = 0
        for _ in range(epochs):
            for idx in torch.randperm(len(train), generator=gen).split(batch):
                if done == steps:
                    break
                done += 1
                loss = F.cross_entropy(net(train.data[idx].to(device)), train.labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
    net.eval().requires_grad_(False)
    with torch.inference_mode():
        pred = torch.cat([net(b.to(device)).argmax(1).cpu() for b in test.data.split(512)])
    accuracy = float((pred == test.labels).float().mean())
    return Classifier(net, train.name, train.resolution, train.channels, list(train.class_names), accuracy,
                      test_name, "")


def load_or_train_classifier(data_cfg: DataConfig, device="cpu", progress: bool = True) -> Classifier:
    """The cached classifier for this dataset and resolution, training and caching it if absent."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open
    path = _cache_path(data_cfg)
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
            net = SmallCNN(int(meta["channels"]), int(meta["resolution"]), len(parse_json(meta["class_names"], f"{path.name}'s class names")))
            net.load_state_dict(tensors, strict=True)
            return Classifier(net.eval().requires_grad_(False).to(device), meta["dataset"], int(meta["resolution"]),
                              int(meta["channels"]), json.loads(meta["class_names"]), float(meta["test_accuracy"]),
                              meta["test_split"], str(path))
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
            pass  # unreadable or from another version: train again and replace it
    clf = train_classifier(data_cfg, device=device, progress=progress)
    tensors = {k: v.detach().cpu().contiguous() for k, v in clf.net.state_dict().items()}
    meta = {"format": "ganstudio.classifier", "version": CLASSIFIER_VERSION, "dataset": clf.dataset,
            "resolution": str(clf.resolution), "channels": str(clf.channels),
            "class_names": json.dumps(clf.class_names), "test_accuracy": repr(clf.test_accuracy),
            "test_split": clf.test_split}
    write_safetensors(path, tensors, meta)
    clf.path = str(path)
    return clf


# ---------------------------------------------------------------------------------------------
# Figures from class probabilities

def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts -> (mean, std). probs [N, K]."""
    probs = np.asarray(probs, np.float64)
    scores = []
    for part in np.array_split(probs, max(1, min(splits, len(probs)))):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None)))).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


@dataclass
class ClassHistogramReport:
    generated: list[float]     # share of generated samples per predicted class
    real: list[float]          # share of real images per class
    total_variation: float     # 0.5 * sum |generated - real|: 0 identical, 1 disjoint
    kl_real_generated: float   # KL(real || generated) with 1e-6 smoothing: large when classes are missing
    classes_covered: int       # classes holding at least 10% of their real share
    num_classes: int


def class_histogram_report(pred_classes: np.ndarray, real_labels: np.ndarray, num_classes: int) -> ClassHistogramReport:
    gen = np.bincount(pred_classes, minlength=num_classes) / max(len(pred_classes), 1)
    real = np.bincount(real_labels, minlength=num_classes) / max(len(real_labels), 1)
    eps = 1e-6
    g, r = (gen + eps) / (gen + eps).sum(), (real + eps) / (real + eps).sum()
    kl = float((r * np.log(r / g)).sum())
    covered = int(((gen >= 0.1 * real) & (real > 0)).sum())
    return ClassHistogramReport(gen.round(5).tolist(), real.round(5).tolist(), float(0.5 * np.abs(gen - real).sum()),
                                kl, covered, num_classes)
