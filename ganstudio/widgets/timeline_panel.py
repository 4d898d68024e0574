"""Timeline panel: keyframes from the current view (add, replace, delete, drag to reorder, duration,
easing, layer tracks), presets, timeline files, the transport (timeline_player.py: scrub, Play /
Pause) and the export box (timeline_export.py).

The panel edits `workspace.timeline` (a trainer.film.timeline.Timeline) and never touches torch: frames
render on the renderer's thread (ganstudio.engine.timeline_frames) and only uint8 arrays come back.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QFrame, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMessageBox,
                               QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from trainer.latents import LatentState, layer_groups
from trainer.film.timeline import (EASINGS, INTERPOLATIONS, Keyframe, LayerTrack, Timeline, TimelineError,
                              check_timeline_for_model, model_signature)
from trainer.film.presets import (class_tour, direction_sweep, noise_loop, seed_walk, style_morph,
                                      truncation_sweep)

from ..engine.from_workspace import latent_from_workspace
from ..engine.model_info import ModelInfo
from ..engine.workspace import Workspace
from .timeline_export import ExportBox
from .timeline_player import TimelinePlayer
from .timeline_sound import SoundBox

SHA_JOB = "timeline checksum"
PRESET_NAMES = {"seed walk": "seed-walk", "truncation sweep": "truncation-sweep",
                "direction sweep": "direction-sweep", "class tour": "class-tour", "noise loop": "noise-loop",
                "style morph": "style-morph"}
TRACK_CHOICES = ("all layers together", "shape first (coarse, then fine)", "texture first (fine, then coarse)")


class TimelinePanel(QWidget):
    def __init__(self,
                 workspace: Workspace,   # the panel reads and writes workspace.timeline
                 controller,             # RenderController: frames, export and checksums run as its jobs
                 parent=None):
        super().__init__(parent)
        self.workspace, self.controller = workspace, controller
        self.info: ModelInfo | None = None
        self.directions_source = lambda: workspace.directions   # where a direction sweep finds its vectors

        # widgets: keyframes
        self.keyframe_list = QListWidget()
        self.keyframe_list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.keyframe_list.setToolTip("Drag to reorder. Selecting a keyframe shows its frame.")
        self.keyframe_list.setMaximumHeight(130)   # about seven keyframes; more scroll inside the list
        self.add_button = QPushButton("Add current view")
        self.replace_button = QPushButton("Replace")
        self.replace_button.setToolTip("Replace the selected keyframe with the current view")
        self.delete_button = QPushButton("Delete")
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.05, 600.0)
        self.duration.setDecimals(2)
        self.duration.setSuffix(" s")
        self.duration.setToolTip("Time from this keyframe to the next")
        self.duration.setValue(2.0)
        self.easing = QComboBox()
        self.easing.addItems(EASINGS)
        self.easing.setCurrentText("ease-in-out")
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
        self.player = TimelinePlayer(lambda: self.workspace.timeline, controller)
        self.frame_ready = self.player.frame_ready
        self.sound_box = SoundBox(lambda: self.workspace.directions)
        self.export_box = ExportBox(lambda: self.workspace.timeline, controller, self.player.pause)
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
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(keys_box)
        layout.addLayout(timeline_row)
        layout.addLayout(preset_row)
        layout.addLayout(file_row)
        layout.addWidget(self.player)
        layout.addWidget(self.sound_box)
        layout.addWidget(self.export_box)
        layout.addWidget(self.message)
        layout.addStretch(1)
        scroll = QScrollArea()   # the panel is tall: it scrolls rather than make the window taller
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

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
        self.sound_box.changed.connect(self._on_sound_changed)
        self.player.failed.connect(lambda message: self.message.setText(f"frames failed: {message}"))
        workspace.events.timeline.connect(self._on_timeline_changed)
        workspace.events.changed.connect(self._on_workspace_changed)
        self._refresh()

    # ---- model ----
    def set_model(self, info: ModelInfo) -> None:
        self.player.explorer_changed()
        self.info = info
        self.export_box.set_model(info)
        line = self.workspace.timeline
        if line is not None:
            try:
                check_timeline_for_model(line, info)
            except TimelineError as exc:
                self.message.setText(f"The timeline does not fit this model and is set aside: {exc}")
                self.workspace.timeline = None
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
                "model": model_signature(info),
                "audio": old.audio if old is not None else None,   # a sound from a timeline file stays
                # a new timeline keeps the view's noise unless it is random (frames must repeat)
                "noise_mode": old.noise_mode if old is not None else
                ("none" if self.workspace.noise_mode == "none" else "const")}
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

        self.preset.setCurrentText(next(label for label, key in PRESET_NAMES.items() if key == name))
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
        line = Timeline.load(path).located(path)
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
        self.player.timeline_changed()

    def _on_workspace_changed(self, name: str) -> None:
        """An explorer edit: its render owns the image view until the timeline is scrubbed or played."""
        if name != "timeline":
            self.player.explorer_changed()

    @property
    def frame_count(self) -> int:
        return self.timeline.frame_count if self.timeline is not None else 0

    def _refresh(self) -> None:
        """Widgets from the timeline (signals blocked, so refreshing edits nothing)."""
        line = self.timeline
        widgets = (self.keyframe_list, self.duration, self.easing, self.tracks, self.fps, self.loop,
                   self.interpolation)
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
        self._show_keyframe_settings()
        for w in widgets:
            w.blockSignals(False)
        has_model, has_keys = self.info is not None, line is not None and bool(line.keyframes)
        for w in (self.add_button, self.preset_button, self.open_button):
            w.setEnabled(has_model)
        for w in (self.replace_button, self.delete_button, self.duration, self.easing, self.tracks,
                  self.save_button):
            w.setEnabled(has_keys)
        self.tracks.setEnabled(has_keys and self.info is not None and self.info.has_w)
        self.export_box.refresh()
        self.sound_box.show_track(line.audio if line is not None else None)
        self.sound_box.setEnabled(has_keys and self.info is not None and self.info.has_w)
        self.player.refresh()

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
        if s.translate_x or s.translate_y:   # StyleGAN3's input transform: a film can pan and spin
            parts.append(f"move {s.translate_x:+.2f}, {s.translate_y:+.2f}")
        if s.rotate_deg:
            parts.append(f"turn {s.rotate_deg:+.0f}°")
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
        if line is not None and 0 <= row < len(line.keyframes) and not self.player.is_playing:
            self.player.seek(line.keyframe_frames()[row])

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

    def _on_sound_changed(self) -> None:
        line = self.timeline
        if line is not None:
            self._edit(lambda: line.replace(audio=self.sound_box.track()), select=self.keyframe_list.currentRow())

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

    # ---- checksum ----
    def _checksum(self, checkpoint: str) -> None:
        """The checkpoint's sha256 for the timeline file, computed on the renderer's thread."""
        def run(renderer, progress, preview):
            from trainer.files import file_sha256
            return file_sha256(checkpoint)

        def done(sha: str) -> None:
            line = self.timeline
            if line is not None and line.checkpoint == checkpoint and not line.checkpoint_sha256:
                self.workspace.timeline = line.replace(checkpoint_sha256=sha)

        self.controller.run_job(SHA_JOB, run, done, lambda message: None, message="checksum of the checkpoint")
