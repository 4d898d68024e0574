"""The Timeline panel's transport: a scrub bar that shows the frame under it, Play / Pause at the
timeline's fps, and a label with the frames per second that really reach the screen.

Frames come from ganstudio.engine.timeline_frames (rendered on the renderer's thread in aligned
chunks; only the newest wanted chunk waits). Playback follows the clock: the frame due now is
shown if it is rendered, frames whose time passed while the device was busy are skipped, and the
chunks ahead are asked for one at a time, so playback never builds a backlog.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from trainer.film.timeline import Timeline
from trainer.film.render import CHUNK_FRAMES

from ..engine.timeline_frames import TimelineFrames

FPS_WINDOW_S = 1.0               # the achieved-fps label averages over this much time
PREFETCH_CHUNKS = 3              # while playing, chunks asked for ahead of the one on screen


class TimelinePlayer(QWidget):
    frame_ready = Signal(object)          # uint8 [H, W, 3]: a timeline frame to show in the image view
    failed = Signal(str)                  # rendering frames failed: the message says why
    looped = Signal(int)                  # a looping timeline started over: loops completed since Play

    def __init__(self,
                 timeline: Callable[[], Timeline | None],   # the timeline to play (the workspace's)
                 controller,                                # RenderController: frames render as its jobs
                 parent=None):
        super().__init__(parent)
        self._timeline = timeline
        self.frames = TimelineFrames(controller, self._on_chunk_arrived, self._on_frames_failed)
        self._shown_frame = -1
        self._showing_timeline = False               # the image view shows timeline frames (not the explorer's)
        self._play_start = (0.0, 0)                  # (clock, frame) playback counts from
        self._lap = 0                                # times round the loop since _play_start
        self.loops = 0                               # times round the loop since Play
        self._shown_times: deque[float] = deque()
        self.frames_shown = 0                        # counters for tests and the benchmark
        self.frames_skipped = 0
        # widgets
        self.scrub = QSlider(Qt.Orientation.Horizontal)
        self.scrub.setRange(0, 0)
        self.frame_label = QLabel("no keyframes")
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.fps_label = QLabel("")
        self.play_timer = QTimer(self)
        self.play_timer.setTimerType(Qt.TimerType.PreciseTimer)
        transport = QHBoxLayout()
        transport.addWidget(self.play_button)
        transport.addWidget(self.scrub, 1)
        status_row = QHBoxLayout()
        status_row.addWidget(self.frame_label, 1)
        status_row.addWidget(self.fps_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(transport)
        layout.addLayout(status_row)
        # wiring
        self.scrub.valueChanged.connect(self._on_scrub_changed)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.play_timer.timeout.connect(self._on_play_tick)
        self.refresh()

    @property
    def timeline(self) -> Timeline | None:
        return self._timeline()

    @property
    def shown_frame(self) -> int:
        """The timeline frame on screen (-1: none yet)."""
        return self._shown_frame

    @property
    def frame_count(self) -> int:
        line = self.timeline
        return line.frame_count if line is not None else 0

    # ---- called by the panel ----
    def refresh(self) -> None:
        """The scrub range and buttons from the timeline."""
        self.scrub.blockSignals(True)
        self.scrub.setRange(0, max(self.frame_count - 1, 0))
        self.scrub.blockSignals(False)
        for w in (self.play_button, self.scrub):
            w.setEnabled(self.frame_count > 0)
        if not self.frame_count:
            self.pause()
        self._update_frame_label()

    def timeline_changed(self) -> None:
        """The timeline was edited: the frame on screen is re-rendered for it."""
        self.refresh()
        if self._showing_timeline:
            self._show_frame(min(max(self.scrub.value(), 0), max(self.frame_count - 1, 0)))

    def explorer_changed(self) -> None:
        """An explorer edit: its render owns the image view until the timeline is scrubbed or played."""
        self._showing_timeline = False
        self.frames.stop()
        self.pause()

    def seek(self, frame: int) -> None:
        """Show `frame` (a selected keyframe's)."""
        self._showing_timeline = True
        if self.scrub.value() == frame:
            self._show_frame(frame)
        self.scrub.setValue(frame)

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
            self._play_start, self._lap = (time.perf_counter(), frame), 0
        self._show_frame(frame)

    def _show_frame(self, frame: int) -> bool:
        """Show `frame` now if it is rendered, else ask for its chunk (newest wins). True if shown."""
        line = self.timeline
        if line is None or not 0 <= frame < line.frame_count or not self._showing_timeline:
            return False
        image = self.frames.frame(line, frame)
        if image is None:
            self.frames.want(line, frame // CHUNK_FRAMES)
            return False
        self._shown_frame = frame
        self.frames_shown += 1
        now = time.perf_counter()
        self._shown_times.append(now)
        while self._shown_times and now - self._shown_times[0] > FPS_WINDOW_S:
            self._shown_times.popleft()
        self.frame_ready.emit(image)
        return True

    def _on_chunk_arrived(self, line: Timeline, chunk: int) -> None:
        if line is not self.timeline:
            return
        if self.is_playing:
            self._on_play_tick()
        elif self.scrub.value() // CHUNK_FRAMES == chunk:
            self._show_frame(self.scrub.value())

    def _on_frames_failed(self, message: str) -> None:
        self.pause()            # Cancel in the status bar stops playback too
        if message:
            self.failed.emit(message)

    def _prefetch(self) -> None:
        """While playing, ask for the next chunk not yet rendered, so frames are ready when their time comes."""
        line = self.timeline
        if line is None or not line.frame_count or self._shown_frame < 0:
            return
        chunks = -(-line.frame_count // CHUNK_FRAMES)
        for step in range(1, PREFETCH_CHUNKS + 1):
            chunk = self._shown_frame // CHUNK_FRAMES + step
            if chunk >= chunks:
                if not line.loop:
                    return
                chunk %= chunks
            if not self.frames.has_chunk(line, chunk):
                self.frames.want(line, chunk)
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
        if on and self.frame_count:
            start = self.scrub.value()
            if not self.timeline.loop and start >= self.frame_count - 1:
                start = 0
            self._play_start, self._lap, self.loops = (time.perf_counter(), start), 0, 0
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
            lap, due = divmod(due, line.frame_count)
            if lap > self._lap:
                self.loops += lap - self._lap
                self._lap = lap
                self.looped.emit(self.loops)
        if due != self._shown_frame:
            previous = self._shown_frame
            if self._show_frame(due):
                if previous >= 0:
                    self.frames_skipped += max(0, (due - previous) % line.frame_count - 1)
                self.scrub.blockSignals(True)
                self.scrub.setValue(due)
                self.scrub.blockSignals(False)
                self._update_frame_label()
        self._prefetch()
        achieved = self.achieved_fps
        self.fps_label.setText(f"{achieved:.1f} of {line.fps:g} fps" + (" (skipping frames)" if achieved
                                                                        < 0.9 * line.fps else ""))
