"""A Canny edge detector in PyTorch, batched: the input domain of the `edges2fashion` built-in.

Canny (1986): Gaussian smoothing, Sobel gradients, non-maximum suppression along the gradient
direction (quantised to four), then hysteresis between a high and a low threshold. Thresholds
are fractions of each image's strongest gradient, so faint and bold garments both keep outlines.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]          # [1, 1, K, K]


def canny_edges(images: torch.Tensor,
                sigma: float = 1.0,          # Gaussian smoothing in pixels
                low: float = 0.1,            # weak edges: gradient above this fraction of the image's maximum
                high: float = 0.25,          # strong edges: above this fraction
                ) -> torch.Tensor:
    """uint8 or float images [N, 1, H, W] -> bool edge maps [N, 1, H, W] (one pixel wide)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"canny_edges expects grey images [N, 1, H, W], got {list(images.shape)}")
    if not 0 <= low <= high:
        raise ValueError(f"thresholds must satisfy 0 <= low <= high, got low={low}, high={high}")
    x = images.float()
    kernel = _gaussian_kernel(sigma)
    pad = kernel.shape[-1] // 2
    x = F.conv2d(F.pad(x, [pad] * 4, mode="replicate"), kernel)
    sobel_x = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])[None, None]
    padded = F.pad(x, [1] * 4, mode="replicate")
    gx = F.conv2d(padded, sobel_x)
    gy = F.conv2d(padded, sobel_x.transpose(2, 3))
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)                # [N, 1, H, W]

    # Non-maximum suppression: keep a pixel only if no neighbour along its gradient is stronger.
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    sector = ((angle + 22.5) // 45).long() % 4               # 0: horizontal gradient, 1: 45°, 2: vertical, 3: 135°
    m = F.pad(magnitude, [1] * 4)
    h, w = magnitude.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    # image rows grow downwards, so a gradient at +45° (gx > 0, gy > 0) points to (down, right)
    neighbours = {0: ((0, 1), (0, -1)), 1: ((1, 1), (-1, -1)), 2: ((1, 0), (-1, 0)), 3: ((1, -1), (-1, 1))}
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for s, (first, second) in neighbours.items():
        local_max = (magnitude >= shifted(*first)) & (magnitude >= shifted(*second))
        keep |= (sector == s) & local_max
    thin = magnitude * keep

    peak = magnitude.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    strong = thin >= high * peak
    weak = (thin >= low * peak) & (thin > 0)
    # Hysteresis: weak pixels survive when connected (8-neighbourhood) to a strong one. Grown
    # one ring per pass, and only for the images still growing (most settle in a few passes).
    active = torch.arange(len(strong))
    while len(active):
        current = strong[active]
        grown = current | (weak[active] & (F.max_pool2d(current.float(), 3, 1, 1) > 0))
        changed = (grown != current).flatten(1).any(dim=1)
        strong[active] = grown
        active = active[changed]
    return strong


def edge_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 grey images [N, 1, H, W] -> uint8 drawings [N, 1, H, W]: black edges on white, like the
    edges2shoes data of the Pix2Pix paper."""
    out = []
    for chunk in images.split(4096):
        edges = canny_edges(chunk)
        out.append(torch.where(edges, torch.zeros_like(chunk), torch.full_like(chunk, 255)))
    return torch.cat(out) if out else images.clone()
