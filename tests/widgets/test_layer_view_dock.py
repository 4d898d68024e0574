"""The Layer view dock: hidden and free at start; shown, it lists every layer of the open model
(the demo, an imported StyleGAN3), draws the chosen one with every image so it follows the seed,
one channel at a time or all, and exports what it shows as PNG."""

import numpy as np
import pytest
from PIL import Image

from conftest import TIMEOUT_MS, needs_nvlabs_fixtures, wait_shown
from ganstudio.engine.layers import layer_view_image
from ganstudio.engine.demo import find_demo_checkpoint

DEMO = find_demo_checkpoint()


def show_dock(qtbot, window):
    window.layer_dock.toggleViewAction().trigger()
    panel = window.layer_dock.panel
    qtbot.waitUntil(lambda: panel.view is not None and not window.is_busy(), timeout=TIMEOUT_MS)
    wait_shown(qtbot, window)
    return panel


def names(panel):
    return [panel.layer_box.itemData(i) for i in range(panel.layer_box.count())]


@pytest.mark.slow
def test_the_dock_lists_the_demos_layers_and_follows_the_seed(make_window, qtbot, tmp_path):
    window = make_window(DEMO)
    assert window.layer_dock.isHidden() and window.controller.layer_view.request_choice() is None
    assert window.controller.last_result.layer is None   # hidden: no layer drawn
    panel = show_dock(qtbot, window)
    assert names(panel) == [layer.name for layer in window.controller.layer_view.layers]
    assert names(panel)[0] == "b4.conv1" and names(panel)[-1] == "b32.torgb" and len(names(panel)) == 11
    assert panel.view.name == names(panel)[len(names(panel)) // 2]   # a layer in the middle at first
    assert np.array_equal(panel.features_view.image, panel.view.features)
    panel.layer_box.setCurrentIndex(names(panel).index("b16.conv1"))
    qtbot.waitUntil(lambda: panel.view.name == "b16.conv1", timeout=TIMEOUT_MS)
    before = panel.features_view.image.copy()
    window.latent_panel.seed.setValue(window.workspace.seed + 1)
    wait_shown(qtbot, window)
    assert (panel.features_view.image != before).mean() > 0.3   # the channels follow the seed
    panel.mode_box.setCurrentIndex(1)
    panel.channel_box.setValue(5)
    qtbot.waitUntil(lambda: panel.view.channel == 5, timeout=TIMEOUT_MS)
    assert panel.features_view.image.shape == (16, 16, 3) and panel.spectrum_view.image.shape == (16, 16, 3)
    panel.export_png(tmp_path / "layer.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "layer.png")), layer_view_image(panel.view))
    window.layer_dock.toggleViewAction().trigger()   # hidden again: the images come without a layer
    window.latent_panel.seed.setValue(window.workspace.seed + 1)
    wait_shown(qtbot, window)
    assert window.controller.last_result.layer is None
    assert window.worker.renderer.layer_capture._handle is None


@needs_nvlabs_fixtures
@pytest.mark.slow
def test_the_dock_lists_every_layer_of_an_imported_stylegan3(make_window, qtbot, sg3_fixtures):
    window = make_window(sg3_fixtures / "sg3-r-32.safetensors")
    panel = show_dock(qtbot, window)
    synthesis_names = ["input", *window.worker.renderer.G.synthesis.layer_names]
    assert names(panel) == synthesis_names
    for name in (synthesis_names[0], synthesis_names[-1]):   # the input and the ToRGB draw too
        panel.layer_box.setCurrentIndex(names(panel).index(name))
        qtbot.waitUntil(lambda: panel.view.name == name, timeout=TIMEOUT_MS)
        assert panel.features_view.image is not None and panel.spectrum_view.image is not None
