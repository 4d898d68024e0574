"""A pyqtgraph view that shows uint8 RGB arrays: row-major, fixed levels 0-255, pixels crisp."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPainter

_configured = False


def configure_pyqtgraph() -> None:
    """Set pyqtgraph's global options once, before the first ImageItem exists."""
    global _configured
    if not _configured:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="#202124",
                            foreground="#d0d0d0")
        _configured = True


class ImageView(pg.GraphicsLayoutWidget):
    """Shows one image scaled to fit with nearest-neighbour sampling (a 32x32 image stays sharp).
    `clicked` gives the pixel (row, col) under a left click, in image coordinates."""

    clicked = Signal(int, int)

    def __init__(self, parent=None):
        configure_pyqtgraph()
        super().__init__(parent)
        # nearest-neighbour upscaling: no smoothing when the painter scales the image
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.item = pg.ImageItem(levels=(0, 255))
        self.view.addItem(self.item)
        self.image: np.ndarray | None = None
        self.scene().sigMouseClicked.connect(self._on_scene_clicked)

    def set_image(self, image: np.ndarray) -> None:
        """uint8 [H, W, 3] -> on screen. The view refits only when the shape changes."""
        reshaped = self.image is None or self.image.shape != image.shape
        self.image = image
        self.item.setImage(image, autoLevels=False, levels=(0, 255))
        if reshaped:
            self.view.setRange(xRange=(0, image.shape[1]), yRange=(0, image.shape[0]), padding=0.01)

    def shown_rect(self):
        """Where the image is drawn, in this widget's pixels (a QRect; empty when there is none)."""
        return self.mapFromScene(self.item.mapRectToScene(self.item.boundingRect())).boundingRect()

    def clear(self) -> None:
        self.image = None
        self.item.clear()

    def _on_scene_clicked(self, event) -> None:
        if self.image is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.item.mapFromScene(event.scenePos())
        row, col = int(point.y()), int(point.x())
        if 0 <= row < self.image.shape[0] and 0 <= col < self.image.shape[1]:
            self.clicked.emit(row, col)
