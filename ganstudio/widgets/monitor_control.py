"""Run control for the monitor: start a training run as a separate process from a form, stop it
cleanly (SIGTERM: the trainer saves and writes status "stopped"), resume it, and show its
console output."""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QWidget)

_RUN_DIR_NAME = re.compile(r"^\d{5}-")


@dataclass(frozen=True)
class NewRunRequest:
    preset: str
    dataset: str          # a built-in name, an image folder or a .zip
    resolution: int       # pixels; ignored by 2-D point datasets
    kimg: float           # train until this many thousand real images
    outdir: str           # parent folder of the new run directory
    metrics: str = ""     # comma list for --metrics ("" none)
    metrics_kimg: float = 0.0   # --metrics-kimg (0: at the end only)
    threads: int = 0      # torch CPU threads (0: torch's default)
    extra: str = ""       # further trainer options, shell-quoted (e.g. "--batch 16 --log-every 5")

    def arguments(self) -> list[str]:
        """The trainer's command line (after `python -m trainer`)."""
        args = ["--preset", self.preset, "--data", self.dataset, "--resolution", str(self.resolution),
                "--kimg", f"{self.kimg:g}", "--outdir", str(Path(self.outdir).resolve())]
        if self.metrics.strip():
            args += ["--metrics", self.metrics.strip(), "--metrics-kimg", f"{self.metrics_kimg:g}"]
        if self.threads:
            args += ["--threads", str(self.threads)]
        return args + shlex.split(self.extra)


class TrainingProcess(QObject):
    """One trainer process: a new run or a resumed one. Its output arrives through `output`."""

    output = Signal(str)                 # console text as it comes (stdout and stderr merged)
    run_dir_found = Signal(str)          # the run directory a new run created
    finished = Signal(int)               # exit code (0 finished or stopped, 1 failed, 2 bad options)

    def __init__(self, parent=None,
                 kill_after_s: float = 60.0):   # after stop(), kill if it has not exited by then
        super().__init__(parent)
        self.kill_after_s = kill_after_s
        self.run_dir: Path | None = None
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")   # print() lines arrive as they are written
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._on_output_ready)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self._outdir: Path | None = None
        self._known: set[str] = set()
        self._find_timer = QTimer(self, interval=200)
        self._find_timer.timeout.connect(self._on_find_run_dir)
        self._kill_timer = QTimer(self, singleShot=True)
        self._kill_timer.timeout.connect(self.process.kill)

    # ---- control ----------------------------------------------------------------------------------
    def start_new(self, request: NewRunRequest) -> None:
        self._outdir = Path(request.outdir).resolve()
        self._outdir.mkdir(parents=True, exist_ok=True)
        self._known = {p.name for p in self._outdir.iterdir()}
        self._launch(request.arguments())
        self._find_timer.start()

    def resume(self, run_dir: str | Path, kimg: float | None = None) -> None:
        self.run_dir = Path(run_dir).resolve()
        self._launch(["--resume", str(self.run_dir)] + (["--kimg", f"{kimg:g}"] if kimg else []))

    def stop(self) -> None:
        """Ask the trainer to save and exit (SIGTERM); kill it if it has not gone in time."""
        if self.is_running():
            self.output.emit("\n[monitor] stopping: the trainer saves a snapshot, then exits\n")
            self.process.terminate()
            self._kill_timer.start(int(self.kill_after_s * 1000))

    def is_running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def wait(self, msecs: int) -> bool:
        return self.process.waitForFinished(msecs)

    def _launch(self, arguments: list[str]) -> None:
        command = [sys.executable, "-m", "trainer", *arguments]
        self.output.emit("$ " + " ".join(shlex.quote(a) for a in command) + "\n")
        self.process.start(command[0], command[1:])

    # ---- slots ------------------------------------------------------------------------------------
    def _on_output_ready(self) -> None:
        data = bytes(self.process.readAllStandardOutput())
        self.output.emit(data.decode("utf-8", errors="replace"))
        self._on_find_run_dir()

    def _on_find_run_dir(self) -> None:
        if self.run_dir is not None or self._outdir is None:
            self._find_timer.stop()
            return
        try:
            fresh = sorted(p for p in self._outdir.iterdir()
                           if p.is_dir() and p.name not in self._known and _RUN_DIR_NAME.match(p.name))
        except OSError:
            return
        if fresh:
            self.run_dir = fresh[-1]
            self._find_timer.stop()
            self.run_dir_found.emit(str(self.run_dir))

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._kill_timer.stop()
        self._on_find_run_dir()
        self._find_timer.stop()
        how = "crashed" if exit_status == QProcess.ExitStatus.CrashExit else f"exited with code {exit_code}"
        self.output.emit(f"[monitor] trainer {how}\n")
        self.finished.emit(exit_code)

    def _on_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.output.emit(f"[monitor] could not start the trainer: {self.process.errorString()}\n")
            self.finished.emit(-1)


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
        from trainer.training.translation_config import TRANSLATION_PRESETS   # pix2pix, cyclegan
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
        self.preset.addItems(sorted(PRESETS) + sorted(TRANSLATION_PRESETS))
        self.preset.setCurrentText("dcgan")
        self.resolution = QSpinBox(minimum=4, maximum=1024, value=32, suffix=" px")
        self.kimg = QDoubleSpinBox(minimum=0.001, maximum=1e6, value=100.0, decimals=3)
        self.metrics = QLineEdit(placeholderText="e.g. kid,fid  (empty: none)")
        self.metrics_kimg = QDoubleSpinBox(minimum=0.0, maximum=1e6, value=0.0, decimals=3,
                                           specialValueText="at the end only")
        self.threads = QSpinBox(minimum=0, maximum=256, value=0, specialValueText="torch default")
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
