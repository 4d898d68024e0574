"""File > Import network…: pick an NVlabs network pickle (or a rosinality .pt), choose where the
converted checkpoint goes, convert it on the render worker (the window stays usable, the status
bar shows progress, Cancel stops it before anything is written), then open the result.

The conversion is trainer.importers.import_network: the file is read as data, never run."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

JOB_NAME = "import"
FILTERS = "NVlabs network pickles (*.pkl);;rosinality stylegan2-pytorch checkpoints (*.pt);;All files (*)"


class ImportAction(QObject):
    def __init__(self, window):
        # The window is reached through Qt's parent link, not a Python attribute: a Python
        # reference cycle (window -> action -> window) would leave the window to the cyclic garbage
        # collector, which may then destroy it at any moment, even while another window's worker runs.
        super().__init__(window)
        self.last_summary: dict | None = None    # what the last finished import wrote

    @property
    def window(self):
        return self.parent()

    def ask(self) -> None:
        """The menu entry: two file dialogs, then start()."""
        source_path, chosen = QFileDialog.getOpenFileName(self.window, "Import a network", "", FILTERS)
        if not source_path:
            return
        out, _ = QFileDialog.getSaveFileName(self.window, "Save the converted checkpoint as",
                                             str(Path(source_path).with_suffix(".safetensors")),
                                             "Checkpoints (*.safetensors)")
        if out:
            self.start(source_path, out, "rosinality" if chosen.startswith("rosinality") else "nvlabs")

    def start(self, source_path, out, source: str = "nvlabs") -> None:
        """Convert `source_path` into `out` on the worker; when done, open `out` in the window.
        A refusal comes back through the worker as an "Import failed" dialog."""
        source_path, out = str(source_path), str(out)

        def run(renderer, progress, preview):
            from trainer.importers import import_network
            return import_network(source_path, out, source, include_discriminator=False, progress=progress)

        def failed(message: str) -> None:
            if message:
                self.window._show_error("Import failed", f"{source_path}\n\n{message}")

        self.window.controller.run_job(JOB_NAME, run, self._on_imported, failed,
                                       message=f"importing {Path(source_path).name}")

    def _on_imported(self, result) -> None:
        self.last_summary = result
        self.window.statusBar().showMessage(f"imported {Path(result['out']).name} "
                                            f"({result['resolution']} px, {result['num_ws']} ws)", 5000)
        self.window.open_checkpoint(result["out"])
