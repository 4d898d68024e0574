"""View > Frame timing: where each frame's milliseconds go (request, mapping, synthesis, copy,
paint), drawn over the image's top-left corner. Off by default. It only shows what the engine
measured (engine.frame_timing: the renderer's stage clock and the controller's paint clock)."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel

STYLE = "background: rgba(0, 0, 0, 170); color: #e6e6e6; font-family: monospace; padding: 4px;"


class TimingOverlay(QObject):
    def __init__(self, window, menu):
        super().__init__(window)
        self.main = window
        self.label = QLabel(window.image_view)
        self.label.setStyleSheet(STYLE)
        self.label.move(8, 8)
        self.label.hide()
        self.action = QAction("Frame &timing", self, checkable=True)
        self.action.setToolTip("Where each frame's milliseconds go: request, mapping, synthesis, copy, paint")
        self.action.toggled.connect(self._on_toggled)
        menu.addAction(self.action)
        # after the image event has returned, so the controller has timed its paint
        window.frame_shown.connect(lambda _result: QTimer.singleShot(0, self.refresh))

    def _on_toggled(self, on: bool) -> None:
        self.label.setVisible(on)
        self.refresh()

    def refresh(self) -> None:
        if not self.action.isChecked():
            return
        timing = self.main.controller.paint_clock.latest
        self.label.setText(timing.table() if timing is not None else "no frame timed yet")
        self.label.adjustSize()
        self.label.raise_()
