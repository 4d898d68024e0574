"""The Timeline panel's sound box: a sound file whose loudness or onsets drive ψ or a direction, with
a gain and a smoothing; an MP4 export carries the sound. The analysis runs with the frames, on the
renderer's thread (trainer.film.audio), so choosing a file here reads nothing but its name."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout)

from trainer.film.audio import FEATURES, AudioMapping, AudioTrack

SOUND_FILES = "Sound (*.wav *.mp3 *.flac *.ogg *.m4a *.aac);;All files (*)"


class SoundBox(QGroupBox):
    changed = Signal()           # the file or the mapping changed: the panel asks `track()` for the new sound

    def __init__(self,
                 directions: Callable[[], dict],   # the workspace's directions: a "direction" target uses the first
                 parent=None):
        super().__init__("Sound", parent)
        self.directions = directions
        self.path = ""
        # widgets
        self.choose_button = QPushButton("Sound…")
        self.remove_button = QPushButton("Remove")
        self.file_label = QLabel("no sound")
        self.feature = QComboBox()
        self.feature.addItems(FEATURES)
        self.target = QComboBox()
        self.target.addItem("ψ (psi)", "psi")
        self.target.addItem("first direction", "direction")
        self.gain = QDoubleSpinBox()
        self.gain.setRange(-5.0, 5.0)
        self.gain.setSingleStep(0.1)
        self.gain.setValue(0.5)
        self.gain.setToolTip("ψ is scaled by 1 + gain × the curve (0-1); a direction is pushed gain × curve steps")
        self.smoothing = QDoubleSpinBox()
        self.smoothing.setRange(0.0, 5.0)
        self.smoothing.setSingleStep(0.05)
        self.smoothing.setValue(0.1)
        self.smoothing.setSuffix(" s")
        self.smoothing.setToolTip("How slowly the curve follows the sound (a one-pole filter's time constant)")
        file_row = QHBoxLayout()
        file_row.addWidget(self.choose_button)
        file_row.addWidget(self.file_label, 1)
        file_row.addWidget(self.remove_button)
        mapping_row = QHBoxLayout()
        for w in (self.feature, QLabel("drives"), self.target, QLabel("gain"), self.gain, self.smoothing):
            mapping_row.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(file_row)
        layout.addLayout(mapping_row)
        # wiring
        self.choose_button.clicked.connect(self._on_choose_dialog)
        self.remove_button.clicked.connect(self._on_remove)
        for w in (self.feature, self.target):
            w.currentIndexChanged.connect(self._on_mapping_changed)
        for w in (self.gain, self.smoothing):
            w.valueChanged.connect(self._on_mapping_changed)

    def show_track(self, track: AudioTrack | None) -> None:
        """Widgets from the timeline's sound (signals blocked: showing edits nothing)."""
        widgets = (self.feature, self.target, self.gain, self.smoothing)
        for w in widgets:
            w.blockSignals(True)
        self.path = track.path if track is not None else ""
        self.file_label.setText(Path(self.path).name if self.path else "no sound")
        if track is not None and track.mappings:
            m = track.mappings[0]
            self.feature.setCurrentText(m.feature)
            self.target.setCurrentIndex(self.target.findData(m.target))
            self.gain.setValue(m.gain)
            self.smoothing.setValue(m.smoothing)
        for w in widgets:
            w.blockSignals(False)
        self.remove_button.setEnabled(bool(self.path))

    def set_sound(self, path) -> None:
        """Use this sound file with the mapping the widgets show."""
        self.path = str(Path(path).absolute())
        self._on_mapping_changed()

    def track(self) -> AudioTrack | None:
        """The widgets as an AudioTrack (None: no sound); ValueError (a direction target without directions)."""
        if not self.path:
            return None
        target = self.target.currentData()
        direction = None
        if target == "direction":
            directions = self.directions()
            if not directions:
                raise ValueError("a sound driving a direction needs directions: compute them in the Directions panel")
            direction = directions[sorted(directions)[0]]
        mapping = AudioMapping(self.feature.currentText(), target, float(self.gain.value()),
                               float(self.smoothing.value()), direction)
        return AudioTrack(self.path, (mapping,))

    def _on_choose_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Sound for the timeline", "", SOUND_FILES)
        if path:
            self.set_sound(path)

    def _on_remove(self) -> None:
        self.path = ""
        self.changed.emit()

    def _on_mapping_changed(self, *_args) -> None:
        if self.path:
            self.changed.emit()
