"""The Presets dock in the real window: Save current as…, a click crossfades (frames reach the image view,
the end is the preset's own render), the keys 1-9 switch, Rename and Delete, the crossfade time, and the
presets saved with the workspace file; a timeline's `looped` signal at each wrap."""
import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog

from conftest import TIMEOUT_MS, export_tiny, wait_shown

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def answer(text):
    """Type `text` into the name dialog the next click opens, and press OK."""
    def fill():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QInputDialog)
        dialog.setTextValue(text)
        dialog.accept()
    QTimer.singleShot(0, fill)


@pytest.mark.slow
def test_save_click_crossfade_keys_rename_delete_and_the_file(qtbot, make_window, tmp_path):
    window = make_window(export_tiny(tmp_path / "tiny.safetensors", c_dim=0))
    dock = window.presets_dock
    panel, ws = dock.panel, window.workspace
    assert not dock.isVisible()                       # hidden until asked for: the image keeps its room
    dock.toggleViewAction().trigger()                 # Render > Presets
    assert dock.isVisible() and "No presets yet" in panel.status.text()
    ws.update(seed=2, psi=0.4)
    calm = wait_shown(qtbot, window)
    answer("calm")
    panel.save_button.click()
    ws.update(seed=9, psi=1.0)
    wild = wait_shown(qtbot, window)
    answer("wild")
    panel.save_button.click()
    assert [panel.list.item(i).text() for i in range(panel.list.count())] == ["1  calm", "2  wild"]
    # a click crossfades: frames between the two reach the image view, then the preset's own render
    panel.fade.setValue(0.5)
    shown = []
    panel.frame_ready.connect(lambda image: shown.append(image.copy()))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.list.visualItemRect(panel.list.item(0)).center())
    assert dock.player.fading and "→ calm" in panel.status.text()
    qtbot.waitUntil(lambda: not dock.player.fading, timeout=TIMEOUT_MS)
    assert (ws.seed, ws.psi) == (2, 0.4) and panel.status.text() == "on calm"
    np.testing.assert_array_equal(wait_shown(qtbot, window), calm)
    assert shown and not any(np.array_equal(s, calm) or np.array_equal(s, wild) for s in shown[1:])
    # key 2 (in the window, not typed into a box), at once
    panel.fade.setValue(0.0)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=TIMEOUT_MS)
    qtbot.keyClick(panel.list, Qt.Key.Key_2)
    assert (ws.seed, ws.psi) == (9, 1.0)
    np.testing.assert_array_equal(wait_shown(qtbot, window), wild)
    window.latent_panel.seed.setFocus()
    qtbot.keyClick(window.latent_panel.seed, Qt.Key.Key_1)     # typed into the seed box: not a switch
    assert dock.player.current == "wild"
    panel.list.setCurrentRow(1)
    answer("storm")
    panel.rename_button.click()
    assert dock.player.names == ["calm", "storm"]
    window.save_workspace(tmp_path / "ws.json")
    panel.list.setCurrentRow(0)
    panel.delete_button.click()
    assert [panel.list.item(i).text() for i in range(panel.list.count())] == ["1  storm"]
    other = make_window()
    other.open_workspace(tmp_path / "ws.json")
    qtbot.waitUntil(lambda: other.presets_dock.player.names == ["calm", "storm"], timeout=TIMEOUT_MS)
    assert other.presets_dock.panel.list.count() == 2


@pytest.mark.slow
def test_the_timeline_player_signals_each_wrap(qtbot, make_window, tmp_path):
    window = make_window(export_tiny(tmp_path / "tiny.safetensors", c_dim=0))
    panel, ws = window.timeline_panel, window.workspace
    panel.add_current_view()
    ws.seed = 3
    panel.add_current_view()
    keys = tuple(dataclasses.replace(k, duration=0.25) for k in ws.timeline.keyframes)
    ws.timeline = dataclasses.replace(ws.timeline, keyframes=keys, loop=True, fps=12.0)
    loops = []
    panel.player.looped.connect(loops.append)
    panel.player.play()
    qtbot.waitUntil(lambda: len(loops) >= 2, timeout=TIMEOUT_MS)
    panel.player.pause()
    assert loops[:2] == [1, 2] or loops[0] == 1 and loops[1] > 1     # counts since Play (a busy CPU may skip one)
    assert 0 <= panel.player.shown_frame < panel.player.frame_count
