"""Images in, feature vectors out: generator and dataset image batches, batched feature
extraction with progress, and the cache of real-data features and statistics.

Images travel as uint8 [N, C, H, W]: generated images are quantised exactly as a saved PNG
would be ((x * 127.5 + 128) clamped to 0..255), the way NVlabs' metrics do, so a generator and
a folder of its saved samples score the same.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from trainer.files import parse_json, atomic_write
from trainer.images import to_uint8_nchw
from trainer.data.datasets import Dataset, cache_dir
from trainer.metrics.distances import feature_stats


@dataclass
class ImageSource:
    """A countable stream of uint8 image batches plus a description for provenance."""
    count: int
    batches: Callable[[int], Iterator[torch.Tensor]]   # batch size -> uint8 [B, C, H, W] batches
    describe: dict


def generator_batches(G, count: int, batch: int, device, seed: int = 0, labels: torch.Tensor | None = None,
                      truncation_psi: float = 1.0, shard: tuple[int, int] = (0, 1),
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """`count` samples of G as (uint8 [B, C, H, W] on `device`, classes [B] or None); the same
    seed gives the same samples. A conditional G gets classes drawn from `labels` (the reference
    data's labels, so classes appear as often as in the data), else uniformly. shard=(rank, world)
    yields only batches rank, rank + world, ... (every latent is still drawn, so each batch is the
    one a single process would make).

    Style-based generators draw random per-pixel noise, as in training and in NVlabs' metrics: the
    studio's fixed ("const") noise map shared by every sample would take the noise's variation out
    of the distribution being measured. The noise of batch i is seeded from (seed, i), inside a
    forked random state, so the samples repeat and a training run's random stream is untouched."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    done, index = 0, 0
    while done < count:
        n = min(batch, count - done)
        z = torch.randn(n, G.z_dim, generator=gen)
        c = None
        if G.c_dim:
            pool = labels if labels is not None and len(labels) else torch.arange(G.c_dim)
            c = pool[torch.randint(len(pool), (n,), generator=gen)].to(device)
        if index % shard[1] == shard[0]:
            forked = [device.index or 0] if device.type != "cpu" else []
            with torch.inference_mode(), torch.random.fork_rng(devices=forked, device_type=device.type):
                torch.manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
                out = G(z.to(device), c, truncation_psi=truncation_psi, noise_mode="random")
            yield to_uint8_nchw(out), c
        done, index = done + n, index + 1


def generator_source(G, count: int, device, seed: int = 0, labels: torch.Tensor | None = None,
                     truncation_psi: float = 1.0) -> ImageSource:
    def batches(batch: int):
        for images, _ in generator_batches(G, count, batch, device, seed, labels, truncation_psi):
            yield images

    info = getattr(G, "checkpoint_info", {}) or {}
    return ImageSource(count, batches, {"generator": info.get("path", type(G).__name__),
                                        "generator_step": info.get("step"), "generator_kimg": info.get("kimg"),
                                        "truncation_psi": truncation_psi, "seed": seed})


def subset_indices(size: int, count: int, seed: int = 0) -> torch.Tensor:
    """A fixed random subset (all items when count >= size), so class-sorted data is sampled fairly."""
    if count >= size:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def dataset_source(ds: Dataset, count: int, seed: int = 0) -> ImageSource:
    idx = subset_indices(len(ds), count, seed)

    def batches(batch: int):
        for chunk in idx.split(batch):
            yield ds.data[chunk]

    return ImageSource(len(idx), batches, {"dataset": ds.name, "dataset_size": len(ds)})


def extract_features(net: torch.nn.Module, source: ImageSource, batch: int, device,
                     progress: bool = True, desc: str = "features") -> np.ndarray:
    """Run `net` over every image of `source` -> float32 [N, D] on the host."""
    from tqdm import tqdm
    device = torch.device(device)
    out = []
    with torch.inference_mode(), tqdm(total=source.count, unit="img", desc=desc, dynamic_ncols=True,
                                      disable=not progress, leave=False) as bar:
        for images in source.batches(batch):
            out.append(net(images.to(device)).float().cpu().numpy())
            bar.update(len(images))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# ---------------------------------------------------------------------------------------------
# Real-data cache

def real_cache_path(key: dict) -> Path:
    """Cache file for one (dataset, split, resolution, channels, feature net hash, count)."""
    text = json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(key.get("dataset", "data")))
    return cache_dir() / "metrics" / "real" / f"{name}-{key.get('split')}-{key.get('resolution')}px-" \
        f"{key.get('num_images')}-{digest}.npz"


def cached_real_features(key: dict, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """-> (features [N, D] float32, mu [D], sigma [D, D], came_from_cache). The file holds the
    features (for KID and precision/recall) and mu/sigma (for FID); it is written atomically."""
    path = real_cache_path(key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                if parse_json(str(f["key"]), f"{path.name}'s key") == key:
                    return f["features"], f["mu"], f["sigma"], True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: recompute and replace it
    features = compute()
    mu, sigma = feature_stats(features)

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, features=features.astype(np.float32), mu=mu, sigma=sigma,
                     key=np.array(json.dumps(key, sort_keys=True)))

    atomic_write(path, write)
    return features, mu, sigma, False
