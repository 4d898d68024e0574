"""The main window: an Explorer tab (image view + latent, truncation, mixing and directions
panels), a place for the Monitor tab, menus, status bar, and the glue between the workspace
model and the render worker."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QSplitter, QTabWidget, QWidget, QVBoxLayout)

from trainer.device import available_devices

from ..engine.demo import find_demo_checkpoint, missing_demo_message
from ..engine.controller import RenderController
from ..engine.opening import open_kind
from ..engine.model_info import ModelInfo
from ..engine.renderer import Renderer, RenderResult
from ..engine.workspace import Workspace, WorkspaceError
from .blend_panel import BlendDock
from .directions_panel import DirectionsPanel
from .image_view import ImageView
from .invert_panel import PHOTO_FILTER, InvertPanel
from .latent_panel import LatentPanel
from .layer_view import LayerDock
from .look import app_icon
from .mixing_panel import MixingPanel
from .timeline_panel import TimelinePanel
from .timing_overlay import TimingOverlay
from .translate_panel import TranslatePanel, apply_translation_mode
from .truncation_panel import TruncationPanel
from .worker import ControllerBridge, WorkerThread

MAX_RECENT = 8
WATCH_INTERVAL_MS = 2000
PANELS = ("latent", "truncation", "mixing", "directions", "timeline", "invert", "translate")


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
        self.setWindowIcon(app_icon())
        self.resize(1180, 760)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("GAN Studio", "ganstudio")
        self.workspace = Workspace()
        self.error_box: QMessageBox | None = None

        # the worker owns the model and the device; the controller decides what it is asked
        renderer = Renderer(device=device, half=half)
        self.worker_thread = WorkerThread(renderer)
        self.worker = self.worker_thread.worker
        self.controller = RenderController(self.workspace, self.worker, renderer.device, renderer.half)
        self.bridge = ControllerBridge(self.worker, self.controller, self)

        # explorer tab
        self.image_view = ImageView()
        self.image_view.setMinimumSize(360, 360)
        self.latent_panel = LatentPanel(self.workspace)
        self.truncation_panel = TruncationPanel(self.workspace)
        self.mixing_panel = MixingPanel(self.workspace)
        self.directions_panel = DirectionsPanel(self.workspace)
        self.timeline_panel = TimelinePanel(self.workspace, self.controller)
        self.invert_panel = InvertPanel(self.workspace, self.controller)
        self.translate_panel = TranslatePanel(self.workspace, self.controller)   # image-to-image models
        self.panels = QTabWidget()
        for name, panel in zip(PANELS, (self.latent_panel, self.truncation_panel, self.mixing_panel,
                                        self.directions_panel, self.timeline_panel, self.invert_panel,
                                        self.translate_panel)):
            self.panels.addTab(panel, name.capitalize())
        apply_translation_mode(self.panels, self.translate_panel, False)   # shown when such a model opens
        self.translate_panel.strip_ready.connect(self.image_view.set_image)   # input | output, large
        self.timeline_panel.frame_ready.connect(self.image_view.set_image)   # scrubbed and played frames
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
        self.blend_dock = BlendDock(self.controller, self)   # shown while a second model is blended in
        self.blend_panel = self.blend_dock.panel
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.blend_dock)
        self.layer_dock = LayerDock(self.controller, self)   # Render > Layer view
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.layer_dock)

        self._build_status_bar()
        self._build_menus(device, half, watch)

        # wiring
        events = self.controller.events
        events.model.connect(self._on_model_loaded)
        events.image.connect(self._on_image)
        events.render_error.connect(lambda text: self.show_message(f"render failed: {text}", 8000))
        events.grid.connect(lambda result: self.mixing_panel.show_grid(result.image, result.cell_size))
        events.grid_error.connect(lambda text: self.mixing_panel.grid_error.setText(f"grid failed: {text}"))
        events.job_progress.connect(lambda p: self._show_progress(p[1], p[2]))
        events.jobs_changed.connect(lambda _: self._on_jobs_changed())
        events.job_failed.connect(lambda f: self._show_error(f"{f[0].capitalize()} failed", f[1]))
        events.device.connect(self._on_device_changed)
        self.panels.currentChanged.connect(self._on_panel_changed)
        self.mixing_panel.commit_requested.connect(self.controller.commit_mix)
        self.mixing_panel.cell_chosen.connect(self.controller.choose_grid_cell)
        self.directions_panel.compute_requested.connect(self.compute_directions)
        self.invert_panel.open_model_requested.connect(self.open_checkpoint_keeping_latent)
        self.blend_panel.failed.connect(self._show_error)
        self.blend_panel.message.connect(lambda text: self.show_message(text, 8000))
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
        self.cancel_button.clicked.connect(lambda: self.controller.cancel_jobs())
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
        from .import_action import ImportAction
        self.import_action = ImportAction(self)   # NVlabs .pkl / rosinality .pt -> checkpoint, then open
        self._action(file_menu, "&Import NVlabs / rosinality network…", self.import_action.ask)
        self._action(file_menu, "&Blend with…", self.blend_panel.ask_partner)
        self._action(file_menu, "Open &workspace…", self._on_open_workspace_dialog)
        self._action(file_menu, "Open &photo (invert, or translate)…", self._on_open_photo_dialog)
        self._action(file_menu, "&Save workspace…", self._on_save_workspace_dialog, QKeySequence.StandardKey.Save)
        file_menu.addSeparator()
        self._action(file_menu, "&Export image (PNG, native size)…", lambda: self._on_export_dialog(1))
        self._action(file_menu, "Export image ×&2…", lambda: self._on_export_dialog(2))
        self._action(file_menu, "Export image ×&4…", lambda: self._on_export_dialog(4))
        self._action(file_menu, "Export image &enlarged (at least 256 px)…", lambda: self._on_export_dialog(None))
        self._action(file_menu, "Export mixing &grid…", self._on_export_grid_dialog)
        self._action(file_menu, "Export mixing grid enlarged (cells at least 256 px)…",
                     lambda: self._on_export_grid_dialog(enlarged=True))
        from .onnx_dialog import OnnxExportAction
        self.onnx_export = OnnxExportAction(self)   # the generator as an ONNX file (onnxruntime, TouchDesigner)
        self._action(file_menu.addMenu("E&xport"), "&ONNX…", self.onnx_export.ask)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        latent_menu = self.menuBar().addMenu("&Latent")
        self._action(latent_menu, "Next seed", lambda: self.latent_panel.seed.stepBy(1), "]")
        self._action(latent_menu, "Previous seed", lambda: self.latent_panel.seed.stepBy(-1), "[")
        self._action(latent_menu, "Random seed", self.latent_panel.random_seed.click, "R")
        render_menu = self.menuBar().addMenu("&Render")
        device_menu = render_menu.addMenu("&Device")
        group = QActionGroup(self)
        current = self.controller.device
        for name in available_devices():
            action = QAction(name, self, checkable=True, checked=name == current)
            action.triggered.connect(lambda _=False, n=name: self.set_device(n, self.half_action.isChecked()))
            group.addAction(action)
            device_menu.addAction(action)
        self.half_action = QAction("&Half precision (GPU)", self, checkable=True, checked=self.controller.half)
        self.half_action.setEnabled(current != "cpu")
        self.half_action.toggled.connect(lambda on: self.set_device(self.controller.device, on))
        render_menu.addAction(self.half_action)
        self.watch_action = QAction("&Watch run directory for newer checkpoints", self, checkable=True, checked=watch)
        self.watch_action.toggled.connect(lambda on: self.watch_timer.start() if on else self.watch_timer.stop())
        render_menu.addAction(self.watch_action)
        render_menu.addAction(self.layer_dock.toggleViewAction())
        from .output_window import PerformanceOutput
        self.performance_output = PerformanceOutput(self, render_menu)   # Render > Output window, named pipe
        from .presets_panel import PresetsDock
        self.presets_dock = PresetsDock(self)   # presets: a click, the keys 1-9, OSC, MIDI
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.presets_dock)
        render_menu.addAction(self.presets_dock.toggleViewAction())
        from .live_control import LiveControlUi
        self.live_control = LiveControlUi(self, render_menu)   # OSC and MIDI in, OSC out
        self.timing_overlay = TimingOverlay(self, self.menuBar().addMenu("&View"))   # where a frame's ms go
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
        opener = {"workspace": self.open_workspace, "photo": self.open_photo, "model": self._open_model}
        opener[open_kind(path)](path)

    def _open_model(self, path) -> None:
        self.controller.open(path, on_failed=self._open_failed(path))

    def open_photo(self, path) -> bool:
        """Show the Invert panel with this photo; a bad file gets a dialog and changes nothing."""
        self.tabs.setCurrentWidget(self.explorer)
        panel = self.translate_panel if self.info is not None and self.info.translates else self.invert_panel
        self.panels.setCurrentWidget(panel)
        if not panel.open_photo(path):
            self._show_error("Cannot open photo", panel.last_error)
            return False
        return True

    def open_checkpoint_keeping_latent(self, path) -> None:
        """Open a checkpoint of the same model family (a PTI-tuned copy, or its original) with the
        workspace as it is: the inverted latent stays on screen."""
        self.controller.open_keeping_latent(path, on_failed=self._open_failed(path))

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
        """Open a workspace file: its checkpoint, shown as the file saved it. A file that cannot be
        read, or settings the model cannot draw (a class it lacks, a W+ latent of another shape),
        get a dialog naming the field; the model then opens with fresh settings."""
        def refused(message: str) -> None:
            self._show_error("Cannot open workspace", f"{message}\n\nThe model is open with fresh settings.")
        try:
            self.controller.open_workspace(path, on_failed=self._open_failed(path), on_refused=refused)
        except WorkspaceError as exc:
            self._show_error("Cannot open workspace", str(exc))

    def _open_failed(self, path):
        def failed(message: str) -> None:
            if message:
                self._show_error("Cannot open checkpoint", f"{path}\n\n{message}")
            else:
                self.statusBar().showMessage("opening cancelled", 5000)
        return failed

    def compute_directions(self, num_samples: int = 5000, num_components: int = 8) -> None:
        self.controller.compute_directions(num_samples, num_components)

    def set_device(self, device: str, half: bool) -> None:
        self.half_action.setEnabled(device != "cpu")
        self.controller.set_device(device, half)

    # ---- controller answers ----
    @property
    def info(self) -> ModelInfo | None:
        return self.controller.info

    @property
    def last_result(self) -> RenderResult | None:
        return self.controller.last_result

    @property
    def last_grid(self) -> RenderResult | None:
        return self.controller.last_grid

    def _on_jobs_changed(self) -> None:
        running = self.controller.jobs_running
        if running:
            if self.progress.isHidden():
                self._show_progress(0.0, next(reversed(running.values())))
        else:
            self.progress.hide()
            self.cancel_button.hide()
            self.statusBar().clearMessage()

    def _on_device_changed(self, where) -> None:
        device, half = where
        settings = self.controller.render_settings   # what the measured render settings are, once measured
        self.show_message(settings or f"rendering on {device}{' (half precision)' if half else ''}", 10000)
        self.model_label.setToolTip(settings)
        self._update_model_label()

    def _on_model_loaded(self, info: ModelInfo) -> None:
        # tabs first: enabling a tab enables its panel, which set_model may then disable again
        apply_translation_mode(self.panels, self.translate_panel, info.translates)
        for panel in (self.latent_panel, self.truncation_panel, self.mixing_panel, self.directions_panel,
                      self.timeline_panel, self.invert_panel, self.translate_panel):
            panel.set_model(info)
        self._add_recent(self.controller.opened_path or info.path)
        self.setWindowTitle(f"GAN Studio — {Path(info.path).name}")
        self._update_model_label()
        self.placeholder.hide()
        self.controller.grid_visible = self.panels.currentWidget() is self.mixing_panel
        if info.note:
            self.show_message(info.note, 10000)

    def _on_panel_changed(self, _index: int) -> None:
        self.controller.set_grid_visible(self.panels.currentWidget() is self.mixing_panel)

    def _on_image(self, result: RenderResult) -> None:
        self.image_view.set_image(result.image)
        self.latent_panel.show_latents(result.z, result.ws)
        self.render_label.setText(f"render {result.milliseconds:.1f} ms")
        self.fps_label.setText(self.controller.frame_rate.describe(result.milliseconds))
        self.frame_shown.emit(result)

    # ---- export ----
    def export_image(self, path, scale: int | None = 1) -> None:
        """Save the image on screen as PNG at the model's native resolution times `scale` (None:
        enlarged by a whole factor to at least 256 px)."""
        self.controller.export_image(path, scale)

    def export_grid(self, path, enlarged: bool = False) -> None:
        self.controller.export_grid(path, enlarged)

    def save_workspace(self, path) -> None:
        self.workspace.save(path)

    def _on_export_dialog(self, scale: int | None) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export image", f"seed{self.workspace.seed:04d}.png", "PNG (*.png)")
        if path:
            self._guarded("Export failed", lambda: self.export_image(path, scale))

    def _on_export_grid_dialog(self, enlarged: bool = False) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export grid", "mixing-grid.png", "PNG (*.png)")
        if path:
            self._guarded("Export failed", lambda: self.export_grid(path, enlarged))

    def _on_save_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workspace", "workspace.json", "Workspace (*.json)")
        if path:
            self._guarded("Cannot save workspace", lambda: self.save_workspace(path))

    def _on_open_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workspace", "", "Workspace (*.json)")
        if path:
            self.open_workspace(path)

    def _on_open_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", "", PHOTO_FILTER)
        if path:
            self.open_photo(path)   # the Translate panel for image-to-image models, else Invert

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
        watched = self.controller.watch_dir
        newest = self.controller.reload_if_newer(on_failed=self._open_failed(watched))
        if newest is not None:
            self.statusBar().showMessage(f"newer checkpoint: {newest.name}", 5000)

    # ---- status ----
    def _update_model_label(self) -> None:
        info = self.info
        if info is None:
            return
        size = "2-D points" if info.is_points else f"{info.img_resolution}×{info.img_resolution}"
        size += f" · {'/'.join(info.directions)}" if info.translates else ""
        device, half = self.controller.device, self.controller.half
        self.model_label.setText(f"{info.arch} · {info.dataset or 'unknown data'} {size} · step {info.step} "
                                 f"({info.kimg:g} kimg) · {device}{' fp16' if half else ''}")

    def _show_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.show()
        self.cancel_button.show()
        self.show_message(message)

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        """A status-bar message cut with "…" to the room the permanent widgets leave (Qt cut it
        mid-number: "PSNR 20.("); the whole text is the bar's tooltip."""
        bar = self.statusBar()
        taken = sum(min(max(w.width(), w.sizeHint().width()), w.maximumWidth()) + 8
                    for w in (self.progress, self.cancel_button, self.render_label, self.fps_label, self.model_label)
                    if not w.isHidden())
        room = max(bar.width() - taken - 24, 40)
        bar.showMessage(bar.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room), timeout_ms)
        bar.setToolTip(text)

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
        return bool(self.controller.jobs_running) or not self.worker.is_idle()

    def closeEvent(self, event) -> None:
        self.watch_timer.stop()
        self.live_control.close()
        self.worker_thread.stop()
        super().closeEvent(event)
