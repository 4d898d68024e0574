"""The "Make a dataset" dialog of the New-run form: the dataset tool's settings, then the tool itself as a
subprocess (the engine's DatasetJob) with a progress bar, its report in a console, and Cancel. "Use this
dataset" closes the dialog with `zip_path` set."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QVBoxLayout)

from ..engine.new_run import DatasetJob, DatasetRequest, default_dataset_path
from .console_view import ConsoleView

CROP_NAMES = {"center": "centre crop to a square", "wide": "wide: 2:1, padded to a square",
              "tall": "tall: 1:2, padded to a square", "squash": "squash the whole picture to a square"}
EXIT_CANCELLED = 130
POLL_MS = 100


class DatasetDialog(QDialog):
    def __init__(self, parent=None,
                 source: str = ""):   # a folder, zip or video to start from ("" none)
        super().__init__(parent)
        from trainer.data.dataset_tool import CROPS, DatasetSettings
        defaults = DatasetSettings()
        self.setWindowTitle("Make a dataset")
        self.job: DatasetJob | None = None
        self.zip_path = ""
        self.source = QLineEdit(source, placeholderText="a folder of pictures, a .zip of them, or a video")
        source_folder, source_file = QPushButton("Folder…"), QPushButton("Zip or video…")
        self.out = QLineEdit(placeholderText="the dataset .zip to write")
        save_as = QPushButton("Save as…")
        self.resolution = QSpinBox(minimum=4, maximum=4096, value=defaults.resolution, suffix=" px")
        self.resolution.setToolTip("rounded to the nearest power of two")
        self.crop = QComboBox()
        for key in CROPS:
            self.crop.addItem(CROP_NAMES.get(key, key), key)
            self.crop.setItemData(self.crop.count() - 1, CROPS[key], Qt.ItemDataRole.ToolTipRole)
        self.channels = QComboBox()
        self.channels.addItem("RGB", 3)
        self.channels.addItem("grey", 1)
        self.every = QSpinBox(minimum=1, maximum=10_000, value=defaults.every, prefix="every ", suffix=" frame(s)")
        self.labels = QCheckBox("class labels from sub-folders", checked=defaults.labels)
        self.progress = QProgressBar(minimum=0, maximum=1, value=0, textVisible=True)
        self.status = QLabel("", wordWrap=True)
        self.console = ConsoleView(max_lines=500)
        self.make_button, self.cancel_button = QPushButton("Make"), QPushButton("Close")
        self.use_button = QPushButton("Use this dataset", enabled=False)
        self.timer = QTimer(self, interval=POLL_MS)

        form = QFormLayout()
        form.addRow("Pictures from", _row(self.source, source_folder, source_file))
        form.addRow("Save as", _row(self.out, save_as))
        form.addRow("Resolution", self.resolution)
        form.addRow("Framing", self.crop)
        form.addRow("Colour", self.channels)
        form.addRow("Video frames", self.every)
        form.addRow("", self.labels)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.console, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.make_button, self.use_button, self.cancel_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.resize(640, 520)

        source_folder.clicked.connect(self._on_source_folder_clicked)
        source_file.clicked.connect(self._on_source_file_clicked)
        save_as.clicked.connect(self._on_save_as_clicked)
        self.source.textChanged.connect(self._on_source_changed)
        self.out.textChanged.connect(self._update_buttons)
        self.make_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.use_button.clicked.connect(self.accept)
        self.timer.timeout.connect(self._on_poll)
        self._on_source_changed(source)

    def request(self) -> DatasetRequest:
        return DatasetRequest(self.source.text().strip(), self.out.text().strip(), self.resolution.value(),
                              self.crop.currentData(), self.channels.currentData(), self.every.value(),
                              self.labels.isChecked())

    def start(self) -> None:
        """Run the dataset tool on the settings shown."""
        self.zip_path = ""
        self.console.clear()
        self.job = DatasetJob(self.request())
        self.job.start()
        self.progress.setRange(0, 0)   # busy until the tool says how many pictures there are
        self.status.setText("reading the pictures…")
        self.timer.start()
        self._update_buttons()

    def cancel(self) -> None:
        if self.job is not None and self.job.is_running():
            self.job.cancel()
            self.status.setText("cancelling…")

    # ---- slots ----
    def _on_source_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of pictures")
        if folder:
            self.source.setText(folder)

    def _on_source_file_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Zip of pictures or video", "",
                                              "Zip or video (*.zip *.mp4 *.mov *.m4v *.mkv *.webm *.avi)")
        if path:
            self.source.setText(path)

    def _on_save_as_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the dataset as", self.out.text(), "Zip files (*.zip)")
        if path:
            self.out.setText(path)

    def _on_source_changed(self, text: str) -> None:
        if text.strip():
            self.out.setText(default_dataset_path(text.strip()))
        self._update_buttons()

    def _on_cancel_clicked(self) -> None:
        if self.job is not None and self.job.is_running():
            self.cancel()
        else:
            self.reject()

    def _on_poll(self) -> None:
        news = self.job.poll()
        if news.output:
            self.console.append_output(news.output)
        if news.total:
            self.progress.setRange(0, news.total)
            self.progress.setValue(news.done)
        if news.exit_code is None:
            return
        self.timer.stop()
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if news.exit_code == 0 else 0)
        if news.exit_code == 0:
            self.zip_path = self.job.request.out
            self.status.setText(f"made {self.zip_path}: read the report below, then use it")
        elif news.exit_code == EXIT_CANCELLED:
            self.status.setText("cancelled: no zip was written")
        else:
            self.status.setText(f"the dataset tool failed (exit code {news.exit_code}): its message is below")
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.timer.isActive()   # polling until the tool's end has been read
        self.make_button.setEnabled(not running and bool(self.source.text().strip() and self.out.text().strip()))
        self.use_button.setEnabled(not running and bool(self.zip_path))
        self.cancel_button.setText("Cancel" if running else "Close")

    def reject(self) -> None:
        """Closing the dialog cancels a tool still running (it removes its unfinished zip)."""
        if self.job is not None and self.job.is_running():
            self.job.cancel()
            if not self.job.process.wait(self.job.process.kill_after_s):
                self.job.process.kill()
        self.timer.stop()
        super().reject()


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(widgets[0], 1)
    for widget in widgets[1:]:
        row.addWidget(widget)
    return row
