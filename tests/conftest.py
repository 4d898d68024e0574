import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import torch

from trainer.config import RunConfig, merge
from trainer.presets import PRESETS

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_MODEL = {"z_dim": 16, "w_dim": 16, "width": 8, "max_width": 16, "mapping_layers": 2, "hidden": 32,
              "depth": 2}


def tiny_config(preset="dcgan", source="digits", resolution=16, **sections) -> RunConfig:
    """A preset shrunk to a few thousand parameters, on a few dozen real images."""
    d = merge(RunConfig().to_dict(), PRESETS[preset])
    d = merge(d, {"preset": preset,
                  "data": {"source": source, "resolution": resolution, "max_images": 256},
                  "model": TINY_MODEL,
                  "train": {"batch": 8, "kimg": 0.032, "log_every": 1, "sample_kimg": 0.016,
                            "snapshot_kimg": 0.016, "grid_size": 4}})
    for section, values in sections.items():
        d = merge(d, {section: values})
    return RunConfig.from_dict(d)


@pytest.fixture
def tiny():
    return tiny_config
