"""The Timeline panel's export box: MP4 (H.264), GIF or PNG frames at an automatic size (the model's
enlarged by a whole factor to at least 256 px), native, 2x, 4x or a square size
with a named resize filter, a quality, a grid of seeds by option; progress and Cancel.

The export is the controller's job on the renderer's thread (RenderController.export_film: chunks
render there while an encoder thread writes); the file appears under its name only when complete.
This box only gathers the settings and shows the progress.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
                               QProgressBar, QPushButton, QSpinBox)

from trainer.film.timeline import Timeline, TimelineError
from trainer.film.video import MIN_AUTO_SIZE, RESIZE_FILTERS, ExportError, ExportSettings

from ..engine.controller import FILM_JOB
from ..engine.model_info import ModelInfo

SIZE_CHOICES = ((f"auto (≥ {MIN_AUTO_SIZE} px)", None), ("native", 1), ("2×", 2), ("4×", 4), ("square size…", 0))
FORMAT_CHOICES = (("MP4 (H.264)", ".mp4"), ("GIF", ".gif"), ("PNG sequence (folder)", ""))


class ExportBox(QGroupBox):
    def __init__(self,
                 timeline: Callable[[], Timeline | None],   # the timeline to export when asked
                 controller,                                # RenderController: runs the export job
                 before_export: Callable[[], None],         # called as an export starts (playback stops)
                 parent=None):
        super().__init__("Export", parent)
        self.timeline, self.controller, self.before_export = timeline, controller, before_export
        self.info: ModelInfo | None = None
        self.busy = False
        self.last_export = ""
        # widgets
        self.format = QComboBox()
        for text, suffix in FORMAT_CHOICES:
            self.format.addItem(text, suffix)
        self.size = QComboBox()
        for text, factor in SIZE_CHOICES:
            self.size.addItem(text, factor)
        self.size.setItemData(0, f"The frames' own side (a grid's, with grid cells) enlarged by a whole factor to at "
                                 f"least {MIN_AUTO_SIZE} px", Qt.ItemDataRole.ToolTipRole)
        self.side = QSpinBox()
        self.side.setRange(16, 2048)
        self.side.setValue(512)
        self.side.setSuffix(" px")
        self.side.setEnabled(False)
        self.filter = QComboBox()
        self.filter.addItems(list(RESIZE_FILTERS))
        self.filter.setCurrentText("lanczos")
        self.filter.setToolTip("How frames are resized to the output size (nearest keeps the model's pixels square)")
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(80)
        self.quality.setToolTip("MP4 only: 100 = x264 CRF 10 (near lossless), 1 = CRF 40")
        self.grid = QSpinBox()
        self.grid.setRange(1, 16)
        self.grid.setToolTip("A grid video: this many cells, each the timeline from other seeds (+1, +2 ...)")
        self.button = QPushButton("Export…")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Format", self.format)
        size_row = QHBoxLayout()
        for w in (self.size, self.side, self.filter):
            size_row.addWidget(w)
        form.addRow("Size", size_row)
        quality_row = QHBoxLayout()
        quality_row.addWidget(self.quality)
        quality_row.addWidget(QLabel("Grid cells"))
        quality_row.addWidget(self.grid)
        form.addRow("Quality", quality_row)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.button)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        form.addRow(progress_row)
        form.addRow(self.message)
        # wiring
        self.size.currentIndexChanged.connect(lambda: self.side.setEnabled(self.size.currentData() == 0))
        self.button.clicked.connect(self._on_export_dialog)
        self.cancel_button.clicked.connect(lambda: self.controller.cancel_jobs())
        self.controller.events.job_progress.connect(self._on_job_progress)
        self.refresh()

    def set_model(self, info: ModelInfo) -> None:
        self.info = info
        self.refresh()

    def refresh(self) -> None:
        line = self.timeline()
        self.button.setEnabled(line is not None and bool(line.keyframes) and self.info is not None and not self.busy)
        self.cancel_button.setEnabled(self.busy)
        self.progress.setVisible(self.busy)

    def settings(self, path) -> ExportSettings:
        factor = self.size.currentData()
        native = self.info.img_resolution if self.info is not None else 0
        side = None if factor is None else self.side.value() if factor == 0 else native * factor
        return ExportSettings(str(path), size=side, resize_filter=self.filter.currentText(),
                              quality=self.quality.value())

    def _on_export_dialog(self) -> None:
        suffix = self.format.currentData()
        filters = {".mp4": "MP4 video (*.mp4)", ".gif": "GIF (*.gif)", "": "Folder of PNG frames (*)"}
        path, _ = QFileDialog.getSaveFileName(self, "Export timeline", f"film{suffix}", filters[suffix])
        if path:
            self.export_to(path)

    def export_to(self, path) -> bool:
        """Start exporting to `path`; False (and a message) when something is wrong before rendering."""
        line, info = self.timeline(), self.info
        if line is None or info is None or self.busy:
            return False
        settings, cells = self.settings(path), self.grid.value()
        try:
            self.controller.check_film(line, settings, cells)
        except (TimelineError, ExportError) as exc:
            self.message.setText(str(exc))
            return False
        self.before_export()
        self.busy = True
        self.progress.setValue(0)
        self.message.setText(f"exporting {Path(path).name}…")
        self.refresh()
        self.controller.export_film(line, settings, cells, self._on_finished, self._on_failed)
        return True

    def _on_job_progress(self, payload) -> None:
        name, fraction, message = payload
        if name == FILM_JOB:
            self.progress.setValue(int(fraction * 1000))
            self.message.setText(message)

    def _on_finished(self, report) -> None:
        self.busy = False
        self.last_export = report.path
        self.message.setText(f"wrote {Path(report.path).name}: {report.frames} frames, {report.size}×{report.size}, "
                             f"{report.fps:.1f} frames/s")
        self.message.setToolTip(report.path)
        self.refresh()

    def _on_failed(self, message: str) -> None:
        self.busy = False
        self.refresh()
        if not message:
            self.message.setText("export cancelled: nothing was written")
            return
        self.message.setText(f"export failed: {message}")
        box = QMessageBox(QMessageBox.Icon.Warning, "Export failed", message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
