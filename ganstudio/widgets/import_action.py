"""File > Import network…: pick an NVlabs network pickle (or a rosinality .pt), choose where the
converted checkpoint goes, convert it on the render worker (the window stays usable, the status
bar shows progress, Cancel stops it before anything is written), then open the result.

The conversion is trainer.importers.import_network: the file is read as data, never run."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from .worker import Job

JOB_NAME = "import"
FILTERS = "NVlabs network pickles (*.pkl);;rosinality stylegan2-pytorch checkpoints (*.pt);;All files (*)"


class ImportAction(QObject):
    def __init__(self, window):
        # The window is reached through Qt's parent link, not a Python attribute: a Python
        # reference cycle (window -> action -> window) would leave the window to the cyclic garbage
        # collector, which may then destroy it at any moment, even while another window's worker runs.
        super().__init__(window)
        self.last_summary: dict | None = None    # what the last finished import wrote
        window.worker.job_finished.connect(self._on_job_finished)

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

        def run(renderer, progress):
            from trainer.importers import import_network
            return import_network(source_path, out, source, include_discriminator=False, progress=progress)

        self.window._jobs_running[JOB_NAME] = f"importing {Path(source_path).name}"
        self.window._show_progress(0.0, f"importing {Path(source_path).name}")
        self.window.worker.submit_job(Job(JOB_NAME, run))

    def _on_job_finished(self, name: str, token: int, result) -> None:
        if name != JOB_NAME:
            return
        self.last_summary = result
        self.window.statusBar().showMessage(f"imported {Path(result['out']).name} "
                                            f"({result['resolution']} px, {result['num_ws']} ws)", 5000)
        self.window.open_checkpoint(result["out"])
