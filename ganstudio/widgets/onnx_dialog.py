"""File > Export > ONNX…: a dialog with the choices the open model offers (ganstudio.engine.onnx_export
decides them), then the export runs on the render worker with progress in the status bar, and a
message says where the file went (or why it was not written)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QMessageBox, QPushButton, QWidget)

from ganstudio.engine.onnx_export import (INPUT_LABELS, JOB_NAME, NOISE_LABELS, OnnxChoices, choices_for, default_path,
                                          onnx_job)


class OnnxDialog(QDialog):
    def __init__(self, parent, choices: OnnxChoices, path: str):
        super().__init__(parent)
        self.setWindowTitle("Export ONNX")
        form = QFormLayout(self)
        self.path = QLineEdit(path)
        browse = QPushButton("Browse…")
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.path)
        line.addWidget(browse)
        form.addRow("File", row)
        self.input = self._combo(form, "Input", {k: INPUT_LABELS[k] for k in choices.inputs})
        self.noise = self._combo(form, "Noise", NOISE_LABELS if choices.noise else {})
        centers = {"mean": "the mean w (w_avg)", "class": "the class's mean w"}
        self.center = self._combo(form, "Truncation centre", centers if choices.class_center else {})
        self.direction = self._combo(form, "Direction", {d: d for d in choices.directions})
        self.transform = QCheckBox("the input transform as an input (translate / rotate)")
        if choices.transform:
            form.addRow("StyleGAN3", self.transform)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        form.addRow(buttons)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        browse.clicked.connect(self._on_browse_clicked)

    @staticmethod
    def _combo(form: QFormLayout, label: str, items: dict[str, str]) -> QComboBox:
        """A combo box of `items` (value -> text), in the form only when there is a choice to show."""
        combo = QComboBox()
        for value, text in items.items():
            combo.addItem(text, value)
        if items:
            form.addRow(label, combo)
        return combo

    def settings(self) -> dict:
        """The chosen values, as onnx_job takes them."""
        return {"input": self.input.currentData() or "", "noise": self.noise.currentData() or "const",
                "transform_input": self.transform.isChecked(), "center": self.center.currentData() or "mean",
                "direction": self.direction.currentData()}

    def _on_browse_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export ONNX", self.path.text(), "ONNX models (*.onnx)")
        if path:
            self.path.setText(path)


class OnnxExportAction(QObject):
    def __init__(self, window):
        super().__init__(window)   # the window through Qt's parent link (no Python cycle, as ImportAction)
        self.dialog: OnnxDialog | None = None
        self.last_result: dict | None = None     # what the last finished export wrote
        self.message_box: QMessageBox | None = None

    @property
    def window(self):
        return self.parent()

    def ask(self) -> None:
        """The menu entry: the dialog (non-blocking), then start() when it is accepted."""
        info = self.window.controller.info
        if info is None:
            self.window._show_error("Export ONNX", "Open a checkpoint first.")
            return
        self.dialog = OnnxDialog(self.window, choices_for(info), default_path(info))
        self.dialog.accepted.connect(lambda: self.start(self.dialog.path.text(), **self.dialog.settings()))
        self.dialog.show()

    def start(self, out: str, **settings) -> None:
        """Write the open checkpoint to `out` on the worker; a message box says where, or why not."""
        info = self.window.controller.info
        run = onnx_job(info.path, str(out), **settings)

        def failed(message: str) -> None:
            if message:
                self.window._show_error("ONNX export failed", f"{out}\n\n{message}")

        self.window.controller.run_job(JOB_NAME, run, self._on_exported, failed, message="exporting ONNX")

    def _on_exported(self, result: dict) -> None:
        self.last_result = result
        self.window.statusBar().showMessage(f"wrote {result['path']}", 5000)
        box = QMessageBox(QMessageBox.Icon.Information, "ONNX export", result["text"], QMessageBox.StandardButton.Ok,
                          self.window)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self.message_box = box
