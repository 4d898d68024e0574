"""The main window: an Explorer tab (image view + latent, truncation, mixing and directions
panels), a place for the Monitor tab, menus, status bar, and the glue between the workspace
model and the render worker."""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QSplitter, QTabWidget, QWidget, QVBoxLayout)

from trainer.device import available_devices

from ..engine.demo import find_demo_checkpoint, missing_demo_message
from ..engine.renderer import ModelInfo, Renderer, RenderResult, request_from_workspace
from ..engine.workspace import Workspace, WorkspaceError
from .directions_panel import DirectionsPanel
from .image_view import ImageView
from .invert_panel import InvertPanel, is_photo_file
from .latent_panel import LatentPanel
from .mixing_panel import MixingPanel
from .truncation_panel import TruncationPanel
from .worker import Job, WorkerThread

MAX_RECENT = 8
WATCH_INTERVAL_MS = 2000
GRID_FIELDS = {"class_index", "psi", "cutoff", "truncation_center", "noise_mode", "mix_layers", "grid_row_seeds",
               "grid_col_seeds", "direction_offsets", "direction_layers", "directions", "checkpoint"}
MAIN_FIELDS = set(GRID_FIELDS - {"grid_row_seeds", "grid_col_seeds"}) | {"seed", "z_threshold", "mix_seed", "base_ws"}
FRAME_STREAM_GAP_S = 0.25   # frames further apart than this are separate changes, not a stream
PANELS = ("latent", "truncation", "mixing", "directions", "invert")


class MainWindow(QMainWindow):
    frame_shown = Signal(object)    # RenderResult, right after its image went to the view

    def __init__(self,
                 device: str = "auto",            # render device: auto (cuda, mps, cpu), cpu, cuda, mps
                 half: bool = False,              # float16 synthesis on a GPU
                 settings: QSettings | None = None,  # where recent files live; None = the user's settings
                 watch: bool = False,             # reload when an open run directory gets a newer checkpoint
                 ):
        super().__init__()
        self.setWindowTitle("GAN Studio")
        self.resize(1180, 760)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("GAN Studio", "ganstudio")
        self.workspace = Workspace()
        self.info: ModelInfo | None = None
        self.last_result: RenderResult | None = None
        self.last_grid: RenderResult | None = None
        self.stale_dropped = 0                  # results that arrived after a newer one was shown
        self._next_request_id = 0               # one counter for image and grid requests
        self.requested_id = -1                  # the newest image request sent to the worker
        self.requested_grid_id = -1
        self._shown_id = -1
        self._shown_grid_id = -1
        self._grid_dirty = True
        self._frame_times: deque[float] = deque(maxlen=30)
        self._load_token = 0
        self._load_plans: dict[int, dict] = {}
        self._watch_dir: Path | None = None
        self._jobs_running: dict[str, str] = {}  # job name -> last message
        self.error_box: QMessageBox | None = None

        # the worker owns the model and the device
        self.worker_thread = WorkerThread(Renderer(device=device, half=half))
        self.worker = self.worker_thread.worker
        self.worker.rendered.connect(self._on_rendered)
        self.worker.grid_rendered.connect(self._on_grid_rendered)
        self.worker.job_progress.connect(self._on_job_progress)
        self.worker.job_finished.connect(self._on_job_finished)
        self.worker.job_failed.connect(self._on_job_failed)

        # explorer tab
        self.image_view = ImageView()
        self.image_view.setMinimumSize(360, 360)
        self.latent_panel = LatentPanel(self.workspace)
        self.truncation_panel = TruncationPanel(self.workspace)
        self.mixing_panel = MixingPanel(self.workspace)
        self.directions_panel = DirectionsPanel(self.workspace)
        self.invert_panel = InvertPanel(self.workspace, self.worker)
        self.panels = QTabWidget()
        for name, panel in zip(PANELS, (self.latent_panel, self.truncation_panel, self.mixing_panel,
                                        self.directions_panel, self.invert_panel)):
            self.panels.addTab(panel, name.capitalize())
        self.panels.setMinimumWidth(470)
        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.image_view, 1)
        left_layout.addWidget(self.placeholder)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.panels)
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([680, 500])
        self.explorer = splitter
        self.tabs = QTabWidget()   # the Monitor tab is added beside the Explorer by its own module
        self.tabs.addTab(self.explorer, "Explorer")
        from .monitor import MonitorWidget
        self.monitor = MonitorWidget()
        self.tabs.addTab(self.monitor, "Monitor")
        self.monitor.open_checkpoint_requested.connect(self._on_monitor_checkpoint_requested)
        self.setCentralWidget(self.tabs)

        self._build_status_bar()
        self._build_menus(device, half, watch)

        # wiring
        self.workspace.events.changed.connect(self._on_workspace_changed)
        self.panels.currentChanged.connect(self._on_panel_changed)
        self.mixing_panel.commit_requested.connect(self._on_commit_mix)
        self.mixing_panel.cell_chosen.connect(self._on_grid_cell_chosen)
        self.directions_panel.compute_requested.connect(self.compute_directions)
        self.invert_panel.open_model_requested.connect(self.open_checkpoint_keeping_latent)
        self.watch_timer = QTimer(self)
        self.watch_timer.setInterval(WATCH_INTERVAL_MS)
        self.watch_timer.timeout.connect(self._on_watch_tick)
        if watch:
            self.watch_timer.start()
        self._show_placeholder("No checkpoint open. File > Open, drop a checkpoint here, or run `ganstudio PATH`.")

    # ---- building ----
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel("no model")
        self.render_label = QLabel("")
        self.fps_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        # a lambda, so the call happens now on this thread, not queued behind the job on the worker's
        self.cancel_button.clicked.connect(lambda: self.worker.cancel())
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.render_label)
        bar.addPermanentWidget(self.fps_label)
        bar.addPermanentWidget(self.model_label)
        self.progress.hide()
        self.cancel_button.hide()

    def _build_menus(self, device: str, half: bool, watch: bool) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open checkpoint…", self._on_open_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._action(file_menu, "Open &demo model", self.open_demo)
        self._action(file_menu, "Open &workspace…", self._on_open_workspace_dialog)
        self._action(file_menu, "Open &photo to invert…", self.invert_panel._on_open_clicked)
        self._action(file_menu, "&Save workspace…", self._on_save_workspace_dialog, QKeySequence.StandardKey.Save)
        file_menu.addSeparator()
        self._action(file_menu, "&Export image (PNG, native size)…", lambda: self._on_export_dialog(1))
        self._action(file_menu, "Export image ×&2…", lambda: self._on_export_dialog(2))
        self._action(file_menu, "Export image ×&4…", lambda: self._on_export_dialog(4))
        self._action(file_menu, "Export mixing &grid…", self._on_export_grid_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        latent_menu = self.menuBar().addMenu("&Latent")
        self._action(latent_menu, "Next seed", lambda: self.latent_panel.seed.stepBy(1), "]")
        self._action(latent_menu, "Previous seed", lambda: self.latent_panel.seed.stepBy(-1), "[")
        self._action(latent_menu, "Random seed", self.latent_panel.random_seed.click, "R")
        render_menu = self.menuBar().addMenu("&Render")
        device_menu = render_menu.addMenu("&Device")
        group = QActionGroup(self)
        current = self.worker.renderer.device
        for name in available_devices():
            action = QAction(name, self, checkable=True, checked=name == current)
            action.triggered.connect(lambda _=False, n=name: self.set_device(n, self.half_action.isChecked()))
            group.addAction(action)
            device_menu.addAction(action)
        self.half_action = QAction("&Half precision (GPU)", self, checkable=True, checked=self.worker.renderer.half)
        self.half_action.setEnabled(current != "cpu")
        self.half_action.toggled.connect(lambda on: self.set_device(self.worker.renderer.device, on))
        render_menu.addAction(self.half_action)
        self.watch_action = QAction("&Watch run directory for newer checkpoints", self, checkable=True, checked=watch)
        self.watch_action.toggled.connect(lambda on: self.watch_timer.start() if on else self.watch_timer.stop())
        render_menu.addAction(self.watch_action)
        self._refresh_recent_menu()

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # ---- opening ----
    def open_checkpoint(self, path) -> None:
        """Open a checkpoint file, a run directory (its newest checkpoint) or a workspace .json.
        Loading runs on the worker; the window stays usable and a bad file gives a dialog."""
        path = Path(path)
        if path.suffix.lower() == ".json" and path.is_file():
            self.open_workspace(path)
            return
        if is_photo_file(path):
            self.open_photo(path)
            return
        self._start_load(path, restore=None, keep_state=False)

    def open_photo(self, path) -> bool:
        """Show the Invert panel with this photo; a bad file gets a dialog and changes nothing."""
        self.tabs.setCurrentWidget(self.explorer)
        self.panels.setCurrentWidget(self.invert_panel)
        if not self.invert_panel.open_photo(path):
            self._show_error("Cannot open photo", self.invert_panel.last_error)
            return False
        return True

    def open_checkpoint_keeping_latent(self, path) -> None:
        """Open a checkpoint of the same model family (a PTI-tuned copy, or its original) with the
        workspace as it is: the inverted latent stays on screen."""
        restored = Workspace.from_dict(self.workspace.to_dict())
        restored.checkpoint = str(path)
        self._start_load(Path(path), restore=restored, keep_state=False)

    def _on_monitor_checkpoint_requested(self, path: str) -> None:
        """The monitor's "open this snapshot in the explorer": show the Explorer on it."""
        self.tabs.setCurrentWidget(self.explorer)
        self.open_checkpoint(path)

    def open_demo(self) -> bool:
        demo = find_demo_checkpoint()
        if demo is None:
            self._show_placeholder(missing_demo_message())
            return False
        self.open_checkpoint(demo)
        return True

    def open_workspace(self, path) -> None:
        path = Path(path)
        try:
            restored = Workspace.load(path)
        except WorkspaceError as exc:
            self._show_error("Cannot open workspace", str(exc))
            return
        checkpoint = Path(restored.checkpoint)
        if not checkpoint.is_absolute():
            checkpoint = path.parent / checkpoint
        self._start_load(checkpoint, restore=restored, keep_state=False)

    def _start_load(self, path: Path, restore: Workspace | None, keep_state: bool) -> None:
        self._load_token += 1
        self._load_plans[self._load_token] = {"path": path, "restore": restore, "keep_state": keep_state}
        self._watch_dir = path if path.is_dir() else None
        self._jobs_running["load"] = f"opening {path.name}"
        self._show_progress(0.0, f"opening {path}")
        self.worker.submit_job(Job("load", lambda renderer, progress: renderer.load(path, progress), self._load_token))

    def compute_directions(self, num_samples: int = 5000, num_components: int = 8) -> None:
        if self.info is None or not self.info.has_w:
            return
        generation = self.info.generation

        def run(renderer, progress):
            return generation, renderer.compute_directions(num_samples, num_components, progress)

        self._jobs_running["directions"] = "computing directions"
        self._show_progress(0.0, f"computing directions from {num_samples} latents")
        self.worker.submit_job(Job("directions", run))

    def set_device(self, device: str, half: bool) -> None:
        self._jobs_running["device"] = f"moving to {device}"
        self.half_action.setEnabled(device != "cpu")
        self.worker.submit_job(Job("device", lambda renderer, progress: renderer.set_device(device, half)))

    # ---- job answers ----
    def _on_job_progress(self, name: str, fraction: float, message: str) -> None:
        self._jobs_running[name] = message
        self._show_progress(fraction, message)

    def _on_job_finished(self, name: str, token: int, result) -> None:
        self._jobs_running.pop(name, None)
        self._hide_progress_if_idle()
        if name == "load":
            self._on_model_loaded(result, self._load_plans.pop(token, {}))
        elif name == "directions":
            generation, directions = result
            if self.info is not None and generation == self.info.generation:
                self.workspace.directions = directions
        elif name == "device":
            self.statusBar().showMessage(f"rendering on {self.worker.renderer.device}"
                                         f"{' (half precision)' if self.worker.renderer.half else ''}", 5000)
            self._update_model_label()
            self._request_render()

    def _on_job_failed(self, name: str, token: int, message: str) -> None:
        self._jobs_running.pop(name, None)
        self._hide_progress_if_idle()
        plan = self._load_plans.pop(token, {}) if name == "load" else {}
        if not message:
            self.statusBar().showMessage(f"{name} cancelled", 5000)
        elif name == "load":
            self._show_error("Cannot open checkpoint", f"{plan.get('path', '')}\n\n{message}")
        else:
            self._show_error(f"{name.capitalize()} failed", message)

    def _on_model_loaded(self, info: ModelInfo, plan: dict) -> None:
        previous = self.info
        self.info = info
        ws = self.workspace
        if plan.get("restore") is not None:
            restored = plan["restore"]
            restored.checkpoint = info.path
            ws.copy_from(restored)
        elif plan.get("keep_state") and previous is not None and previous.num_ws == info.num_ws:
            ws.update(checkpoint=info.path, directions={})   # a newer snapshot of the same run
        else:
            ws.update(checkpoint=info.path, base_ws=None, directions={}, direction_offsets={},
                      direction_layers=(0, None), cutoff=None, mix_layers=(False,) * info.num_ws,
                      class_index=min(ws.class_index, max(info.c_dim - 1, 0)),
                      truncation_center="class" if info.c_dim and info.has_w else "global")
        for panel in (self.latent_panel, self.truncation_panel, self.mixing_panel, self.directions_panel,
                      self.invert_panel):
            panel.set_model(info)
        self._add_recent(plan.get("path", info.path))
        self.setWindowTitle(f"GAN Studio — {Path(info.path).name}")
        self._update_model_label()
        self.placeholder.hide()
        self._grid_dirty = True
        self._request_render()
        self._request_grid()
        if info.has_w and not ws.directions:
            self.compute_directions()

    # ---- rendering ----
    def _on_workspace_changed(self, name: str) -> None:
        if self.info is None:
            return
        if name in MAIN_FIELDS:
            self._request_render()
        if name in GRID_FIELDS:
            self._grid_dirty = True
            self._request_grid()

    def _on_panel_changed(self, _index: int) -> None:
        self._request_grid()

    def _request_render(self) -> None:
        if self.info is None:
            return
        self._next_request_id += 1
        self.requested_id = self._next_request_id
        self.worker.submit(request_from_workspace(self.workspace, self.info, self.requested_id))

    def _request_grid(self) -> None:
        """The grid renders only while the mixing panel shows, so it never slows the main image."""
        if self.info is None or not self.info.has_w or not self._grid_dirty:
            return
        if self.panels.currentWidget() is not self.mixing_panel:
            return
        self._grid_dirty = False
        self._next_request_id += 1
        self.requested_grid_id = self._next_request_id
        self.worker.submit(request_from_workspace(self.workspace, self.info, self.requested_grid_id, grid=True))

    def _on_rendered(self, result: RenderResult) -> None:
        if result.request_id <= self._shown_id:
            self.stale_dropped += 1     # a newer image is already on screen
            return
        self._shown_id = result.request_id
        if result.error:
            self.statusBar().showMessage(f"render failed: {result.error}", 8000)
            return
        self.last_result = result
        self.image_view.set_image(result.image)
        self.latent_panel.show_latents(result.z, result.ws)
        now = time.perf_counter()
        if self._frame_times and now - self._frame_times[-1] > FRAME_STREAM_GAP_S:
            self._frame_times.clear()   # a pause: the next frames start a new stream
        self._frame_times.append(now)
        self.render_label.setText(f"render {result.milliseconds:.1f} ms")
        span = self._frame_times[-1] - self._frame_times[0]
        if len(self._frame_times) >= 3 and span >= 0.2:   # frames streaming while a control moves
            self.fps_label.setText(f"{(len(self._frame_times) - 1) / span:.1f} fps")
        else:   # a single change: what the worker could sustain at this render time
            self.fps_label.setText(f"up to {1000 / max(result.milliseconds, 1e-3):.0f} fps")
        self.frame_shown.emit(result)

    def _on_grid_rendered(self, result: RenderResult) -> None:
        if result.request_id <= self._shown_grid_id:
            self.stale_dropped += 1
            return
        self._shown_grid_id = result.request_id
        if result.error:
            self.mixing_panel.grid_error.setText(f"grid failed: {result.error}")
            return
        self.last_grid = result
        self.mixing_panel.show_grid(result.image, result.cell_size)

    def _on_commit_mix(self) -> None:
        if self.last_result is not None and self.last_result.mixed_ws is not None:
            self.workspace.base_ws = self.last_result.mixed_ws.copy()

    def _on_grid_cell_chosen(self, row: int, col: int) -> None:
        grid = self.last_grid
        ws = self.workspace
        if grid is None or grid.cell_ws is None or row >= grid.cell_ws.shape[0] or col >= grid.cell_ws.shape[1]:
            return
        ws.update(seed=ws.grid_row_seeds[row], mix_seed=ws.grid_col_seeds[col],
                  base_ws=grid.cell_ws[row, col].copy())

    # ---- export ----
    def export_image(self, path, scale: int = 1) -> None:
        """Save the image on screen as PNG at the model's native resolution times `scale`."""
        from trainer.images import save_png
        if self.last_result is None or self.last_result.image is None:
            raise ValueError("nothing rendered yet")
        image = self.last_result.image
        if scale > 1:
            image = image.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest: pixels stay square
        save_png(path, np.ascontiguousarray(image))

    def export_grid(self, path) -> None:
        from trainer.images import save_png
        if self.last_grid is None or self.last_grid.image is None:
            raise ValueError("no mixing grid rendered yet (open the Mixing panel)")
        save_png(path, self.last_grid.image)

    def save_workspace(self, path) -> None:
        self.workspace.save(path)

    def _on_export_dialog(self, scale: int) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export image", f"seed{self.workspace.seed:04d}.png", "PNG (*.png)")
        if path:
            self._guarded("Export failed", lambda: self.export_image(path, scale))

    def _on_export_grid_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export grid", "mixing-grid.png", "PNG (*.png)")
        if path:
            self._guarded("Export failed", lambda: self.export_grid(path))

    def _on_save_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workspace", "workspace.json", "Workspace (*.json)")
        if path:
            self._guarded("Cannot save workspace", lambda: self.save_workspace(path))

    def _on_open_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workspace", "", "Workspace (*.json)")
        if path:
            self.open_workspace(path)

    def _on_open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", "", "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self.open_checkpoint(path)

    def _guarded(self, title: str, action) -> None:
        try:
            action()
        except (OSError, ValueError) as exc:
            self._show_error(title, str(exc))

    # ---- recent files, drag and drop, watching ----
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _add_recent(self, path) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_checkpoint(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_checkpoint(urls[0].toLocalFile())

    def _on_watch_tick(self) -> None:
        from trainer import CheckpointError
        from trainer.checkpoint import newest_checkpoint
        if self._watch_dir is None or self.info is None or "load" in self._jobs_running:
            return
        try:
            newest = newest_checkpoint(self._watch_dir)
        except CheckpointError:
            return
        if str(newest) != self.info.path:
            watch_dir = self._watch_dir
            self._start_load(watch_dir, restore=None, keep_state=True)
            self.statusBar().showMessage(f"newer checkpoint: {newest.name}", 5000)

    # ---- status ----
    def _update_model_label(self) -> None:
        info = self.info
        if info is None:
            return
        size = "2-D points" if info.is_points else f"{info.img_resolution}×{info.img_resolution}"
        renderer = self.worker.renderer
        self.model_label.setText(f"{info.arch} · {info.dataset or 'unknown data'} {size} · step {info.step} "
                                 f"({info.kimg:g} kimg) · {renderer.device}{' fp16' if renderer.half else ''}")

    def _show_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.show()
        self.cancel_button.show()
        self.statusBar().showMessage(message)

    def _hide_progress_if_idle(self) -> None:
        if not self._jobs_running:
            self.progress.hide()
            self.cancel_button.hide()
            self.statusBar().clearMessage()

    def _show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.show()

    def _show_error(self, title: str, text: str) -> None:
        """A dialog that does not block the event loop; the window stays usable behind it."""
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self.error_box = box

    def is_busy(self) -> bool:
        return bool(self._jobs_running) or not self.worker.is_idle()

    def closeEvent(self, event) -> None:
        self.watch_timer.stop()
        self.worker_thread.stop()
        super().closeEvent(event)
