"""Latent directions panel: GANSpace principal components of W and, for conditional models,
class-difference directions, as sliders applied to a range of ws layers."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSlider,
                               QSpinBox, QVBoxLayout, QWidget)

from ..engine.model_info import ModelInfo
from ..engine.workspace import Workspace

SLIDER_STEPS = 20          # ticks per unit of offset
PC_RANGE = 5.0             # principal components: +- this many standard deviations
CLASS_RANGE = 2.0          # class directions: +- this many class-mean differences


class DirectionSlider(QWidget):
    """One direction: name, slider, value."""

    def __init__(self, name: str, limit: float, on_change, parent=None):
        super().__init__(parent)
        self.name = name
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(-limit * SLIDER_STEPS), round(limit * SLIDER_STEPS))
        self.value_label = QLabel("0.00")
        self.value_label.setFixedWidth(44)
        label = QLabel(name)
        label.setFixedWidth(110)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(label)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        self.slider.valueChanged.connect(lambda v: on_change(name, v / SLIDER_STEPS))

    def show_value(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * SLIDER_STEPS))
        self.slider.blockSignals(False)
        self.value_label.setText(f"{value:+.2f}")


class DirectionsPanel(QWidget):
    compute_requested = Signal(int, int)   # number of samples, number of components

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.sliders: dict[str, DirectionSlider] = {}
        # widgets
        self.samples = QSpinBox()
        self.samples.setRange(500, 100000)
        self.samples.setSingleStep(1000)
        self.samples.setValue(5000)
        self.components = QSpinBox()
        self.components.setRange(1, 32)
        self.components.setValue(8)
        self.compute = QPushButton("Compute directions")
        self.compute.setToolTip("PCA of many mapped w (GANSpace), computed on the render worker")
        self.reset = QPushButton("Reset sliders")
        self.layer_start = QSpinBox()
        self.layer_stop = QSpinBox()
        self.layer_start.setToolTip("First ws layer the directions move")
        self.layer_stop.setToolTip("Last ws layer the directions move")
        self.layer_span = QLabel("")     # the resolutions the chosen layers draw at
        self.resolutions: tuple[int, ...] = ()
        self.status = QLabel("No directions yet.")
        self.status.setWordWrap(True)
        self.pc_box = QGroupBox("Principal components of W (in standard deviations)")
        self.pc_layout = QVBoxLayout(self.pc_box)
        self.class_box = QGroupBox("Class differences (class mean w − mean over classes)")
        self.class_layout = QVBoxLayout(self.class_box)
        sliders = QWidget()
        slider_layout = QVBoxLayout(sliders)
        slider_layout.addWidget(self.pc_box)
        slider_layout.addWidget(self.class_box)
        slider_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(sliders)
        compute_row = QHBoxLayout()
        compute_row.addWidget(QLabel("Samples"))
        compute_row.addWidget(self.samples)
        compute_row.addWidget(QLabel("Components"))
        compute_row.addWidget(self.components)
        compute_row.addWidget(self.compute)
        layer_row = QHBoxLayout()
        layer_row.addWidget(self.layer_start)
        layer_row.addWidget(QLabel("to"))
        layer_row.addWidget(self.layer_stop)
        layer_row.addWidget(self.layer_span)
        layer_row.addStretch(1)
        layer_row.addWidget(self.reset)
        form = QFormLayout()
        form.addRow("Layers", layer_row)
        layout = QVBoxLayout(self)
        layout.addLayout(compute_row)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addWidget(scroll, 1)

        # wiring
        self.compute.clicked.connect(lambda: self.compute_requested.emit(self.samples.value(),
                                                                         self.components.value()))
        self.reset.clicked.connect(lambda: setattr(self.workspace, "direction_offsets", {}))
        self.layer_start.valueChanged.connect(self._on_layers_changed)
        self.layer_stop.valueChanged.connect(self._on_layers_changed)
        events = workspace.events
        events.directions.connect(lambda v: self._build_sliders())
        events.direction_offsets.connect(lambda v: self._show_offsets())
        events.direction_layers.connect(lambda v: self._show_layers())
        self.set_model(None)

    def set_model(self, info: ModelInfo | None) -> None:
        has_w = bool(info and info.has_w)
        self.setEnabled(has_w)
        num_ws = info.num_ws if has_w else 0
        self.resolutions = tuple(info.layer_resolutions) if has_w else ()
        for spin in (self.layer_start, self.layer_stop):   # both inclusive, as the Mixing panel numbers layers
            spin.blockSignals(True)
            spin.setRange(0, max(num_ws - 1, 0))
            spin.blockSignals(False)
        self.class_box.setVisible(bool(info and info.c_dim))
        if info is not None and not has_w:
            self.status.setText("Latent directions need a model with a W space.")
        self._show_layers()
        self._build_sliders()

    # slots
    def _on_offset_changed(self, name: str, value: float) -> None:
        offsets = dict(self.workspace.direction_offsets)
        if value:
            offsets[name] = value
        else:
            offsets.pop(name, None)
        self.workspace.direction_offsets = offsets

    def _on_layers_changed(self, _value: int) -> None:
        """The boxes name the first and last layer; the workspace keeps Python's (start, stop)."""
        start, last = self.layer_start.value(), self.layer_stop.value()
        if last < start:   # the box just moved pushes the other along
            start, last = (last, last) if self.sender() is self.layer_stop else (start, start)
        stop = last + 1
        self.workspace.direction_layers = (start, None if stop > self.layer_stop.maximum() else stop)
        self._show_layers()

    def _build_sliders(self) -> None:
        for slider in self.sliders.values():
            slider.setParent(None)
            slider.deleteLater()
        self.sliders = {}
        for name in self.workspace.directions:
            is_class = name.startswith("to ")
            slider = DirectionSlider(name, CLASS_RANGE if is_class else PC_RANGE, self._on_offset_changed)
            (self.class_layout if is_class else self.pc_layout).addWidget(slider)
            self.sliders[name] = slider
        count = len(self.sliders)
        if count:
            self.status.setText(f"{count} directions. Sliders add offset × direction to the chosen layers.")
        self._show_offsets()

    def _show_offsets(self) -> None:
        for name, slider in self.sliders.items():
            slider.show_value(self.workspace.direction_offsets.get(name, 0.0))

    def _show_layers(self) -> None:
        start, stop = self.workspace.direction_layers
        last = self.layer_stop.maximum() if stop is None else stop - 1
        for spin, value in ((self.layer_start, start), (self.layer_stop, last)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        chosen = self.resolutions[start:last + 1]
        self.layer_span.setText("" if not chosen else f"{chosen[0]} px" if chosen[0] == chosen[-1]
                                else f"{chosen[0]}–{chosen[-1]} px")
