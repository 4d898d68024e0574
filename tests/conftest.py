import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the studio's render-settings probe times the model after it opens and may pick bf16 or
# channels-last: off in tests that compare pixels byte for byte (its own tests turn it on)
os.environ.setdefault("GANSTUDIO_RENDER_PROBE", "0")

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
        window.deleteLater()
    # Delete them now, not during a later test's event loop, where a window of this test went
    # half-destroyed while the next one painted (a native crash in QGraphicsView::paintEvent).
    from PySide6.QtCore import QCoreApplication, QEvent
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    import gc
    gc.collect()


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


# ---- one torch thread ----
@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (as NVlabs' references were computed, so sums run in the same
    order; and on a shared 2-core machine two threads spin against other processes and run many
    times slower than one); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- NVlabs pickles with references made by NVlabs' code (../shared; never copied here) ----
NVLABS_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "nvlabs"


needs_nvlabs_fixtures = pytest.mark.skipif(not (NVLABS_FIXTURES / "sg3-t-cond10-32.pkl").is_file(),
                                           reason=f"NVlabs fixtures not found at {NVLABS_FIXTURES} (../shared is absent)")


def nvlabs_reference(name: str) -> dict:
    with np.load(NVLABS_FIXTURES / f"{name}.ref.npz", allow_pickle=False) as ref:
        return {k: ref[k] for k in ref.files}


def max_diff(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape
    return float((a.detach().float() - torch.from_numpy(b)).abs().max())


@pytest.fixture(scope="module")
def sg3_fixtures(tmp_path_factory):
    """The conditional StyleGAN3-T and the StyleGAN3-R fixture, imported as ordinary checkpoints."""
    if not (NVLABS_FIXTURES / "sg3-t-cond10-32.pkl").is_file():
        pytest.skip(f"NVlabs StyleGAN3 fixtures not found at {NVLABS_FIXTURES}")
    from trainer.importers import import_network
    folder = tmp_path_factory.mktemp("sg3")
    for name in ("sg3-t-cond10-32", "sg3-r-32"):
        import_network(NVLABS_FIXTURES / f"{name}.pkl", folder / f"{name}.safetensors")
    return folder


# ---- runs ----
def assert_resume_reproduces(full, half, kimg: float) -> dict:
    """Resume the `half` run to `kimg`: its G, D and G_ema must equal the uninterrupted `full`
    run's bit for bit. -> the full run's state."""
    from trainer.checkpoint import load_state
    from trainer.training.loop import train
    assert half.step < full.step
    resumed = train(run_dir=half.run_dir, resume=True, kimg=kimg, progress=False)
    assert resumed.step == full.step and resumed.state == "finished"
    a = load_state(full.run_dir / "state" / "last.pt")
    b = load_state(half.run_dir / "state" / "last.pt")
    for net in ("G", "D", "G_ema"):
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), f"{net}.{key} differs after resume"
    return a


def write_scalars(writer, step, **values):
    """A scalars line as the trainer writes it (loss_D -> loss/D)."""
    writer.write("scalars", step, step * 0.064, values={k.replace("_", "/"): v for k, v in values.items()})


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "00000-test-run"
    d.mkdir()
    return d
