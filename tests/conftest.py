import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch

from trainer.checkpoint import export_generator
from trainer.config import ModelConfig, RunConfig, merge
from trainer.models import build_generator, generator_config
from trainer.training.presets import PRESETS

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_MODEL = {"z_dim": 16, "w_dim": 16, "width": 8, "max_width": 16, "channel_base": 128, "channel_max": 16,
              "mapping_layers": 2, "hidden": 32, "depth": 2}


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


# ---- tiny checkpoints ----
CLASS_NAMES = ["tee", "trouser", "pullover"]


def export_tiny(path, arch="stylegan2-compact", c_dim=3, resolution=16, seed=0, step=0):
    """A real checkpoint of a tiny random generator (a few thousand parameters), exported the way
    the trainer exports them. The default is the compact StyleGAN2 the studio tests were written
    on; "stylegan2" and "stylegan3-t" give the NVlabs-exact models at tiny widths."""
    cfg = ModelConfig(arch=arch, z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=0 if arch == "mlp" else resolution,
                      img_channels=2 if arch == "mlp" else 1, width=8, max_width=16, channel_base=128,
                      channel_max=16, mapping_layers=2, hidden=32, depth=2)
    torch.manual_seed(seed)
    G = build_generator(cfg)
    if arch.startswith("stylegan"):  # a trained model's w_avg is not zero; give it one so truncation is visible
        with torch.no_grad():
            G.mapping.w_avg.copy_(torch.randn(cfg.w_dim))
            for layer in G.synthesis.modules():
                if hasattr(layer, "noise_strength"):
                    layer.noise_strength.fill_(0.5)
    dataset = {"name": "tiny", "resolution": resolution, "channels": 1,
               "class_names": CLASS_NAMES[:c_dim], "size": 10}
    export_generator(G, path, generator_config(cfg), step, step / 1000, dataset)
    return path


# ---- the studio window (pytest-qt) ----
TIMEOUT_MS = 30000


@pytest.fixture
def make_window(qtbot, tmp_path):
    windows = []

    def make(path=None, **kwargs):
        from PySide6.QtCore import QSettings
        settings = QSettings(str(tmp_path / f"settings{len(windows)}.ini"), QSettings.Format.IniFormat)
        from ganstudio.widgets.main_window import MainWindow
        window = MainWindow(device="cpu", settings=settings, **kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        if path is not None:
            window.open_checkpoint(path)
            wait_shown(qtbot, window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def ckpt(tmp_path):
    return export_tiny(tmp_path / "tiny.safetensors")


def wait_shown(qtbot, window):
    """Wait until the newest request's image is on screen and the worker has nothing left."""
    c = window.controller
    qtbot.waitUntil(lambda: c.info is not None and c.last_result is not None
                    and c.shown_id == c.requested_id and not window.is_busy(), timeout=TIMEOUT_MS)
    return window.image_view.image.copy()


def wait_grid(qtbot, window):
    c = window.controller
    qtbot.waitUntil(lambda: c.last_grid is not None and not c.grid_dirty
                    and c.shown_grid_id == c.requested_grid_id and not window.is_busy(), timeout=TIMEOUT_MS)
    return window.last_grid


# ---- files ----
def write_beep(path, seconds=2.0, silent_until=1.0, rate=22050):
    """A real WAV file: silence, then a 440 Hz tone."""
    import wave
    t = np.arange(int(rate * seconds)) / rate
    signal = np.where(t >= silent_until, 0.6 * np.sin(2 * np.pi * 440 * t), 0.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((signal * 32767).astype(np.int16).tobytes())
    return path
