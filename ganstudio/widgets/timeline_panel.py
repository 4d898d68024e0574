"""Timeline panel: keyframes from the current view, a scrub bar, Play / Pause at a target fps, presets,
and export to MP4, GIF or PNG frames.

The panel edits `workspace.timeline` (a trainer.timeline.Timeline) and never touches torch: frames
are rendered on the render worker in aligned chunks (trainer.timeline.CHUNK_FRAMES), and only uint8
arrays come back. At most one chunk is being rendered at a time and only the newest wanted frame
waits, so scrubbing and playback never build a backlog: when the device is slower than the
target fps, playback follows the clock, skips the frames it could not render in time, and the fps
label says how many frames per second really reach the screen.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMessageBox,
                               QProgressBar, QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from trainer.latents import LatentState, layer_groups
from trainer.timeline import (CHUNK_FRAMES, EASINGS, INTERPOLATIONS, Keyframe, LayerTrack, Timeline, TimelineError,
                              check_timeline_for_model, class_tour, direction_sweep, model_signature, noise_loop,
                              seed_walk, style_morph, truncation_sweep)
from trainer.video import RESIZE_FILTERS, ExportError, ExportSettings, check_export

from ..engine.renderer import ModelInfo, latent_from_workspace
from ..engine.workspace import Workspace
from .worker import Job

FRAME_JOB = "timeline frames"
EXPORT_JOB = "timeline export"
SHA_JOB = "timeline checksum"
CACHE_BYTES = 256 * 2**20        # rendered chunks kept for scrubbing back and replaying
FPS_WINDOW_S = 1.0               # the achieved-fps label averages over this much time
PRESET_NAMES = {"seed walk": "seed-walk", "truncation sweep": "truncation-sweep",
                "direction sweep": "direction-sweep", "class tour": "class-tour", "noise loop": "noise-loop",
                "style morph": "style-morph"}
TRACK_CHOICES = ("all layers together", "shape first (coarse, then fine)", "texture first (fine, then coarse)")
SIZE_CHOICES = (("native", 1), ("2×", 2), ("4×", 4), ("square size…", 0))
FORMAT_CHOICES = (("MP4 (H.264)", ".mp4"), ("GIF", ".gif"), ("PNG sequence (folder)", ""))


class _WorkerFrames:
    """Lives with the render worker: one TimelineRenderer for the newest timeline and model. Only
    the worker thread calls `chunk`."""

    def __init__(self):
        self._timeline: Timeline | None = None
        self._key = None
        self._renderer = None

    def renderer_for(self, renderer, timeline: Timeline):
        import torch
        from trainer.timeline import TimelineRenderer
        key = (renderer.generation, renderer.device, renderer.half)
        if self._timeline is not timeline or self._key != key:
            dtype = torch.float16 if renderer.half else torch.float32
            self._renderer = TimelineRenderer(renderer.G, timeline, renderer.mapper, dtype)
            self._timeline, self._key = timeline, key
        return self._renderer

    def chunk(self, renderer, timeline: Timeline, index: int) -> np.ndarray:
        return self.renderer_for(renderer, timeline).render_chunk(index)


class TimelinePanel(QWidget):
    frame_ready = Signal(object)          # uint8 [H, W, 3]: a timeline frame to show in the image view

    def __init__(self,
                 workspace: Workspace,   # the panel reads and writes workspace.timeline
                 worker,                 # the RenderWorker: frames and export run on it as jobs
                 parent=None):
        super().__init__(parent)
        self.workspace, self.worker = workspace, worker
        self.info: ModelInfo | None = None
        self.directions_source = lambda: workspace.directions   # where a direction sweep finds its vectors
        self._worker_frames = _WorkerFrames()
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()   # chunk index -> frames, this timeline
        self._chunks_timeline: Timeline | None = None
        self._frame_job_busy = False
        self._wanted_chunk: int | None = None
        self._export_busy = False
        self._token = 0
        self._shown_frame = -1
        self._showing_timeline = False               # the image view shows timeline frames (not the explorer's)
        self._play_start = (0.0, 0)                  # (clock, frame) playback counts from
        self._shown_times: deque[float] = deque()
        self.frames_shown = 0                        # counters for tests and the benchmark
        self.frames_skipped = 0
        self.last_export: str = ""

        # widgets: keyframes
        self.keyframe_list = QListWidget()
        self.keyframe_list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.keyframe_list.setToolTip("Drag to reorder. Selecting a keyframe shows its frame.")
        self.add_button = QPushButton("Add current view")
        self.replace_button = QPushButton("Replace")
        self.replace_button.setToolTip("Replace the selected keyframe with the current view")
        self.delete_button = QPushButton("Delete")
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.05, 600.0)
        self.duration.setDecimals(2)
        self.duration.setSuffix(" s")
        self.duration.setToolTip("Time from this keyframe to the next")
        self.easing = QComboBox()
        self.easing.addItems(EASINGS)
        self.tracks = QComboBox()
        self.tracks.addItems(TRACK_CHOICES)
        self.tracks.setToolTip("Per-layer tracks in W+: shape first moves the coarse layers in the first half "
                               "of the segment and the fine layers in the second")
        # widgets: the whole timeline
        self.fps = QSpinBox()
        self.fps.setRange(1, 240)
        self.fps.setValue(30)
        self.fps.setSuffix(" fps")
        self.loop = QCheckBox("Loop")
        self.loop.setToolTip("The last keyframe travels back to the first, and playback repeats")
        self.interpolation = QComboBox()
        self.interpolation.addItems(INTERPOLATIONS)
        self.interpolation.setToolTip("piecewise: each segment with its easing (seeds slerp in Z, W+ moves "
                                      "linearly); catmull-rom: a smooth cubic through all keyframes in W")
        self.preset = QComboBox()
        self.preset.addItems(PRESET_NAMES)
        self.preset_keys = QSpinBox()
        self.preset_keys.setRange(2, 64)
        self.preset_keys.setValue(4)
        self.preset_keys.setToolTip("Seeds in a walk or morph, points on a noise loop")
        self.preset_button = QPushButton("Make")
        self.preset_button.setToolTip("Replace the keyframes by a preset built from the current view")
        self.open_button = QPushButton("Open…")
        self.save_button = QPushButton("Save…")
        # widgets: transport
        self.scrub = QSlider(Qt.Orientation.Horizontal)
        self.scrub.setRange(0, 0)
        self.frame_label = QLabel("no keyframes")
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.fps_label = QLabel("")
        self.play_timer = QTimer(self)
        self.play_timer.setTimerType(Qt.TimerType.PreciseTimer)
        # widgets: export
        self.export_format = QComboBox()
        for text, suffix in FORMAT_CHOICES:
            self.export_format.addItem(text, suffix)
        self.export_size = QComboBox()
        for text, factor in SIZE_CHOICES:
            self.export_size.addItem(text, factor)
        self.export_side = QSpinBox()
        self.export_side.setRange(16, 2048)
        self.export_side.setValue(512)
        self.export_side.setSuffix(" px")
        self.export_side.setEnabled(False)
        self.export_filter = QComboBox()
        self.export_filter.addItems(list(RESIZE_FILTERS))
        self.export_filter.setCurrentText("lanczos")
        self.export_quality = QSpinBox()
        self.export_quality.setRange(1, 100)
        self.export_quality.setValue(80)
        self.export_quality.setToolTip("MP4 only: 100 = x264 CRF 10 (near lossless), 1 = CRF 40")
        self.export_grid = QSpinBox()
        self.export_grid.setRange(1, 16)
        self.export_grid.setToolTip("A grid video: this many cells, each the timeline from other seeds")
        self.export_button = QPushButton("Export…")
        self.export_progress = QProgressBar()
        self.export_progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.message = QLabel("")
        self.message.setWordWrap(True)

        keys_box = QGroupBox("Keyframes")
        buttons = QHBoxLayout()
        for b in (self.add_button, self.replace_button, self.delete_button):
            buttons.addWidget(b)
        key_form = QFormLayout()
        key_form.addRow("Duration", self.duration)
        key_form.addRow("Easing", self.easing)
        key_form.addRow("Layers", self.tracks)
        keys_layout = QVBoxLayout(keys_box)
        keys_layout.addWidget(self.keyframe_list, 1)
        keys_layout.addLayout(buttons)
        keys_layout.addLayout(key_form)
        timeline_row = QHBoxLayout()
        timeline_row.addWidget(self.fps)
        timeline_row.addWidget(self.loop)
        timeline_row.addWidget(self.interpolation, 1)
        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Preset"))
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(self.preset_keys)
        preset_row.addWidget(self.preset_button)
        file_row = QHBoxLayout()
        file_row.addWidget(QLabel("Timeline file"))
        file_row.addWidget(self.open_button)
        file_row.addWidget(self.save_button)
        transport = QHBoxLayout()
        transport.addWidget(self.play_button)
        transport.addWidget(self.scrub, 1)
        status_row = QHBoxLayout()
        status_row.addWidget(self.frame_label, 1)
        status_row.addWidget(self.fps_label)
        export_box = QGroupBox("Export")
        export_form = QFormLayout(export_box)
        export_form.addRow("Format", self.export_format)
        size_row = QHBoxLayout()
        size_row.addWidget(self.export_size)
        size_row.addWidget(self.export_side)
        size_row.addWidget(self.export_filter)
        export_form.addRow("Size", size_row)
        quality_row = QHBoxLayout()
        quality_row.addWidget(self.export_quality)
        quality_row.addWidget(QLabel("Grid cells"))
        quality_row.addWidget(self.export_grid)
        export_form.addRow("Quality", quality_row)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.export_button)
        progress_row.addWidget(self.export_progress, 1)
        progress_row.addWidget(self.cancel_button)
        export_form.addRow(progress_row)
        layout = QVBoxLayout(self)
        layout.addWidget(keys_box, 1)
        layout.addLayout(timeline_row)
        layout.addLayout(preset_row)
        layout.addLayout(file_row)
        layout.addLayout(transport)
        layout.addLayout(status_row)
        layout.addWidget(export_box)
        layout.addWidget(self.message)

        # wiring
        self.add_button.clicked.connect(self.add_current_view)
        self.replace_button.clicked.connect(self.replace_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.keyframe_list.currentRowChanged.connect(self._on_selection_changed)
        self.keyframe_list.model().rowsMoved.connect(self._on_rows_moved)
        self.duration.valueChanged.connect(self._on_keyframe_settings_changed)
        self.easing.currentTextChanged.connect(self._on_keyframe_settings_changed)
        self.tracks.currentIndexChanged.connect(self._on_keyframe_settings_changed)
        self.fps.valueChanged.connect(self._on_timeline_settings_changed)
        self.loop.toggled.connect(self._on_timeline_settings_changed)
        self.interpolation.currentTextChanged.connect(self._on_timeline_settings_changed)
        self.preset_button.clicked.connect(lambda: self.make_preset(PRESET_NAMES[self.preset.currentText()]))
        self.open_button.clicked.connect(self._on_open_dialog)
        self.save_button.clicked.connect(self._on_save_dialog)
        self.scrub.valueChanged.connect(self._on_scrub_changed)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.play_timer.timeout.connect(self._on_play_tick)
        self.export_size.currentIndexChanged.connect(
            lambda: self.export_side.setEnabled(self.export_size.currentData() == 0))
        self.export_button.clicked.connect(self._on_export_dialog)
        self.cancel_button.clicked.connect(lambda: self.worker.cancel())
        self.worker.job_finished.connect(self._on_job_finished)
        self.worker.job_failed.connect(self._on_job_failed)
        self.worker.job_progress.connect(self._on_job_progress)
        workspace.events.timeline.connect(self._on_timeline_changed)
        workspace.events.changed.connect(self._on_workspace_changed)
        self._refresh()

    # ---- model ----
    def set_model(self, info: ModelInfo) -> None:
        self.pause()
        self.info = info
        line = self.workspace.timeline
        if line is not None:
            try:
                check_timeline_for_model(line, info)
            except TimelineError as exc:
                self.message.setText(f"The timeline does not fit this model and is set aside: {exc}")
                self.workspace.timeline = None
        self._chunks.clear()
        self._refresh()

    @property
    def timeline(self) -> Timeline | None:
        return self.workspace.timeline

    def _new_timeline(self, keyframes, **settings) -> Timeline:
        info = self.info
        old = self.timeline
        base = {"fps": float(self.fps.value()), "loop": self.loop.isChecked(),
                "interpolation": self.interpolation.currentText(), "checkpoint": info.path,
                "checkpoint_sha256": old.checkpoint_sha256 if old is not None and old.checkpoint == info.path else "",
                "model": model_signature(info)}
        base.update(settings)
        return Timeline(tuple(keyframes), **base)

    def _set_timeline(self, line: Timeline | None) -> None:
        self.workspace.timeline = line
        if line is not None and not line.checkpoint_sha256 and line.checkpoint:
            self._checksum(line.checkpoint)

    # ---- editing ----
    def current_view(self) -> LatentState:
        return latent_from_workspace(self.workspace, self.info)

    def add_current_view(self) -> None:
        if self.info is None:
            return
        keys = list(self.timeline.keyframes) if self.timeline is not None else []
        row = self.keyframe_list.currentRow()
        at = row + 1 if 0 <= row < len(keys) else len(keys)
        previous = keys[at - 1] if at > 0 else None
        keys.insert(at, Keyframe(self.current_view(), previous.duration if previous else 2.0,
                                 previous.easing if previous else "ease-in-out"))
        self._edit(lambda: self._new_timeline(keys), select=at)

    def replace_selected(self) -> None:
        row = self.keyframe_list.currentRow()
        if self.timeline is None or not 0 <= row < len(self.timeline.keyframes):
            return
        keys = list(self.timeline.keyframes)
        keys[row] = keys[row].replace(state=self.current_view(), z=None)
        self._edit(lambda: self._new_timeline(keys), select=row)

    def delete_selected(self) -> None:
        row = self.keyframe_list.currentRow()
        if self.timeline is None or not 0 <= row < len(self.timeline.keyframes):
            return
        keys = list(self.timeline.keyframes)
        del keys[row]
        self._edit(lambda: self._new_timeline(keys) if keys else None, select=min(row, len(keys) - 1))

    def make_preset(self, name: str) -> None:
        """Replace the keyframes by a preset built from the current view (its class, ψ, centre ...)."""
        if self.info is None:
            return
        info, view, n = self.info, self.current_view(), self.preset_keys.value()
        base = view.replace(ws=None, w_offset=None, mix_mask=())
        fps = float(self.fps.value())
        common = {"checkpoint": info.path, "sha": self.timeline.checkpoint_sha256 if self.timeline else ""}

        def build():
            if name == "seed-walk":
                return seed_walk([(view.seed + i) % 2**32 for i in range(n)], 2.0, fps, base, G=info, **common)
            if name == "style-morph":
                coarse = sum(layer_groups(info.layer_resolutions)["coarse"]) if info.has_w else 0
                return style_morph([(view.seed + i) % 2**32 for i in range(n)], max(coarse, 1), 3.0, fps, base,
                                   G=info, **common)
            if name == "truncation-sweep":
                return truncation_sweep(view.seed, 0.0, 1.2, 3.0, fps, base, G=info, **common)
            if name == "class-tour":
                return class_tour(info.c_dim, view.seed, 1.5, fps, base, G=info, **common)
            if name == "noise-loop":
                return noise_loop(info.z_dim, view.seed, keys=max(n, 4), seconds=2.0 * max(n, 4), fps=fps,
                                  base=base, G=info, **common)
            directions = self.directions_source()
            if not directions:
                raise TimelineError("a direction sweep needs directions: compute them in the Directions panel")
            if not info.has_w:
                raise TimelineError("a direction sweep needs a model with a W space")
            first = sorted(directions)[0]
            return direction_sweep(directions[first], 3.0, view.seed, 2.0, fps, base, G=info, **common)

        self._edit(build, select=0)

    def _edit(self, build, select: int = -1) -> None:
        """Apply an edit; a refused one (a too-short duration, a preset that does not fit) keeps the old
        timeline and says why."""
        try:
            line = build()
        except (TimelineError, ValueError) as exc:
            self.message.setText(str(exc))
            self._refresh()
            return
        self.message.setText("")
        self._set_timeline(line)
        if line is not None and select >= 0:
            self.keyframe_list.blockSignals(True)   # an edit selects its keyframe without jumping to its frame
            self.keyframe_list.setCurrentRow(select)
            self.keyframe_list.blockSignals(False)
            self._show_keyframe_settings()

    # ---- files ----
    def save_timeline(self, path) -> None:
        if self.timeline is None:
            raise TimelineError("no keyframes to save")
        self.timeline.save(path)

    def open_timeline(self, path) -> None:
        """Open a .timeline.json made on this model; anything else is refused and nothing changes."""
        line = Timeline.load(path)
        if self.info is None:
            raise TimelineError("open a checkpoint first")
        check_timeline_for_model(line, self.info)
        note = ""
        if line.checkpoint and Path(line.checkpoint).name != Path(self.info.path).name:
            note = f"made on {Path(line.checkpoint).name}; rendered with the open model"
        self._set_timeline(line)
        self.message.setText(note)

    def _on_open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open timeline", "", "Timeline (*.timeline.json *.json)")
        if path:
            self._guarded("Cannot open timeline", lambda: self.open_timeline(path))

    def _on_save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save timeline", "film.timeline.json", "Timeline (*.timeline.json)")
        if path:
            self._guarded("Cannot save timeline", lambda: self.save_timeline(path))

    def _guarded(self, title: str, action) -> None:
        try:
            action()
        except (OSError, ValueError) as exc:
            box = QMessageBox(QMessageBox.Icon.Warning, title, str(exc), QMessageBox.StandardButton.Ok, self)
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.show()
            self.message.setText(str(exc))

    # ---- showing the timeline ----
    def _on_timeline_changed(self, _line) -> None:
        self._refresh()
        if self._showing_timeline:   # the frame on screen is re-rendered for the edited timeline
            self._show_frame(min(max(self.scrub.value(), 0), max(self.frame_count - 1, 0)))

    def _on_workspace_changed(self, name: str) -> None:
        """An explorer edit: its render owns the image view until the timeline is scrubbed or played."""
        if name != "timeline":
            self._showing_timeline = False
            self._wanted_chunk = None
            self.pause()

    @property
    def frame_count(self) -> int:
        return self.timeline.frame_count if self.timeline is not None else 0

    def _refresh(self) -> None:
        """Widgets from the timeline (signals blocked, so refreshing edits nothing)."""
        line = self.timeline
        widgets = (self.keyframe_list, self.duration, self.easing, self.tracks, self.fps, self.loop,
                   self.interpolation, self.scrub)
        for w in widgets:
            w.blockSignals(True)
        row = self.keyframe_list.currentRow()
        self.keyframe_list.clear()
        if line is not None:
            starts = line.keyframe_frames()
            for i, k in enumerate(line.keyframes):
                item = QListWidgetItem(f"{i + 1}. {self._describe(k)} · frame {starts[i]} · {k.duration:g} s "
                                       f"{k.easing}")
                self.keyframe_list.addItem(item)
            self.keyframe_list.setCurrentRow(min(max(row, 0), len(line.keyframes) - 1))
            self.fps.setValue(int(round(line.fps)))
            self.loop.setChecked(line.loop)
            self.interpolation.setCurrentText(line.interpolation)
        self.scrub.setRange(0, max(self.frame_count - 1, 0))
        self._show_keyframe_settings()
        for w in widgets:
            w.blockSignals(False)
        has_model, has_keys = self.info is not None, line is not None and bool(line.keyframes)
        for w in (self.add_button, self.preset_button, self.open_button):
            w.setEnabled(has_model)
        for w in (self.replace_button, self.delete_button, self.duration, self.easing, self.tracks,
                  self.save_button, self.play_button, self.scrub):
            w.setEnabled(has_keys)
        self.tracks.setEnabled(has_keys and self.info is not None and self.info.has_w)
        self.export_button.setEnabled(has_keys and not self._export_busy)
        self.cancel_button.setEnabled(self._export_busy)
        self.export_progress.setVisible(self._export_busy)
        self._update_frame_label()

    def _describe(self, k: Keyframe) -> str:
        s = k.state
        parts = ["W+ latent" if s.ws is not None else ("path point" if k.z is not None else f"seed {s.seed}")]
        if self.info is not None and self.info.c_dim and s.class_index is not None \
                and s.class_index < len(self.info.class_names):
            parts.append(self.info.class_names[s.class_index])
        if self.info is None or self.info.has_w:
            parts.append(f"ψ {s.effective_psi:.2f}")
        if any(s.mix_mask):
            parts.append(f"mix {s.mix_seed}")
        if s.w_offset is not None and float(np.abs(s.w_offset).max()) > 0:
            parts.append("offset")
        return " · ".join(parts)

    def _show_keyframe_settings(self) -> None:
        line, row = self.timeline, self.keyframe_list.currentRow()
        if line is None or not 0 <= row < len(line.keyframes):
            return
        k = line.keyframes[row]
        self.duration.setValue(k.duration)
        self.easing.setCurrentText(k.easing)
        self.tracks.setCurrentIndex(self._track_choice(k.tracks))

    def _track_settings(self, choice: int) -> tuple[LayerTrack, ...]:
        if choice == 0 or self.info is None or not self.info.has_w:
            return ()
        coarse = max(1, sum(layer_groups(self.info.layer_resolutions)["coarse"]))
        first, second = (0.0, 0.5), (0.5, 1.0)
        if choice == 2:
            first, second = second, first
        return (LayerTrack(0, coarse, *first), LayerTrack(coarse, None, *second))

    def _track_choice(self, tracks) -> int:
        for choice in range(len(TRACK_CHOICES)):
            if tuple(tracks) == self._track_settings(choice):
                return choice
        return 0

    def _on_selection_changed(self, row: int) -> None:
        self._show_keyframe_settings()
        line = self.timeline
        if line is not None and 0 <= row < len(line.keyframes) and not self.is_playing:
            self._showing_timeline = True
            if self.scrub.value() == line.keyframe_frames()[row]:
                self._show_frame(self.scrub.value())
            self.scrub.setValue(line.keyframe_frames()[row])

    def _on_keyframe_settings_changed(self, *_args) -> None:
        line, row = self.timeline, self.keyframe_list.currentRow()
        if line is None or not 0 <= row < len(line.keyframes):
            return
        keys = list(line.keyframes)
        keys[row] = keys[row].replace(duration=float(self.duration.value()), easing=self.easing.currentText(),
                                      tracks=self._track_settings(self.tracks.currentIndex()))
        self._edit(lambda: line.replace(keyframes=tuple(keys)), select=row)

    def _on_timeline_settings_changed(self, *_args) -> None:
        line = self.timeline
        if line is None:
            return
        self._edit(lambda: line.replace(fps=float(self.fps.value()), loop=self.loop.isChecked(),
                                        interpolation=self.interpolation.currentText()),
                   select=self.keyframe_list.currentRow())

    def _on_rows_moved(self, *_args) -> None:
        """A drag in the list: reorder the keyframes to match. Items keep their original number in text."""
        line = self.timeline
        if line is None:
            return
        order = [int(self.keyframe_list.item(i).text().split(".", 1)[0]) - 1 for i in range(self.keyframe_list.count())]
        moved_to = self.keyframe_list.currentRow()
        QTimer.singleShot(0, lambda: self._edit(lambda: line.replace(
            keyframes=tuple(line.keyframes[i] for i in order)), select=moved_to))

    def move_keyframe(self, source: int, target: int) -> None:
        """Move keyframe `source` to position `target` (what a drag does)."""
        line = self.timeline
        if line is None:
            return
        keys = list(line.keyframes)
        keys.insert(target, keys.pop(source))
        self._edit(lambda: line.replace(keyframes=tuple(keys)), select=target)

    # ---- frames ----
    def _update_frame_label(self) -> None:
        line = self.timeline
        if line is None:
            self.frame_label.setText("no keyframes: add the current view, or make a preset")
            return
        frame = self.scrub.value()
        self.frame_label.setText(f"frame {frame + 1}/{line.frame_count} · {frame / line.fps:.2f} / "
                                 f"{line.frame_count / line.fps:.2f} s")

    def _on_scrub_changed(self, frame: int) -> None:
        self._update_frame_label()
        self._showing_timeline = True
        if self.is_playing:
            self._play_start = (time.perf_counter(), frame)
        self._show_frame(frame)

    def _cached_frame(self, frame: int) -> np.ndarray | None:
        if self._chunks_timeline is not self.timeline:
            self._chunks.clear()
            self._chunks_timeline = self.timeline
        chunk = self._chunks.get(frame // CHUNK_FRAMES)
        if chunk is None:
            return None
        self._chunks.move_to_end(frame // CHUNK_FRAMES)
        return chunk[frame % CHUNK_FRAMES]

    def _show_frame(self, frame: int) -> bool:
        """Show `frame` now if it is rendered, else ask for its chunk (newest wins). True if shown."""
        if self.timeline is None or self.info is None or not 0 <= frame < self.frame_count \
                or not self._showing_timeline:
            return False
        image = self._cached_frame(frame)
        if image is None:
            self._request_chunk(frame // CHUNK_FRAMES)
            return False
        self._shown_frame = frame
        self.frames_shown += 1
        now = time.perf_counter()
        self._shown_times.append(now)
        while self._shown_times and now - self._shown_times[0] > FPS_WINDOW_S:
            self._shown_times.popleft()
        self.frame_ready.emit(image)
        return True

    def _request_chunk(self, chunk: int) -> None:
        if self._frame_job_busy:
            self._wanted_chunk = chunk      # replaces any older wish: no backlog
            return
        line, frames = self.timeline, self._worker_frames
        self._frame_job_busy = True
        self._token += 1
        self.worker.submit_job(Job(FRAME_JOB, lambda renderer, progress: (line, chunk, frames.chunk(renderer, line, chunk)),
                                   self._token))

    def _on_frames_arrived(self, result) -> None:
        line, chunk, images = result
        self._frame_job_busy = False
        if line is self.timeline:
            self._cached_frame(0)               # resets the cache if the timeline changed meanwhile
            self._chunks[chunk] = images
            while sum(c.nbytes for c in self._chunks.values()) > CACHE_BYTES and len(self._chunks) > 1:
                self._chunks.popitem(last=False)
        wanted, self._wanted_chunk = self._wanted_chunk, None
        if self.is_playing:
            self._on_play_tick()
        elif self.scrub.value() // CHUNK_FRAMES == chunk and line is self.timeline:
            self._show_frame(self.scrub.value())
        if wanted is not None and (wanted not in self._chunks or line is not self.timeline):
            self._request_chunk(wanted)
        elif self.is_playing and not self._frame_job_busy:
            self._prefetch()

    def _prefetch(self) -> None:
        """While playing, render the next chunk not yet cached, so frames are ready when their time comes."""
        count = self.frame_count
        if not count:
            return
        start = self._shown_frame // CHUNK_FRAMES
        chunks = -(-count // CHUNK_FRAMES)
        for step in range(1, 4):
            chunk = start + step
            if chunk >= chunks:
                if not self.loop.isChecked():
                    return
                chunk %= chunks
            if chunk not in self._chunks:
                self._request_chunk(chunk)
                return

    # ---- playback ----
    @property
    def is_playing(self) -> bool:
        return self.play_timer.isActive()

    @property
    def achieved_fps(self) -> float:
        times = self._shown_times
        if len(times) < 2 or time.perf_counter() - times[-1] > FPS_WINDOW_S:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0

    def play(self) -> None:
        if not self.play_button.isChecked():
            self.play_button.setChecked(True)   # emits toggled -> _on_play_toggled
        elif not self.is_playing:
            self._on_play_toggled(True)

    def pause(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def _on_play_toggled(self, on: bool) -> None:
        if on and self.frame_count and self.info is not None:
            start = self.scrub.value()
            if not self.loop.isChecked() and start >= self.frame_count - 1:
                start = 0
            self._play_start = (time.perf_counter(), start)
            self._showing_timeline = True
            self._shown_times.clear()
            self.frames_skipped = 0
            self.play_timer.start(max(1, int(500 / self.timeline.fps)))   # two ticks per frame
            self.play_button.setText("Pause")
            self._on_play_tick()
        else:
            self.play_timer.stop()
            self.play_button.setText("Play")
            if self.play_button.isChecked():
                self.play_button.setChecked(False)

    def _on_play_tick(self) -> None:
        """Follow the clock: the frame due now is shown if rendered; frames whose time passed while
        the device was busy are skipped, never queued."""
        line = self.timeline
        if line is None or not self.is_playing:
            return
        started, first = self._play_start
        due = first + int((time.perf_counter() - started) * line.fps)
        if due >= line.frame_count:
            if not line.loop:
                self.scrub.blockSignals(True)
                self.scrub.setValue(line.frame_count - 1)
                self.scrub.blockSignals(False)
                self._show_frame(line.frame_count - 1)
                self.pause()
                return
            due %= line.frame_count
        if due != self._shown_frame:
            previous = self._shown_frame
            if self._show_frame(due):
                if previous >= 0:
                    self.frames_skipped += max(0, (due - previous) % line.frame_count - 1)
                self.scrub.blockSignals(True)
                self.scrub.setValue(due)
                self.scrub.blockSignals(False)
                self._update_frame_label()
        if not self._frame_job_busy:
            self._prefetch()
        achieved = self.achieved_fps
        self.fps_label.setText(f"{achieved:.1f} of {line.fps:g} fps" + (" (skipping frames)" if achieved
                                                                        < 0.9 * line.fps else ""))

    # ---- export ----
    def export_settings(self, path) -> ExportSettings:
        factor = self.export_size.currentData()
        native = self.info.img_resolution if self.info is not None else 0
        size = self.export_side.value() if factor == 0 else native * factor
        return ExportSettings(str(path), size=None if size == native else size,
                              resize_filter=self.export_filter.currentText(), quality=self.export_quality.value())

    def _on_export_dialog(self) -> None:
        suffix = self.export_format.currentData()
        filters = {".mp4": "MP4 video (*.mp4)", ".gif": "GIF (*.gif)", "": "Folder of PNG frames (*)"}
        path, _ = QFileDialog.getSaveFileName(self, "Export timeline", f"film{suffix}", filters[suffix])
        if path:
            self.export_to(path)

    def export_to(self, path) -> bool:
        """Start exporting the timeline to `path` on the worker; playback stops. False (and a message)
        when something is wrong before rendering starts."""
        line, info = self.timeline, self.info
        if line is None or info is None or self._export_busy:
            return False
        self.pause()
        settings = self.export_settings(path)
        cells = self.export_grid.value()
        try:
            check_timeline_for_model(line, info)
            check_export(settings, info.img_resolution * math.ceil(math.sqrt(cells)))
        except (TimelineError, ExportError) as exc:
            self.message.setText(str(exc))
            return False

        def run(renderer, progress):
            import torch
            from trainer.timeline import TimelineRenderer
            from trainer.video import export_timeline
            dtype = torch.float16 if renderer.half else torch.float32
            renderers = [TimelineRenderer(renderer.G, line.with_seed_offset(k) if k else line, renderer.mapper, dtype)
                         for k in range(cells)]
            with torch.inference_mode():
                return export_timeline(renderers if cells > 1 else renderers[0], settings, progress)

        self._export_busy = True
        self.export_progress.setValue(0)
        self.message.setText(f"exporting {Path(path).name}…")
        self._refresh()
        self._token += 1
        self.worker.submit_job(Job(EXPORT_JOB, run, self._token))
        return True

    def _checksum(self, checkpoint: str) -> None:
        def run(renderer, progress):
            from trainer.timeline import file_sha256
            return checkpoint, file_sha256(checkpoint)
        self.worker.submit_job(Job(SHA_JOB, run))

    # ---- job answers ----
    def _on_job_progress(self, name: str, fraction: float, message: str) -> None:
        if name == EXPORT_JOB:
            self.export_progress.setValue(int(fraction * 1000))
            self.message.setText(message)

    def _on_job_finished(self, name: str, token: int, result) -> None:
        if name == FRAME_JOB:
            self._on_frames_arrived(result)
        elif name == EXPORT_JOB:
            self._export_busy = False
            self.last_export = result.path
            self.message.setText(f"wrote {result.path}: {result.frames} frames, {result.size}×{result.size}, "
                                 f"{result.fps:.1f} frames/s")
            self._refresh()
        elif name == SHA_JOB:
            checkpoint, sha = result
            line = self.timeline
            if line is not None and line.checkpoint == checkpoint and not line.checkpoint_sha256:
                self.workspace.timeline = line.replace(checkpoint_sha256=sha)

    def _on_job_failed(self, name: str, token: int, message: str) -> None:
        if name == FRAME_JOB:
            self._frame_job_busy = False
            if message:
                self.message.setText(f"frame failed: {message}")
                self.pause()
            elif self._wanted_chunk is not None:
                wanted, self._wanted_chunk = self._wanted_chunk, None
                self._request_chunk(wanted)
        elif name == EXPORT_JOB:
            self._export_busy = False
            self.message.setText(f"export failed: {message}" if message else
                                 "export cancelled: nothing was written")
            self._refresh()
