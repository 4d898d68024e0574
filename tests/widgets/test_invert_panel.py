"""The Invert panel in the real window (offscreen, pytest-qt): drop a photo, run a short inversion
on the worker, the image on screen becomes the reconstruction, a ψ change moves it, Cancel keeps
the best latent, PTI opens the tuned model, bad photos get a dialog, the workspace reopens."""
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent

from ganstudio.engine.workspace import Workspace
from ganstudio.widgets.main_window import MainWindow
from conftest import export_tiny
from trainer.files import read_safetensors_metadata

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

TIMEOUT_MS = 60000


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))   # inversions go to the cache folder
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(device="cpu", settings=settings)
    qtbot.addWidget(w)
    w.show()
    w.open_checkpoint(export_tiny(tmp_path / "tiny.safetensors", resolution=16))
    wait_shown(qtbot, w)
    yield w
    w.close()


def wait_shown(qtbot, window):
    qtbot.waitUntil(lambda: window.info is not None and window.last_result is not None
                    and window.controller.shown_id == window.controller.requested_id and not window.is_busy(), timeout=TIMEOUT_MS)
    return window.image_view.image.copy()


def photo(tmp_path, name="photo.png", size=(48, 40)):
    rng = np.random.RandomState(3)
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[8:32, 12:36] = (230, 230, 230)                     # a bright square on black, and some texture
    pixels = np.clip(pixels.astype(int) + rng.randint(0, 30, pixels.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / name)
    return tmp_path / name


def drop(window, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


def test_drop_a_photo_invert_it_then_edit_it(qtbot, window, tmp_path):
    panel = window.invert_panel
    seed_image = window.image_view.image.copy()
    drop(window, photo(tmp_path))
    assert window.panels.currentWidget() is panel and panel.target is not None
    assert panel.target.shape == (16, 16, 1) and panel.crop_side.value() == 40   # the centre square
    assert panel.target_view.image.shape == (16, 16, 3)
    previews = []
    panel.preview_shown.connect(previews.append)
    panel.steps.setValue(30)
    assert panel.run()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=TIMEOUT_MS)
    outcome = panel.outcome
    assert outcome is not None and not outcome.cancelled and outcome.steps_done == 30
    assert len(previews) == 3 and previews[-1].image.shape == (16, 16, 3)          # every 10 steps
    shown = wait_shown(qtbot, window)
    assert np.array_equal(shown, outcome.reconstruction)       # the image on screen is the reconstruction
    assert not np.array_equal(shown, seed_image)
    ws = window.workspace
    assert ws.psi == 1.0 and np.array_equal(ws.base_ws, outcome.ws) and ws.inversion_path == outcome.npz_path
    assert ws.photo_path == str((tmp_path / "photo.png").resolve())
    window.truncation_panel.psi_box.setValue(0.5)              # an edit: ψ moves the photo toward the mean
    edited = wait_shown(qtbot, window)
    assert not np.array_equal(edited, shown)

    window.save_workspace(tmp_path / "look.json")              # the workspace reopens exactly
    other = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "o.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(other)
    other.open_checkpoint(tmp_path / "look.json")
    assert np.array_equal(wait_shown(qtbot, other), edited)
    assert other.workspace.inversion_path == outcome.npz_path and other.invert_panel.photo is not None
    assert np.array_equal(other.invert_panel.reconstruction_view.image, outcome.reconstruction)
    other.close()


def test_cancel_keeps_the_best_latent_so_far(qtbot, window, tmp_path):
    panel = window.invert_panel
    assert window.open_photo(photo(tmp_path))
    panel.steps.setValue(5000)   # long enough to cancel, short enough that the warm-up (20%) moves it at once
    previews = []
    panel.preview_shown.connect(previews.append)
    panel.run()
    qtbot.waitUntil(lambda: len(previews) >= 2, timeout=TIMEOUT_MS)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=TIMEOUT_MS)
    outcome = panel.outcome
    assert outcome.cancelled and 20 <= outcome.steps_done < 5000
    assert outcome.psnr > previews[0].psnr      # the progress made is kept (the engine test checks "best")
    assert "kept the best latent" in panel.status.text()
    assert np.array_equal(wait_shown(qtbot, window), outcome.reconstruction)


def test_pti_opens_the_tuned_model_with_the_original_a_click_away(qtbot, window, tmp_path):
    panel = window.invert_panel
    original = window.info.path
    window.open_photo(photo(tmp_path))
    panel.steps.setValue(10)
    panel.pti.setChecked(True)
    panel.pti_steps.setValue(10)
    panel.run()
    qtbot.waitUntil(lambda: panel.outcome is not None and window.info.path == panel.outcome.tuned_checkpoint,
                    timeout=TIMEOUT_MS)
    outcome = panel.outcome
    assert outcome.tuned_psnr > outcome.psnr
    meta = read_safetensors_metadata(outcome.tuned_checkpoint)
    assert meta["tuned_from_path"] == str(type(tmp_path)(original).resolve()) and meta["tuned_on"]
    tuned_image = wait_shown(qtbot, window)
    assert np.array_equal(window.workspace.base_ws, outcome.ws)     # the latent stayed through the reload
    assert window.workspace.tuned_checkpoint == outcome.tuned_checkpoint
    assert panel.original_button.isEnabled()
    panel.original_button.click()
    qtbot.waitUntil(lambda: window.info.path == original, timeout=TIMEOUT_MS)
    back = wait_shown(qtbot, window)
    assert np.array_equal(back, outcome.reconstruction) and not np.array_equal(back, tuned_image)


def test_bad_photos_give_a_dialog_and_change_nothing(qtbot, window, tmp_path):
    before = window.image_view.image.copy()
    workspace = Workspace.from_dict(window.workspace.to_dict())
    (tmp_path / "fake.jpg").write_text("not a jpeg")
    drop(window, tmp_path / "fake.jpg")
    assert window.error_box is not None and "not an image file" in window.error_box.text()
    Image.new("L", (3, 3)).save(tmp_path / "dot.png")
    assert not window.open_photo(tmp_path / "dot.png")
    assert "only 3x3 pixels" in window.error_box.text()
    assert window.workspace.to_dict() == workspace.to_dict() and window.invert_panel.photo is None
    assert np.array_equal(wait_shown(qtbot, window), before)


def test_models_without_w_cannot_run(qtbot, window, tmp_path):
    window.open_checkpoint(export_tiny(tmp_path / "dcgan.safetensors", arch="dcgan"))
    qtbot.waitUntil(lambda: window.info is not None and window.info.arch == "dcgan", timeout=TIMEOUT_MS)
    panel = window.invert_panel
    window.open_photo(photo(tmp_path))
    assert "no W space" in panel.status.text() or not panel.run_button.isEnabled()
    assert not panel.run()


def wait_grid(qtbot, window):
    c = window.controller
    qtbot.waitUntil(lambda: c.last_grid is not None and not c.grid_dirty and c.shown_grid_id == c.requested_grid_id
                    and not window.is_busy(), timeout=TIMEOUT_MS)
    return window.last_grid


def click_grid(qtbot, panel, row, col, cell):
    """Click grid tile (row, col), counting the header row and column as 0."""
    view = panel.grid_view
    scene_point = view.item.mapToScene(QPointF(col * cell + 3.5, row * cell + 3.5))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(scene_point))


def test_the_inverted_photo_as_a_row_or_a_column_of_the_mixing_grid(qtbot, window, tmp_path):
    panel, mixing, ws = window.invert_panel, window.mixing_panel, window.workspace
    window.panels.setCurrentWidget(mixing)
    assert not mixing.grid_photo.isEnabled()                  # nothing inverted yet
    plain = wait_grid(qtbot, window).image.copy()
    assert window.open_photo(photo(tmp_path))
    panel.steps.setValue(10)
    assert panel.run()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=TIMEOUT_MS)
    photo_image = panel.outcome.reconstruction.astype(int)    # [16, 16, 3] the photo as the model draws it
    window.panels.setCurrentWidget(mixing)
    assert mixing.grid_photo.isEnabled() and np.array_equal(ws.photo_ws, panel.outcome.ws)
    mixing.grid_photo.setCurrentIndex(mixing.grid_photo.findData("row"))
    assert ws.grid_photo == "row"
    grid = wait_grid(qtbot, window)
    cell = grid.cell_size
    assert grid.image.shape[0] == plain.shape[0] + cell and grid.image.shape[1] == plain.shape[1]
    assert grid.cell_ws.shape[:2] == (len(ws.grid_row_seeds) + 1, len(ws.grid_col_seeds))
    row_header = grid.image[cell:cell + 16, :16].astype(int)   # first row's header: the photo itself
    assert np.abs(row_header - photo_image).max() <= 1
    mixing.preset_buttons["fine"].click()                      # the photo's coarse layers, the columns' fine ones
    grid = wait_grid(qtbot, window)
    mixes = [grid.image[cell:cell + 16, (c + 1) * cell:(c + 1) * cell + 16] for c in range(len(ws.grid_col_seeds))]
    assert all(not np.array_equal(m, mixes[0]) for m in mixes[1:])          # each column changes the photo
    assert np.allclose(grid.cell_ws[0, 1][:3], ws.photo_ws[:3])            # coarse layers stay the photo's
    seed_before = ws.seed
    click_grid(qtbot, mixing, 1, 2, cell)                      # a mix of the photo becomes the current latent
    assert ws.seed == seed_before and ws.mix_seed == ws.grid_col_seeds[1]
    assert np.array_equal(ws.base_ws, grid.cell_ws[0, 1])
    assert np.array_equal(wait_shown(qtbot, window), grid.image[cell:cell + 16, 2 * cell:2 * cell + 16])

    mixing.grid_photo.setCurrentIndex(mixing.grid_photo.findData("column"))  # the photo gives its fine layers
    grid = wait_grid(qtbot, window)
    assert grid.image.shape[1] == plain.shape[1] + cell and grid.image.shape[0] == plain.shape[0]
    assert grid.cell_ws.shape[:2] == (len(ws.grid_row_seeds), len(ws.grid_col_seeds) + 1)
    assert np.allclose(grid.cell_ws[2, 0][3:], ws.photo_ws[3:])
    assert np.abs(grid.image[:16, cell:cell + 16].astype(int) - photo_image).max() <= 1   # its header


def test_a_tall_window_keeps_the_panel_together(qtbot, window):
    """At 2400x1500 the spare height went between the panel's rows: the pictures sat 580 px below
    the photo line. It belongs below the panel; the pictures keep their place under their labels."""
    panel = window.invert_panel
    window.panels.setCurrentWidget(panel)
    window.resize(2400, 1500)
    qtbot.waitUntil(lambda: panel.height() > 1000, timeout=TIMEOUT_MS)
    top = panel.target_view.mapTo(panel, panel.target_view.rect().topLeft()).y()
    label_bottom = panel.photo_label.mapTo(panel, panel.photo_label.rect().bottomLeft()).y()
    assert top - label_bottom < 60   # one row of labels between them
    curve_bottom = panel.curve_plot.mapTo(panel, panel.curve_plot.rect().bottomLeft()).y()
    assert curve_bottom < panel.height() - 300   # the spare height is below the panel's last row
