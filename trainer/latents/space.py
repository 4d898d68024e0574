"""The maths of Z and W: seeds -> z, classes, truncation, style mixing, layer groups, directions, and
the StyleGAN3 input transform. Plain functions of numbers and tensors, no generator state."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

MAX_SEED = 2**32 - 1         # numpy's RandomState takes seeds from 0 to 2**32 - 1


# ---- seeds and z ----
def check_seed(seed) -> int:
    """A seed as int, or ValueError naming the allowed range."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed {seed!r} is not usable: seeds are whole numbers from 0 to {MAX_SEED}")
    return int(seed)


def parse_seeds(text: str, limit: int = 1_000_000) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> list of ints, each from 0 to MAX_SEED, at most `limit` of
    them (checked before a range is expanded). ValueError says what is wrong."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                if len(seeds) + hi - lo + 1 > limit:
                    raise OverflowError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"cannot read seeds {part!r}: use numbers from 0 to {MAX_SEED}, "
                             "ranges like 0-63 and commas") from None
        except OverflowError:
            raise ValueError(f"too many seeds in {text!r}: at most {limit}") from None
    if len(seeds) > limit:
        raise ValueError(f"too many seeds in {text!r}: at most {limit}")
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    if min(seeds) < 0 or max(seeds) > MAX_SEED:
        bad = min(seeds) if min(seeds) < 0 else max(seeds)
        raise ValueError(f"seed {bad} is out of range: seeds go from 0 to {MAX_SEED}")
    return seeds


def sample_z(seed: int,
             z_dim: int,
             threshold: float = 0.0,   # resample |z| components beyond this; <= 0 = no truncation
             count: int = 1,           # rows drawn from the one seed (2-D point models draw many)
             ) -> np.ndarray:
    """seed -> z float32 [count, z_dim] ~ N(0, I), optionally truncated by resampling. Row 0 with no
    threshold is NVlabs' z for the seed."""
    rng = np.random.RandomState(check_seed(seed))
    z = rng.randn(count, z_dim)
    if threshold > 0:
        outside = np.abs(z) > threshold
        while outside.any():
            z[outside] = rng.randn(int(outside.sum()))
            outside = np.abs(z) > threshold
    return z.astype(np.float32)


def seed_to_z(seed: int, z_dim: int, threshold: float = 0.0) -> np.ndarray:
    """seed -> z float32 [z_dim] (see sample_z)."""
    return sample_z(seed, z_dim, threshold)[0]


def resolve_class(seed: int, class_index: int | None, c_dim: int) -> int | None:
    """The class a state draws: None for unconditional models; the chosen class; or, when none
    is chosen, the seed modulo the class count (so a grid of seeds shows every class)."""
    if not c_dim:
        return None
    if class_index is None:
        return int(seed) % c_dim
    if not 0 <= int(class_index) < c_dim:
        raise ValueError(f"class {class_index} is out of range for a model with {c_dim} classes (0-{c_dim - 1})")
    return int(class_index)


# ---- W space ----
def truncate(ws: torch.Tensor,       # [N, num_ws, w_dim]
             center: torch.Tensor,   # [w_dim] or [N, w_dim]: the mean w to pull toward
             psi: float,             # 1 = unchanged, 0 = the center, negative = the opposite side
             cutoff: int | None,     # truncate layers [0, cutoff); None = every layer
             ) -> torch.Tensor:
    """The truncation trick in W: w' = lerp(center, w, psi) on the first `cutoff` layers. The one
    implementation: the generators' `mapping` calls it too."""
    if psi == 1:
        return ws
    center = center if center.ndim == 1 else center[:, None, :]  # broadcast over layers
    cutoff = ws.shape[1] if cutoff is None else cutoff
    out = ws.clone()
    out[:, :cutoff] = center.to(ws.dtype).lerp(ws[:, :cutoff], psi)
    return out


def stylegan3_transform(translate_x: float,   # image widths to move the picture right (1 / resolution = one pixel)
                        translate_y: float,   # image heights to move it down
                        rotate_deg: float,    # degrees to rotate it
                        ) -> np.ndarray:
    """The [3, 3] float64 matrix for a StyleGAN3's `G.synthesis.input.transform`, with NVlabs'
    meaning: the buffer holds the INVERSE of the image transform the user asks for, which NVlabs'
    tools build as [[cos a, sin a, x], [-sin a, cos a, y], [0, 0, 1]]. (0, 0, 0) gives the identity."""
    a = math.radians(rotate_deg)
    c, s = math.cos(a), math.sin(a)
    # inverse of [[R, t], [0, 1]] is [[R^T, -R^T t], [0, 1]] for the rotation R = [[c, s], [-s, c]]
    return np.array([[c, -s, -(c * translate_x - s * translate_y)],
                     [s, c, -(s * translate_x + c * translate_y)],
                     [0.0, 0.0, 1.0]])


def to_device(array: np.ndarray, device) -> torch.Tensor:
    """A host array on `device`. To CUDA through pinned memory without blocking: a frame's latent
    then does not wait for the GPU's queue (a pageable copy synchronizes the stream)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def mix_layers(ws_base: torch.Tensor,   # [N, num_ws, w_dim] the unmixed latents
               ws_style: torch.Tensor,  # [N, num_ws, w_dim] the source of the mixed layers
               mask: Sequence[bool],    # per layer: True = take from ws_style; len num_ws
               ) -> torch.Tensor:
    """Style mixing in W+: the layers picked by `mask` come from ws_style, the rest from ws_base."""
    mask = to_device(np.array(list(mask), dtype=bool), ws_base.device)   # no blocking copy on CUDA
    if mask.numel() != ws_base.shape[1]:
        raise ValueError(f"mixing mask has {mask.numel()} layers, the model has {ws_base.shape[1]}")
    return torch.where(mask[None, :, None], ws_style, ws_base)


def layer_groups(layer_resolutions: Sequence[int]) -> dict[str, tuple[bool, ...]]:
    """Masks for the coarse / middle / fine presets: the model's resolutions (4, 8, ...) split
    into thirds, as in the StyleGAN paper (coarse 4-8, middle 16-32, fine 64-1024 at 1024px). With
    fewer than three levels (a 32 px StyleGAN3 samples at 16 and 32 only) the layers themselves are
    split into thirds, so no preset is empty."""
    levels = sorted(set(layer_resolutions))
    if len(levels) < 3:
        parts = np.array_split(np.arange(len(layer_resolutions)), 3)
        return {name: tuple(i in part for i in range(len(layer_resolutions)))
                for name, part in zip(("coarse", "middle", "fine"), parts)}
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


def direction_offset(directions: Mapping[str, np.ndarray],  # name -> [w_dim], one unit = one slider step
                     offsets: Mapping[str, float],          # name -> slider value
                     ) -> np.ndarray | None:
    """Sum of offset * direction over the active sliders -> [w_dim], or None when all are zero."""
    total = None
    for name, amount in offsets.items():
        if amount and name in directions:
            step = amount * np.asarray(directions[name], dtype=np.float32)
            total = step if total is None else total + step
    return total
