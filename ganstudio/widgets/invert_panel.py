"""Invert panel: open a photo (button, File menu, drop, paste), see it beside the model's
reconstruction, choose the crop, space, steps, losses and PTI, and Run. The inversion runs on the
render worker; previews, a PSNR curve and progress arrive as plain data; Cancel keeps the best
latent so far. The result becomes the workspace's W+ latent (base_ws, at ψ 1), so truncation,
mixing and directions edit it; a PTI-tuned model opens as the current model, the original a click
away."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QApplication, QFrame, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea,
                               QSpinBox, QVBoxLayout, QWidget)

from trainer.inversion.project import ProjectionSettings
from trainer.inversion.pti import PTISettings
from trainer.inversion.photo import Photo, PhotoError, centre_crop, fit_photo, open_photo, photo_from_pixels

from ..engine.inversion import InversionOutcome, InversionPreview, InversionRequest, read_inversion_images, \
    run_inversion
from ..engine.opening import PHOTO_SUFFIXES
from ..engine.model_info import ModelInfo
from ..engine.workspace import Workspace
from .image_view import ImageView

PHOTO_FILTER = f"Images ({' '.join('*' + suffix for suffix in PHOTO_SUFFIXES)});;All files (*)"
# The first is the default (benchmarks/inversion.py): noise maps carry the detail W+ cannot draw
SPACES = (("W+ and noise maps", "w+", True), ("W+", "w+", False), ("W (one w for all layers)", "w", False),
          ("W and noise maps", "w", True))
# loss name, label, what it asks of the fit (the weight box's tooltip)
LOSS_LABELS = (
    ("mse", "MSE", "mean squared pixel error, what PSNR measures"),
    ("detail", "Fine detail", "the MSE of the difference's high-pass part: the fit draws fine detail sooner"),
    ("l1", "L1", "mean absolute pixel error: a few large errors pull less than with MSE"),
    ("ssim", "SSIM", "structural similarity: local brightness, contrast and structure"),
    ("ms_ssim", "MS-SSIM", "SSIM at as many scales as the model's size allows (2 at 32 px)"),
    ("inception", "Inception features", "distance of Inception-v3 features: what the picture shows over its "
                                        "pixels; slower"),
    ("discriminator", "the run's D features", "distance of the run's own discriminator features (needs the run's "
                                              "state/ folder)"),
    ("lpips", "LPIPS (if installed)", "LPIPS perceptual distance (the lpips package and its VGG16 weights)"))
LOSS_DEFAULTS = tuple((name, text, hint, ProjectionSettings().losses.get(name, 0.0))
                      for name, text, hint in LOSS_LABELS)
JOB_NAME = "invert"


class InvertPanel(QWidget):
    open_model_requested = Signal(str)    # a checkpoint to open keeping the workspace (tuned / original)
    inversion_finished = Signal(object)   # InversionOutcome, after the workspace took it
    preview_shown = Signal(object)        # InversionPreview, after it went on screen

    def __init__(self, workspace: Workspace, controller, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.controller = controller          # runs the job on the thread that owns the model
        self.info: ModelInfo | None = None
        self.photo: Photo | None = None
        self.target: np.ndarray | None = None        # uint8 [R, R, C] the fitted photo
        self.outcome: InversionOutcome | None = None
        self.original_checkpoint = ""                 # the model a tuned one came from
        self._token = 0
        self._running = False
        self.last_error = ""                          # the newest message shown in red
        self._curve_steps: list[int] = []
        self._curve_psnr: list[float] = []

        # widgets: photo and reconstruction
        self.open_button = QPushButton("Open photo…")
        self.paste_button = QPushButton("Paste")
        self.photo_label = QLabel("No photo. Open one, drop it on the window, or paste it.")
        self.photo_label.setWordWrap(True)
        self.target_view = ImageView()
        self.reconstruction_view = ImageView()
        for view in (self.target_view, self.reconstruction_view):
            view.setMinimumSize(150, 150)
            view.setMaximumHeight(240)   # the settings, progress and curve stay in view
        self.crop_left, self.crop_top, self.crop_side = QSpinBox(), QSpinBox(), QSpinBox()
        for box in (self.crop_left, self.crop_top, self.crop_side):
            box.setRange(0, 100_000)
            box.setKeyboardTracking(False)
            box.setMinimumWidth(64)   # the 100000 range asked for more than the panel column has
        self.centre_button = QPushButton("Centre")
        # widgets: settings
        defaults, pti = ProjectionSettings(), PTISettings()
        self.space = QComboBox()
        for text, space, noise in SPACES:
            self.space.addItem(text, (space, noise))
        self.steps = QSpinBox()
        self.steps.setRange(1, 100_000)
        self.steps.setValue(defaults.steps)
        self.steps.setToolTip("Optimiser steps: more fit closer and take longer in proportion (on the demo, 100 "
                              "steps reach about 38.7 dB PSNR, 300 about 42 dB)")
        self.class_box = QComboBox()
        self.loss_boxes: dict[str, QDoubleSpinBox] = {}
        for name, text, hint, weight in LOSS_DEFAULTS:
            box = QDoubleSpinBox()
            box.setRange(0.0, 100.0)
            box.setDecimals(2)
            box.setSingleStep(0.1)
            box.setValue(weight)
            box.setSpecialValueText("off")
            box.setToolTip(f"weight of the {text} loss, {hint}; 0 = off")
            box.setMinimumWidth(64)
            self.loss_boxes[name] = box
        self.pti = QCheckBox("Then tune the generator (PTI)")
        self.pti_steps = QSpinBox()
        self.pti_steps.setRange(1, 10_000)
        self.pti_steps.setValue(pti.steps)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop and keep the best latent found so far")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setMaximumHeight(140)
        self.curve_plot.setLabel("left", "PSNR", units="dB")
        self.curve_plot.setLabel("bottom", "step")
        self.curve = self.curve_plot.plot([], [], pen=pg.mkPen("#f0a030", width=2))
        self.tuned_button = QPushButton("Use tuned model")
        self.original_button = QPushButton("Back to original model")
        # layout
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.paste_button)
        views = QGridLayout()
        views.addWidget(QLabel("Photo (fitted)"), 0, 0)
        views.addWidget(QLabel("Reconstruction"), 0, 1)
        views.addWidget(self.target_view, 1, 0)
        views.addWidget(self.reconstruction_view, 1, 1)
        crop_row = QHBoxLayout()
        for text, box in (("left", self.crop_left), ("top", self.crop_top), ("side", self.crop_side)):
            crop_row.addWidget(QLabel(text))
            crop_row.addWidget(box)
        crop_row.addWidget(self.centre_button)
        form = QFormLayout()
        form.addRow("Crop (px)", crop_row)
        form.addRow("Space", self.space)
        form.addRow("Steps", self.steps)
        form.addRow("Class", self.class_box)
        losses = QGridLayout()
        for i, (name, text, _, _) in enumerate(LOSS_DEFAULTS):
            losses.addWidget(QLabel(text), i // 2, (i % 2) * 2)
            losses.addWidget(self.loss_boxes[name], i // 2, (i % 2) * 2 + 1)
        form.addRow(QLabel("Losses"))
        form.addRow(losses)   # the whole width: two pairs of columns did not fit beside a form label
        pti_row = QHBoxLayout()
        pti_row.addWidget(self.pti)
        pti_row.addWidget(QLabel("steps"))
        pti_row.addWidget(self.pti_steps)
        form.addRow(pti_row)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        model_row = QHBoxLayout()
        model_row.addWidget(self.tuned_button)
        model_row.addWidget(self.original_button)
        content = QWidget()   # scrolls, so the panel never forces a minimum height on the window
        layout = QVBoxLayout(content)
        layout.addLayout(top)
        layout.addWidget(self.photo_label)
        layout.addLayout(views)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addWidget(self.curve_plot)
        layout.addLayout(model_row)
        layout.addStretch(1)   # a tall window's spare height goes below the panel, not between its rows
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)   # it fits the column's width
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        QVBoxLayout(self).addWidget(scroll)

        # wiring
        self.open_button.clicked.connect(self._on_open_clicked)
        self.paste_button.clicked.connect(self.paste_photo)
        self.centre_button.clicked.connect(self._on_centre_clicked)
        for box in (self.crop_left, self.crop_top, self.crop_side):
            box.valueChanged.connect(self._on_crop_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.tuned_button.clicked.connect(lambda: self.open_model_requested.emit(self.workspace.tuned_checkpoint))
        self.original_button.clicked.connect(lambda: self.open_model_requested.emit(self.original_checkpoint))
        controller.events.job_progress.connect(self._on_job_progress)
        workspace.events.photo_path.connect(self._on_photo_path_changed)
        workspace.events.inversion_path.connect(self._on_inversion_path_changed)
        self._update_buttons()

    # ---- model ----
    def set_model(self, info: ModelInfo) -> None:
        self.info = info
        self.class_box.clear()
        self.class_box.addItem("search (try each class)", None)
        for i, name in enumerate(info.class_names):
            self.class_box.addItem(name, i)
        self.class_box.setEnabled(bool(info.c_dim))
        tuned_from = self._tuned_from(info.path)
        self.original_checkpoint = tuned_from or self.original_checkpoint
        if not info.has_w or info.is_points:
            self.status.setText("This model cannot invert photos: " + ("it draws 2-D points." if info.is_points
                                else "it has no W space (not style-based). Open a StyleGAN2 or StyleGAN3 checkpoint."))
        else:
            self.status.setText("")
        self._refit()
        self._update_buttons()

    @staticmethod
    def _tuned_from(path: str) -> str:
        from trainer.files import read_safetensors_metadata
        try:
            return read_safetensors_metadata(path).get("tuned_from_path", "")
        except (OSError, ValueError):
            return ""

    # ---- photos ----
    def open_photo(self, path) -> bool:
        """Open and show a photo; a bad file gets its message and changes nothing. -> success."""
        try:
            photo = open_photo(path)
        except PhotoError as exc:
            self._show_error(str(exc))
            return False
        self._set_photo(photo, crop=None)
        self.workspace.update(photo_path=str(Path(path).resolve()), photo_crop=None)
        return True

    def paste_photo(self) -> bool:
        image = QApplication.clipboard().image()
        if image.isNull():
            self.status.setText("The clipboard holds no image.")
            return False
        image = image.convertToFormat(QImage.Format.Format_RGBA8888)
        pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
        pixels = pixels[:, :image.width() * 4].reshape(image.height(), image.width(), 4).copy()
        try:
            photo = photo_from_pixels(pixels, "")
        except PhotoError as exc:
            self._show_error(str(exc))
            return False
        self._set_photo(photo, crop=None)
        self.workspace.update(photo_path="", photo_crop=None)
        return True

    def _set_photo(self, photo: Photo, crop) -> None:
        self.photo = photo
        width, height = photo.size
        left, top, side = crop or centre_crop(width, height)
        for box, value, limit in ((self.crop_left, left, width), (self.crop_top, top, height),
                                  (self.crop_side, side, min(width, height))):
            box.blockSignals(True)
            box.setMaximum(limit)
            box.setValue(value)
            box.blockSignals(False)
        name = Path(photo.path).name if photo.path else "pasted image"
        self.photo_label.setText(f"{name}: {width}×{height}" + "".join(f"<br>• {n}" for n in photo.notes))
        self._refit()
        if self.target is not None:   # a blank square, not ImageView.clear(): a cleared pyqtgraph item stays blank
            self.reconstruction_view.set_image(np.full((*self.target.shape[:2], 3), 32, np.uint8))

    def _refit(self) -> None:
        if self.photo is None or self.info is None or self.info.is_points:
            return
        crop = (self.crop_left.value(), self.crop_top.value(), self.crop_side.value())
        try:
            self.target, _, notes = fit_photo(self.photo, self.info.img_resolution, self.info.img_channels, crop)
        except PhotoError as exc:
            self.target = None
            self._show_error(str(exc))
            self._update_buttons()
            return
        self.target_view.set_image(np.repeat(self.target, 3, axis=2) if self.target.shape[2] == 1 else self.target)
        self.status.setText("; ".join(notes))
        self._update_buttons()

    # ---- running ----
    def request(self) -> InversionRequest:
        """The inversion the controls describe, for the open model and photo."""
        space, noise = self.space.currentData()
        settings = ProjectionSettings(space=space, optimize_noise=noise, steps=self.steps.value(),
                                      losses={name: box.value() for name, box in self.loss_boxes.items()})
        pti = PTISettings(steps=self.pti_steps.value(), losses=settings.losses) if self.pti.isChecked() else None
        crop = (self.crop_left.value(), self.crop_top.value(), self.crop_side.value())
        return InversionRequest(target=self.target, photo_path=self.photo.path, photo_sha256=self.photo.sha256,
                                crop=crop, notes=self.photo.notes, settings=settings,
                                class_index=self.class_box.currentData(), pti=pti, generation=self.info.generation)

    def run(self) -> bool:
        if self._running or self.target is None or self.info is None or not self.info.has_w:
            return False
        try:
            request = self.request()
        except ValueError as exc:   # e.g. every loss switched off
            self._show_error(str(exc))
            return False
        self._running = True
        self._curve_steps, self._curve_psnr = [], []
        self.curve.setData([], [])
        self.progress.setValue(0)
        self.status.setText("starting…")
        self._token = self.controller.run_job(
            JOB_NAME, lambda renderer, progress, preview: run_inversion(renderer, request, progress, preview),
            on_finished=self._on_job_finished, on_failed=self._on_job_failed, on_preview=self._on_preview,
            message="inverting the photo")
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self._running:
            self.controller.cancel_jobs()

    def is_running(self) -> bool:
        return self._running

    # ---- slots ----
    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", "", PHOTO_FILTER)
        if path:
            self.open_photo(path)

    def _on_centre_clicked(self) -> None:
        if self.photo is not None:
            self._set_photo(self.photo, crop=None)
            self.workspace.photo_crop = None

    def _on_crop_changed(self, _value: int) -> None:
        self._refit()
        if self.target is not None:
            self.workspace.photo_crop = (self.crop_left.value(), self.crop_top.value(), self.crop_side.value())

    def _on_photo_path_changed(self, path: str) -> None:
        """A reopened workspace: show its photo and the reconstruction its inversion file holds."""
        if not path or (self.photo is not None and self.photo.path
                        and Path(self.photo.path).resolve() == Path(path).resolve()):
            return
        try:
            self._set_photo(open_photo(path), self.workspace.photo_crop)
        except PhotoError as exc:
            self._show_error(f"the workspace's photo cannot be shown: {exc}")
        self._on_inversion_path_changed(self.workspace.inversion_path)

    def _on_inversion_path_changed(self, path: str) -> None:
        images = read_inversion_images(path) if path else None
        if images is not None:
            self.reconstruction_view.set_image(images[1])

    def _on_preview(self, preview: InversionPreview) -> None:
        if not self._running:
            return
        self.reconstruction_view.set_image(preview.image)
        if preview.phase == "project":
            self._curve_steps.append(preview.step)
        else:
            self._curve_steps.append(self.steps.value() + preview.step)
        self._curve_psnr.append(preview.psnr)
        self.curve.setData(self._curve_steps, self._curve_psnr)
        self.status.setText(f"{'projecting' if preview.phase == 'project' else 'tuning'} step {preview.step}/"
                            f"{preview.steps}: loss {preview.loss:.4g}, PSNR {preview.psnr:.2f} dB, "
                            f"SSIM {preview.ssim:.3f}")
        self.preview_shown.emit(preview)

    def _on_job_progress(self, update: tuple[str, float, str]) -> None:
        name, fraction, _message = update
        if name == JOB_NAME and self._running:
            self.progress.setValue(int(fraction * 1000))

    def _on_job_finished(self, outcome: InversionOutcome) -> None:
        self._running = False
        self.progress.setValue(1000)
        self._update_buttons()
        if self.info is None or outcome.generation != self.info.generation:
            self.status.setText("The model changed during the inversion; its result was not applied.")
            return
        self.outcome = outcome
        self.reconstruction_view.set_image(outcome.reconstruction)
        ws = self.workspace
        # ψ 1, no mix, no offsets: the photo is drawn exactly; later changes are edits the user asked for
        changes = dict(base_ws=outcome.ws.copy(), base_noise={k: v.copy() for k, v in outcome.noise.items()},
                       photo_ws=outcome.ws.copy(), photo_noise={k: v.copy() for k, v in outcome.noise.items()}, psi=1.0, noise_mode="const", direction_offsets={},
                       mix_layers=(False,) * self.info.num_ws, inversion_path=outcome.npz_path,
                       tuned_checkpoint=outcome.tuned_checkpoint)
        if self.info.c_dim and outcome.class_index is not None:
            changes["class_index"] = int(outcome.class_index)
        ws.update(**changes)
        text = f"PSNR {outcome.psnr:.2f} dB, SSIM {outcome.ssim:.3f} after {outcome.steps_done} steps"
        text += " from the encoder's start" if outcome.start == "encoder" else ""
        if outcome.cancelled:
            text = f"Cancelled: kept the best latent so far ({text})."
        if outcome.tuned_checkpoint:
            text += f"; PTI: {outcome.tuned_psnr:.2f} dB — the tuned model opens now."
            self.original_checkpoint = self.info.path
            self.open_model_requested.emit(outcome.tuned_checkpoint)
        notes = "".join(f"<br>Note: {html.escape(note)}" for note in outcome.notes)
        self.status.setText(text + f"<br>Saved {Path(outcome.npz_path).name}." + notes)
        self._update_buttons()
        self.inversion_finished.emit(outcome)

    def _on_job_failed(self, message: str) -> None:
        self._running = False
        self.progress.setValue(0)
        if message:
            self._show_error(message)
        else:
            self.status.setText("Cancelled before the first step.")
        self._update_buttons()

    def _show_error(self, text: str) -> None:
        self.last_error = text
        self.status.setText(f"<span style='color:#e06060'>{html.escape(text)}</span>")

    def _update_buttons(self) -> None:
        usable = self.info is not None and self.info.has_w and not self.info.is_points
        self.run_button.setEnabled(usable and self.target is not None and not self._running)
        self.cancel_button.setEnabled(self._running)
        self.tuned_button.setEnabled(bool(self.workspace.tuned_checkpoint) and self.info is not None
                                     and self.info.path != self.workspace.tuned_checkpoint and not self._running)
        self.original_button.setEnabled(bool(self.original_checkpoint) and self.info is not None
                                        and self.info.path != self.original_checkpoint and not self._running)
