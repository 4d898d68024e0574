"""Applying an image-to-image model to one picture: a file, a Photo or pixels in, the fitted
input, its translation and (CycleGAN) the round trip out, as uint8 arrays.

The CLI's `translate` command and the studio's Translate panel both call `translate_pixels`, so
a picture gives the same output in both. Files are opened by `trainer.inversion.photo`, with its checks and
messages (not an image, truncated, too small, too large; notes for animated, transparent, 16-bit).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from trainer.images import to_uint8
from trainer.inversion.photo import Photo, fit_photo, open_photo, photo_from_pixels


@dataclass(frozen=True, eq=False)
class Translation:
    input: np.ndarray                 # uint8 [R, R, 3]: the picture as the model saw it (grey shown as RGB)
    output: np.ndarray                # uint8 [R, R, 3]: its translation
    round_trip: np.ndarray | None     # uint8 [R, R, 3]: translated there and back (CycleGAN), else None
    direction: str                    # "AtoB" or "BtoA"
    notes: tuple[str, ...] = ()       # what opening and fitting the picture changed
    milliseconds: float = 0.0         # time spent in the generator(s)


def is_translation_model(G) -> bool:
    return bool(getattr(G, "translates", False))


def directions(G) -> tuple[str, ...]:
    """The directions a model translates: both for CycleGAN, its own for Pix2Pix."""
    return ("AtoB", "BtoA") if hasattr(G, "round_trip") else (G.direction,)


def input_channels(G, direction: str | None = None) -> int:
    if hasattr(G, "generator"):
        return G.generator(direction).in_channels
    return G.in_channels


def translate_pixels(G,
                     picture,                     # a file path, a trainer.inversion.photo.Photo or uint8 pixels [H, W(, C)]
                     direction: str | None = None,  # None: the model's own direction
                     round_trip: bool = False,    # CycleGAN: also translate back
                     ) -> Translation:
    """Fit the picture to the model (centre square, resolution, channels) and translate it.
    Raises trainer.inversion.photo.PhotoError for a picture that cannot be used, ValueError for a direction
    the model does not translate."""
    if not is_translation_model(G):
        raise ValueError("this model does not translate images (it is not Pix2Pix or CycleGAN)")
    direction = direction or G.direction
    if direction not in directions(G):
        raise ValueError(f"this model translates {' and '.join(directions(G))} only, not {direction}")
    if isinstance(picture, Photo):
        photo = picture
    elif isinstance(picture, np.ndarray):
        photo = photo_from_pixels(picture)
    else:
        photo = open_photo(picture)
    pixels, _, notes = fit_photo(photo, G.img_resolution, input_channels(G, direction))
    device = next(G.parameters()).device
    start = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].to(device, torch.float32) / 127.5 - 1   # [1, C, R, R]
        output = G.translate(x, direction)
        back = G.round_trip(x, direction) if round_trip and hasattr(G, "round_trip") else None
        shown = to_uint8(x)[0]
        out = to_uint8(output)[0]
        trip = to_uint8(back)[0] if back is not None else None
    ms = (time.perf_counter() - start) * 1000
    return Translation(shown, out, trip, direction, tuple(photo.notes) + tuple(notes), ms)
