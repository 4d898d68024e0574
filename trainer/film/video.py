"""Video export: MP4 (H.264 through PyAV), GIF and PNG sequences, written while frames render.

`export_timeline` renders a timeline chunk by chunk on the calling thread (the studio's worker, or
the CLI) while an encoder thread resizes and encodes the frames already made, so encoding hides
behind rendering. Everything is written under a temporary name and renamed into place at the end:
a cancel, an error or a full disk leaves no half-written file under the final name.
"""
from __future__ import annotations

import errno
import os
import queue
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

FORMATS = {".mp4": "mp4", ".gif": "gif", "": "png"}   # a path without a suffix is a PNG-sequence folder
RESIZE_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                  "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}
MAX_SIZE = 2048
MIN_AUTO_SIZE = 256       # a film left at its default size is at least this wide (a 32 px film is a smudge)
H264_ENCODERS = ("libx264", "libopenh264")   # PyAV's wheels bundle libx264
QUEUE_CHUNKS = 4          # rendered chunks waiting for the encoder: bounds memory, keeps both busy

Progress = Callable[[float, str], None]   # (fraction 0-1, message); may raise to cancel


class ExportError(RuntimeError):
    """An export that could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class ExportSettings:
    path: str                        # film.mp4, film.gif, or a folder for a PNG sequence
    size: int | None = None          # output side in pixels (square); None = auto_size(the frames' side)
    resize_filter: str = "lanczos"   # one of RESIZE_FILTERS, used when size differs from native
    quality: int = 80                # MP4 only: 1-100 (maps to x264 CRF 40-10); GIF and PNG are lossless-ish
    fps: float | None = None         # None = the timeline's fps (frames are the timeline's frames either way)

    @property
    def kind(self) -> str:
        return export_kind(self.path)


def export_kind(path) -> str:
    """'mp4', 'gif' or 'png' from a path's suffix; ExportError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return "png"
    if suffix not in FORMATS:
        raise ExportError(f"{Path(path).name}: export writes .mp4, .gif, or a PNG sequence (a folder name "
                          "without a suffix, or ending in .png for frame-000000.png ...)")
    return FORMATS[suffix]


def auto_size(native: int) -> int:
    """The default side: the frames' own, enlarged by a whole factor to at least MIN_AUTO_SIZE, so a
    small model's film can be watched and every model pixel stays the same number of film pixels."""
    return native * max(1, -(-MIN_AUTO_SIZE // native))


def scaled_size(native: int, size: int | None) -> int:
    """Checks an output size: None -> auto_size(native); 1 to MAX_SIZE pixels square."""
    if size is None:
        return auto_size(native)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise ExportError(f"output size {size!r}: expected 1 to {MAX_SIZE} pixels")
    return size


def h264_encoder() -> str:
    """The name of an H.264 encoder PyAV can use, or ExportError naming what to install."""
    try:
        import av
    except ImportError:
        raise ExportError("MP4 export needs PyAV (FFmpeg for Python): install it with `pip install av`. "
                          "GIF and PNG export work without it.") from None
    available = set(av.codecs_available)
    for name in H264_ENCODERS:
        if name in available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:   # listed but not an encoder in this build
                continue
    raise ExportError("this PyAV's FFmpeg has no H.264 encoder (libx264 or libopenh264): install the PyPI "
                      "wheel (`pip install --force-reinstall av`), which bundles libx264. GIF and PNG export "
                      "work without it.")


def check_export(settings: ExportSettings, native: int) -> None:
    """Every check that can fail before rendering starts: format, encoder, size, output folder."""
    kind = settings.kind
    size = scaled_size(native, settings.size)
    if settings.resize_filter not in RESIZE_FILTERS:
        raise ExportError(f"resize filter {settings.resize_filter!r}: expected one of {', '.join(RESIZE_FILTERS)}")
    if not 1 <= int(settings.quality) <= 100:
        raise ExportError(f"quality {settings.quality!r}: expected 1 to 100")
    if kind == "mp4":
        h264_encoder()
        if size % 2:
            raise ExportError(f"H.264 needs an even frame size; {size} is odd (choose {size + 1} or {size - 1})")
    parent = Path(settings.path).absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot write {settings.path}: cannot make the folder {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {settings.path}: the folder {parent} is not writable")


# ---- encoders: each writes to a temporary path given to it ----
class _Mp4Writer:
    def __init__(self, tmp: Path, fps: float, size: int, quality: int,
                 sound: tuple[np.ndarray, int] | None = None):   # (mono float32 samples, rate) to mux in
        import av
        self.sound = sound
        self.container = av.open(str(tmp), mode="w", format="mp4")
        self.stream = self.container.add_stream(h264_encoder(), rate=Fraction(fps).limit_denominator(1001))
        self.stream.width = self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        crf = round(40 - (int(quality) - 1) * 30 / 99)      # quality 1 -> CRF 40, 100 -> CRF 10
        # veryfast: half the CPU of x264's default (medium) at the same CRF, so encoding keeps up with
        # rendering on a small machine; the price is a somewhat larger file, not a worse picture
        self.stream.options = {"crf": str(crf), "preset": "veryfast"} if self.stream.codec.name == "libx264" else {}
        if sound is not None:   # every stream exists before the first packet is written
            self.sound_stream = self.container.add_stream("aac", rate=sound[1])
            self.sound_stream.layout = "mono"

    def write(self, frame: np.ndarray) -> None:
        import av
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        if self.sound is not None:
            self._mux_sound(*self.sound)
        self.container.close()

    def _mux_sound(self, samples: np.ndarray, rate: int) -> None:
        """AAC in frames of the encoder's size (the muxer interleaves it with the video by time)."""
        import av
        stream = self.sound_stream
        size = 1024
        for start in range(0, len(samples), size):
            block = np.zeros((1, size), np.float32)
            piece = samples[start:start + size]
            block[0, :len(piece)] = piece
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                self.container.mux(packet)
        for packet in stream.encode():
            self.container.mux(packet)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:   # the file is deleted next; a failing close must not hide the first error
            pass


class _GifWriter:
    """Pillow's GIF writer: one adaptive palette per frame. It keeps the (palettised) frames until
    the end, as Pillow writes GIFs in one call."""

    def __init__(self, tmp: Path, fps: float, size: int, quality: int):
        self.tmp, self.fps, self.frames = tmp, fps, []

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(to_palette(frame))

    def close(self) -> None:
        if not self.frames:
            raise ExportError("no frames to write")
        # GIF delays are whole hundredths of a second: give each frame its share so the total is right
        ends = np.round(np.arange(1, len(self.frames) + 1) * 100 / self.fps).astype(int)
        delays = np.diff(np.concatenate([[0], ends])) * 10
        self.frames[0].save(self.tmp, format="GIF", save_all=True, append_images=self.frames[1:],
                            duration=[max(int(d), 10) for d in delays], loop=0, disposal=1, optimize=False)

    def abort(self) -> None:
        self.frames = []


def to_palette(frame: np.ndarray) -> Image.Image:
    """uint8 [H, W, 3] -> a palette image: exact when the frame has at most 256 colours (grey models
    always do), else Pillow's fast octree quantizer (20x faster than median cut, so it keeps up)."""
    packed = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
    colours, index = np.unique(packed, return_inverse=True)
    if len(colours) > 256:
        return Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    image = Image.fromarray(index.reshape(frame.shape[:2]).astype(np.uint8), mode="P")
    palette = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
    image.putpalette(palette.ravel().tolist())
    return image


class _PngWriter:
    def __init__(self, tmp: Path, fps: float, size: int, quality: int):
        self.folder, self.count = tmp, 0
        self.folder.mkdir()

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame).save(self.folder / f"frame-{self.count:06d}.png", format="PNG", compress_level=3)
        self.count += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


WRITERS = {"mp4": _Mp4Writer, "gif": _GifWriter, "png": _PngWriter}


def _final_path(path: str, kind: str) -> Path:
    """A PNG sequence named 'film.png' goes into the folder 'film'."""
    p = Path(path)
    return p.with_suffix("") if kind == "png" and p.suffix.lower() == ".png" else p


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _resizer(native: int, size: int, resize_filter: str) -> Callable[[np.ndarray], np.ndarray]:
    if size == native:
        return lambda frame: frame
    resample = RESIZE_FILTERS[resize_filter]
    return lambda frame: np.asarray(Image.fromarray(frame).resize((size, size), resample))


@dataclass(frozen=True)
class ExportReport:
    path: str                 # where the film is
    frames: int
    size: int                 # side in pixels
    seconds: float            # wall time of the export
    render_seconds: float     # of which rendering (the rest: waiting for the encoder at the end)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def write_video(chunks: Iterator[np.ndarray],   # uint8 [n, H, W, 3] batches of frames, in order
                total: int,                     # frames the chunks add up to (for progress)
                settings: ExportSettings,
                native: int,                    # the frames' side in pixels
                fps: float,                     # frames per second of the film
                progress: Progress | None = None,
                sound: tuple[np.ndarray, int] | None = None,   # MP4: (mono samples, rate) to mux in
                ) -> ExportReport:
    """Encode frames as they arrive: the caller's thread pulls chunks (rendering them), an encoder
    thread resizes and writes. The file appears under its final name only when complete; on any
    failure or cancel (an exception from `progress`), the temporary is removed and the error raised
    (OSError as ExportError naming the cause, e.g. a full disk)."""
    check_export(settings, native)
    kind = settings.kind
    size = scaled_size(native, settings.size)
    final = _final_path(settings.path, kind)
    tmp = final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.partial{final.suffix}"
    resize = _resizer(native, size, settings.resize_filter)
    waiting: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    failure: list[BaseException] = []
    stop = threading.Event()          # set when the export is abandoned: the encoder stops writing
    written = [0]
    start = time.perf_counter()

    try:
        writer = WRITERS[kind](tmp, fps, size, settings.quality, *([sound] if kind == "mp4" and sound else []))
    except OSError as exc:
        _remove(tmp)
        raise ExportError(f"cannot write {final}: {exc.strerror or exc}") from None

    def encode() -> None:
        finished = False
        try:
            while True:
                chunk = waiting.get()
                if chunk is None:
                    finished = True
                    if not stop.is_set():
                        writer.close()
                    return
                if stop.is_set():
                    continue
                for frame in chunk:
                    writer.write(np.ascontiguousarray(resize(frame)))
                    written[0] += 1
        except BaseException as exc:   # handed to the rendering thread, which raises it
            failure.append(exc)
            while not finished and waiting.get() is not None:   # so the producer never blocks on a dead consumer
                pass

    encoder = threading.Thread(target=encode, name="video-encoder", daemon=True)
    encoder.start()
    rendered = 0
    try:
        for chunk in chunks:
            if failure:
                break
            waiting.put(chunk)
            rendered += len(chunk)
            if progress is not None:
                progress(0.98 * rendered / max(total, 1), f"frame {rendered}/{total} rendered, "
                                                         f"{written[0]} encoded")
        render_seconds = time.perf_counter() - start
        waiting.put(None)
        encoder.join()
        if failure:
            raise failure[0]
        final = _replace(tmp, final)
    except BaseException as exc:
        stop.set()
        if encoder.is_alive():
            waiting.put(None)
            encoder.join()
        writer.abort()
        _remove(tmp)
        if isinstance(exc, OSError):
            reasons = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file grew past the size this system allows"}
            reason = reasons.get(exc.errno, exc.strerror or str(exc))
            raise ExportError(f"could not write {final.name}: {reason}; the partial file was removed") from None
        if type(exc).__module__.startswith("av") and isinstance(exc, Exception):
            raise ExportError(f"could not write {final.name}: {exc}; the partial file was removed") from None
        raise
    if progress is not None:
        progress(1.0, f"wrote {final.name}")
    return ExportReport(str(final), written[0], size, time.perf_counter() - start, render_seconds)


def _replace(tmp: Path, final: Path) -> Path:
    """Move the finished temporary into place and return where it went. A folder of frames never
    replaces anything: when the name is taken (an earlier export, a user's folder, a run directory)
    the frames go to the first free `name-2`, `name-3` ... beside it, and the caller says where."""
    if tmp.is_dir():
        for k in range(1, 10000):
            target = final if k == 1 else final.with_name(f"{final.name}-{k}")
            try:
                os.mkdir(target)   # claims the name atomically; an empty folder is then swapped for the frames
            except FileExistsError:
                continue
            try:
                os.replace(tmp, target)   # onto an empty directory: allowed on POSIX
            except OSError:               # not on Windows: give the claim back and rename into the gap
                os.rmdir(target)
                os.rename(tmp, target)
            return target
        raise ExportError(f"{final}: no free folder name beside it; choose another name")
    os.replace(tmp, final)
    return final


def export_timeline(renderer,                   # trainer.film.timeline.TimelineRenderer (or a list of them: a grid)
                    settings: ExportSettings,
                    progress: Progress | None = None,
                    columns: int = 0,           # grid videos: cells per row (0: square-ish)
                    ) -> ExportReport:
    """Render every frame of a timeline and write it as settings say (see write_video). A list of
    renderers makes a grid video: their frames side by side, cell by cell."""
    from trainer.images import make_grid
    renderers = renderer if isinstance(renderer, (list, tuple)) else [renderer]
    first = renderers[0]
    fps = float(settings.fps or first.timeline.fps)
    columns = columns or int(np.ceil(np.sqrt(len(renderers))))
    rows = -(-len(renderers) // columns)
    native = first.G.img_resolution * max(columns, rows) if len(renderers) > 1 else first.G.img_resolution

    def chunks():
        for c in range(first.chunk_count):
            if len(renderers) == 1:
                yield first.render_chunk(c)
                continue
            cells = [r.render_chunk(c) for r in renderers]
            frames = []
            for i in range(len(cells[0])):
                tiles = np.stack([cell[i] for cell in cells])
                grid = make_grid(tiles, columns)
                square = np.zeros((native, native, 3), np.uint8)   # grids are padded to a square frame
                square[:grid.shape[0], :grid.shape[1]] = grid
                frames.append(square)
            yield np.stack(frames)

    sound = None
    audio = first.timeline.audio
    if audio is not None and settings.kind == "mp4":
        from trainer.film.audio import AUDIO_RATE, load_audio
        try:
            samples = load_audio(audio.path)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        start = int(audio.offset * AUDIO_RATE)
        sound = (samples[start:start + int(round(first.frame_count / fps * AUDIO_RATE))], AUDIO_RATE)
    return write_video(chunks(), first.frame_count, settings, native, fps, progress, sound)


def read_video_info(path) -> dict:
    """{frames, width, height, fps, codec} of a video file, decoded with PyAV (tests, the CLI)."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {"frames": frames, "width": stream.codec_context.width, "height": stream.codec_context.height,
                "fps": float(stream.average_rate or stream.guessed_rate), "codec": stream.codec_context.name}
