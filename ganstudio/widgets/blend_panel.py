"""Blend panel (a dock): the open model (A) blended live with a second checkpoint (B) of the same
architecture. The swap resolution says which synthesis layers B may give (those above it), the
blend amount how much of them; every change re-renders with weights the render worker blends in
place (engine.blending). "Save blend…" writes the blend on screen as a checkpoint."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDockWidget, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QPushButton,
                               QSlider, QVBoxLayout, QWidget)

from ..engine.blending import PartnerInfo

MIX_STEPS = 100   # slider ticks from A (0) to B (100)
PARTNER_FILTER = "Checkpoints (*.safetensors);;NVlabs network pickles (*.pkl);;All files (*)"


class BlendPanel(QWidget):
    failed = Signal(str, str)    # dialog title, text
    message = Signal(str)        # for the status bar

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.last_saved: dict | None = None   # the blend record of the last checkpoint saved
        # widgets
        self.models = QLabel()
        self.models.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.swap_box = QComboBox()
        self.swap_box.setToolTip("Layers at or below this resolution stay A's (shape, pose, layout); "
                                 "those above come from B (texture, colour, detail)")
        self.mix_slider = QSlider(Qt.Orientation.Horizontal)
        self.mix_slider.setRange(0, MIX_STEPS)
        self.mix_slider.setToolTip("How much of B the layers above the swap take: 0% is A, 100% the swap")
        self.mix_label = QLabel()
        self.mix_label.setMinimumWidth(40)
        self.width_box = QDoubleSpinBox()
        self.width_box.setRange(0.0, 4.0)
        self.width_box.setSingleStep(0.25)
        self.width_box.setSpecialValueText("hard switch")
        self.width_box.setSuffix(" octaves")
        self.width_box.setToolTip("A smooth change from A to B around the swap resolution, over this many "
                                  "octaves (0: a hard switch)")
        self.save_button = QPushButton("Save blend…")
        self.stop_button = QPushButton("Stop blending")
        controls = QHBoxLayout()   # one row: the dock sits under the image
        for label, widget, stretch in (("Swap at", self.swap_box, 0), ("Blend amount", self.mix_slider, 1),
                                       (None, self.mix_label, 0), ("Smooth", self.width_box, 0),
                                       (None, self.save_button, 0), (None, self.stop_button, 0)):
            if label:
                controls.addWidget(QLabel(label))
            controls.addWidget(widget, stretch)
        self.models.setToolTip("The open model (A) keeps its mapping network, so seeds, classes and directions "
                               "mean what they did; B gives the layers above the swap resolution.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.models)
        layout.addLayout(controls)

        # wiring
        self.swap_box.currentIndexChanged.connect(self._on_swap_changed)
        self.mix_slider.valueChanged.connect(self._on_mix_changed)
        self.width_box.valueChanged.connect(self._on_width_changed)
        self.save_button.clicked.connect(self.ask_save)
        self.stop_button.clicked.connect(self.controller.blending.stop)
        controller.events.blend.connect(self._on_partner_changed)

    # ---- actions ----
    def ask_partner(self) -> None:
        """File > Blend with…: choose B."""
        path, _ = QFileDialog.getOpenFileName(self, "Blend with", "", PARTNER_FILTER)
        if path:
            self.open_partner(path)

    def open_partner(self, path) -> None:
        """Read B on the render worker; one that does not blend with the open model gets a dialog."""
        if self.controller.info is None:
            self.failed.emit("Cannot blend", "Open a model first: it becomes A, the one blended with.")
            return

        def refused(text: str) -> None:
            if text:
                self.failed.emit("Cannot blend", f"{path}\n\n{text}")

        self.controller.blending.open(path, on_failed=refused)

    def ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save blend", "blend.safetensors", "Checkpoints (*.safetensors)")
        if path:
            self.save_blend(path)

    def save_blend(self, path) -> None:
        """Write the blend on screen as a checkpoint (on the render worker)."""
        def saved(record: dict) -> None:
            self.last_saved = record
            self.message.emit(f"saved {Path(path).name}: blend of {Path(record['a']['path']).name} and "
                              f"{Path(record['b']['path']).name}")

        def failed(text: str) -> None:
            if text:
                self.failed.emit("Cannot save blend", text)

        self.controller.blending.save(path, saved, failed)

    # ---- slots ----
    def _on_partner_changed(self, partner: PartnerInfo | None) -> None:
        if partner is None:
            return
        info, spec = self.controller.info, self.controller.blending.spec
        self.models.setText(f"A: {Path(info.path).name} (open; its low layers and mapping network)   ·   "
                            f"B: {partner.name} (its layers above the swap, by the blend amount)")
        self.swap_box.blockSignals(True)
        self.swap_box.clear()
        for resolution in partner.swap_choices:
            self.swap_box.addItem(f"{resolution} px (A up to it, B above)" if resolution else "every layer (mix all)",
                                  resolution)
        self.swap_box.setCurrentIndex(max(0, self.swap_box.findData(spec.swap_at)))
        self.swap_box.blockSignals(False)
        for widget, value in ((self.mix_slider, round(spec.mix * MIX_STEPS)), (self.width_box, spec.width)):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        self._show_mix()

    def _on_swap_changed(self, index: int) -> None:
        if index >= 0:
            self.controller.blending.set(swap_at=int(self.swap_box.itemData(index)))

    def _on_mix_changed(self, value: int) -> None:
        self.controller.blending.set(mix=value / MIX_STEPS)
        self._show_mix()

    def _on_width_changed(self, value: float) -> None:
        self.controller.blending.set(width=float(value))

    def _show_mix(self) -> None:
        self.mix_label.setText(f"{self.mix_slider.value() * 100 // MIX_STEPS}%")


class BlendDock(QDockWidget):
    """The Blend panel as a dock: shown while a second model is blended, hidden when blending stops
    (Stop blending, or another model opened)."""

    def __init__(self, controller, parent=None):
        super().__init__("Blend", parent)
        self.setObjectName("blend-dock")
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)   # Stop blending closes it
        self.panel = BlendPanel(controller)
        self.setWidget(self.panel)
        controller.events.blend.connect(lambda partner: self.setVisible(partner is not None))
        self.hide()
