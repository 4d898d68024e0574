"""GAN Studio's trainer: datasets, the GAN family, training with EMA, checkpoints, metrics.

Public API: `load_generator(path, device)`, `ARCHS`, `PRESETS`, `RunConfig`, `train`.
This package never imports Qt or ganstudio. Its names load on first use, so a light module
(`trainer.files`, `trainer.events`) can be imported without PyTorch's model code.
"""
from __future__ import annotations

import importlib

_PUBLIC = {"load_generator": "checkpoint", "CheckpointError": "checkpoint", "ConfigError": "config",
           "DataConfig": "config", "ModelConfig": "config", "RunConfig": "config", "TrainConfig": "config",
           "DataError": "data.datasets", "load_dataset": "data.datasets", "ARCHS": "models", "build_discriminator": "models",
           "build_generator": "models", "PRESETS": "training.presets", "train": "training.loop"}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value   # the next lookup is a plain attribute
    return value


def __dir__():
    return __all__
