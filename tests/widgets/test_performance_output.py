"""The performance output: a full-screen window with only the image, the newest frame the main
view shows, paced by its own cap; Esc closes it and the studio keeps working; frames to a named
pipe. Offscreen here, and under a real X server (Xvfb) in the slow test."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtCore import Qt

from conftest import TIMEOUT_MS, export_tiny, wait_shown
from ganstudio.engine.frame_pipe import header


def pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    raw = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return raw[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def assert_only_the_image(shot: np.ndarray, image: np.ndarray, rect) -> None:
    """The screen shows `image` scaled into `rect` (each source pixel's centre compared) and black
    everywhere else."""
    h, w = image.shape[:2]
    left, top, width, height = rect
    rows = (top + (np.arange(h) + 0.5) * height / h).astype(int)
    cols = (left + (np.arange(w) + 0.5) * width / w).astype(int)
    assert np.array_equal(shot[rows[:, None], cols[None, :]], image)
    outside = np.ones(shot.shape[:2], bool)
    outside[top:top + height, left:left + width] = False
    assert not shot[outside].any()


@pytest.mark.slow
def test_the_output_window_is_full_screen_with_the_image_only(make_window, ckpt, qtbot):
    window = make_window(ckpt)
    screen = QGuiApplication.primaryScreen()
    output = window.performance_output.open_window(screen)
    qtbot.waitUntil(lambda: output.isVisible() and output.frames_shown >= 1, timeout=TIMEOUT_MS)
    assert output.isFullScreen() and output.geometry() == screen.geometry()
    assert output.windowFlags() & Qt.WindowType.FramelessWindowHint
    assert np.array_equal(output.image, window.image_view.image)
    rect = output.image_rect()
    side = min(screen.geometry().width(), screen.geometry().height())   # as large as fits, centred
    assert (rect.width(), rect.height(), rect.center()) == (side, side, output.rect().center())
    assert_only_the_image(pixels(output.grab().toImage()), output.image,
                          (rect.left(), rect.top(), rect.width(), rect.height()))


def test_both_windows_show_the_newest_frame_and_esc_leaves_the_studio_working(make_window, ckpt, qtbot):
    window = make_window(ckpt)
    output = window.performance_output.open_window()
    qtbot.waitUntil(lambda: output.frames_shown >= 1, timeout=TIMEOUT_MS)
    before = output.image.copy()
    window.latent_panel.seed.setValue(window.workspace.seed + 1)
    shown = wait_shown(qtbot, window)
    qtbot.waitUntil(lambda: np.array_equal(output.image, shown), timeout=TIMEOUT_MS)
    assert not np.array_equal(before, shown)
    output.show_counter = True   # the overlay draws over the image, top left
    with_counter = pixels(output.grab().toImage())
    output.show_counter = False
    assert not np.array_equal(with_counter[10:30, 10:120], pixels(output.grab().toImage())[10:30, 10:120])
    qtbot.keyClick(output, Qt.Key.Key_Escape)
    assert not output.isVisible() and not window.performance_output.close_action.isEnabled()
    window.latent_panel.seed.setValue(window.workspace.seed + 1)   # the control window keeps working
    after = wait_shown(qtbot, window)
    assert not np.array_equal(after, shown) and window.controller.last_result.error == ""
    assert np.array_equal(output.image, shown)   # closed: it took no more frames


@pytest.mark.slow
def test_the_cap_paces_frames_and_the_newest_one_wins(make_window, ckpt, qtbot):
    window = make_window(ckpt)
    out = window.performance_output
    out.set_cap(10)
    output = out.open_window()
    qtbot.waitUntil(lambda: output.frames_shown >= 1, timeout=TIMEOUT_MS)
    start = output.frames_shown
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(40)]
    for frame in frames:   # 40 frames in about 0.4 s
        out.offer(frame)
        qtbot.wait(10)
    qtbot.wait(150)   # the cap's wait runs out: the newest frame is shown
    assert output.frames_shown - start <= 0.4 * 10 + 3
    assert np.array_equal(output.image, frames[-1])


@pytest.mark.slow
def test_frames_go_to_a_named_pipe(make_window, ckpt, qtbot, tmp_path):
    window = make_window(ckpt)
    pipe = window.performance_output.start_pipe(tmp_path / "frames.rgb")
    fd = os.open(pipe.path, os.O_RDONLY | os.O_NONBLOCK)   # a reader, before the next frame
    try:
        window.latent_panel.seed.setValue(window.workspace.seed + 1)
        shown = wait_shown(qtbot, window)
        output = window.performance_output   # the cap may hold the newest frame back a moment: wait until it is sent
        qtbot.waitUntil(lambda: output._pending is None and not output._timer.isActive() and pipe.written >= 1
                        and pipe.flush(0.01), timeout=TIMEOUT_MS)
        os.set_blocking(fd, True)
        h, w = shown.shape[:2]
        start = len(header(w, h))
        data = os.read(fd, start + pipe.written * shown.nbytes)   # the image opened with may come first
        assert data[:start] == b"ganstudio-rgb24 16 16\n" and len(data) == start + pipe.written * shown.nbytes
        assert np.array_equal(np.frombuffer(data[-shown.nbytes:], np.uint8).reshape(shown.shape), shown)
    finally:
        window.close()   # the pipe closes with the window
        os.close(fd)
    assert window.performance_output.pipe is None and not pipe.path.exists()


XVFB_SCRIPT = r"""
import sys
import numpy as np
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from PySide6.QtGui import QGuiApplication
from ganstudio.widgets.main_window import MainWindow
ckpt, out = sys.argv[1], sys.argv[2]
app = QApplication([])
window = MainWindow(device="cpu", settings=QSettings(out + ".ini", QSettings.Format.IniFormat))
window.resize(900, 600)
window.show()
window.open_checkpoint(ckpt)
state = {}

def tick():
    c = window.controller
    if "output" not in state:
        if c.last_result is None or window.is_busy():
            return
        state["output"] = window.performance_output.open_window(QGuiApplication.primaryScreen())
        return
    output = state["output"]
    if output.frames_shown < 1 or not output.isFullScreen():
        return
    state["waits"] = state.get("waits", 0) + 1
    if state["waits"] < 10:   # let the X server show it
        return
    QGuiApplication.primaryScreen().grabWindow(0).save(out + ".png")   # the whole X screen
    r = output.image_rect()
    np.savez(out + ".npz", image=window.image_view.image, rect=[r.left(), r.top(), r.width(), r.height()],
             full=output.isFullScreen())
    output.close()
    window.latent_panel.seed.setValue(window.workspace.seed + 1)
    state["after"] = True
    timer.stop()
    QTimer.singleShot(2000, lambda: (print("rendered after closing:", c.last_result.error == ""), app.quit()))

timer = QTimer()
timer.timeout.connect(tick)
timer.start(100)
QTimer.singleShot(120000, app.quit)
app.exec()
window.close()
"""


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="no xvfb-run here (Debian's xvfb)")
@pytest.mark.slow
def test_the_output_window_is_full_screen_under_xvfb(tmp_path):
    ckpt = export_tiny(tmp_path / "tiny.safetensors", resolution=16)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}   # Qt picks xcb, as on a desktop
    script = tmp_path / "output.py"
    script.write_text(XVFB_SCRIPT)
    out = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, str(script), str(ckpt),
                          str(tmp_path / "shot")], capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rendered after closing: True" in out.stdout, out.stdout + out.stderr[-2000:]
    saved = np.load(tmp_path / "shot.npz")
    screen = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB"))
    assert screen.shape == (800, 1280, 3) and saved["full"]
    assert tuple(saved["rect"]) == (240, 0, 800, 800)   # 16 px at 50x, centred, black on both sides
    assert_only_the_image(screen, saved["image"], tuple(saved["rect"]))
