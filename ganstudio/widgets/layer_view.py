"""Layer view (a dock): one synthesis layer of the open model, its channels as a grid or one at a
time, each normalised, beside its 2-D Fourier spectrum (log power, zero frequency in the middle).
The render worker draws both with every image (engine.layers), so they follow every slider;
this panel only picks the layer and shows the pictures. While the dock is hidden no layer is
drawn, so the view costs nothing."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSpinBox,
                               QSplitter, QVBoxLayout, QWidget)

from ..engine.layers import LayerChoice, LayerInfo, LayerView, export_layer_view
from .output_window import ImageCanvas

MODES = ("All channels", "One channel")


class LayerPanel(QWidget):
    failed = Signal(str, str)    # dialog title, text
    shown = Signal(object)       # the LayerView just put on screen (tests, screenshots)

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.layers: tuple[LayerInfo, ...] = ()
        self.view: LayerView | None = None     # on screen now
        self.active = False
        # widgets
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("A synthesis layer of the open model, from the 4x4 start up to the last ToRGB")
        self.mode_box = QComboBox()
        self.mode_box.addItems(MODES)
        self.channel_box = QSpinBox()
        self.channel_box.setPrefix("channel ")
        self.channel_box.setEnabled(False)
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setEnabled(False)
        self.info_label = QLabel("")
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # plain painted canvases: pyqtgraph views made inside a hidden dock kept a stale 640x480 layout
        self.features_view = ImageCanvas(background=QColor(32, 33, 36))
        self.spectrum_view = ImageCanvas(background=QColor(32, 33, 36))
        for view, tip in ((self.features_view, "Each channel from its own minimum (black) to maximum (white)"),
                          (self.spectrum_view, "Power spectrum of what is shown on the left: zero frequency in the "
                                               "middle, -40 dB (black) to +40 dB (white) around its mean power")):
            view.setMinimumSize(160, 200)   # a dock gets no share of a taller window: room of its own
            view.setToolTip(tip)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Layer"))
        controls.addWidget(self.layer_box, 1)
        for widget in (self.mode_box, self.channel_box, self.export_button):
            controls.addWidget(widget)
        views = QSplitter()
        views.addWidget(self._captioned(self.features_view, "Channels"))
        views.addWidget(self._captioned(self.spectrum_view, "Fourier spectrum (log power)"))
        views.setSizes([600, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(views, 1)
        layout.addWidget(self.info_label)

        # wiring
        self.layer_box.currentIndexChanged.connect(self._on_layer_changed)
        self.mode_box.currentIndexChanged.connect(self._on_mode_changed)
        self.channel_box.valueChanged.connect(self._on_channel_changed)
        self.export_button.clicked.connect(self._on_export_clicked)
        controller.events.model.connect(self._on_model_changed)
        controller.events.image.connect(self._on_image)

    @staticmethod
    def _captioned(view: QWidget, caption: str) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(caption))
        layout.addWidget(view, 1)
        return box

    # ---- what the window calls ----
    def set_active(self, active: bool) -> None:
        """Draw the layer with every image while shown; stop (no cost) while hidden."""
        self.active = active
        if not active:
            self.controller.layer_view.choose(None)
        elif self.controller.info is not None:
            self.controller.layer_view.list_layers(self._on_layers_listed)

    def choice(self) -> LayerChoice | None:
        index = self.layer_box.currentIndex()
        if index < 0 or index >= len(self.layers):
            return None
        return LayerChoice(self.layers[index].name, self.channel_box.value() if self.mode_box.currentIndex() else None)

    def export_png(self, path) -> None:
        """Save the channels and the spectrum on screen as one PNG (ValueError before the first)."""
        if self.view is None:
            raise ValueError("no layer drawn yet")
        export_layer_view(path, self.view)

    # ---- slots ----
    def _on_model_changed(self, _info) -> None:
        self.layers = ()
        self.view = None
        self.features_view.clear()
        self.spectrum_view.clear()
        if self.active:
            self.controller.layer_view.list_layers(self._on_layers_listed)

    def _on_layers_listed(self, layers) -> None:
        previous = self.layers[self.layer_box.currentIndex()].name if 0 <= self.layer_box.currentIndex() < len(
            self.layers) else None
        self.layers = tuple(layers)
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        for layer in self.layers:
            self.layer_box.addItem(layer.label, layer.name)
        names = [layer.name for layer in self.layers]
        # the same layer again when the new model has it, else one in the middle (neither the 4x4 start nor RGB)
        self.layer_box.setCurrentIndex(names.index(previous) if previous in names else len(names) // 2)
        self.layer_box.blockSignals(False)
        self.setEnabled(bool(self.layers))
        if not self.layers:
            self.info_label.setText("this model has no synthesis layers to show")
        self._on_layer_changed(self.layer_box.currentIndex())

    def _on_layer_changed(self, index: int) -> None:
        if 0 <= index < len(self.layers):
            self.channel_box.setMaximum(self.layers[index].channels - 1)
        self._apply()

    def _on_mode_changed(self, index: int) -> None:
        self.channel_box.setEnabled(index == 1)
        self._apply()

    def _on_channel_changed(self, _value: int) -> None:
        if self.mode_box.currentIndex() == 1:
            self._apply()

    def _apply(self) -> None:
        if self.active:
            self.controller.layer_view.choose(self.choice())

    def _on_image(self, result) -> None:
        view = result.layer
        if view is None or not self.active:
            return
        if view.error:
            self.info_label.setText(f"layer: {view.error}")
            return
        self.view = view
        self.features_view.set_image(view.features)
        self.spectrum_view.set_image(view.spectrum)
        lo, hi = view.value_range
        what = f"channel {view.channel} of {view.channels}" if view.channel is not None else \
            f"{view.channels} channels, {view.columns} a row"
        self.info_label.setText(f"{view.name}: {what} · values {lo:.3g} to {hi:.3g} · "
                                f"render {result.milliseconds:.1f} ms with the layer")
        self.export_button.setEnabled(True)
        self.shown.emit(view)

    def _on_export_clicked(self) -> None:
        name = (self.view.name if self.view else "layer").replace(".", "-")
        path, _ = QFileDialog.getSaveFileName(self, "Export layer view", f"{name}.png", "PNG (*.png)")
        if path:
            try:
                self.export_png(path)
            except (OSError, ValueError) as exc:
                self.failed.emit("Export failed", str(exc))


class LayerDock(QDockWidget):
    """The Layer view panel as a dock (Render > Layer view), hidden at start."""

    def __init__(self, controller, parent=None):
        super().__init__("Layer view", parent)
        self.setObjectName("layer-view-dock")
        self.panel = LayerPanel(controller)
        self.setWidget(self.panel)
        self.visibilityChanged.connect(self.panel.set_active)
        self.hide()
