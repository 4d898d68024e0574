"""Latent panel: seed, class, noise mode, StyleGAN3's move and rotate (sliders, a drag pad and an
animation), and the current z and w (shown and copyable)."""
from __future__ import annotations

import json
import math
import random

import numpy as np
from PySide6.QtCore import QElapsedTimer, QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGroupBox,
                               QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSlider, QVBoxLayout, QWidget)

from trainer.latents import MAX_ROTATE_DEG, MAX_SEED, MAX_TRANSLATE

from ..engine.model_info import ModelInfo
from ..engine.workspace import Workspace
from .seed_box import SeedBox

NOISE_LABELS = {"const": "const (fixed per pixel)", "random": "random (new each render)", "none": "off"}
SLIDER_TRANSLATE = 0.5       # the move sliders span +-half an image (the boxes go further)
SLIDER_STEPS = 1000          # slider steps per image width, and per 100 degrees
ANIMATIONS = ("spin", "circle")
SPIN_DEG_PER_S = 20.0        # a slow turn: 18 s per revolution
CIRCLE_RADIUS = 0.1          # image widths the circling pan travels from its centre
CIRCLE_PERIOD_S = 8.0
ANIMATION_INTERVAL_MS = 40   # 25 changes a second; the renderer drops the ones it cannot keep up with
DRAG_IMAGE_PX = 200          # dragging this many pixels on the pad moves the picture one image width


class LatentPanel(QWidget):
    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        # widgets
        self.seed = SeedBox()
        self.seed.setToolTip("z = RandomState(seed).randn(z_dim). Up/Down arrow keys step the seed.")
        self.seed.setKeyboardTracking(False)
        self.previous_seed = QPushButton("◀")
        self.next_seed = QPushButton("▶")
        self.random_seed = QPushButton("Random")
        for button in (self.previous_seed, self.next_seed):
            button.setFixedWidth(32)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class the conditional model draws")
        self.noise = QComboBox()
        for mode, label in NOISE_LABELS.items():
            self.noise.addItem(label, mode)
        self.latent_source = QLabel()
        self.latent_source.setWordWrap(True)
        self.back_to_seed = QPushButton("Back to the seed's latent")
        self.latent_text = QPlainTextEdit()
        self.latent_text.setReadOnly(True)
        self.latent_text.setMinimumHeight(120)
        self.copy_z = QPushButton("Copy z")
        self.copy_w = QPushButton("Copy w (W+)")
        self.translate_x = _SliderBox(SLIDER_TRANSLATE, MAX_TRANSLATE, 5, "image widths to the right (1/resolution = 1 px)")
        self.translate_y = _SliderBox(SLIDER_TRANSLATE, MAX_TRANSLATE, 5, "image heights down")
        self.rotate = _SliderBox(180.0, MAX_ROTATE_DEG, 1, "degrees counterclockwise", scale=10)
        self.drag_pad = DragPad()
        self.animation = QComboBox()
        self.animation.addItems(ANIMATIONS)
        self.animation.setToolTip("spin: a slow turn; circle: the picture travels round a small circle")
        self.animate = QCheckBox("Animate")
        self.reset_transform = QPushButton("Reset")
        self.transform_box = QGroupBox("Move and rotate (StyleGAN3 input transform)")
        self.animation_timer = QTimer(self)
        self.animation_timer.setInterval(ANIMATION_INTERVAL_MS)
        self.animation_clock = QElapsedTimer()
        self.animation_start = (0.0, 0.0, 0.0)
        self.z: np.ndarray | None = None
        self.ws: np.ndarray | None = None

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.previous_seed)
        seed_row.addWidget(self.next_seed)
        seed_row.addWidget(self.random_seed)
        form = QFormLayout()
        form.addRow("Seed", seed_row)
        form.addRow("Class", self.class_combo)
        form.addRow("Noise", self.noise)
        copy_row = QHBoxLayout()
        copy_row.addWidget(self.copy_z)
        copy_row.addWidget(self.copy_w)
        transform_form = QFormLayout(self.transform_box)
        transform_form.addRow("Move x", self.translate_x)
        transform_form.addRow("Move y", self.translate_y)
        transform_form.addRow("Rotate", self.rotate)
        motion_row = QHBoxLayout()
        motion_row.addWidget(self.drag_pad, 1)
        motion_row.addWidget(self.animation)
        motion_row.addWidget(self.animate)
        motion_row.addWidget(self.reset_transform)
        transform_form.addRow(motion_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.transform_box)
        layout.addWidget(self.latent_source)
        layout.addWidget(self.back_to_seed)
        layout.addWidget(QLabel("Current latent"))
        layout.addWidget(self.latent_text, 1)
        layout.addLayout(copy_row)

        # wiring
        self.seed.valueChanged.connect(self._on_seed_changed)
        self.previous_seed.clicked.connect(lambda: self.seed.stepBy(-1))
        self.next_seed.clicked.connect(lambda: self.seed.stepBy(1))
        self.random_seed.clicked.connect(lambda: self.seed.setValue(random.randint(0, MAX_SEED)))
        self.class_combo.currentIndexChanged.connect(self._on_class_changed)
        self.noise.currentIndexChanged.connect(self._on_noise_changed)
        self.back_to_seed.clicked.connect(lambda: setattr(self.workspace, "base_ws", None))
        self.copy_z.clicked.connect(lambda: self._copy(self.z))
        self.copy_w.clicked.connect(lambda: self._copy(self.ws))
        self.translate_x.changed.connect(lambda v: self._on_transform_changed("translate_x", v))
        self.translate_y.changed.connect(lambda v: self._on_transform_changed("translate_y", v))
        self.rotate.changed.connect(lambda v: self._on_transform_changed("rotate_deg", v))
        self.drag_pad.dragged.connect(self._on_pad_dragged)
        self.animate.toggled.connect(self._on_animate_changed)
        self.animation.currentIndexChanged.connect(lambda _: self._on_animate_changed(self.animate.isChecked()))
        self.animation_timer.timeout.connect(self._on_animation_tick)
        self.reset_transform.clicked.connect(self._on_reset_transform)
        events = workspace.events
        events.seed.connect(lambda v: _set_quietly(self.seed, v))
        events.class_index.connect(lambda v: self._sync_class())
        events.noise_mode.connect(lambda v: _set_quietly(self.noise, self.noise.findData(v)))
        events.base_ws.connect(lambda v: self._show_source())
        events.translate_x.connect(self.translate_x.show_value)
        events.translate_y.connect(self.translate_y.show_value)
        events.rotate_deg.connect(self.rotate.show_value)
        self.set_model(None)

    def set_model(self, info: ModelInfo | None) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for name in (info.class_names if info else ()):
            self.class_combo.addItem(name)
        self.class_combo.blockSignals(False)
        self.class_combo.setEnabled(bool(info and info.c_dim))
        if info is not None and not info.c_dim:
            self.class_combo.addItem("(unconditional model)")
        self.noise.setEnabled(bool(info and info.has_noise))
        self.noise.setToolTip("" if info is None or info.has_noise else "This model takes no per-pixel noise")
        transformable = bool(info and info.transformable)
        self.transform_box.setVisible(transformable)
        if not transformable:
            self.animate.setChecked(False)
        else:   # the boxes step one pixel at a time
            for box in (self.translate_x, self.translate_y):
                box.box.setSingleStep(1 / max(info.img_resolution, 1))
        for box, name in ((self.translate_x, "translate_x"), (self.translate_y, "translate_y"), (self.rotate, "rotate_deg")):
            box.show_value(getattr(self.workspace, name))
        self._sync_class()
        _set_quietly(self.seed, self.workspace.seed)
        _set_quietly(self.noise, self.noise.findData(self.workspace.noise_mode))
        self._show_source()

    def show_latents(self, z: np.ndarray | None, ws: np.ndarray | None) -> None:
        """Show the z and w of the image on screen (from the render result)."""
        self.z, self.ws = z, ws
        lines = []
        if z is not None:
            lines.append(f"z [{z.shape[0]}]  |z| = {np.linalg.norm(z):.2f}")
            lines.append("  " + _preview(z))
        if ws is not None:
            spread = float(np.abs(ws - ws[0]).max())
            lines.append(f"w [{ws.shape[0]} x {ws.shape[1]}]  " + ("W (all layers equal)" if spread == 0
                                                                 else f"W+ (layers differ by up to {spread:.2f})"))
            for i, row in enumerate(ws):
                lines.append(f"  {i}: " + _preview(row, 4))
        self.latent_text.setPlainText("\n".join(lines))
        self.copy_z.setEnabled(z is not None)
        self.copy_w.setEnabled(ws is not None)

    # slots
    def _on_seed_changed(self, value: int) -> None:
        self.workspace.base_ws = None  # a new seed means that seed's latent, not an edited one
        self.workspace.seed = int(value)

    def _on_class_changed(self, index: int) -> None:
        if index >= 0 and self.class_combo.isEnabled():
            self.workspace.base_ws = None
            self.workspace.class_index = index

    def _on_noise_changed(self, index: int) -> None:
        self.workspace.noise_mode = self.noise.itemData(index)

    def _on_transform_changed(self, name: str, value: float) -> None:
        setattr(self.workspace, name, float(value))

    def _on_pad_dragged(self, dx: float, dy: float) -> None:
        """A drag on the pad moves the picture with the mouse (DRAG_IMAGE_PX pixels per image width)."""
        ws = self.workspace
        ws.update(translate_x=_clamp(ws.translate_x + dx / DRAG_IMAGE_PX, MAX_TRANSLATE),
                  translate_y=_clamp(ws.translate_y + dy / DRAG_IMAGE_PX, MAX_TRANSLATE))

    def _on_animate_changed(self, on: bool) -> None:
        self.animation_timer.stop()
        if on:
            ws = self.workspace
            self.animation_start = (ws.translate_x, ws.translate_y, ws.rotate_deg)
            self.animation_clock.start()
            self.animation_timer.start()

    def _on_animation_tick(self) -> None:
        """Settings from the time since the animation started, so its speed never depends on the frame rate."""
        seconds = self.animation_clock.elapsed() / 1000
        x, y, degrees = self.animation_start
        if self.animation.currentText() == "spin":
            self.workspace.rotate_deg = (degrees + SPIN_DEG_PER_S * seconds + 180) % 360 - 180
        else:   # round a circle that starts (and ends each lap) where the picture was
            angle = 2 * math.pi * seconds / CIRCLE_PERIOD_S
            self.workspace.update(translate_x=_clamp(x + CIRCLE_RADIUS * (math.cos(angle) - 1), MAX_TRANSLATE),
                                  translate_y=_clamp(y + CIRCLE_RADIUS * math.sin(angle), MAX_TRANSLATE))

    def _on_reset_transform(self) -> None:
        self.animate.setChecked(False)
        self.workspace.update(translate_x=0.0, translate_y=0.0, rotate_deg=0.0)

    def _sync_class(self) -> None:
        if self.class_combo.isEnabled():
            _set_quietly(self.class_combo, min(self.workspace.class_index, self.class_combo.count() - 1))

    def _show_source(self) -> None:
        edited = self.workspace.base_ws is not None
        self.latent_source.setText("Latent: an edited W+ (from style mixing); the seed no longer decides it."
                                   if edited else "Latent: from the seed.")
        self.back_to_seed.setVisible(edited)

    def _copy(self, array: np.ndarray | None) -> None:
        if array is not None:
            QApplication.clipboard().setText(json.dumps(np.round(array.astype(float), 6).tolist()))


class _SliderBox(QWidget):
    """A slider over the usual range beside a box that takes any value up to the limit; `changed`
    says what the user set, `show_value` shows the model's value without echoing it."""
    changed = Signal(float)

    def __init__(self, slider_limit: float, limit: float, decimals: int, unit: str, scale: float = SLIDER_STEPS):
        super().__init__()
        self.scale = scale
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(-slider_limit * scale), round(slider_limit * scale))
        self.box = QDoubleSpinBox()
        self.box.setRange(-limit, limit)
        self.box.setDecimals(decimals)
        self.box.setKeyboardTracking(False)
        for w in (self.slider, self.box):
            w.setToolTip(unit)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.box)
        self.slider.valueChanged.connect(lambda v: self.changed.emit(v / self.scale))
        self.box.valueChanged.connect(lambda v: self.changed.emit(float(v)))

    def show_value(self, value: float) -> None:
        _set_quietly(self.slider, round(value * self.scale))   # the slider clamps what lies beyond its span
        _set_quietly(self.box, value)


class DragPad(QFrame):
    """Drag here to move the picture: `dragged(dx, dy)` in screen pixels while the left button is held."""
    dragged = Signal(float, float)

    def __init__(self):
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumSize(90, 28)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setToolTip("Drag here to move the picture")
        self._last: QPointF | None = None
        label = QLabel("drag to move", self)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.addWidget(label)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._last = event.position()

    def mouseMoveEvent(self, event) -> None:
        if self._last is not None:
            delta = event.position() - self._last
            self._last = event.position()
            self.dragged.emit(delta.x(), delta.y())

    def mouseReleaseEvent(self, event) -> None:
        self._last = None


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


def _preview(v: np.ndarray, n: int = 6) -> str:
    head = ", ".join(f"{x:+.3f}" for x in v[:n])
    return f"[{head}{', ...' if len(v) > n else ''}]"


def _set_quietly(widget, value) -> None:
    """Show a model value without echoing it back as a user change."""
    widget.blockSignals(True)
    if isinstance(widget, QComboBox):
        widget.setCurrentIndex(value)
    else:
        widget.setValue(value)
    widget.blockSignals(False)
