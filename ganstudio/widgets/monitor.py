"""The training monitor: watch, compare and steer runs live.

Left: the open runs (colour, state, alerts), run control and the trainer's console. Centre: the
plots (monitor_plots.MonitorPlots). Right: the sample timeline of the selected run with "open this
snapshot in the explorer".

The runs, the training processes and what to read when are the engine's MonitorModel (Qt-free);
this widget shows them and forwards the user's actions. A timer calls `model.poll()`, which reads
for at most `tick_budget_s` and says when to come back (at once while a big log still has a
backlog, with a progress bar) and whether to redraw.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFrame, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QMenu, QMessageBox, QProgressBar, QPushButton, QScrollArea, QSlider, QSplitter,
                               QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ..engine.monitor_model import MonitorModel
from ..engine.runlog import MAX_LINE_BYTES, RunLog, write_csv
from ..engine.training_process import NewRunRequest, TrainingProcess
from .image_view import ImageView
from .monitor_control import ConsoleView, NewRunDialog, control_row
from .monitor_plots import PLOTS, MonitorPlots
from .plot_items import colour_swatch, read_rgb

_COL_RUN, _COL_STATE, _COL_STEP, _COL_ALERTS = range(4)


class MonitorWidget(QWidget):
    """Open run directories with add_run(); `open_checkpoint_requested` carries the path of the
    checkpoint nearest the sample grid on show when the user asks to explore it."""

    open_checkpoint_requested = Signal(str)
    runs_changed = Signal()

    def __init__(self, parent=None,
                 poll_interval_ms: int = 500,     # how often a caught-up run is checked for new lines
                 tick_budget_s: float = 0.016,    # reading time per event-loop turn while catching up
                 chunk_bytes: int = 32 << 10,     # bytes read per poll while catching up
                 stall_seconds: float = 300.0,    # silence after which a running run counts as stalled
                 default_outdir: str = "runs"):   # where the New run form puts runs
        super().__init__(parent)
        self.model = MonitorModel(poll_interval_ms / 1000, tick_budget_s, chunk_bytes, stall_seconds)
        self.default_outdir = default_outdir
        self._items: dict[int, QTreeWidgetItem] = {}
        self._drawn_versions: dict[int, int] = {}
        self._timeline_key: tuple = ()
        self._shown_sample: Path | None = None
        self._grids = []

        # ---- widgets: run list and control (left) --------------------------------------------------
        self.run_list = QTreeWidget()
        self.run_list.setHeaderLabels(["Run", "State", "Step", "Alerts"])
        self.run_list.setRootIsDecorated(False)
        header = self.run_list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(_COL_RUN, QHeaderView.ResizeMode.Stretch)   # names take what is left
        for column in (_COL_STATE, _COL_STEP, _COL_ALERTS):   # fixed widths cut "20209" to "2…9"
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        # run names share their numbered start ("00001-wgan-gp-ring8"): keep both ends visible
        self.run_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)   # when cut, keep number and data
        self.open_button = QPushButton("Open run…")
        self.remove_button = QPushButton("Close run")
        self.load_progress = QProgressBar()
        self.load_progress.setFormat("reading logs %p%")
        self.load_progress.setVisible(False)
        self.new_run_button = QPushButton("New run…")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.resume_kimg = QDoubleSpinBox(minimum=0.0, maximum=1e6, decimals=3, value=0.0,
                                          specialValueText="as configured", suffix=" kimg")
        self.resume_kimg.setToolTip("Resume until this many kimg (extends a finished run)")
        self.console = ConsoleView()
        self.console.setPlaceholderText("Output of the training runs started here")
        control = QGroupBox("Run control")
        control_layout = QVBoxLayout(control)
        control_layout.addLayout(control_row(self.new_run_button, self.stop_button))
        control_layout.addLayout(control_row(self.resume_button, self.resume_kimg))
        control_layout.addWidget(self.console, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(4, 4, 4, 4)
        left_layout.addWidget(self.run_list, 2)
        left_layout.addLayout(control_row(self.open_button, self.remove_button))
        left_layout.addWidget(self.load_progress)
        left_layout.addWidget(control, 3)

        # ---- widgets: plots (centre) ----------------------------------------------------------------
        self.plots = MonitorPlots()
        self.x_axis = QComboBox()
        self.x_axis.addItems(["step", "kimg", "time"])
        self.smoothing = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=99)
        self.smoothing.setValue(int(round(self.plots.smoothing * 100)))
        self.smoothing.setFixedWidth(110)
        self.smoothing_label = QLabel()
        # One Export menu (plots as PNG, data as CSV) keeps the toolbar narrow enough for the
        # studio's smallest window.
        self.export_button = QToolButton(text="Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        export_menu.addAction("All plots as PNG…", lambda: self._on_export_png_clicked(None))
        for spec in PLOTS:
            export_menu.addAction(f"{spec.title} as PNG…", lambda key=spec.key: self._on_export_png_clicked(key))
        export_menu.addSeparator()
        self.export_csv_action = export_menu.addAction("Data as CSV…", self._on_export_csv_clicked)
        self.export_button.setMenu(export_menu)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        toolbar = QHBoxLayout()
        toolbar.addWidget(QLabel("x"))
        toolbar.addWidget(self.x_axis)
        toolbar.addSpacing(12)
        toolbar.addWidget(QLabel("smoothing"))
        toolbar.addWidget(self.smoothing)
        toolbar.addWidget(self.smoothing_label)
        toolbar.addStretch(1)
        toolbar.addWidget(self.export_button)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(4, 4, 4, 4)
        centre_layout.addLayout(toolbar)
        centre_layout.addWidget(self.readout)
        self.plot_scroll = QScrollArea()   # the plots keep a readable height; many of them scroll
        self.plot_scroll.setWidgetResizable(True)
        self.plot_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.plot_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plot_scroll.setWidget(self.plots)
        centre_layout.addWidget(self.plot_scroll, 1)

        # ---- widgets: sample timeline (right) ----------------------------------------------------
        self.sample_view = ImageView()
        self.sample_view.setMinimumSize(150, 150)
        self.sample_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=0)
        self.sample_label = QLabel("no sample grids yet")
        self.sample_label.setWordWrap(True)
        self.explore_button = QPushButton("Open in the explorer")
        self.explore_button.setToolTip("Open the checkpoint nearest this sample grid in the Explorer tab")
        self.explore_button.setEnabled(False)
        self.checkpoint_label = QLabel("")
        self.checkpoint_label.setWordWrap(True)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 4, 4, 4)
        self.samples_title = QLabel("<b>Samples</b>")
        self.run_info = QLabel("")   # preset, data, model and where the run started from (--init)
        self.run_info.setWordWrap(True)
        self.run_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right_layout.addWidget(self.samples_title)
        right_layout.addWidget(self.run_info)
        right_layout.addWidget(self.sample_view, 1)
        right_layout.addWidget(self.sample_slider)
        right_layout.addWidget(self.sample_label)
        right_layout.addWidget(self.explore_button)
        right_layout.addWidget(self.checkpoint_label)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        for part in (left, centre, right):
            splitter.addWidget(part)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([320, 880, 240])   # the run list shows whole run names at the default size
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        # ---- wiring ---------------------------------------------------------------------------------
        self.open_button.clicked.connect(self._on_open_clicked)
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.new_run_button.clicked.connect(self._on_new_run_clicked)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.run_list.currentItemChanged.connect(self._on_selected_run_changed)
        self.run_list.itemChanged.connect(self._on_run_item_changed)
        self.x_axis.currentTextChanged.connect(self._on_x_axis_changed)
        self.smoothing.valueChanged.connect(self._on_smoothing_changed)
        self.plots.readout_changed.connect(self._on_readout_changed)
        self.sample_slider.valueChanged.connect(self._on_sample_step_changed)
        self.explore_button.clicked.connect(self._on_explore_clicked)
        events = self.model.events
        events.run_added.connect(self._on_run_added)
        events.run_removed.connect(self._on_run_removed)
        events.run_started.connect(self._on_run_started)
        events.output.connect(self.console.append_output)
        events.processes.connect(lambda _: self._update_run_items())
        self._poll_timer = QTimer(self, singleShot=True)
        self._poll_timer.timeout.connect(self._on_poll)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._on_smoothing_changed(self.smoothing.value())
        self._update_buttons()

    # ---- public -------------------------------------------------------------------------------------
    @property
    def runs(self) -> list[RunLog]:
        return self.model.runs

    @property
    def processes(self) -> dict[Path, TrainingProcess]:
        return self.model.processes

    @property
    def poll_interval_ms(self) -> int:
        return round(self.model.poll_interval_s * 1000)

    def add_run(self, path: str | Path) -> RunLog:
        """Start watching a run directory (or its events.jsonl); an open one is not added twice."""
        run = self.model.add_run(path)   # FileNotFoundError: not a folder
        self._poll_timer.start(0)
        return run

    def remove_run(self, run: RunLog) -> None:
        self.model.remove_run(run)

    def selected_run(self) -> RunLog | None:
        item = self.run_list.currentItem()
        return getattr(item, "run", None) if item is not None else None

    def is_loading(self) -> bool:
        """True while some open log has lines not yet read (or not yet drawn)."""
        return self.model.is_reading() or any(self._drawn_versions.get(id(run)) != run.version for run in self.runs)

    def start_run(self, request: NewRunRequest) -> TrainingProcess:
        """Start a new training process; its run directory is opened as soon as it appears."""
        process = self.model.start_run(request)
        self._poll_timer.start(0)
        return process

    def stop_run(self, run: RunLog | None = None) -> None:
        self.model.stop_run(run or self.selected_run())

    def resume_run(self, run: RunLog | None = None, kimg: float | None = None) -> TrainingProcess | None:
        process = self.model.resume_run(run or self.selected_run(), kimg)
        if process is not None:
            self._poll_timer.start(0)
        return process

    def shutdown(self, wait_s: float = 30.0) -> None:
        """Stop every trainer started from here (each saves first) and wait for them."""
        self._poll_timer.stop()
        self.model.shutdown(wait_s)

    # ---- polling and drawing --------------------------------------------------------------------------
    def _on_poll(self) -> None:
        tick = self.model.poll()
        if tick.redraw:
            self._redraw()
        if tick.update_list:
            self.load_progress.setValue(int(100 * self.model.read_fraction()))
            self.load_progress.setVisible(tick.catching_up)
            self._update_run_items()
        if tick.next_poll_s is not None:
            self._poll_timer.start(int(tick.next_poll_s * 1000))

    def _redraw(self) -> None:
        changed = [run for run in self.runs if self._drawn_versions.get(id(run)) != run.version]
        if changed:
            self.plots.refresh()
            for run in changed:
                self._drawn_versions[id(run)] = run.version
        self._refresh_timeline()

    def _update_run_items(self) -> None:
        for run in self.runs:
            item = self._items[id(run)]
            alerts = run.alerts
            # the column is narrow: the count; its tooltip (and the plots' markers) say what
            summary = f"⚠ {len(alerts)}" if alerts else ""
            texts = (self.model.state_text(run), str(run.last_step), summary)
            for column, text in zip((_COL_STATE, _COL_STEP, _COL_ALERTS), texts):
                if item.text(column) != text:
                    item.setText(column, text)
            tooltip = "\n".join(f"{a.short}: {a.message}" for a in alerts) or run.status_message
            if run.bad_lines:
                tooltip += f"\n{run.bad_lines} unreadable line(s) skipped"
            if run.long_lines:
                tooltip += f" ({run.long_lines} over {MAX_LINE_BYTES >> 20} MiB, left unread)"
            if item.toolTip(_COL_ALERTS) != tooltip:
                item.setToolTip(_COL_ALERTS, tooltip)
                item.setToolTip(_COL_STATE, tooltip)
            colour = QBrush(QColor("#ff5050")) if alerts else QBrush()
            item.setForeground(_COL_ALERTS, colour)
            item.setForeground(_COL_STATE, colour if run.state == "failed" else QBrush())
        self._update_buttons()

    # ---- sample timeline ----------------------------------------------------------------------------
    def _refresh_timeline(self, force: bool = False) -> None:
        run = self.selected_run()
        key = (id(run), run.version if run else -1)
        if not force and key == self._timeline_key:
            return
        self._timeline_key = key
        self._grids = run.sample_grids() if run else []
        at_end = self.sample_slider.value() >= self.sample_slider.maximum()
        self.sample_slider.blockSignals(True)
        self.sample_slider.setMaximum(max(len(self._grids) - 1, 0))
        if at_end or force:
            self.sample_slider.setValue(self.sample_slider.maximum())
        self.sample_slider.blockSignals(False)
        self.samples_title.setText(f"<b>Samples</b> — {run.name}" if run else "<b>Samples</b>")
        self.run_info.setText(self.model.run_info(run))
        self._on_sample_step_changed(self.sample_slider.value())

    def shown_sample(self):
        """The Snapshot of the sample grid on show, or None."""
        i = self.sample_slider.value()
        return self._grids[i] if 0 <= i < len(self._grids) else None

    # ---- slots -------------------------------------------------------------------------------------
    def _on_sample_step_changed(self, index: int) -> None:
        grid = self.shown_sample()
        run = self.selected_run()
        if grid is None or run is None:
            self.sample_view.clear()
            self._shown_sample = None
            self.sample_label.setText("no sample grids yet")
            self.explore_button.setEnabled(False)
            self.checkpoint_label.setText("")
            return
        unreadable = False
        if grid.path != self._shown_sample:
            image = read_rgb(grid.path)
            if image is not None:
                self.sample_view.set_image(image)
                self._shown_sample = grid.path
            else:   # a damaged (or half-copied) PNG: say so instead of showing an empty panel
                self.sample_view.clear()
                self._shown_sample = None
                unreadable = True
        kimg = "" if np.isnan(grid.kimg) else f", {grid.kimg:.1f} kimg"
        self.sample_label.setText(f"step {grid.step}{kimg}  ({index + 1} of {len(self._grids)})"
                                  + (f"\ncannot read {grid.path.name} (damaged?)" if unreadable else ""))
        nearest = run.nearest_checkpoint(grid.step)
        self.explore_button.setEnabled(nearest is not None)
        self.checkpoint_label.setText(f"nearest checkpoint: step {nearest.step}" if nearest
                                      else "no checkpoint on disk yet")

    def _on_explore_clicked(self) -> None:
        run, grid = self.selected_run(), self.shown_sample()
        if run is None or grid is None:
            return
        nearest = run.nearest_checkpoint(grid.step)
        if nearest is not None:
            self.open_checkpoint_requested.emit(str(nearest.path))

    def _on_selected_run_changed(self, *_) -> None:
        self._refresh_timeline(force=True)
        self._update_buttons()

    def _on_run_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        run = getattr(item, "run", None)
        if run is not None and column == _COL_RUN:
            self.plots.set_run_visible(run, item.checkState(_COL_RUN) == Qt.CheckState.Checked)

    def _on_x_axis_changed(self, axis: str) -> None:
        self.plots.set_x_axis(axis)

    def _on_smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        self.plots.set_smoothing(value / 100)

    def _on_readout_changed(self, text: str) -> None:
        self.readout.setText(text or " ")

    def _on_open_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a run directory", self.default_outdir)
        if folder:
            try:
                self.add_run(folder)
            except OSError as exc:
                QMessageBox.warning(self, "Cannot open run", str(exc))

    def _on_remove_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.remove_run(run)

    def _on_export_png_clicked(self, plot_key: str | None) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot as PNG", "monitor.png", "PNG images (*.png)")
        if path:
            try:
                self.plots.export_png(path, plot_key)
            except OSError as exc:
                QMessageBox.warning(self, "Export failed", str(exc))

    def _on_export_csv_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export data as CSV", "monitor.csv", "CSV files (*.csv)")
        if path:
            try:
                write_csv(self.runs, path)
            except OSError as exc:
                QMessageBox.warning(self, "Export failed", str(exc))

    def _on_new_run_clicked(self) -> None:
        dialog = NewRunDialog(self, outdir=self.default_outdir)
        if dialog.exec() == NewRunDialog.DialogCode.Accepted:
            try:
                self.start_run(dialog.request())
            except ValueError as exc:   # e.g. unbalanced quotes in the extra options
                QMessageBox.warning(self, "Cannot start the run", str(exc))

    def _on_stop_clicked(self) -> None:
        self.stop_run()

    def _on_resume_clicked(self) -> None:
        self.resume_run(kimg=self.resume_kimg.value() or None)

    def _on_run_added(self, run: RunLog) -> None:
        colour = self.plots.add_run(run)
        item = QTreeWidgetItem([run.name, "…", "", ""])
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(_COL_RUN, Qt.CheckState.Checked)
        item.setIcon(_COL_RUN, colour_swatch(colour))
        item.setToolTip(_COL_RUN, str(run.run_dir))
        item.run = run
        self._items[id(run)] = item
        self.run_list.addTopLevelItem(item)
        if self.run_list.currentItem() is None:
            self.run_list.setCurrentItem(item)
        self.runs_changed.emit()

    def _on_run_removed(self, run: RunLog) -> None:
        self.plots.remove_run(run)
        item = self._items.pop(id(run))
        self.run_list.takeTopLevelItem(self.run_list.indexOfTopLevelItem(item))
        self._drawn_versions.pop(id(run), None)
        self.runs_changed.emit()
        self._refresh_timeline(force=True)

    def _on_run_started(self, run: RunLog) -> None:
        """A run started here created its directory: show it."""
        self.run_list.setCurrentItem(self._items[id(run)])
        self._update_run_items()

    # ---- helpers --------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        run = self.selected_run()
        self.stop_button.setEnabled(self.model.can_stop(run))
        self.resume_button.setEnabled(self.model.can_resume(run))
        self.remove_button.setEnabled(self.model.can_close(run))
        self.export_csv_action.setEnabled(bool(self.runs))
