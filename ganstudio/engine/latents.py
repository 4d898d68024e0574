"""Latent maths: seeds to z, truncation, W+ style mixing, and edit directions in W.

z from a seed follows NVlabs: np.random.RandomState(seed).randn(z_dim), so a seed names the
same z as in their tools. Arrays here are numpy or torch tensors shaped as documented.
"""
from __future__ import annotations

import numpy as np
import torch


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """seed -> z float32 [z_dim] ~ N(0, I)."""
    return np.random.RandomState(seed).randn(z_dim).astype(np.float32)


def truncated_z(seed: int, z_dim: int, threshold: float) -> np.ndarray:
    """seed -> z float32 [z_dim] from N(0, I) truncated to [-threshold, threshold] by resampling
    each component that falls outside (the BigGAN truncation trick for models without W).
    threshold <= 0 means no truncation (same z as seed_to_z)."""
    rng = np.random.RandomState(seed)
    z = rng.randn(z_dim)
    if threshold > 0:
        outside = np.abs(z) > threshold
        while outside.any():
            z[outside] = rng.randn(int(outside.sum()))
            outside = np.abs(z) > threshold
    return z.astype(np.float32)


def truncate(ws: torch.Tensor,       # [N, num_ws, w_dim]
             center: torch.Tensor,   # [w_dim] or [N, w_dim]: the mean w to pull toward
             psi: float,             # 1 = unchanged, 0 = the center, negative = the opposite side
             cutoff: int | None,     # truncate layers [0, cutoff); None = every layer
             ) -> torch.Tensor:
    """The truncation trick in W: w' = center + psi * (w - center) on the first `cutoff` layers."""
    if psi == 1:
        return ws
    center = center if center.ndim == 1 else center[:, None, :]  # broadcast over layers
    cutoff = ws.shape[1] if cutoff is None else cutoff
    out = ws.clone()
    out[:, :cutoff] = center + psi * (ws[:, :cutoff] - center)
    return out


def mix_layers(ws_base: torch.Tensor,   # [N, num_ws, w_dim] the unmixed latents
               ws_style: torch.Tensor,  # [N, num_ws, w_dim] the source of the mixed layers
               mask,                    # per layer: True = take from ws_style; len num_ws
               ) -> torch.Tensor:
    """Style mixing in W+: the layers picked by `mask` come from ws_style, the rest from ws_base."""
    mask = torch.as_tensor(list(mask), dtype=torch.bool, device=ws_base.device)
    if mask.numel() != ws_base.shape[1]:
        raise ValueError(f"mixing mask has {mask.numel()} layers, the model has {ws_base.shape[1]}")
    return torch.where(mask[None, :, None], ws_style, ws_base)


def layer_groups(layer_resolutions: list[int]) -> dict[str, tuple[bool, ...]]:
    """Masks for the coarse / middle / fine presets: the model's resolutions (4, 8, ...) split
    into thirds, as in the StyleGAN paper (coarse 4-8, middle 16-32, fine 64-1024 at 1024px)."""
    levels = sorted(set(layer_resolutions))
    thirds = [set(part.tolist()) for part in np.array_split(np.array(levels), 3)]
    names = ("coarse", "middle", "fine")
    return {name: tuple(r in group for r in layer_resolutions) for name, group in zip(names, thirds)}


def pca_directions(w: np.ndarray,       # [N, w_dim] mapped latents
                   num_components: int,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of W (GANSpace, Härkönen et al. 2020) -> (unit vectors [K, w_dim],
    standard deviations along them [K]). Signs are fixed so each vector's largest entry is positive."""
    w = np.asarray(w, dtype=np.float64)
    centered = w - w.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    k = min(num_components, vt.shape[0])
    vectors = vt[:k]
    signs = np.sign(vectors[np.arange(k), np.abs(vectors).argmax(axis=1)])
    vectors = vectors * signs[:, None]
    sigmas = s[:k] / np.sqrt(max(len(w) - 1, 1))
    return vectors.astype(np.float32), sigmas.astype(np.float32)


def direction_offset(directions: dict[str, np.ndarray],  # name -> [w_dim], one unit = one slider step
                     offsets: dict[str, float],          # name -> slider value
                     ) -> np.ndarray | None:
    """Sum of offset * direction over the active sliders -> [w_dim], or None when all are zero."""
    total = None
    for name, amount in offsets.items():
        if amount and name in directions:
            step = amount * np.asarray(directions[name], dtype=np.float32)
            total = step if total is None else total + step
    return total
