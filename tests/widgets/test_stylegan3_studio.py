"""StyleGAN3 in the studio: an imported NVlabs StyleGAN3 opens, the Latent panel's move and rotate
sliders (and its drag pad and animation) move the picture through the model's input transform,
the workspace file keeps the settings, and models without the transform (the compact StyleGAN2, an
exact StyleGAN2 import) show no such controls. Fixtures live outside the project, in
../shared/fixtures/nvlabs; the tests that need them skip when it is absent."""
import json

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from ganstudio.engine.renderer import MixingGrid, Renderer, RenderRequest
from ganstudio.engine.workspace import Workspace, WorkspaceError
from trainer.importers import import_network
from trainer.latents import LatentState

from conftest import TIMEOUT_MS, export_tiny, wait_shown
from conftest import NVLABS_FIXTURES

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

FIXTURES = NVLABS_FIXTURES
SG3 = "sg3-t-cond10-32"      # StyleGAN3-T, 10 classes, 32 px: translation equivariant, with a contrasty picture
needs_fixtures = pytest.mark.skipif(not (FIXTURES / f"{SG3}.pkl").is_file(),
                                    reason=f"NVlabs fixtures not found at {FIXTURES} (../shared is absent)")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A StyleGAN3-T and an exact StyleGAN2 fixture, imported once as ordinary checkpoints."""
    if not (FIXTURES / f"{SG3}.pkl").is_file():
        pytest.skip(f"NVlabs fixtures not found at {FIXTURES}")
    folder = tmp_path_factory.mktemp("imported")
    paths = {name: folder / f"{name}.safetensors" for name in (SG3, "sg2ada-cond10-32")}
    for name, path in paths.items():
        import_network(FIXTURES / f"{name}.pkl", path)
    return paths


def centre(image: np.ndarray, margin: int) -> np.ndarray:
    return image[margin:-margin, margin:-margin].astype(np.float64)


def settle(qtbot, window) -> np.ndarray:
    """The image on screen once the newest request is shown (the request must be newer than the last shown)."""
    c = window.controller
    qtbot.waitUntil(lambda: c.requested_id > c.shown_id or not window.is_busy(), timeout=TIMEOUT_MS)
    return wait_shown(qtbot, window)


@needs_fixtures
@pytest.mark.slow
def test_move_and_rotate_sliders_move_a_stylegan3_picture(qtbot, make_window, imported):
    window = make_window(imported[SG3])
    panel, info = window.latent_panel, window.info
    assert info.transformable and info.num_ws == 16 and not info.has_noise
    assert panel.transform_box.isVisibleTo(window) and not panel.noise.isEnabled()
    assert len(info.layer_resolutions) == 16 and info.layer_resolutions[-1] == 32
    window.workspace.psi = 1.0
    before = settle(qtbot, window)
    assert before.shape == (32, 32, 3) and before.std() > 20  # a picture, not a flat colour

    panel.translate_x.slider.setValue(125)                    # 0.125 image widths: 4 pixels right
    assert window.workspace.translate_x == 0.125
    right = settle(qtbot, window)
    error = {k: np.abs(centre(right, 6) - centre(np.roll(before, k, axis=1), 6)).mean() for k in (4, -4, 0)}
    assert error[4] < 0.5 and error[-4] > 2 and error[0] > 2, error   # grey levels: the alias-free model's small error

    panel.translate_x.slider.setValue(0)
    panel.translate_y.box.setValue(4 / 32)                    # typed in the box: 4 pixels down
    down = settle(qtbot, window)
    assert np.abs(centre(down, 6) - centre(np.roll(before, 4, axis=0), 6)).mean() < 1.0

    panel.translate_y.slider.setValue(0)
    assert np.array_equal(settle(qtbot, window), before)      # back at the identity: the very same pixels
    panel.rotate.box.setValue(90.0)
    turned = settle(qtbot, window)   # -T is not rotation equivariant, but a counterclockwise turn is the nearer
    assert np.abs(centre(turned, 6) - centre(np.rot90(before), 6)).mean() < \
        np.abs(centre(turned, 6) - centre(np.rot90(before, -1), 6)).mean()
    panel.rotate.slider.setValue(100)                         # 10 degrees from the slider
    assert window.workspace.rotate_deg == 10.0
    assert np.abs(settle(qtbot, window).astype(float) - before).mean() > 1
    panel.reset_transform.click()
    assert (window.workspace.translate_x, window.workspace.translate_y, window.workspace.rotate_deg) == (0, 0, 0)
    assert np.array_equal(settle(qtbot, window), before)


def drag(widget, start: QPointF, end: QPointF) -> None:
    for kind, point, buttons in ((QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton),
                                 (QEvent.Type.MouseMove, end, Qt.MouseButton.LeftButton),
                                 (QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)):
        QApplication.sendEvent(widget, QMouseEvent(kind, point, widget.mapToGlobal(point), Qt.MouseButton.LeftButton,
                                                   buttons, Qt.KeyboardModifier.NoModifier))


@needs_fixtures
@pytest.mark.slow
def test_drag_pad_and_animation_drive_the_workspace(qtbot, make_window, imported):
    window = make_window(imported[SG3])
    panel, ws = window.latent_panel, window.workspace
    drag(panel.drag_pad, QPointF(10, 10), QPointF(30, 0))    # 20 px right, 10 px up
    assert (ws.translate_x, ws.translate_y) == pytest.approx((0.1, -0.05))
    assert panel.translate_x.box.value() == pytest.approx(0.1)   # the sliders follow the model
    moved = settle(qtbot, window)
    timeline = window.timeline_panel                          # a keyframe says where the picture was moved to
    window.panels.setCurrentWidget(timeline)
    qtbot.mouseClick(timeline.add_button, Qt.MouseButton.LeftButton)
    assert "move +0.10, -0.05" in timeline.keyframe_list.item(0).text()
    assert "turn" not in timeline.keyframe_list.item(0).text()

    shown = window.controller.shown_id
    panel.animation.setCurrentText("spin")
    panel.animate.setChecked(True)
    qtbot.waitUntil(lambda: ws.rotate_deg > 1.0 and window.controller.shown_id > shown + 1, timeout=TIMEOUT_MS)
    panel.animate.setChecked(False)
    angle = ws.rotate_deg
    spun = settle(qtbot, window)
    assert not np.array_equal(spun, moved) and panel.rotate.box.value() == pytest.approx(angle, abs=0.05)
    qtbot.wait(200)
    assert ws.rotate_deg == angle                             # stopped means stopped
    qtbot.mouseClick(timeline.add_button, Qt.MouseButton.LeftButton)
    assert f"turn {angle:+.0f}°" in timeline.keyframe_list.item(1).text()

    panel.animation.setCurrentText("circle")
    panel.animate.setChecked(True)
    qtbot.waitUntil(lambda: abs(ws.translate_y - (-0.05)) > 0.005, timeout=TIMEOUT_MS)
    panel.animate.setChecked(False)
    assert abs(ws.translate_x - 0.1) <= 0.2 and abs(ws.translate_y + 0.05) <= 0.1   # round a 0.1-wide circle
    settle(qtbot, window)


@needs_fixtures
@pytest.mark.slow
def test_models_without_the_transform_show_no_move_controls(qtbot, make_window, imported, tmp_path):
    window = make_window(export_tiny(tmp_path / "compact.safetensors"))
    panel = window.latent_panel
    assert not window.info.transformable and not panel.transform_box.isVisibleTo(window)
    assert panel.noise.isEnabled()                             # the compact StyleGAN2 takes noise
    window.workspace.rotate_deg = 30.0                         # kept (a StyleGAN3 workspace), but ignored
    before = wait_shown(qtbot, window)
    window.workspace.seed = 1
    window.workspace.seed = 0
    assert np.array_equal(settle(qtbot, window), before)
    window.open_checkpoint(imported["sg2ada-cond10-32"])      # NVlabs' exact StyleGAN2
    image = wait_shown(qtbot, window)
    assert image.shape == (32, 32, 3) and window.info.num_ws == 8
    assert not panel.transform_box.isVisibleTo(window) and panel.noise.isEnabled()
    window.open_checkpoint(imported[SG3])
    wait_shown(qtbot, window)
    assert panel.transform_box.isVisibleTo(window) and panel.rotate.box.value() == 30.0


@needs_fixtures
@pytest.mark.slow
def test_renderer_draws_stylegan3_grids_and_restores_the_transform(imported):
    """Mixing by layer on a 16-ws StyleGAN3; every image of a request takes its transform, and the
    model's own transform is back in place after each render."""
    renderer = Renderer("cpu")
    info = renderer.load(imported[SG3])
    plain = LatentState(seed=2, mix_mask=(False,) * 8 + (True,) * 8)
    turned = plain.replace(rotate_deg=45.0, translate_x=0.1)
    grid = MixingGrid((0, 1), (5,))
    results = [renderer.render(RenderRequest(i, info.generation, s, grid=grid)) for i, s in enumerate((plain, turned), 1)]
    assert not any(r.error for r in results)
    assert results[0].cell_ws.shape == (2, 1, 16, info.w_dim) and results[0].image.shape == (3 * 33 - 1, 2 * 33 - 1, 3)
    assert not np.array_equal(results[0].image, results[1].image)
    one = renderer.render(RenderRequest(3, info.generation, turned))
    again = renderer.render(RenderRequest(4, info.generation, plain))
    assert not np.array_equal(one.image, again.image)
    assert np.array_equal(renderer.G.synthesis.input.transform.cpu().numpy(), np.eye(3, dtype=np.float32))
    frames = renderer.render(RenderRequest(5, info.generation, frames=(plain, turned, plain)))
    assert np.array_equal(frames.frames[0], frames.frames[2]) and np.array_equal(frames.frames[1], one.image)


def test_workspace_file_keeps_the_transform_and_checks_it(tmp_path):
    ws = Workspace(checkpoint="sg3.safetensors", translate_x=0.1, translate_y=-0.05, rotate_deg=370.0)
    ws.save(tmp_path / "a.json")
    again = Workspace.load(tmp_path / "a.json")
    assert (again.translate_x, again.translate_y, again.rotate_deg) == (0.1, -0.05, 370.0)
    d = json.loads((tmp_path / "a.json").read_text())
    for name in ("translate_x", "translate_y", "rotate_deg"):
        del d[name]                                            # a file from before StyleGAN3: the identity
    old = Workspace.from_dict(d)
    assert (old.translate_x, old.translate_y, old.rotate_deg) == (0.0, 0.0, 0.0)
    for name, bad in (("translate_x", float("nan")), ("translate_y", 11), ("rotate_deg", "90"), ("rotate_deg", 1e6)):
        with pytest.raises(WorkspaceError, match=name):
            Workspace.from_dict({**d, name: bad})
