"""Make the README's timeline figures with the app itself, on the bundled demo.

    QT_QPA_PLATFORM=offscreen python scripts/readme_timeline.py
The real window (offscreen) opens the demo; its Timeline panel makes a class tour and a style
morph from presets and exports each as a GIF through its own export job (the worker renders, the
encoder thread writes); then the window is saved with the Timeline panel showing a scrubbed frame.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from ganstudio.engine.demo import find_demo_checkpoint
from ganstudio.widgets.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "readme"
FPS = 15          # README GIFs: smooth enough, and small
GIF_SIDE = 128    # 4x the demo's 32 px, nearest neighbour: the model's own pixels, enlarged


def spin(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait(condition, timeout_s: float = 600) -> None:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise SystemExit("timed out waiting for the window")
        spin(50)


def export(window, path: Path) -> None:
    panel = window.timeline_panel
    panel.export_size.setCurrentIndex(3)          # a square size
    panel.export_side.setValue(GIF_SIDE)
    panel.export_filter.setCurrentText("nearest")
    if not panel.export_to(path):
        raise SystemExit(panel.message.text())
    wait(lambda: panel.last_export == str(path) or not panel._export_busy)
    if panel.last_export != str(path):
        raise SystemExit(panel.message.text())
    print(panel.message.text())


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    window = MainWindow(device="cpu")
    window.resize(1100, 700)
    window.show()
    window.open_checkpoint(find_demo_checkpoint())
    wait(lambda: window.info is not None and not window.is_busy())
    panel = window.timeline_panel
    window.panels.setCurrentWidget(panel)
    panel.fps.setValue(FPS)
    # a class tour: one seed through the ten classes, truncated toward each class's mean w
    window.workspace.update(seed=7, psi=0.6, truncation_center="class", class_index=0)
    panel.make_preset("class-tour")
    line = window.workspace.timeline
    window.workspace.timeline = line.replace(keyframes=tuple(k.replace(duration=1.0) for k in line.keyframes))
    export(window, OUT / "timeline-class-tour.gif")
    # a style morph: four seeds of one class, shape (coarse layers) first, then texture
    window.workspace.update(seed=20, psi=0.7, truncation_center="class", class_index=7)
    panel.preset_keys.setValue(4)
    panel.make_preset("style-morph")
    line = window.workspace.timeline
    window.workspace.timeline = line.replace(keyframes=tuple(k.replace(duration=2.0) for k in line.keyframes))
    export(window, OUT / "timeline-style-morph.gif")
    # the panel, scrubbed to a quarter of the way from the first keyframe to the second
    panel.keyframe_list.setCurrentRow(1)
    panel.scrub.setValue(window.workspace.timeline.keyframe_frames()[0] + 8)
    wait(lambda: panel._shown_frame == panel.scrub.value() and not window.is_busy())
    spin(300)
    window.grab().save(str(OUT / "studio-timeline.png"))
    print(f"saved {OUT / 'studio-timeline.png'}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
