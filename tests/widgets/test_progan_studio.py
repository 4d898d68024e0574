"""A ProGAN checkpoint in the studio: it works in Z (no W page, no mixing), the truncation
threshold resamples z, classes pick what it draws, and a checkpoint exported mid-growth shows
the image of its level (blocks of 2x2 at 8 px of 16). The monitor plots the growth scalars."""
import numpy as np
import pytest
import torch

from conftest import CLASS_NAMES, TIMEOUT_MS, tiny_config, wait_shown
from trainer.checkpoint import export_generator
from trainer.config import ModelConfig
from trainer.models import build_generator


def export_progan(path, lod: float):
    cfg = ModelConfig(arch="progan", z_dim=16, c_dim=3, img_resolution=16, img_channels=1, channel_base=128,
                      channel_max=16)
    torch.manual_seed(0)
    G = build_generator(cfg)
    G.set_lod(lod)
    export_generator(G, path, cfg, 40, 1.28, {"name": "tiny", "resolution": 16, "channels": 1,
                                              "class_names": CLASS_NAMES, "size": 10})
    return path


@pytest.mark.slow
def test_progan_opens_in_z_with_the_threshold_and_its_level(qtbot, make_window, tmp_path):
    window = make_window(export_progan(tmp_path / "progan.safetensors", lod=1.0))
    panel = window.truncation_panel
    assert window.info.arch == "progan" and not window.info.has_w
    assert panel.pages.currentIndex() == 1 and not window.mixing_panel.isEnabled()
    assert window.latent_panel.class_combo.isEnabled()
    first = window.image_view.image.copy()                    # [16, 16, 3] uint8
    assert first.shape[:2] == (16, 16)
    assert np.array_equal(first, first[::2, ::2].repeat(2, axis=0).repeat(2, axis=1))   # 8x8, upsampled
    panel.threshold_slider.setValue(40)
    assert window.workspace.z_threshold == 0.4
    truncated = wait_shown(qtbot, window)
    assert not np.array_equal(truncated, first) and np.abs(window.last_result.z).max() <= 0.4
    window.latent_panel.class_combo.setCurrentIndex(2)
    assert not np.array_equal(wait_shown(qtbot, window), truncated)


def test_growth_scalars_have_plots_of_their_own():
    from ganstudio.engine.plot_layout import PLOTS, plot_for
    assert plot_for("progress/resolution", False) == "resolution"
    assert plot_for("progress/alpha", False) == "fade"
    assert {"resolution", "fade"} <= {spec.key for spec in PLOTS}


@pytest.mark.slow
def test_monitor_plots_the_growth_of_a_real_run(qtbot, make_window, tmp_path):
    from trainer.training.loop import train
    cfg = tiny_config("progan", train={"threads": 1, "grow_kimg": 0.008, "fade_kimg": 0.008})
    run_dir = train(cfg, outdir=tmp_path / "runs", progress=False).run_dir
    window = make_window()
    window.tabs.setCurrentWidget(window.monitor)
    run = window.monitor.add_run(run_dir)
    qtbot.waitUntil(lambda: not window.monitor.is_loading() and run.last_step > 0, timeout=TIMEOUT_MS)
    plots = window.monitor.plots
    qtbot.waitUntil(lambda: {"resolution", "fade"} <= set(plots.shown_plots()), timeout=TIMEOUT_MS)
    plots.set_smoothing(0.0)   # the resolution's steps as logged
    _, resolution = plots.curve_data(run, "progress/resolution")
    assert resolution.tolist() == [4, 4, 8, 8]   # 4x4 for a phase of 16 images, then 8x8
    shown = plots.shown_plots()   # the growth beside the losses, before the penalties and rates
    assert shown.index("fade") == shown.index("resolution") + 1
    assert shown.index("resolution") < min(shown.index(key) for key in ("penalties", "lr", "speed") if key in shown)
