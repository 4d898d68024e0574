"""Frames to a named pipe: a reader gets the header line and the frames byte for byte; with no
reader, or one that stops reading, frames are dropped and counted and the writer never blocks."""
import os
import time

import numpy as np
import pytest

from ganstudio.engine.frame_pipe import FramePipe, header


def frames(count, height=24, width=40):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def open_reader(path) -> int:
    """A reader end, open before any frame is written (non-blocking open, then blocking reads)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return fd


def read_exactly(fd, count) -> bytes:
    data = b""
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        assert chunk, f"end of file after {len(data)} of {count} bytes"
        data += chunk
    return data


def test_a_reader_gets_the_header_then_every_frame(tmp_path):
    pipe = FramePipe(tmp_path / "frames.rgb")
    assert (tmp_path / "frames.rgb").is_fifo()
    fd = open_reader(pipe.path)
    sent = frames(3)
    try:
        for frame in sent:   # one at a time: the pipe keeps the newest frame only
            pipe.write(frame)
            assert pipe.flush()
        # read after writing: a pipe's reader sees end of file until a writer has it open
        got = [read_exactly(fd, len(header(40, 24)))] + [read_exactly(fd, 24 * 40 * 3) for _ in sent]
        assert got[0] == b"ganstudio-rgb24 40 24\n"
        for frame, data in zip(sent, got[1:]):
            assert np.array_equal(np.frombuffer(data, np.uint8).reshape(24, 40, 3), frame)
        assert (pipe.written, pipe.dropped, pipe.offered) == (3, 0, 3)
    finally:
        pipe.close()
        os.close(fd)
    assert not (tmp_path / "frames.rgb").exists()   # the pipe it made is removed


def test_without_a_reader_frames_are_dropped_and_counted_without_blocking(tmp_path):
    pipe = FramePipe(tmp_path / "frames.rgb")
    try:
        start = time.perf_counter()
        for frame in frames(50):
            pipe.write(frame)
        offered_in = time.perf_counter() - start
        assert pipe.flush()
        assert offered_in < 0.5, offered_in
        assert (pipe.written, pipe.dropped, pipe.offered) == (0, 50, 50)
        assert not pipe.connected
    finally:
        pipe.close()


def test_a_reader_that_stops_reading_never_blocks_the_writer(tmp_path):
    pipe = FramePipe(tmp_path / "frames.rgb")
    fd = open_reader(pipe.path)   # connected, but never reads: the pipe's buffer fills
    try:
        start = time.perf_counter()
        big = frames(1, 512, 512)[0]   # 768 KiB a frame: a couple fill the buffer
        for _ in range(40):
            pipe.write(big)
        assert time.perf_counter() - start < 0.5
        time.sleep(0.3)
        with pipe._changed:
            assert pipe.written + pipe.dropped + (pipe._pending is not None) + pipe._busy == pipe.offered == 40
        assert pipe.dropped > 30
    finally:
        start = time.perf_counter()
        pipe.close()   # even with a write waiting on the stalled reader
        assert time.perf_counter() - start < 2
        os.close(fd)


def test_a_frame_of_another_size_is_fitted_into_the_stream_and_a_reader_that_left_is_survived(tmp_path):
    pipe = FramePipe(tmp_path / "frames.rgb")
    fd = open_reader(pipe.path)
    try:
        square, wide = frames(1, 8, 8)[0], frames(1, 4, 16)[0]
        pipe.write(square)
        assert pipe.flush()
        assert read_exactly(fd, len(header(8, 8)) + square.nbytes)[-square.nbytes:] == square.tobytes()
        pipe.write(wide)   # the stream stays 8x8: the wide frame is halved into rows 3 and 4
        assert pipe.flush()
        fitted = np.frombuffer(read_exactly(fd, square.nbytes), np.uint8).reshape(8, 8, 3)
        assert np.array_equal(fitted[3:5], wide[1::2, 1::2]) and not fitted[:3].any() and not fitted[5:].any()
        os.close(fd)
        fd = None
        for _ in range(3):   # the reader left: broken pipe, counted, never raised
            pipe.write(square)
            assert pipe.flush()
        assert (pipe.written, pipe.dropped) == (2, 3)
        fd = open_reader(pipe.path)   # a new reader gets a header of its own
        pipe.write(wide)
        assert pipe.flush()
        assert read_exactly(fd, len(header(16, 4))) == b"ganstudio-rgb24 16 4\n"
    finally:
        pipe.close()
        if fd is not None:
            os.close(fd)


def test_a_path_that_is_a_plain_file_is_refused(tmp_path):
    (tmp_path / "file.rgb").write_bytes(b"")
    with pytest.raises(ValueError, match="not a named pipe"):
        FramePipe(tmp_path / "file.rgb")
