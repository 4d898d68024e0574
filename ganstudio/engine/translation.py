"""Image-to-image models in the studio, Qt-free: the work the Translate panel asks the render
worker for (the renderer describes an open Pix2Pix or CycleGAN model in its ModelInfo).

Requests and results are frozen dataclasses of plain values and numpy arrays; the generator and
its tensors stay on the worker (in the renderer). A picture is decoded and checked on the GUI
side by `trainer.inversion.photo` (the Invert panel's rules and messages); here it is fitted to the model
and translated by `trainer.translation.translate_pixels`, the CLI's own path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.files import read_json
from trainer.translation import input_channels, translate_pixels

HELD_OUT_COUNT = 16        # held-out inputs offered in the panel


@dataclass(frozen=True, eq=False)
class TranslationRequest:
    """Translate one picture with the open model."""
    request_id: int              # increases; an answer older than the one on screen is dropped
    generation: int              # ModelInfo.generation it was made for
    pixels: np.ndarray           # uint8 [H, W, 3] the picture at any size (fitted on the worker)
    direction: str               # "AtoB" or "BtoA"
    round_trip: bool = False     # CycleGAN: also translate back


@dataclass(frozen=True, eq=False)
class TranslationView:
    """What the panel shows for a request."""
    request_id: int
    input: np.ndarray                # uint8 [R, R, 3] the picture as the model saw it
    output: np.ndarray               # uint8 [R, R, 3]
    round_trip: np.ndarray | None    # uint8 [R, R, 3] or None
    direction: str
    notes: tuple[str, ...]
    milliseconds: float

    def strip(self, gap: int = 1) -> np.ndarray:
        """input | output (| round trip) side by side with a grey gap -> uint8 [R, k*R + gaps, 3]."""
        parts = [self.input, self.output] + ([self.round_trip] if self.round_trip is not None else [])
        r = self.input.shape[0]
        line = np.full((r, gap, 3), 96, np.uint8)
        pieces = []
        for i, part in enumerate(parts):
            pieces += ([line] if i else []) + [part]
        return np.concatenate(pieces, axis=1)


@dataclass(frozen=True, eq=False)
class HeldOutInputs:
    images: np.ndarray           # uint8 [N, R, R, 3] inputs of the direction asked for
    source: str                  # where they came from, for people


def run_translation(renderer, request: TranslationRequest) -> TranslationView:
    """On the worker: fit and translate the request's picture with the renderer's model."""
    G = renderer.G
    if G is None or not getattr(G, "translates", False):
        raise ValueError("no image-to-image model is open")
    if request.generation != renderer.generation:
        raise ValueError("the request was made for a model that is no longer open")
    result = translate_pixels(G, request.pixels, request.direction, request.round_trip)
    return TranslationView(request.request_id, result.input, result.output, result.round_trip, result.direction,
                           result.notes, result.milliseconds)


def held_out_inputs(renderer, direction: str, count: int = HELD_OUT_COUNT) -> HeldOutInputs:
    """On the worker: the first `count` held-out inputs of the open model's data in `direction`
    (its run's config.json names the data; built-ins are found by name). ValueError when there are none."""
    from trainer.data.datasets import DataError
    from trainer.config import RunConfig, TranslationDataConfig, is_translation_config
    from trainer.data.paired import TRANSLATION_BUILTINS, held_out_config, load_translation_data
    G = renderer.G
    if G is None or not getattr(G, "translates", False):
        raise ValueError("no image-to-image model is open")
    info = G.checkpoint_info
    data_cfg = None
    config_file = Path(info["path"]).parent.parent / "config.json"   # <run>/checkpoints/step-N.safetensors
    try:
        values = read_json(config_file)
        if is_translation_config(values):
            data_cfg = RunConfig.from_dict(values).data
    except (OSError, ValueError):
        pass
    described = info.get("dataset", {})
    name, source = str(described.get("name", "")), str(described.get("source", ""))   # source: a built-in or an absolute path
    if data_cfg is None and (source or name in TRANSLATION_BUILTINS):
        data_cfg = TranslationDataConfig(source=source or name, resolution=G.img_resolution)
    if data_cfg is None:
        raise ValueError(f"no held-out images: the checkpoint's run (config.json) is not beside it and "
                         f"'{name}' is not a built-in dataset")
    channels = input_channels(G, direction)
    data_cfg = TranslationDataConfig.from_dict(dict(data_cfg.to_dict(), resolution=G.img_resolution,
                                                    channels=channels if channels in (1, 3) else 0))
    try:
        held = load_translation_data(held_out_config(data_cfg, count), paired=not hasattr(G, "round_trip"))
    except DataError as exc:
        raise ValueError(f"no held-out images: {exc}") from None
    images = held.a if direction == "AtoB" else held.b
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    return HeldOutInputs(np.ascontiguousarray(rgb.permute(0, 2, 3, 1).numpy()),
                         f"{data_cfg.source}, held-out (test) split")
