"""The Translate panel: a Pix2Pix or CycleGAN checkpoint opens into it, the output changes with
the input, held-out inputs can be picked, CycleGAN goes both ways with the round trip, bad
pictures get the usual message, and the latent panels step aside (and come back)."""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage

from ganstudio.engine.controller import RenderController
from ganstudio.engine.renderer import Renderer, RenderRequest
from ganstudio.engine.translation import TranslationRequest, held_out_inputs, run_translation
from ganstudio.engine.workspace import Workspace
from ganstudio.widgets.main_window import MainWindow
from ganstudio.widgets.translate_panel import TranslatePanel
from trainer.training.loop import train
from trainer.training.presets import preset_config

TIMEOUT_MS = 60000
pytestmark = pytest.mark.slow   # every test here trains (the module's runs, or the Monitor's form)

TINY = {"data": {"resolution": 16, "max_images": 16}, "model": {"g_width": 4, "d_width": 4, "resnet_blocks": 1},
        "train": {"batch": 4, "kimg": 0.016, "threads": 1, "metrics": "", "grid_size": 2, "log_every": 1}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    return {name: train(preset_config(name, **TINY), outdir=root, progress=False).run_dir
            for name in ("pix2pix", "cyclegan")}


def picture(value: int, size=(20, 24)) -> np.ndarray:
    pixels = np.full((size[1], size[0], 3), 255, np.uint8)
    pixels[4:4 + value // 16, 3:15] = 0          # a black bar whose height depends on value
    return pixels


def test_engine_translates_on_the_renderer_and_reads_held_out_inputs(runs):
    renderer = Renderer(device="cpu")
    info = renderer.load(runs["pix2pix"])
    assert info.translates and info.directions == ("AtoB",) and info.num_ws == 0 and info.domains == ("edges", "fashion")
    view = run_translation(renderer, TranslationRequest(1, info.generation, picture(100), "AtoB"))
    assert view.input.shape == view.output.shape == (16, 16, 3) and view.strip().shape == (16, 33, 3)
    held = held_out_inputs(renderer, "AtoB", 4)
    assert held.images.shape == (4, 16, 16, 3) and "test" in held.source
    assert renderer.render(RenderRequest(2, info.generation)).error   # latent renders are refused, not crashed
    with pytest.raises(ValueError, match="translates AtoB only"):
        run_translation(renderer, TranslationRequest(3, info.generation, picture(100), "BtoA"))


def test_panel_output_changes_when_the_input_changes(qtbot, runs):
    renderer = Renderer(device="cpu")
    controller = RenderController.inline(Workspace(), renderer)
    panel = TranslatePanel(controller.workspace, controller)
    qtbot.addWidget(panel)
    controller.open(runs["pix2pix"])
    panel.set_model(controller.info)
    assert panel.view is not None and panel.picture_name == "held-out input 1"   # shown at once
    first = panel.view.output.copy()
    with qtbot.waitSignal(panel.translated):
        panel.set_pixels(picture(200), "bars")
    assert not np.array_equal(panel.view.output, first)
    assert np.array_equal(panel.output_view.image, panel.view.output)
    panel.resize(500, 700)
    panel.show()
    assert drawn_spread(panel.output_view) > 5 and drawn_spread(panel.held_out_view) > 5   # painted, not blank
    before = panel.view
    assert not panel.set_pixels(np.zeros((4, 4, 3), np.uint8))          # too small: refused, nothing changes
    assert "at least 8 pixels" in panel.last_error and panel.view is before


def drawn_spread(view) -> float:
    """Standard deviation of the grey levels the view paints: 0 for an empty view."""
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    bits = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return float(bits[:, :image.width()].std())


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))
    w = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def wait_translated(qtbot, window, previous=None):
    panel = window.translate_panel
    qtbot.waitUntil(lambda: panel.view is not None and panel.view is not previous and not window.is_busy(),
                    timeout=TIMEOUT_MS)
    return panel.view


def test_window_opens_pix2pix_into_the_translate_panel(qtbot, window, runs, tmp_path):
    window.open_checkpoint(runs["pix2pix"])
    view = wait_translated(qtbot, window)
    panels = window.panels
    assert panels.currentWidget() is window.translate_panel
    assert not panels.isTabEnabled(panels.indexOf(window.latent_panel))
    assert not panels.isTabVisible(panels.indexOf(window.latent_panel))   # hidden, so the tab bar fits
    assert panels.isTabVisible(panels.indexOf(window.translate_panel))
    assert np.array_equal(window.image_view.image, view.strip())       # the big view shows input | output
    assert "AtoB" in window.model_label.text()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    window.open_checkpoint(tmp_path / "broken.png")                     # a photo file: goes to the panel
    assert window.error_box is not None and "broken.png" in window.error_box.text()
    assert window.translate_panel.view is view
    from PIL import Image
    Image.fromarray(picture(180, (64, 40))).save(tmp_path / "bars.png")
    window.open_checkpoint(tmp_path / "bars.png")
    assert not np.array_equal(wait_translated(qtbot, window, view).output, view.output)


def test_window_cyclegan_both_ways_with_round_trip_then_back_to_a_latent_model(qtbot, window, runs, tmp_path):
    window.open_checkpoint(runs["cyclegan"])
    view = wait_translated(qtbot, window)
    panel = window.translate_panel
    assert view.round_trip is not None and panel.round_trip_view.isVisibleTo(panel)
    assert panel.direction.count() == 2 and "sneakers" in panel.direction.itemText(0)
    panel.direction.setCurrentIndex(1)
    back = wait_translated(qtbot, window, view)
    qtbot.waitUntil(lambda: not window.is_busy(), timeout=TIMEOUT_MS)
    assert panel.view.direction == "BtoA" and back.round_trip.shape == (16, 16, 3)
    from conftest import export_tiny
    window.open_checkpoint(export_tiny(tmp_path / "tiny.safetensors", resolution=16))
    qtbot.waitUntil(lambda: window.last_result is not None and not window.is_busy(), timeout=TIMEOUT_MS)
    assert window.panels.isTabEnabled(window.panels.indexOf(window.latent_panel))
    assert not window.panels.isTabVisible(window.panels.indexOf(panel))   # no Translate tab for a latent model
    tab_bar = window.panels.tabBar()
    shown = [i for i in range(tab_bar.count()) if tab_bar.isTabVisible(i)]
    assert sum(tab_bar.tabSizeHint(i).width() for i in shown) <= window.panels.width()   # every tab in sight
    assert window.panels.currentWidget() is not panel and not window.translate_panel.open_button.isEnabled()


def test_monitor_reads_a_cyclegan_run_with_its_own_losses(runs):
    from ganstudio.engine.runlog.runlog import RunLog
    log = RunLog(runs["cyclegan"])
    log.poll(None)
    assert {"loss/adversarial", "loss/cycle_A", "loss/cycle_B", "loss/identity", "loss/D"} <= set(log.series_names())
    assert log.state == "finished" and log.checkpoint_files()


def test_monitor_new_run_form_starts_a_translation_run(tmp_path):
    from ganstudio.widgets.monitor_control import NewRunRequest
    from trainer.cli import main
    request = NewRunRequest(preset="cyclegan", dataset="sneakers2boots", resolution=16, kimg=0.008,
                            outdir=str(tmp_path), metrics="cycle", threads=1,
                            extra="--max-images 8 --g-width 4 --d-width 4 --resnet-blocks 1 --metrics-images 4")
    assert main(request.arguments()) == 0      # the arguments the Monitor's form passes to the trainer
    assert main(request.arguments() + ["--metrics-kimg", "0.004"]) == 0   # in-training metrics, as for a GAN
    from trainer.events import read_events
    second = sorted(tmp_path.iterdir())[-1]
    assert sorted({e["step"] for e in read_events(second / "events.jsonl") if e["kind"] == "metric"}) == [4, 8]
