"""The Blend dock in the real window (pytest-qt, offscreen): File > Blend with… a second tiny
checkpoint of the open one's architecture; the swap box and the blend-amount slider re-render
live with weights the worker blends in place, and the image on screen is what the saved blend
checkpoint draws; another architecture is refused with a dialog; stopping gives back the open
model's own image."""
import numpy as np
import pytest

from ganstudio.engine.from_workspace import request_from_workspace
from ganstudio.engine.renderer import Renderer

from conftest import TIMEOUT_MS, export_tiny, wait_shown

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]   # tests/conftest.py


def settle(qtbot, window) -> np.ndarray:
    """The image on screen once a render newer than the last one shown has arrived."""
    c = window.controller
    qtbot.waitUntil(lambda: c.requested_id > c.shown_id or not window.is_busy(), timeout=TIMEOUT_MS)
    return wait_shown(qtbot, window)


@pytest.fixture
def pair(tmp_path):
    """Two compact StyleGAN2s (the demo's kind) at 32 px, different seeds."""
    return [export_tiny(tmp_path / f"{side}.safetensors", resolution=32, seed=seed)
            for side, seed in (("a", 1), ("b", 2))]


def test_the_blend_slider_renders_live_and_matches_the_saved_blend(qtbot, make_window, pair, tmp_path):
    window = make_window(pair[0])
    panel, blending = window.blend_panel, window.controller.blending
    image_a = wait_shown(qtbot, window)
    assert not window.blend_dock.isVisible()
    panel.open_partner(pair[1])
    qtbot.waitUntil(lambda: blending.active, timeout=TIMEOUT_MS)
    swapped = settle(qtbot, window)
    assert window.blend_dock.isVisible() and "b.safetensors" in panel.models.text()
    assert [panel.swap_box.itemData(i) for i in range(panel.swap_box.count())] == [0, 4, 8, 16]
    assert panel.swap_box.currentData() == 16 and panel.mix_slider.value() == 100   # the swap at 16 px
    assert np.abs(swapped.astype(int) - image_a).max() > 20   # B's 32 px layers show

    panel.swap_box.setCurrentIndex(panel.swap_box.findData(8))
    moved = []
    for value in (80, 60, 40):   # a drag: each step re-renders, the newest wins
        panel.mix_slider.setValue(value)
        moved.append(settle(qtbot, window))
    assert blending.spec.swap_at == 8 and blending.spec.mix == 0.4 and panel.mix_label.text() == "40%"
    assert all(np.abs(a.astype(int) - b).max() > 0 for a, b in zip([swapped] + moved, moved))

    panel.save_blend(tmp_path / "blend.safetensors")
    qtbot.waitUntil(lambda: panel.last_saved is not None, timeout=TIMEOUT_MS)
    assert panel.last_saved["mix"] == 0.4 and panel.last_saved["b"]["path"].endswith("b.safetensors")
    renderer = Renderer("cpu")   # the saved checkpoint, opened from disk, draws the image on screen
    info = renderer.load(tmp_path / "blend.safetensors")
    saved = renderer.render(request_from_workspace(window.workspace, info, 1)).image
    assert np.array_equal(saved, moved[-1])

    panel.stop_button.click()
    back = settle(qtbot, window)
    assert not window.blend_dock.isVisible() and not blending.active
    assert np.array_equal(back, image_a)


def test_a_model_of_another_architecture_is_refused_with_a_dialog(qtbot, make_window, pair, tmp_path):
    window = make_window(pair[0])
    image_a = wait_shown(qtbot, window)
    other = export_tiny(tmp_path / "exact.safetensors", arch="stylegan2", resolution=32)
    window.blend_panel.open_partner(other)
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=TIMEOUT_MS)
    assert "A is stylegan2-compact and B is stylegan2" in window.error_box.text()
    assert window.error_box.windowTitle() == "Cannot blend"
    assert not window.controller.blending.active and not window.blend_dock.isVisible()
    assert np.array_equal(wait_shown(qtbot, window), image_a)


def test_opening_another_model_ends_the_blend(qtbot, make_window, pair, tmp_path):
    window = make_window(pair[0])
    window.blend_panel.open_partner(pair[1])
    qtbot.waitUntil(lambda: window.controller.blending.active, timeout=TIMEOUT_MS)
    window.open_checkpoint(export_tiny(tmp_path / "c.safetensors", resolution=16, seed=3))
    qtbot.waitUntil(lambda: window.info is not None and window.info.img_resolution == 16, timeout=TIMEOUT_MS)
    wait_shown(qtbot, window)
    assert not window.controller.blending.active and not window.blend_dock.isVisible()
    assert window.controller.backend.renderer.partner is None


def test_the_mixing_grid_follows_the_blend(pair, tmp_path):
    """Engine level (no window): the grid's header images are cached per blend, so a new blend
    amount redraws them too, and the grid on screen is the saved blend's grid."""
    from ganstudio.engine.controller import RenderController
    from ganstudio.engine.workspace import Workspace
    controller = RenderController.inline(Workspace(), Renderer("cpu"))
    controller.open(pair[0])
    controller.set_grid_visible(True)
    grid_a = controller.last_grid.image
    controller.blending.open(pair[1])
    controller.blending.set(swap_at=8, mix=0.5)
    blended = controller.last_grid.image
    assert np.abs(blended.astype(int) - grid_a).max() > 20
    controller.blending.save(tmp_path / "blend.safetensors")
    saved = RenderController.inline(Workspace(), Renderer("cpu"))
    saved.open(tmp_path / "blend.safetensors")
    saved.set_grid_visible(True)
    assert np.array_equal(saved.last_grid.image, blended)
    controller.blending.stop()
    assert np.array_equal(controller.last_grid.image, grid_a)
