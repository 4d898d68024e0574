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
    box = window.timeline_panel.export_box
    box.size.setCurrentIndex(3)          # a square size
    box.side.setValue(GIF_SIDE)
    box.filter.setCurrentText("nearest")
    if not box.export_to(path):
        raise SystemExit(box.message.text())
    wait(lambda: not box.busy)
    if box.last_export != str(path):
        raise SystemExit(box.message.text())
    print(box.message.text())


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv)   # noqa: F841 (kept alive while the window runs)
    window = MainWindow(device="cpu")
    window.resize(1100, 860)   # tall enough for the whole panel, export box included
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
    # a style morph: four bags, shape (coarse layers: 4x4, 8x8) first, then texture
    window.workspace.update(seed=20, psi=1.0, truncation_center="class", class_index=8)
    panel.preset_keys.setValue(4)
    panel.make_preset("style-morph")
    line = window.workspace.timeline
    window.workspace.timeline = line.replace(keyframes=tuple(k.replace(duration=2.0) for k in line.keyframes))
    export(window, OUT / "timeline-style-morph.gif")
    # the panel, scrubbed to a quarter of the way from the first keyframe to the second
    player = panel.player
    panel.keyframe_list.setCurrentRow(0)
    player.seek(window.workspace.timeline.keyframe_frames()[1] // 2)
    wait(lambda: player._shown_frame == player.scrub.value() and not window.is_busy())
    spin(300)
    window.grab().save(str(OUT / "studio-timeline.png"))
    print(f"saved {OUT / 'studio-timeline.png'}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
