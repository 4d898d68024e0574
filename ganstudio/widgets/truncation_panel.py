"""Truncation panel: psi from -1 to 2 with a cutoff layer and a center (global or class mean w);
for models without W, a truncated normal threshold for resampling z instead."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSlider,
                               QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from ..engine.model_info import ModelInfo
from ..engine.workspace import Workspace

PSI_STEPS = 100  # slider ticks per unit of psi


class TruncationPanel(QWidget):
    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        # widgets: W models
        self.psi_slider = QSlider(Qt.Orientation.Horizontal)
        self.psi_slider.setRange(-1 * PSI_STEPS, 2 * PSI_STEPS)
        self.psi_slider.setToolTip("psi = 1: no truncation; 0: the mean w; below 0: the opposite side")
        self.psi_box = QDoubleSpinBox()
        self.psi_box.setRange(-1.0, 2.0)
        self.psi_box.setSingleStep(0.05)
        self.psi_box.setDecimals(2)
        self.cutoff = QSpinBox()
        self.cutoff.setSpecialValueText("all layers")
        self.cutoff.setToolTip("Truncate only the ws layers below this index (coarse layers first)")
        self.center = QComboBox()
        self.center.addItem("global mean w (w_avg)", "global")
        self.center.addItem("mean w of the chosen class", "class")
        self.center.setToolTip("For a conditional model the class mean keeps the class when psi is small")
        w_page = QWidget()
        psi_row = QHBoxLayout()
        psi_row.addWidget(self.psi_slider, 1)
        psi_row.addWidget(self.psi_box)
        w_form = QFormLayout(w_page)
        w_form.addRow("ψ (psi)", psi_row)
        w_form.addRow("Cutoff", self.cutoff)
        w_form.addRow("Toward", self.center)
        explanation = QLabel("w' = center + ψ (w − center) on layers below the cutoff.")
        explanation.setWordWrap(True)
        w_form.addRow(explanation)
        # widgets: Z-only models
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 300)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 3.0)
        self.threshold_box.setSingleStep(0.1)
        self.threshold_box.setSpecialValueText("off")
        z_page = QWidget()
        z_layout = QVBoxLayout(z_page)
        z_label = QLabel("Truncated normal (this model has no W space): each component of z beyond "
                         "± threshold is resampled from N(0, 1) until it falls inside.")
        z_label.setWordWrap(True)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(QLabel("Threshold"))
        threshold_row.addWidget(self.threshold_slider, 1)
        threshold_row.addWidget(self.threshold_box)
        z_layout.addWidget(z_label)
        z_layout.addLayout(threshold_row)
        z_layout.addStretch(1)
        self.pages = QStackedWidget()
        self.pages.addWidget(w_page)
        self.pages.addWidget(z_page)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        layout.addStretch(1)

        # wiring
        self.psi_slider.valueChanged.connect(self._on_psi_slider_changed)
        self.psi_box.valueChanged.connect(self._on_psi_changed)
        self.cutoff.valueChanged.connect(self._on_cutoff_changed)
        self.center.currentIndexChanged.connect(self._on_center_changed)
        self.threshold_slider.valueChanged.connect(lambda v: self._on_threshold_changed(v / 100))
        self.threshold_box.valueChanged.connect(self._on_threshold_changed)
        events = workspace.events
        events.psi.connect(lambda v: self._show())
        events.cutoff.connect(lambda v: self._show())
        events.truncation_center.connect(lambda v: self._show())
        events.z_threshold.connect(lambda v: self._show())
        self.set_model(None)

    def set_model(self, info: ModelInfo | None) -> None:
        self.pages.setCurrentIndex(0 if info is None or info.has_w else 1)
        self.cutoff.setRange(0, info.num_ws if info and info.has_w else 0)
        conditional = bool(info and info.c_dim)
        self.center.model().item(1).setEnabled(conditional)
        self._show()

    # slots
    def _on_psi_slider_changed(self, value: int) -> None:
        self.workspace.psi = round(value / PSI_STEPS, 4)

    def _on_psi_changed(self, value: float) -> None:
        self.workspace.psi = round(float(value), 4)

    def _on_cutoff_changed(self, value: int) -> None:
        self.workspace.cutoff = None if value == 0 else int(value)

    def _on_center_changed(self, index: int) -> None:
        self.workspace.truncation_center = self.center.itemData(index)

    def _on_threshold_changed(self, value: float) -> None:
        self.workspace.z_threshold = round(float(value), 4)

    def _show(self) -> None:
        ws = self.workspace
        for widget, value in ((self.psi_slider, round(ws.psi * PSI_STEPS)), (self.psi_box, ws.psi),
                              (self.cutoff, ws.cutoff or 0), (self.threshold_slider, round(ws.z_threshold * 100)),
                              (self.threshold_box, ws.z_threshold),
                              (self.center, max(0, self.center.findData(ws.truncation_center)))):
            widget.blockSignals(True)
            widget.setCurrentIndex(value) if isinstance(widget, QComboBox) else widget.setValue(value)
            widget.blockSignals(False)
