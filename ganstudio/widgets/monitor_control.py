"""Run control widgets for the monitor: the New run form (with "fine-tune from" and the dataset tool)
and the trainer's console. The processes themselves are the engine's (ganstudio.engine.training_process,
owned by the MonitorModel); what a fine-tuning source implies is ganstudio.engine.new_run's."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget)

from ..engine.new_run import describe_fine_tune_source
from ..engine.training_process import NewRunRequest
from .console_view import ConsoleView
from .dataset_dialog import DatasetDialog

__all__ = ["ConsoleView", "NewRunDialog", "control_row"]
SCRATCH_RESOLUTION = 32   # the form's resolution for a run from scratch


class NewRunDialog(QDialog):
    """The form for a new run: dataset, the model to fine-tune from, preset, resolution, kimg, metrics,
    where to write it."""

    def __init__(self, parent=None,
                 outdir: str = "runs"):   # default parent folder of new runs
        super().__init__(parent)
        from trainer.config import MAX_LAYERS
        from trainer.data.datasets import BUILTINS
        from trainer.training.presets import PRESETS
        from trainer.data.paired import TRANSLATION_BUILTINS
        self.setWindowTitle("New training run")
        self.dataset = QComboBox(editable=True)
        self.dataset.addItems(list(BUILTINS) + list(TRANSLATION_BUILTINS))
        browse_data = QPushButton("Folder…")
        self.make_dataset_button = QPushButton("Make a dataset…")
        self.make_dataset_button.setToolTip("make a training zip from a folder, a zip or a video's frames")
        self.init = QLineEdit(placeholderText="nothing: train from scratch")
        self.init.setToolTip("a run directory, a .safetensors checkpoint or an NVlabs .pkl: the new run starts "
                             "from its weights (--init)")
        init_checkpoint, init_run = QPushButton("Model…"), QPushButton("Run…")
        self.init_note = QLabel("", wordWrap=True)
        self.preset = QComboBox()
        self.preset.addItems(sorted(PRESETS))   # GAN and image-to-image presets alike
        self.preset.setCurrentText("dcgan")
        self.resolution = QSpinBox(minimum=0, maximum=1024, value=SCRATCH_RESOLUTION, suffix=" px",
                                   specialValueText="from the model or preset")
        self.ada = QCheckBox("adaptive discriminator augmentation (ADA)")
        self.freeze_d = QSpinBox(minimum=0, maximum=MAX_LAYERS, value=0, specialValueText="none")
        self.freeze_d.setToolTip("D's first layers, from its input side, keep the starting model's weights (--freeze-d)")
        self.kimg = QDoubleSpinBox(minimum=0.001, maximum=1e6, value=100.0, decimals=3)
        self.metrics = QLineEdit(placeholderText="e.g. kid,fid  (empty: none)")
        self.metrics_kimg = QDoubleSpinBox(minimum=0.0, maximum=1e6, value=0.0, decimals=3,
                                           specialValueText="at the end only")
        self.threads = QSpinBox(minimum=0, maximum=256, value=0, specialValueText="automatic")
        self.outdir = QLineEdit(str(outdir))
        self.extra = QLineEdit(placeholderText="more trainer options, e.g. --batch 32 --log-every 10")
        form = QFormLayout(self)
        form.addRow("Dataset", control_row(self.dataset, browse_data, self.make_dataset_button, stretch_first=True))
        form.addRow("Fine-tune from", control_row(self.init, init_checkpoint, init_run, stretch_first=True))
        form.addRow("", self.init_note)
        form.addRow("Preset", self.preset)
        form.addRow("Resolution", self.resolution)
        form.addRow("Augmentation", self.ada)
        form.addRow("Freeze D (layers)", self.freeze_d)
        form.addRow("Length (kimg)", self.kimg)
        form.addRow("Metrics", self.metrics)
        form.addRow("Metrics every (kimg)", self.metrics_kimg)
        form.addRow("CPU threads", self.threads)
        form.addRow("Output folder", self.outdir)
        form.addRow("Extra options", self.extra)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        form.addRow(buttons)
        self.init_note.hide()
        self.setMinimumWidth(640)   # room for a path in the dataset and fine-tune fields

        browse_data.clicked.connect(self._on_browse_data_clicked)
        self.make_dataset_button.clicked.connect(self._on_make_dataset_clicked)
        init_checkpoint.clicked.connect(self._on_init_model_clicked)
        init_run.clicked.connect(self._on_init_run_clicked)
        self.init.textChanged.connect(self._on_init_changed)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

    def request(self) -> NewRunRequest:
        return NewRunRequest(preset=self.preset.currentText(), dataset=self.dataset.currentText().strip(),
                             resolution=self.resolution.value(), kimg=self.kimg.value(),
                             outdir=self.outdir.text().strip() or "runs", metrics=self.metrics.text(),
                             metrics_kimg=self.metrics_kimg.value(), threads=self.threads.value(),
                             extra=self.extra.text(), init=self.init.text().strip(),
                             augment="ada" if self.ada.isChecked() else "", freeze_d=self.freeze_d.value())

    def make_dataset_dialog(self) -> DatasetDialog:
        """The dataset tool's dialog, starting from the dataset field when it names a folder, zip or video."""
        current = self.dataset.currentText().strip()
        return DatasetDialog(self, source=current if ("/" in current or "." in current) else "")

    # ---- slots ----
    def _on_browse_data_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image folder")
        if folder:
            self.dataset.setCurrentText(folder)

    def _on_make_dataset_clicked(self) -> None:
        dialog = self.make_dataset_dialog()
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.zip_path:
            self.dataset.setCurrentText(dialog.zip_path)

    def _on_init_model_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to fine-tune from", "",
                                              "Models (*.safetensors *.pkl);;All files (*)")
        if path:
            self.init.setText(path)

    def _on_init_run_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run directory to fine-tune from")
        if folder:
            self.init.setText(folder)

    def _on_init_changed(self, text: str) -> None:
        """A source chosen: the engine's fine-tuning defaults fill the form; cleared: back to a run from scratch."""
        source = describe_fine_tune_source(text)
        self.init_note.setText(source.description)
        self.init_note.setVisible(bool(source.description))
        if source.usable:
            if source.preset:
                self.preset.setCurrentText(source.preset)
            self.resolution.setValue(source.resolution)
            self.ada.setChecked(source.augment == "ada")
            self.freeze_d.setValue(source.freeze_d)
        elif not text.strip():
            self.ada.setChecked(False)
            self.freeze_d.setValue(0)
            if self.resolution.value() == 0:
                self.resolution.setValue(SCRATCH_RESOLUTION)


def control_row(*widgets: QWidget, stretch_first: bool = False) -> QHBoxLayout:
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        row.addWidget(widget, 1 if stretch_first and i == 0 else 0)
    return row
