"""Turning generator outputs into pictures: uint8 conversion, grids, scatter plots, PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from trainer.files import atomic_write


def to_uint8_nchw(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float [N, C, H, W] -> uint8 [N, C, H, W] on the same device."""
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[NCHW] in [-1, 1] -> uint8 [N, H, W, C] on the host (C = 3 for grey input, so every image is
    RGB). Converted on the device, then copied to the host once."""
    x = to_uint8_nchw(images)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def make_grid(images: np.ndarray, columns: int, pad: int = 0, pad_value: int = 0) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [rows*H, columns*W, C] image, filled row by row, with `pad`
    pixels of `pad_value` between cells."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = images[i]
    return grid


def scatter_image(points: np.ndarray, reference: np.ndarray | None = None, size: int = 384,
                  extent: float | None = None) -> np.ndarray:
    """2-D points -> uint8 [size, size, 3] plot: reference points grey, points orange."""
    both = points if reference is None else np.concatenate([points, reference])
    finite = both[np.isfinite(both).all(axis=1)]
    lim = extent or (float(np.abs(finite).max()) * 1.1 if len(finite) else 1.0)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.line([(size // 2, 0), (size // 2, size)], fill=(235, 235, 235))
    draw.line([(0, size // 2), (size, size // 2)], fill=(235, 235, 235))

    def plot(pts, colour, r):
        for x, y in pts[np.isfinite(pts).all(axis=1)]:
            px, py = (x / lim + 1) * size / 2, (1 - y / lim) * size / 2
            draw.ellipse([px - r, py - r, px + r, py + r], fill=colour)

    if reference is not None:
        plot(reference, (170, 170, 170), 1.5)
    plot(points, (230, 110, 20), 1.5)
    return np.asarray(img)


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # suffix -> Pillow format


def save_png(path, image: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def save_image(path, image: np.ndarray) -> None:
    """uint8 [H, W, 3] -> a file in the format its suffix names (IMAGE_FORMATS); ValueError for
    another suffix. JPEG at quality 95, since these are small images that blur easily."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise ValueError(f"cannot write {Path(path).name}: use one of {', '.join(IMAGE_FORMATS)}")
    options = {"quality": 95} if IMAGE_FORMATS[suffix] in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format=IMAGE_FORMATS[suffix], **options))
