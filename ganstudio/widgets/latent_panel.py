"""Latent panel: seed, class, noise mode, and the current z and w (shown and copyable)."""
from __future__ import annotations

import json
import random

import numpy as np
from PySide6.QtWidgets import (QApplication, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

from trainer.latents import MAX_SEED

from ..engine.renderer import ModelInfo
from ..engine.workspace import Workspace
from .seed_box import SeedBox

NOISE_LABELS = {"const": "const (fixed per pixel)", "random": "random (new each render)", "none": "off"}


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
        layout = QVBoxLayout(self)
        layout.addLayout(form)
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
        events = workspace.events
        events.seed.connect(lambda v: _set_quietly(self.seed, v))
        events.class_index.connect(lambda v: self._sync_class())
        events.noise_mode.connect(lambda v: _set_quietly(self.noise, self.noise.findData(v)))
        events.base_ws.connect(lambda v: self._show_source())
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
        self.noise.setEnabled(bool(info and info.has_w))
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
