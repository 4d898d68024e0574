"""Frames to a named pipe (Qt-free): what video software on Linux reads (ffmpeg, OBS through
v4l2loopback, TouchDesigner, a script).

The stream a reader gets: one header line, then raw frames, each `height * width * 3` bytes of
RGB (8 bits a channel, rows top to bottom):

    ganstudio-rgb24 WIDTH HEIGHT\\n
    <frame><frame>...

A reader that connects later gets its own header first. A stream keeps the size of its first
frame: a frame of another size (another model, the translate strip) is scaled into it (nearest
neighbour, aspect kept, black bars), so the reader never has to start again.

Writing never blocks the caller: `write()` hands the newest frame to a writer thread, which
opens the pipe without blocking (no reader yet: the frame is dropped) and writes with a time
limit, so a slow reader only makes frames drop. Every frame offered is either written or
counted in `dropped`."""
from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import threading
import time
from pathlib import Path

import numpy as np

HEADER = "ganstudio-rgb24 {width} {height}\n"
WAIT_S = 0.1                 # the writer thread looks at its stop flag this often while a reader is slow
F_SETPIPE_SZ = 1031          # Linux fcntl: the pipe's buffer size (a whole frame fits, so a reader that
PIPE_BYTES = 1 << 20         # keeps up never sees the writer wait)


def header(width: int, height: int) -> bytes:
    return HEADER.format(width=width, height=height).encode("ascii")


class FramePipe:
    def __init__(self, path):   # a named pipe's path: made with os.mkfifo when absent
        self.path = Path(path)
        if not self.path.exists():
            os.mkfifo(self.path, 0o600)
            self.made = True
        elif not stat.S_ISFIFO(self.path.stat().st_mode):
            raise ValueError(f"{self.path} exists and is not a named pipe")
        else:
            self.made = False
        self.offered = self.written = self.dropped = 0
        self._pending: np.ndarray | None = None
        self._fd: int | None = None
        self._shape: tuple[int, ...] | None = None   # of the stream the reader has now
        self._busy = False
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="frame-pipe", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._fd is not None

    def write(self, image: np.ndarray) -> None:
        """Offer uint8 [H, W, 3]; returns at once (a frame still waiting is replaced, and dropped)."""
        frame = np.ascontiguousarray(image, dtype=np.uint8)
        with self._changed:
            self.offered += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = frame
            self._changed.notify()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every frame offered is written or dropped (tests); False on timeout."""
        end = time.monotonic() + timeout_s
        with self._changed:
            while self._pending is not None or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify()
        self._thread.join()
        self._disconnect()
        if self.made:
            self.path.unlink(missing_ok=True)

    # ---- the writer thread ----
    def _run(self) -> None:
        while True:
            with self._changed:
                while self._pending is None and not self._stop:
                    self._changed.wait()
                if self._stop:
                    return
                frame, self._pending, self._busy = self._pending, None, True
            written = self._send(frame)
            with self._changed:
                self.written += written
                self.dropped += not written
                self._busy = False
                self._changed.notify_all()

    def _send(self, frame: np.ndarray) -> bool:
        if self._fd is None and not self._connect(frame.shape):
            return False
        if frame.shape != self._shape:
            frame = fit_into(frame, self._shape[0], self._shape[1])
        try:
            return self._write_all(memoryview(frame).cast("B"))
        except OSError:   # the reader went away (EPIPE): the next frame waits for a new one
            self._disconnect()
            return False

    def _connect(self, shape) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT):   # no reader (or the pipe was removed)
                return False
            raise
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass   # above the system's pipe-max-size: the default buffer only makes waits likelier
        self._fd, self._shape = fd, shape
        try:
            if self._write_all(memoryview(header(shape[1], shape[0]))):
                return True
        except OSError:
            pass
        self._disconnect()
        return False

    def _write_all(self, data: memoryview) -> bool:
        """Write all of `data` without ever blocking longer than WAIT_S; False when stopped."""
        while data:
            try:
                data = data[os.write(self._fd, data):]
            except BlockingIOError:
                while not select.select([], [self._fd], [], WAIT_S)[1]:
                    if self._stop:
                        return False
        return True

    def _disconnect(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._shape = None


def fit_into(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [height, width, 3]: scaled to fit (nearest neighbour, aspect kept),
    centred on black."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    fit_h, fit_w = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum((np.arange(fit_h) + 0.5) * h / fit_h, h - 1).astype(np.intp)
    cols = np.minimum((np.arange(fit_w) + 0.5) * w / fit_w, w - 1).astype(np.intp)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    out[top:top + fit_h, left:left + fit_w] = image[rows[:, None], cols[None, :], :3]
    return out
