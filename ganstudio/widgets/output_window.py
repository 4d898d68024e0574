"""The performance output: a second window with only the image (no chrome, black around it,
aspect kept), full screen on a chosen screen, with its own frame-rate cap and a frame counter
overlay; and frames to a named pipe for other video software (engine.frame_pipe). It shows the
frames the main view shows (renders, timeline playback, the translate strip), the newest one
at most `cap_fps` times a second; the control window keeps working. Render > Output window."""
from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QImage, QPainter
from PySide6.QtWidgets import QFileDialog, QWidget

from ..engine.frame_pipe import FramePipe
from ..engine.frame_rate import FrameRate

CAPS = (24, 30, 60, 0)            # frames a second offered in the menu; 0: no cap
DEFAULT_CAP = 60
DEFAULT_PIPE = "/tmp/ganstudio-frames.rgb"


class ImageCanvas(QWidget):
    """One uint8 RGB image scaled to fit, aspect kept, centred on `background` (nearest neighbour,
    as the main view, or smooth)."""

    def __init__(self, parent=None, flags=Qt.WindowType.Widget, background=QColor(0, 0, 0)):
        super().__init__(parent, flags)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.background = background
        self.image: np.ndarray | None = None
        self._qimage: QImage | None = None
        self.smooth = False

    def set_image(self, image: np.ndarray) -> None:
        """uint8 [H, W, 3] -> shown at the next paint."""
        self.image = np.ascontiguousarray(image)
        h, w = self.image.shape[:2]
        self._qimage = QImage(self.image.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.update()

    def clear(self) -> None:
        self.image = self._qimage = None
        self.update()

    def image_rect(self) -> QRect:
        """Where the image is drawn: as large as fits, aspect kept, centred (empty without one)."""
        if self.image is None:
            return QRect()
        h, w = self.image.shape[:2]
        scale = min(self.width() / w, self.height() / h)
        draw_w, draw_h = max(1, round(w * scale)), max(1, round(h * scale))
        return QRect((self.width() - draw_w) // 2, (self.height() - draw_h) // 2, draw_w, draw_h)

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.background)
        if self._qimage is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            painter.drawImage(self.image_rect(), self._qimage)
        self.paint_over(painter)
        painter.end()

    def paint_over(self, painter: QPainter) -> None:
        pass


class OutputWindow(ImageCanvas):
    """Only the image, black around; a frame counter over it when asked."""
    closed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent, Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint)
        self.setWindowTitle("GAN Studio — output")
        self.setObjectName("performance-output")
        self.setCursor(Qt.CursorShape.BlankCursor)
        self.show_counter = False
        self.frames_shown = 0
        self.frame_rate = FrameRate()
        self.extra = ""               # appended to the overlay (the pipe's counts)

    def open_on(self, screen) -> None:
        """Full screen on `screen` (a QScreen)."""
        self.setScreen(screen)
        self.setGeometry(screen.geometry())   # without a window manager (bare X) full screen is this
        self.showFullScreen()
        self.raise_()
        self.activateWindow()

    def show_frame(self, image: np.ndarray) -> None:
        """uint8 [H, W, 3] -> shown at the next paint, counted."""
        self.set_image(image)
        self.frames_shown += 1
        self.frame_rate.frame_shown()

    def paint_over(self, painter: QPainter) -> None:
        if self.show_counter:
            fps = self.frame_rate.streaming_fps()
            text = f"frame {self.frames_shown}" + (f" · {fps:.1f} fps" if fps else "") + self.extra
            box = painter.fontMetrics().boundingRect(text).adjusted(-6, -4, 6, 4)
            box.moveTopLeft(QPoint(12, 12))
            painter.fillRect(box, QColor(0, 0, 0, 160))
            painter.setPen(Qt.GlobalColor.white)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        super().closeEvent(event)
        self.closed.emit()


class PerformanceOutput(QObject):
    """The Render > Output window menu and the pacing of frames to the window and the pipe."""

    def __init__(self, window, menu):
        super().__init__(window)
        self.main = window
        self.output: OutputWindow | None = None
        self.pipe: FramePipe | None = None
        self.cap_fps = DEFAULT_CAP
        self.frames_sent = 0
        self._pending: np.ndarray | None = None
        self._last_sent = -math.inf
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._send)
        self._build_menu(menu)
        # the frames the main view shows
        window.controller.events.image.connect(lambda result: self.offer(result.image))
        window.timeline_panel.frame_ready.connect(self.offer)
        window.translate_panel.strip_ready.connect(self.offer)
        window.installEventFilter(self)   # the main window closing ends the output and the pipe

    def _build_menu(self, menu) -> None:
        self.menu = menu.addMenu("&Output window")
        self.screens_menu = self.menu.addMenu("&Full screen on")
        self.screens_menu.aboutToShow.connect(self._fill_screens_menu)
        self.close_action = self.menu.addAction("&Close output window (Esc)", self.close_window)
        self.close_action.setEnabled(False)
        self.counter_action = QAction("Frame &counter", self, checkable=True)
        self.counter_action.toggled.connect(self._on_counter_toggled)
        self.smooth_action = QAction("&Smooth scaling", self, checkable=True)
        self.smooth_action.toggled.connect(self._on_smooth_toggled)
        self.menu.addActions([self.counter_action, self.smooth_action])
        caps = self.menu.addMenu("Frame-rate &cap")
        group = QActionGroup(self)
        for cap in CAPS:
            action = QAction(f"{cap} fps" if cap else "no cap", self, checkable=True, checked=cap == self.cap_fps)
            action.triggered.connect(lambda _=False, c=cap: self.set_cap(c))
            group.addAction(action)
            caps.addAction(action)
        self.menu.addSeparator()
        self.pipe_action = QAction("Write frames to a named &pipe…", self, checkable=True)
        self.pipe_action.triggered.connect(self._on_pipe_triggered)
        self.menu.addAction(self.pipe_action)

    # ---- what the menu does ----
    def open_window(self, screen=None) -> OutputWindow:
        """Full screen on `screen` (a QScreen; None: the screen the main window is not on, when
        there are two, else the main window's); shows the frame on screen now."""
        from PySide6.QtGui import QGuiApplication
        if screen is None:
            screens, own = QGuiApplication.screens(), self.main.screen()
            screen = next((s for s in screens if s is not own), own)
        if self.output is None:
            self.output = OutputWindow(self.main)
            self.output.closed.connect(self._on_output_closed)
            self.output.smooth, self.output.show_counter = self.smooth_action.isChecked(), self.counter_action.isChecked()
        self.output.open_on(screen)
        self.close_action.setEnabled(True)
        if self.main.image_view.image is not None:
            self.offer(self.main.image_view.image)
        return self.output

    def close_window(self) -> None:
        if self.output is not None:
            self.output.close()

    def start_pipe(self, path) -> FramePipe:
        """Write the frames to the named pipe at `path` (made when absent). OSError, ValueError."""
        self.stop_pipe()
        self.pipe = FramePipe(path)
        self.pipe_action.setChecked(True)
        self.main.show_message(f"frames go to {path} for a reader (a header line, then raw RGB frames)", 8000)
        if self.main.image_view.image is not None:
            self.offer(self.main.image_view.image)
        return self.pipe

    def stop_pipe(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None
        self.pipe_action.setChecked(False)

    def set_cap(self, fps: int) -> None:
        self.cap_fps = fps

    # ---- pacing ----
    def offer(self, image: np.ndarray) -> None:
        """A frame the main view shows; sent now, or when the cap allows (only the newest waits)."""
        if image is None or (self.output is None or not self.output.isVisible()) and self.pipe is None:
            return
        self._pending = image
        wait_s = self._last_sent + (1 / self.cap_fps if self.cap_fps else 0) - time.perf_counter()
        if wait_s <= 0:
            self._send()
        elif not self._timer.isActive():
            self._timer.start(math.ceil(wait_s * 1000))

    def _send(self) -> None:
        image, self._pending = self._pending, None
        if image is None:
            return
        self._last_sent = time.perf_counter()
        self.frames_sent += 1
        if self.pipe is not None:
            self.pipe.write(image)
        if self.output is not None and self.output.isVisible():
            if self.pipe is not None:
                self.output.extra = f" · pipe {self.pipe.written} written, {self.pipe.dropped} dropped"
            self.output.show_frame(image)

    # ---- slots ----
    def _fill_screens_menu(self) -> None:
        from PySide6.QtGui import QGuiApplication
        self.screens_menu.clear()
        for screen in QGuiApplication.screens():
            size = screen.geometry()
            action = self.screens_menu.addAction(f"{screen.name() or 'screen'} ({size.width()}×{size.height()})")
            action.triggered.connect(lambda _=False, s=screen: self.open_window(s))

    def _on_output_closed(self) -> None:
        self.close_action.setEnabled(False)

    def _on_counter_toggled(self, on: bool) -> None:
        if self.output is not None:
            self.output.show_counter = on
            self.output.update()

    def _on_smooth_toggled(self, on: bool) -> None:
        if self.output is not None:
            self.output.smooth = on
            self.output.update()

    def _on_pipe_triggered(self, checked: bool) -> None:
        if not checked:
            self.stop_pipe()
            return
        self.pipe_action.setChecked(False)   # until a pipe is open
        path, _ = QFileDialog.getSaveFileName(self.main, "Named pipe for frames", DEFAULT_PIPE,
                                              "Named pipe (*.rgb);;All files (*)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            try:
                self.start_pipe(path)
            except (OSError, ValueError) as exc:
                self.main._show_error("Cannot write frames to a pipe", str(exc))

    def eventFilter(self, watched, event) -> bool:
        if watched is self.main and event.type() == QEvent.Type.Close:
            self.stop_pipe()
            self.close_window()
        return False
