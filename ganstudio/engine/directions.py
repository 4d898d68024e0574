"""Latent directions of the open model: GANSpace principal components of W (each one standard
deviation long) and, for conditional models, the way to each class centre; cached on disk per
checkpoint (by its sha256), so reopening a model does not map 5,000 latents again."""
from __future__ import annotations

import numpy as np
import torch

from trainer.latents import pca_directions


@torch.inference_mode()
def compute_directions(G,                          # the open generator (with a W space)
                       device,                     # where G is
                       class_means: torch.Tensor | None,   # [c_dim, w_dim] of a conditional model, else None
                       class_names,                # ModelInfo.class_names
                       sha256: str,                # of the checkpoint ("" = no cache)
                       num_samples: int = 5000,    # mapped latents for the PCA
                       num_components: int = 8,    # principal components kept
                       progress=lambda fraction, message: None,
                       seed: int = 0,              # fixes the sampled z, so results repeat
                       cache: bool = True,         # read and write the per-checkpoint cache
                       ) -> dict[str, np.ndarray]:
    """-> {"PC1": [w_dim], ...}; for conditional models also {"to <class>": class mean w - mean of
    class means}."""
    if G is None or not G.num_ws:
        raise ValueError("latent directions need a model with a W space")
    cache_file = directions_cache(sha256, num_samples, num_components, seed) if cache else None
    if cache_file is not None and cache_file.is_file():
        try:
            with np.load(cache_file) as stored:
                directions = {name: stored[name] for name in stored.files}
            if all(v.shape == (G.w_dim,) for v in directions.values()):
                progress(1.0, "directions ready (cached)")
                return directions
        except (OSError, ValueError, KeyError):
            pass   # a damaged cache entry is computed again and replaced
    rng = np.random.RandomState(seed)
    chunks, chunk = [], 1000
    for start in range(0, num_samples, chunk):
        n = min(chunk, num_samples - start)
        z = torch.from_numpy(rng.randn(n, G.z_dim).astype(np.float32)).to(device)
        c = torch.from_numpy(rng.randint(0, G.c_dim, n)).to(device) if G.c_dim else None
        chunks.append(G.mapping(z, c)[:, 0].float().cpu().numpy())
        progress(0.9 * (start + n) / num_samples, f"mapped {start + n}/{num_samples} latents")
    vectors, sigmas = pca_directions(np.concatenate(chunks), num_components)
    directions = {f"PC{i + 1}": vectors[i] * sigmas[i] for i in range(len(vectors))}
    if class_means is not None:
        means = class_means.float().cpu().numpy()
        for name, mean in zip(class_names, means):
            directions[f"to {name}"] = (mean - means.mean(axis=0)).astype(np.float32)
    if cache_file is not None:
        try:
            from trainer.files import atomic_write

            def write(tmp):
                with open(tmp, "wb") as f:
                    np.savez(f, **directions)
            atomic_write(cache_file, write)
        except OSError:
            pass   # a cache that cannot be written only costs time next open
    progress(1.0, "directions ready")
    return directions


def directions_cache(sha256: str, num_samples: int, num_components: int, seed: int):
    """The cache file of one checkpoint's directions (None without a checksum)."""
    from trainer.data.datasets import cache_dir
    if not sha256:
        return None
    return cache_dir() / "directions" / f"{sha256[:24]}-{num_samples}-{num_components}-{seed}.npz"
