"""The studio window, driven offscreen with pytest-qt: real checkpoints in tmp_path, the real
render worker thread, and checks on the image the user would see."""
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from safetensors.torch import save_file

from ganstudio.engine.from_workspace import request_from_workspace
from ganstudio.engine.renderer import Renderer, RenderRequest
from trainer.latents import LatentState

from conftest import CLASS_NAMES, TIMEOUT_MS, export_tiny, wait_grid, wait_shown  # noqa: F401

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_open_change_seed_psi_class(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    first = window.image_view.image.copy()
    assert first.shape == (16, 16, 3) and window.tabs.tabText(0) == "Explorer"
    panel = window.latent_panel
    assert [panel.class_combo.itemText(i) for i in range(panel.class_combo.count())] == CLASS_NAMES
    assert "ms" in window.render_label.text() and "stylegan2" in window.model_label.text()
    panel.seed.setFocus()
    qtbot.keyClick(panel.seed, Qt.Key.Key_Up)                 # arrow key steps the seed
    assert window.workspace.seed == 1
    seed1 = wait_shown(qtbot, window)
    assert not np.array_equal(seed1, first)
    qtbot.keyClick(panel.seed, Qt.Key.Key_Down)
    assert np.array_equal(wait_shown(qtbot, window), first)  # back to seed 0: the same image exactly
    window.truncation_panel.psi_slider.setValue(30)          # psi 0.3
    assert window.workspace.psi == 0.3
    psi_image = wait_shown(qtbot, window)
    assert not np.array_equal(psi_image, first)
    panel.class_combo.setCurrentIndex(2)
    assert window.workspace.class_index == 2
    assert not np.array_equal(wait_shown(qtbot, window), psi_image)
    assert "z [16]" in panel.latent_text.toPlainText()
    panel.copy_w.click()
    from PySide6.QtWidgets import QApplication
    assert np.allclose(np.array(eval(QApplication.clipboard().text())), window.last_result.ws, atol=1e-5)


def test_what_must_not_change_the_image(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    first = window.image_view.image.copy()
    requests = window.controller.requested_id
    window.mixing_panel.row_seeds.setText("5-7")
    window.mixing_panel.row_seeds.editingFinished.emit()
    assert window.workspace.grid_row_seeds == (5, 6, 7)
    assert window.controller.requested_id == requests                # grid seeds do not re-render the image
    window.latent_panel.seed.setValue(0)                      # the same seed: no event, no render
    assert window.controller.requested_id == requests
    window.mixing_panel.mix_seed.setValue(42)                 # no layer mixed yet
    assert np.array_equal(wait_shown(qtbot, window), first)
    window.directions_panel.layer_start.setValue(2)           # no direction offset yet
    assert np.array_equal(wait_shown(qtbot, window), first)
    window.latent_panel.noise.setCurrentIndex(window.latent_panel.noise.findData("random"))
    a = wait_shown(qtbot, window)
    window.workspace.psi = 0.5
    b = wait_shown(qtbot, window)
    assert not np.array_equal(a, first) and not np.array_equal(a, b)  # random noise does change it


@pytest.mark.slow
def test_mixing_layers_grid_and_commit(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    first = window.image_view.image.copy()
    panel = window.mixing_panel
    window.panels.setCurrentWidget(panel)
    wait_grid(qtbot, window)
    assert len(panel.layer_buttons) == 6
    panel.preset_buttons["fine"].click()
    assert window.workspace.mix_layers == (False, False, False, True, True, True)
    fine = wait_shown(qtbot, window)
    assert not np.array_equal(fine, first)
    panel.layer_buttons[0].click()                            # one more layer from the style seed
    assert window.workspace.mix_layers[0]
    assert not np.array_equal(wait_shown(qtbot, window), fine)
    panel.clear_button.click()
    assert np.array_equal(wait_shown(qtbot, window), first)   # no layer mixed: the seed's own image
    panel.preset_buttons["coarse"].click()
    coarse = wait_shown(qtbot, window)
    panel.commit.click()                                      # the mix becomes the current latent
    assert window.workspace.base_ws is not None
    assert np.array_equal(wait_shown(qtbot, window), coarse)
    window.truncation_panel.psi_slider.setValue(0)
    assert not np.array_equal(wait_shown(qtbot, window), coarse)  # and is edited further
    # clicking grid cell (row 1, col 2) makes that mix current: the main image equals the cell
    wait_shown(qtbot, window)
    wait_grid(qtbot, window)
    grid, cell = window.last_grid.image, window.last_grid.cell_size
    view = panel.grid_view
    scene_point = view.item.mapToScene(QPointF(3 * cell + 3.5, 2 * cell + 3.5))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(scene_point))
    assert window.workspace.seed == window.workspace.grid_row_seeds[1]
    assert window.workspace.mix_seed == window.workspace.grid_col_seeds[2]
    shown = wait_shown(qtbot, window)
    assert np.array_equal(shown, grid[2 * cell:2 * cell + 16, 3 * cell:3 * cell + 16])


@pytest.mark.slow
def test_directions_panel(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    qtbot.waitUntil(lambda: len(window.directions_panel.sliders) > 0 and not window.is_busy(), timeout=TIMEOUT_MS)
    first = wait_shown(qtbot, window)
    sliders = window.directions_panel.sliders
    assert "PC1" in sliders and "to trouser" in sliders
    sliders["PC1"].slider.setValue(40)                        # +2 sigma
    assert window.workspace.direction_offsets == {"PC1": 2.0}
    moved = wait_shown(qtbot, window)
    assert not np.array_equal(moved, first)
    window.directions_panel.reset.click()
    assert np.array_equal(wait_shown(qtbot, window), first)
    # the layer boxes name the first and last layer moved (as the Mixing panel numbers them); the
    # workspace keeps (start, stop), stop None for 'to the last'
    panel = window.directions_panel
    last = panel.layer_stop.maximum()
    assert last == len(panel.resolutions) - 1 == window.info.num_ws - 1
    assert panel.layer_stop.value() == last and window.workspace.direction_layers == (0, None)
    panel.layer_stop.setValue(2)
    assert window.workspace.direction_layers == (0, 3) and panel.layer_span.text() == "4–8 px"
    panel.layer_start.setValue(4)                             # past the last: the last follows
    assert window.workspace.direction_layers == (4, 5) and panel.layer_stop.value() == 4
    panel.layer_stop.setValue(last)
    assert window.workspace.direction_layers == (4, None) and panel.layer_span.text().endswith("16 px")
    panel.layer_start.setValue(0)
    # a cancelled job leaves the directions as they were and the progress bar goes away
    before = dict(window.workspace.directions)
    window.compute_directions(num_samples=100000, num_components=4)
    assert window.cancel_button.isVisibleTo(window)
    window.cancel_button.click()                              # queued or running: either way it stops
    qtbot.waitUntil(lambda: not window.is_busy(), timeout=TIMEOUT_MS)
    assert window.workspace.directions.keys() == before.keys() and window.progress.isHidden()


@pytest.mark.slow
def test_flood_of_slider_changes_leaves_no_backlog(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    slider = window.truncation_panel.psi_slider
    worker = window.worker
    growth = []
    for flood in range(3):
        rss_before = rss_bytes()
        renders_before = worker.renders_done
        for i in range(1000):
            slider.setValue(-100 + (i * 37 + flood) % 300)
        slider.setValue(150 - flood)
        renders_at_end = worker.renders_done
        shown = wait_shown(qtbot, window)
        assert worker.renders_done - renders_at_end <= 2           # at most the one running + the newest
        assert worker.renders_done - renders_before < 500           # most requests were superseded, not rendered
        growth.append(rss_bytes() - rss_before)
    assert max(growth[1:]) < 20e6, growth                            # memory flat once warm
    reference = Renderer("cpu")
    reference.load(ckpt)
    expected = reference.render(request_from_workspace(window.workspace, reference.info, 1))
    assert window.workspace.psi == 1.48 and np.array_equal(shown, expected.image)


def test_stale_results_never_overwrite_newer_ones(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    renderer = Renderer("cpu")
    renderer.load(ckpt)
    info = window.info
    newer = renderer.render(RenderRequest(window.controller.shown_id + 10, renderer.generation, LatentState(seed=5, class_index=0)))
    older = renderer.render(RenderRequest(window.controller.shown_id + 5, renderer.generation, LatentState(seed=6, class_index=0)))
    window.controller.on_rendered(newer)
    dropped = window.controller.stale_dropped
    window.controller.on_rendered(older)
    assert window.controller.stale_dropped == dropped + 1 and np.array_equal(window.image_view.image, newer.image)
    assert info is window.info


def test_bad_files_give_a_dialog_and_the_window_stays_usable(qtbot, make_window, ckpt, tmp_path):
    window = make_window(ckpt)
    raw = ckpt.read_bytes()
    bad = {"pickle.pkl": pickle.dumps({"G": [1, 2, 3]}), "truncated.safetensors": raw[:len(raw) // 2],
           "noise.safetensors": b"Z" + os.urandom(4095)}   # not a pickle opcode first (1 in 50 random files was one)
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"w": torch.zeros(2)}, tmp_path / "torch.pt")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    expected = {"pickle.pkl": "pickle", "truncated.safetensors": "truncated", "noise.safetensors": "not a readable",
                "torch.pt": "torch.save", "foreign.safetensors": "not a GAN Studio generator",
                "missing.safetensors": "no such checkpoint"}
    seed = 0
    for name, words in expected.items():
        window.open_checkpoint(tmp_path / name)
        qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible()
                        and name in window.error_box.text(), timeout=TIMEOUT_MS)
        assert words in window.error_box.text()
        assert window.info.path == str(ckpt)                     # the open model is still there
        before = wait_shown(qtbot, window)
        seed += 1
        window.latent_panel.seed.setValue(seed)
        assert not np.array_equal(wait_shown(qtbot, window), before)
        window.error_box.close()


@pytest.mark.slow
def test_workspace_reopens_exactly_and_exports(qtbot, make_window, ckpt, tmp_path):
    window = make_window(ckpt)
    qtbot.waitUntil(lambda: bool(window.workspace.directions) and not window.is_busy(), timeout=TIMEOUT_MS)
    window.workspace.update(seed=7, psi=0.4, cutoff=4, class_index=1, mix_seed=5)
    window.mixing_panel.preset_buttons["coarse"].click()
    wait_shown(qtbot, window)
    window.mixing_panel.commit.click()
    window.workspace.update(mix_seed=9, direction_offsets={"PC2": -1.5, "to tee": 0.5}, direction_layers=(1, 5))
    image = wait_shown(qtbot, window)
    window.save_workspace(tmp_path / "look.json")
    window.export_image(tmp_path / "native.png")
    window.export_image(tmp_path / "x4.png", scale=4)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "native.png").convert("RGB")), image)
    big = np.asarray(Image.open(tmp_path / "x4.png").convert("RGB"))
    assert big.shape == (64, 64, 3) and np.array_equal(big[::4, ::4], image)
    window.export_image(tmp_path / "enlarged.png", scale=None)   # as films: a whole factor to >= 256 px
    enlarged = np.asarray(Image.open(tmp_path / "enlarged.png").convert("RGB"))
    assert enlarged.shape == (256, 256, 3) and np.array_equal(enlarged[::16, ::16], image)
    window.panels.setCurrentWidget(window.mixing_panel)
    wait_grid(qtbot, window)
    window.export_grid(tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == window.last_grid.image.shape[1::-1]
    window.export_grid(tmp_path / "grid-enlarged.png", enlarged=True)   # 16 px cells: 16x, as the image
    big_grid = np.asarray(Image.open(tmp_path / "grid-enlarged.png").convert("RGB"))
    assert big_grid.shape[:2] == tuple(16 * n for n in window.last_grid.image.shape[:2])
    assert np.array_equal(big_grid[::16, ::16], window.last_grid.image)

    other = make_window()
    other.open_checkpoint(tmp_path / "look.json")              # a workspace opens its checkpoint too
    reopened = wait_shown(qtbot, other)
    assert np.array_equal(reopened, image)
    assert other.workspace.base_ws is not None and other.latent_panel.seed.value() == 7
    assert other.truncation_panel.psi_box.value() == pytest.approx(0.4)
    assert other.directions_panel.sliders["PC2"].slider.value() == -30


def test_no_argument_opens_the_bundled_demo(qtbot, make_window):
    from ganstudio.engine.demo import find_demo_checkpoint
    demo = find_demo_checkpoint()
    assert demo is not None, "assets/demo holds no checkpoint"
    window = make_window()
    assert window.open_demo()
    image = wait_shown(qtbot, window)
    info = window.info
    assert info.c_dim == 10 and info.has_w and image.shape == (32, 32, 3) and info.path == str(demo)
    assert "Sneaker" in info.class_names and np.array_equal(image[..., 0], image[..., 1])  # grey shows as grey
    window.latent_panel.class_combo.setCurrentIndex(info.class_names.index("Trouser"))
    assert not np.array_equal(wait_shown(qtbot, window), image)


def test_drop_recent_files_and_worker_thread(qtbot, make_window, ckpt, tmp_path):
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(ckpt))])
    window.dropEvent(QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))
    wait_shown(qtbot, window)
    assert window.recent_files() == [str(ckpt.resolve())]
    assert [a.text() for a in window.recent_menu.actions()] == [str(ckpt.resolve())]
    # long jobs run on the worker thread, never on the GUI thread
    answers = []
    window.controller.run_job("probe", lambda renderer, progress, preview: threading.get_ident(), answers.append)
    qtbot.waitUntil(lambda: len(answers) > 0, timeout=TIMEOUT_MS)
    assert answers[0] != threading.get_ident()
    before = window.image_view.image.copy()
    window.set_device("cpu", False)                           # the device selector's job
    qtbot.waitUntil(lambda: "device" not in window.controller.jobs_running, timeout=TIMEOUT_MS)
    assert np.array_equal(wait_shown(qtbot, window), before) and window.model_label.text().endswith("cpu")


def test_z_only_model_uses_a_truncated_normal(qtbot, make_window, tmp_path):
    window = make_window(export_tiny(tmp_path / "dcgan.safetensors", arch="dcgan", c_dim=0))
    panel = window.truncation_panel
    assert panel.pages.currentIndex() == 1 and not window.mixing_panel.isEnabled()
    assert not window.latent_panel.class_combo.isEnabled()
    first = window.image_view.image.copy()
    panel.threshold_slider.setValue(40)
    assert window.workspace.z_threshold == 0.4
    assert not np.array_equal(wait_shown(qtbot, window), first)
    assert np.abs(window.last_result.z).max() <= 0.4


@pytest.mark.slow
def test_watch_reloads_a_newer_checkpoint(qtbot, make_window, tmp_path):
    run = tmp_path / "run"
    export_tiny(run / "checkpoints" / "step-000001.safetensors", seed=0, step=1)
    window = make_window(run, watch=True)
    window.latent_panel.seed.setValue(3)
    old = wait_shown(qtbot, window)
    export_tiny(run / "checkpoints" / "step-000002.safetensors", seed=1, step=2)
    window._on_watch_tick()
    qtbot.waitUntil(lambda: window.info.path.endswith("step-000002.safetensors"), timeout=TIMEOUT_MS)
    new = wait_shown(qtbot, window)
    assert window.workspace.seed == 3 and not np.array_equal(new, old)
    assert "step 2" in window.model_label.text()


def test_qt_binding_keeps_none_alive(qapp):
    """PySide6 6.12.0 on Python 3.11 drops a reference to None per Qt call, which crashes the
    studio after minutes of use; this fails until a binding without that defect is installed."""
    from ganstudio.widgets.qt_check import binding_refcount_problem
    assert binding_refcount_problem() is None


@pytest.mark.slow
def test_screenshot_command(tmp_path, ckpt):
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-m", "ganstudio.app", str(ckpt), "--screenshot", str(shot),
                          "--panel", "mixing", "--size", "900x600", "--threads", "1"],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[1] == 900 and image.shape[0] >= 600 and image.std() > 10
    bad = subprocess.run([sys.executable, "-m", "ganstudio.app", str(tmp_path / "nope.safetensors"), "--screenshot",
                          str(tmp_path / "bad.png")], capture_output=True, text=True, timeout=180, env=env)
    assert bad.returncode == 1 and (tmp_path / "bad.png").is_file()
    assert "--panel translate" not in out.stderr
    # asking for the Translate panel on a model that draws from latents says why it is not there
    latent = subprocess.run([sys.executable, "-m", "ganstudio.app", str(ckpt), "--screenshot", str(shot),
                             "--panel", "translate", "--threads", "1"], capture_output=True, text=True, timeout=180,
                            env=env)
    assert latent.returncode == 0 and "--panel translate: this model draws from latents" in latent.stderr


def test_the_window_shows_the_application_icon_from_resources(qtbot, make_window, tmp_path):
    from ganstudio.widgets.look import install_desktop_entry, style_sheet
    window = make_window()
    icon = window.windowIcon()
    assert not icon.isNull() and 256 in [s.width() for s in icon.availableSizes()]
    image = icon.pixmap(64, 64).toImage()
    colours = {image.pixel(x, y) for x in range(0, 64, 4) for y in range(0, 64, 4)}
    assert len(colours) > 5                                   # drawn, not a blank square
    assert "QGroupBox" in style_sheet()
    written = install_desktop_entry(tmp_path / "share")
    assert {p.name for p in written} == {"ganstudio.desktop", "ganstudio.svg"}
    assert "Exec=ganstudio" in (tmp_path / "share" / "applications" / "ganstudio.desktop").read_text()


def test_seed_boxes_take_the_whole_seed_range(qtbot, make_window, ckpt):
    window = make_window(ckpt)
    for box, field in ((window.latent_panel.seed, "seed"), (window.mixing_panel.mix_seed, "mix_seed")):
        box.setValue(4294967295)
        assert box.value() == 4294967295 and getattr(window.workspace, field) == 4294967295
        box.setValue(99999999999)                               # past the range: the largest seed, said plainly
        assert box.value() == 4294967295
    assert wait_shown(qtbot, window) is not None and window.last_result.z is not None
