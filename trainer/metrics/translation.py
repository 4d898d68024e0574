"""Judging a translation on held-out images.

- l1, psnr, ssim: the translation against its target, per pair, averaged (paired data only).
  L1 is the mean absolute difference on the [0, 1] pixel scale; PSNR in dB for that range;
  SSIM as the inversion code computes it (11-pixel Gaussian window).
- fid: the translated set against the target domain's held-out images, with the standard
  Inception network of `trainer.metrics` (NVlabs' weights, 299 px).
- cycle: CycleGAN's round trip, mean L1 of x against G_BA(G_AB(x)) (and the reverse), [0, 1] scale.
"""
from __future__ import annotations

import numpy as np
import torch

from trainer.inversion.losses import psnr, ssim
from trainer.images import to_uint8_nchw

METRIC_NAMES = ("l1", "psnr", "ssim", "fid", "cycle")


def parse_translation_metrics(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown translation metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_NAMES)}")
    return names


@torch.no_grad()
def translate_images(translate, images: torch.Tensor, device, batch: int = 256) -> torch.Tensor:
    """uint8 [N, C, R, R] -> uint8 [N, C', R, R] through `translate` (float [-1, 1] in and out),
    quantised as a saved PNG would be."""
    out = []
    for chunk in images.split(batch):
        out.append(to_uint8_nchw(translate(chunk.to(device, torch.float32) / 127.5 - 1)).cpu())
    return torch.cat(out)


def pair_scores(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """uint8 outputs and targets [N, C, R, R] (same shape) -> mean L1 ([0, 1] scale), PSNR (dB), SSIM."""
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {list(outputs.shape)} and targets {list(targets.shape)} differ in shape")
    x = outputs.float() / 127.5 - 1
    y = targets.float() / 127.5 - 1
    return {"l1": float((x - y).abs().mean() / 2), "psnr": float(psnr(x, y).mean()),
            "ssim": float(ssim(x, y).mean())}


def inception_features(images: torch.Tensor, device, progress: bool = False) -> np.ndarray:
    """uint8 [N, C, R, R] -> Inception pool features [N, 2048] (grey images repeated to RGB)."""
    from trainer.metrics.compute import feature_network
    from trainer.metrics.features import ImageSource, extract_features
    net, _ = feature_network(device=device)
    source = ImageSource(len(images), lambda batch: iter(images.split(batch)), {"images": len(images)})
    return extract_features(net, source, 64, device, progress=progress, desc="inception")


def fid_between(images: torch.Tensor, reference: torch.Tensor, device, progress: bool = False,
                reference_features: np.ndarray | None = None) -> float:
    """FID of uint8 images [N, C, R, R] against reference images (or their given features)."""
    from trainer.metrics.distances import fid_from_features
    real = reference_features if reference_features is not None else inception_features(reference, device, progress)
    value, _ = fid_from_features(real, inception_features(images, device, progress))
    return float(value)


def evaluate_translation(G, cfg, device, spec: str, count: int, progress: bool = False) -> dict[str, float]:
    """The metrics `spec` names for generator G of run config `cfg`, on up to `count` held-out
    images -> {"translation/l1": ..., "translation/fid": ..., "translation/cycle": ...}."""
    from trainer.data.paired import held_out_config, load_translation_data
    names = parse_translation_metrics(spec)
    cyclegan = cfg.model.arch == "cyclegan"
    held = load_translation_data(held_out_config(cfg.data, count), paired=not cyclegan)
    inputs, targets = (held.a, held.b) if cfg.model.direction == "AtoB" else (held.b, held.a)
    inputs, targets = inputs[:count], targets[:count]
    was_training = G.training
    G.eval()
    try:
        outputs = translate_images(lambda x: G.translate(x), inputs, device)
        results: dict[str, float] = {}
        if held.paired and {"l1", "psnr", "ssim"} & set(names):
            scores = pair_scores(outputs, targets)
            results.update({f"translation/{k}": v for k, v in scores.items() if k in names})
        if "fid" in names:
            results["translation/fid"] = fid_between(outputs, targets, device, progress)
        if cyclegan and "cycle" in names:
            there = translate_images(lambda x: G.round_trip(x, cfg.model.direction), inputs, device)
            back_dir = "BtoA" if cfg.model.direction == "AtoB" else "AtoB"
            back = translate_images(lambda x: G.round_trip(x, back_dir), targets, device)
            results["translation/cycle"] = 0.5 * (pair_scores(there, inputs)["l1"] + pair_scores(back, targets)["l1"])
    finally:
        G.train(was_training)
    return results
