"""The render worker: one QThread owns the renderer (model and device); nothing else touches it.

Single-image and grid renders each have one pending slot: a new request overwrites the waiting
one, so a flood of slider changes never builds a backlog and stale work is never started.
Long jobs (loading a checkpoint, computing directions, changing device, inverting a photo,
exporting a film) wait in a short queue and run before renders; they report progress and
previews (plain data: an image, a curve point) and stop when `cancel()` is called. Only plain
data crosses back: RenderResult dataclasses, ModelInfo, numpy arrays and error strings. The
bookkeeping (which request is newest, which job is which) lives in the Qt-free controller.
"""
from __future__ import annotations

import threading
from collections import deque

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..engine.controller import Job
from ..engine.renderer import Cancelled, Renderer, RenderRequest


class RenderWorker(QObject):
    rendered = Signal(object)                  # RenderResult for the single image
    grid_rendered = Signal(object)             # RenderResult for the mixing grid
    job_progress = Signal(str, int, float, str)  # job name, token, fraction 0-1, message
    job_preview = Signal(str, int, object)     # job name, token, plain data
    job_finished = Signal(str, int, object)    # job name, token, result
    job_failed = Signal(str, int, str)         # job name, token, message ("" message = cancelled)
    _wake = Signal()

    def __init__(self, renderer: Renderer):
        super().__init__()
        self.renderer = renderer
        self._lock = threading.Lock()
        self._main: RenderRequest | None = None
        self._grid: RenderRequest | None = None
        self._jobs: deque[Job] = deque()
        self._wake_pending = False
        self._busy = False
        self._abort = threading.Event()
        self.renders_done = 0                  # counters for tests and the benchmark
        self.requests_superseded = 0
        self._wake.connect(self._drain)

    # ---- called from the GUI thread ----
    def submit(self, request: RenderRequest) -> None:
        with self._lock:
            if request.is_grid:
                self._grid = request
            else:
                if self._main is not None:
                    self.requests_superseded += 1
                self._main = request
            self._poke()

    def submit_job(self, job: Job) -> None:
        with self._lock:
            self._jobs.append(job)
            self._poke()

    def cancel(self) -> None:
        """Stop the running long job and drop the queued ones (each answered as cancelled)."""
        with self._lock:
            dropped = list(self._jobs)
            self._jobs.clear()
            if self._busy:
                self._abort.set()
        for job in dropped:
            self.job_failed.emit(job.name, job.token, "")

    def is_idle(self) -> bool:
        with self._lock:
            return not (self._busy or self._main or self._grid or self._jobs)

    def _poke(self) -> None:  # caller holds the lock
        if not self._wake_pending:
            self._wake_pending = True
            self._wake.emit()  # queued into the worker thread's event loop

    # ---- runs on the worker thread ----
    @Slot()
    def _drain(self) -> None:
        while True:
            with self._lock:
                job = self._jobs.popleft() if self._jobs else None
                if job is not None:
                    self._abort.clear()  # under the lock, so a cancel() from now on reaches this job
                main = grid = None
                if job is None:
                    main, self._main = self._main, None
                    if main is None:
                        grid, self._grid = self._grid, None
                if job is None and main is None and grid is None:
                    self._wake_pending = False
                    self._busy = False
                    return
                self._busy = True
            if job is not None:
                self._run_job(job)
            elif main is not None:
                result = self.renderer.render(main)
                self.renders_done += 1
                self.rendered.emit(result)
            else:
                self.grid_rendered.emit(self.renderer.render(grid))

    def _run_job(self, job: Job) -> None:
        def progress(fraction: float, message: str) -> None:
            if self._abort.is_set():
                raise Cancelled()
            self.job_progress.emit(job.name, job.token, float(fraction), message)

        def preview(payload) -> None:
            if self._abort.is_set():
                raise Cancelled()
            self.job_preview.emit(job.name, job.token, payload)

        try:
            result = job.run(self.renderer, progress, preview)
        except Cancelled:
            self.job_failed.emit(job.name, job.token, "")
        except Exception as exc:  # a bad checkpoint or a failed job must not end the thread
            self.job_failed.emit(job.name, job.token, str(exc) or type(exc).__name__)
        else:
            self.job_finished.emit(job.name, job.token, result)


class ControllerBridge(QObject):
    """Delivers the worker's answers to the Qt-free controller on the GUI thread. The controller is
    not a QObject, so a direct connection would call it on the worker thread; slots of this object,
    which lives on the GUI thread, are queued there."""

    def __init__(self, worker: RenderWorker, controller, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        worker.rendered.connect(self._on_rendered)
        worker.grid_rendered.connect(self._on_grid_rendered)
        worker.job_progress.connect(self._on_job_progress)
        worker.job_preview.connect(self._on_job_preview)
        worker.job_finished.connect(self._on_job_finished)
        worker.job_failed.connect(self._on_job_failed)

    @Slot(object)
    def _on_rendered(self, result) -> None:
        self.controller.on_rendered(result)

    @Slot(object)
    def _on_grid_rendered(self, result) -> None:
        self.controller.on_grid_rendered(result)

    @Slot(str, int, float, str)
    def _on_job_progress(self, name, token, fraction, message) -> None:
        self.controller.on_job_progress(name, token, fraction, message)

    @Slot(str, int, object)
    def _on_job_preview(self, name, token, payload) -> None:
        self.controller.on_job_preview(name, token, payload)

    @Slot(str, int, object)
    def _on_job_finished(self, name, token, result) -> None:
        self.controller.on_job_finished(name, token, result)

    @Slot(str, int, str)
    def _on_job_failed(self, name, token, message) -> None:
        self.controller.on_job_failed(name, token, message)


class WorkerThread:
    """Starts a RenderWorker on its own QThread and stops it cleanly."""

    def __init__(self, renderer: Renderer):
        self.thread = QThread()
        self.thread.setObjectName("render-worker")
        self.worker = RenderWorker(renderer)
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def stop(self, timeout_ms: int = 10000) -> None:
        self.worker.cancel()
        self.thread.quit()
        self.thread.wait(timeout_ms)
