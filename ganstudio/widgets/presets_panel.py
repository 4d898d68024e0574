"""Presets (a dock): the list of named snapshots of the live settings, Save current as…, Rename…,
Delete and the crossfade time. A click or the keys 1-9 switch; OSC and MIDI switch through the same
engine.presets.PresetPlayer, which decides everything. This panel only ticks its clock (a timer that
runs while a crossfade does) and puts the crossfade's frames on screen."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QDockWidget, QDoubleSpinBox, QGridLayout, QHBoxLayout, QInputDialog, QLabel, QListView,
                               QListWidget, QPushButton, QVBoxLayout, QWidget)

from ..engine.presets import DEFAULT_FADE_S, FADE_FPS, MAX_FADE_S, PresetError, PresetPlayer

TICK_MS = 10          # how often a crossfade looks at the clock (its frames come at 30 fps)
KEYED = 9             # the keys 1-9 pick the first nine presets
STRIP_HEIGHT = 120    # px: the dock under the image


class PresetsPanel(QWidget):
    frame_ready = Signal(object)      # uint8 [H, W, 3]: a crossfade frame to show in the image view

    def __init__(self, workspace, controller, parent=None):
        super().__init__(parent)
        self.player = PresetPlayer(workspace, controller, self._on_fade_frame)
        # widgets
        self.list = QListWidget()
        self.list.setToolTip("Click a preset to switch to it (keys 1-9 pick the first nine)")
        self.save_button = QPushButton("Save current as…")
        self.rename_button = QPushButton("Rename…")
        self.delete_button = QPushButton("Delete")
        self.fade = QDoubleSpinBox()
        self.fade.setRange(0.0, MAX_FADE_S)
        self.fade.setDecimals(1)
        self.fade.setSingleStep(0.5)
        self.fade.setSuffix(" s")
        self.fade.setValue(DEFAULT_FADE_S)
        self.fade.setToolTip("How long a switch takes: the image travels through latent space to the preset "
                             "(0 = at once)")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        # a strip under the image: presets side by side, the buttons and the crossfade time beside them
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(True)
        self.list.setSpacing(4)
        self.list.setMinimumHeight(48)
        side = QGridLayout()
        side.addWidget(self.save_button, 0, 0, 1, 2)
        side.addWidget(self.rename_button, 1, 0)
        side.addWidget(self.delete_button, 1, 1)
        side.addWidget(QLabel("Crossfade"), 2, 0)
        side.addWidget(self.fade, 2, 1)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(left, 1)
        layout.addLayout(side)
        self.setMaximumHeight(STRIP_HEIGHT)   # a strip: the image keeps the window's height
        # wiring
        self.list.itemClicked.connect(lambda item: self.select(self.list.row(item) + 1))
        self.save_button.clicked.connect(self._on_save_clicked)
        self.rename_button.clicked.connect(self._on_rename_clicked)
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.fade.valueChanged.connect(self._on_fade_changed)
        self.timer.timeout.connect(self._on_tick)
        workspace.events.presets.connect(lambda _: self.refresh())
        self.refresh()

    def select(self, key) -> None:
        """Switch to a preset by name or number from 1, crossfading over the panel's time."""
        try:
            self.player.select(key)
        except PresetError as exc:
            self.status.setText(str(exc))
        self.refresh()

    def add_shortcuts(self, window) -> None:
        """The keys 1-9 switch to the first nine presets anywhere in `window` (not while typing in a box)."""
        for n in range(1, KEYED + 1):
            shortcut = QShortcut(QKeySequence(str(n)), window)
            shortcut.activated.connect(lambda n=n: self.select(n) if n <= len(self.player.presets) else None)

    # ---- slots ----
    def _on_fade_frame(self, image) -> None:
        self.frame_ready.emit(image)
        if not self.timer.isActive():
            self.timer.start()
        self._show_status()

    def _on_tick(self) -> None:
        if not self.player.tick():
            self.timer.stop()
            self.refresh()
        else:
            self._show_status()

    def _on_fade_changed(self, seconds: float) -> None:
        self.player.fade_seconds = seconds

    def _on_save_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Name:", text=f"preset {len(self.player.presets) + 1}")
        if ok:
            try:
                self.player.save(name)
            except PresetError as exc:
                self.status.setText(str(exc))
            self.refresh()

    def _on_rename_clicked(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        old = self.player.presets[row].name
        name, ok = QInputDialog.getText(self, "Rename preset", "Name:", text=old)
        if ok:
            try:
                self.player.rename(old, name)
            except PresetError as exc:
                self.status.setText(str(exc))
            self.refresh()

    def _on_delete_clicked(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.player.delete(self.player.presets[row].name)

    # ---- showing ----
    def refresh(self) -> None:
        """The list, the crossfade time and the status line from the player."""
        names = self.player.names
        self.list.clear()
        for n, name in enumerate(names, start=1):
            self.list.addItem(f"{n}  {name}" if n <= KEYED else f"    {name}")
        if self.player.current in names:
            self.list.setCurrentRow(names.index(self.player.current))
        for w in (self.rename_button, self.delete_button):
            w.setEnabled(bool(names))
        self.fade.blockSignals(True)
        self.fade.setValue(self.player.fade_seconds)   # OSC's /ganstudio/preset_fade changes it too
        self.fade.blockSignals(False)
        self._show_status()

    def _show_status(self) -> None:
        p = self.player
        if p.error:
            text = f"crossfade failed: {p.error}"
        elif p.fading:
            fade = p.fade
            done = f" ({max(p.shown_frame, 0) / FADE_FPS:.1f} of {fade.last_frame / FADE_FPS:.1f} s)" if fade else ""
            text = f"→ {p.current}{done}"
        elif not p.presets:
            text = "No presets yet: set the image up, then Save current as…"
        else:
            text = f"on {p.current}" if p.current else ""
        if text != self.status.text():
            self.status.setText(text)


class PresetsDock(QDockWidget):
    """The Presets panel as a dock under the window (Render > Presets), with the keys 1-9 on the window; a crossfade's
    frames go where the explorer's go (the image view, the output window) and pause a playing timeline."""

    def __init__(self, window):
        super().__init__("Presets", window)
        self.setObjectName("presets-dock")
        self.panel = PresetsPanel(window.workspace, window.controller)
        self.player = self.panel.player
        self.setWidget(self.panel)
        self.panel.add_shortcuts(window)
        timeline = window.timeline_panel.player
        self.panel.frame_ready.connect(window.image_view.set_image)
        self.panel.frame_ready.connect(window.performance_output.offer)
        self.panel.frame_ready.connect(lambda _: timeline.explorer_changed() if timeline.is_playing else None)
        self.hide()   # shown from Render > Presets: the image keeps its room for those who never use presets
