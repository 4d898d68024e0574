"""Run control widgets for the monitor: the New run form and the trainer's console. The processes
themselves are the engine's (ganstudio.engine.training_process, owned by the MonitorModel)."""
from __future__ import annotations

from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QWidget)

from ..engine.training_process import NewRunRequest


class ConsoleView(QPlainTextEdit):
    """Read-only console that understands the carriage returns of progress bars."""

    def __init__(self, parent=None,
                 max_lines: int = 5000):   # older lines are dropped
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(max_lines)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(8)
        self.setFont(font)

    def append_output(self, text: str) -> None:
        cursor = self.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for i, piece in enumerate(text.replace("\r\n", "\n").split("\n")):
            if i:
                cursor.insertText("\n")
            if "\r" in piece:
                # A progress bar redrawing its line: replace the line instead of adding one.
                piece = piece.rsplit("\r", 1)[1]
                if not piece:
                    continue
                cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
            cursor.insertText(piece)
        self.setTextCursor(cursor)
        self.ensureCursorVisible()


class NewRunDialog(QDialog):
    """The form for a new run: dataset, preset, resolution, kimg, metrics, where to write it."""

    def __init__(self, parent=None,
                 outdir: str = "runs"):   # default parent folder of new runs
        super().__init__(parent)
        from trainer.data.datasets import BUILTINS
        from trainer.training.presets import PRESETS
        from trainer.data.paired import TRANSLATION_BUILTINS
        self.setWindowTitle("New training run")
        self.dataset = QComboBox(editable=True)
        self.dataset.addItems(list(BUILTINS) + list(TRANSLATION_BUILTINS))
        browse_data = QPushButton("Folder…")
        browse_data.clicked.connect(self._on_browse_data_clicked)
        data_row = QHBoxLayout()
        data_row.addWidget(self.dataset, 1)
        data_row.addWidget(browse_data)
        self.preset = QComboBox()
        self.preset.addItems(sorted(PRESETS))   # GAN and image-to-image presets alike
        self.preset.setCurrentText("dcgan")
        self.resolution = QSpinBox(minimum=4, maximum=1024, value=32, suffix=" px")
        self.kimg = QDoubleSpinBox(minimum=0.001, maximum=1e6, value=100.0, decimals=3)
        self.metrics = QLineEdit(placeholderText="e.g. kid,fid  (empty: none)")
        self.metrics_kimg = QDoubleSpinBox(minimum=0.0, maximum=1e6, value=0.0, decimals=3,
                                           specialValueText="at the end only")
        self.threads = QSpinBox(minimum=0, maximum=256, value=0, specialValueText="automatic")
        self.outdir = QLineEdit(str(outdir))
        self.extra = QLineEdit(placeholderText="more trainer options, e.g. --batch 32 --log-every 10")
        form = QFormLayout(self)
        form.addRow("Dataset", data_row)
        form.addRow("Preset", self.preset)
        form.addRow("Resolution", self.resolution)
        form.addRow("Length (kimg)", self.kimg)
        form.addRow("Metrics", self.metrics)
        form.addRow("Metrics every (kimg)", self.metrics_kimg)
        form.addRow("CPU threads", self.threads)
        form.addRow("Output folder", self.outdir)
        form.addRow("Extra options", self.extra)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def request(self) -> NewRunRequest:
        return NewRunRequest(preset=self.preset.currentText(), dataset=self.dataset.currentText().strip(),
                             resolution=self.resolution.value(), kimg=self.kimg.value(),
                             outdir=self.outdir.text().strip() or "runs", metrics=self.metrics.text(),
                             metrics_kimg=self.metrics_kimg.value(), threads=self.threads.value(),
                             extra=self.extra.text())

    def _on_browse_data_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image folder")
        if folder:
            self.dataset.setCurrentText(folder)


def control_row(*buttons: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    for b in buttons:
        row.addWidget(b)
    return row
