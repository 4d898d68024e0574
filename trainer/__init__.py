"""GAN Studio's trainer: datasets, the GAN family, training with EMA, checkpoints, metrics.

Public API: `load_generator(path, device)`, `ARCHS`, `PRESETS`, `RunConfig`, `train`.
This package never imports Qt or ganstudio.
"""
from .checkpoint import CheckpointError, load_generator
from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .data import DataError, load_dataset
from .models import ARCHS, build_discriminator, build_generator
from .presets import PRESETS

__all__ = ["load_generator", "CheckpointError", "ConfigError", "DataError", "RunConfig", "DataConfig",
           "ModelConfig", "TrainConfig", "ARCHS", "PRESETS", "build_generator", "build_discriminator",
           "load_dataset", "train"]


def train(*args, **kwargs):
    from .loop import train as _train
    return _train(*args, **kwargs)
