"""The dataset tool: a folder, a zip of images or a video's frames -> a training zip of square PNGs.

Each picture is decoded, turned upright (EXIF orientation), converted to RGB or grey (CMYK, palettes,
alpha flattened onto white, 16-bit scaled to 8), checked (too small, the same pixels as one already
in, or a near duplicate by perceptual hash), framed to the resolution and written into the zip as
`<class>/img00000000.png` (or `img00000000.png` without classes) with a `dataset.json` in NVlabs'
format: {"labels": [[name, class index], ...] or null, "class_names": [...]}. The loader here reads
the class from the folder, NVlabs' from dataset.json. The zip is written under a temporary name and
renamed at the end, so a failure or Ctrl-C leaves no half-written file.

Near duplicates (the same picture re-saved, re-compressed or resized): a 64-bit DCT hash (pHash: the
8x8 lowest frequencies of the 32x32 grey thumbnail, each bit one coefficient above the median) finds
the kept pictures within `near_distance` bits, and the thumbnails decide: a mean difference of at most
NEAR_GREY_LEVELS of 255. Measured: photos re-saved as JPEG at quality 25 and resized by 0.5-0.85 are
0-4 bits and at most 1.3 grey levels from their originals; different Fashion-MNIST items within 6 bits
of each other (11% of 2,000) are at least 6.8 grey levels apart, so the hash alone would drop them.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.files import atomic_write

CROPS = {   # --crop: the aspect (width / height) of the picture inside the square, and its size there
    "center": "centre-crop to a square",
    "wide": "centre-crop to 2:1, padded above and below to a square (NVlabs' center-crop-wide)",
    "tall": "centre-crop to 1:2, padded left and right to a square",
    "squash": "resize the whole picture to a square (the aspect is not kept)",
}
ASPECTS = {"center": 1.0, "wide": 2.0, "tall": 0.5}
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"}
SKIP_REASONS = ("unreadable", "too small", "exact duplicate", "near duplicate", "outside a class folder")
CONVERSIONS = ("EXIF orientation", "CMYK", "palette", "alpha", "16-bit", "grey to RGB", "colour to grey")
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
PAD_COLOUR = 0                    # the bands around a wide or tall picture are black, as NVlabs' are
EXAMPLES = 3                      # skipped files named per reason in the text report
NEAR_GREY_LEVELS = 3.0            # mean difference of 32x32 grey thumbnails (of 255) under which pictures are one


class DatasetToolError(ValueError):
    """The source cannot make a dataset (missing, empty, or nothing in it usable)."""


@dataclass(frozen=True)
class DatasetSettings:
    resolution: int = 256      # pixels, rounded to the nearest power of two (nearest_power_of_two)
    crop: str = "center"       # a key of CROPS
    channels: int = 3          # 3 RGB, 1 grey
    every: int = 1             # video: keep every Nth frame
    min_size: int = 0          # pixels: a shorter side below this is too small (0: half the resolution)
    near_distance: int = 8     # bits of pHash within which a picture may be a near duplicate (-1: keep them)
    labels: bool = True        # class labels from the first level of sub-folders (two or more of them)
    sheet_cells: int = 400     # the contact sheet shows at most this many pictures, evenly spaced


@dataclass
class DatasetReport:
    source: str
    out: str
    asked_resolution: int
    resolution: int
    crop: str
    channels: int
    seen: int = 0                                         # pictures (files or frames) looked at
    written: int = 0
    class_names: list[str] = field(default_factory=list)  # the zip's classes ([] without labels)
    per_class: dict[str, int] = field(default_factory=dict)   # pictures per class folder, empty ones too
    skipped: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {r: [] for r in SKIP_REASONS})
    converted: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CONVERSIONS})
    ignored: int = 0                                      # files that are not pictures (a .txt, a .json)
    sheet: str = ""                                       # the contact sheet's path ("" none)
    sheet_cells: int = 0

    def skip_counts(self) -> dict[str, int]:
        return {reason: len(items) for reason, items in self.skipped.items()}

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"skip_counts": self.skip_counts()}

    def text(self) -> str:
        """A few lines for a person: what went in, what was skipped and why, what was converted."""
        kind = "grey" if self.channels == 1 else "RGB"
        rounding = "" if self.asked_resolution == self.resolution else \
            f"; --resolution {self.asked_resolution} rounded to {self.resolution}, the nearest power of two"
        lines = [f"{self.written} of {self.seen} pictures -> {self.out} ({self.resolution}x{self.resolution} "
                 f"{kind}, --crop {self.crop}{rounding})"]
        if self.per_class:
            lines.append("classes: " + ", ".join(f"{c} {n}" for c, n in self.per_class.items())
                         + ("" if all(self.per_class.values()) else " (a class left empty is not in the zip)"))
        lines.append(f"skipped {sum(self.skip_counts().values())}:")
        for reason, items in self.skipped.items():
            shown = "; ".join(f"{name} ({why})" for name, why in items[:EXAMPLES])
            more = f"; and {len(items) - EXAMPLES} more" if len(items) > EXAMPLES else ""
            lines.append(f"  {reason:24s}{len(items):6d}" + (f"   {shown}{more}" if items else ""))
        done = [f"{kind} {n}" for kind, n in self.converted.items() if n]
        lines.append("converted: " + (", ".join(done) if done else "nothing"))
        if self.ignored:
            lines.append(f"files that are not pictures, ignored: {self.ignored}")
        if self.sheet:
            lines.append(f"contact sheet: {self.sheet} ({self.sheet_cells} pictures)")
        return "\n".join(lines)


def nearest_power_of_two(resolution: int) -> int:
    """The power of two nearest to `resolution` on a log scale (300 -> 256, 384 -> 512), from 4 up."""
    if resolution < 1:
        raise DatasetToolError(f"--resolution {resolution}: expected a positive number of pixels")
    return max(4, 2 ** round(math.log2(resolution)))


# ---------------------------------------------------------------------------------------------
# Sources: (name, class folder, a function that opens the picture)

@dataclass(frozen=True)
class Picture:
    name: str                          # for the report: a path, zip:member or video#frame
    folder: str                        # the first sub-folder ("" at the top level)
    open: Callable[[], Image.Image]


def _image_suffixes() -> set[str]:
    return {ext.lower() for ext in Image.registered_extensions()}


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _folder_pictures(root: Path) -> tuple[list[Picture], int]:
    suffixes = _image_suffixes()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    pictures = [Picture(str(p.relative_to(root)), p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1
                        else "", lambda p=p: _decode(p.read_bytes()))
                for p in files if p.suffix.lower() in suffixes]
    return pictures, len(files) - len(pictures)


def _zip_pictures(path: Path) -> tuple[list[Picture], int]:
    suffixes = _image_suffixes()
    archive = zipfile.ZipFile(path)
    names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    pictures = [Picture(f"{path.name}:{n}", Path(n).parts[0] if len(Path(n).parts) > 1 else "",
                        lambda n=n: _decode(archive.read(n)))
                for n in names if Path(n).suffix.lower() in suffixes]
    return pictures, len(names) - len(pictures)


def _video_frames(path: Path, every: int) -> tuple[Iterator[Picture], int | None]:
    """Every `every`-th frame of the first video stream, decoded with PyAV as it is needed."""
    import av
    try:
        with av.open(str(path)) as container:
            frames = container.streams.video[0].frames   # 0 when the container does not say
    except (av.error.FFmpegError, IndexError) as exc:
        raise DatasetToolError(f"cannot read the video {path}: {exc}") from None

    def frames_of() -> Iterator[Picture]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index % every == 0:
                    image = frame.to_image()
                    yield Picture(f"{path.name}#frame{index}", "", lambda image=image: image)

    return frames_of(), (-(-frames // every) if frames else None)


def list_pictures(source: str | Path, every: int = 1) -> tuple[Iterator[Picture] | list[Picture], int | None, int]:
    """-> (pictures in a fixed order, how many (None: unknown), files that are not pictures)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetToolError(f"{source}: no such folder, zip or video")
    if path.is_dir():
        pictures, ignored = _folder_pictures(path)
    elif zipfile.is_zipfile(path):
        pictures, ignored = _zip_pictures(path)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        frames, count = _video_frames(path, every)
        return frames, count, 0
    else:
        raise DatasetToolError(f"{source}: not a folder, a zip archive or a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    if not pictures:
        raise DatasetToolError(f"{source}: no pictures in it (looked for files Pillow reads)")
    return pictures, len(pictures), ignored


# ---------------------------------------------------------------------------------------------
# One picture: upright, 8-bit RGB or grey, framed

def normalise(img: Image.Image, channels: int) -> tuple[Image.Image, list[str]]:
    """Any Pillow picture -> ("RGB" or "L" picture, the CONVERSIONS it needed)."""
    done = []
    if img.getexif().get(0x0112, 1) not in (1, 0):   # 0x0112: the EXIF orientation tag
        img = ImageOps.exif_transpose(img)
        done.append("EXIF orientation")
    rawmode = img.tile[0][3] if getattr(img, "tile", None) else ""
    if img.mode in SIXTEEN_BIT_MODES or ";16" in str(rawmode):
        done.append("16-bit")
        if img.mode in SIXTEEN_BIT_MODES:
            values = np.asarray(img, dtype=np.float64)
            top = 1.0 if img.mode == "F" and values.max() <= 1.0 else 65535.0 if values.max() > 255 else 255.0
            img = Image.fromarray(np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "CMYK":
        done.append("CMYK")
        img = img.convert("RGB")
    if img.mode == "P":
        done.append("palette")
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ALPHA_MODES:
        done.append("alpha")
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    grey = img.mode in ("L", "1")
    if channels == 3 and grey:
        done.append("grey to RGB")
    elif channels == 1 and not grey:
        done.append("colour to grey")
    return img.convert("RGB" if channels == 3 else "L"), done


def frame(img: Image.Image, resolution: int, crop: str) -> Image.Image:
    """An "RGB" or "L" picture -> resolution x resolution, framed as --crop says (CROPS)."""
    if crop == "squash":
        return img.resize((resolution, resolution), Image.LANCZOS)
    aspect, (w, h) = ASPECTS[crop], img.size
    keep_w, keep_h = (h * aspect, h) if w / h > aspect else (w, w / aspect)
    box = ((w - keep_w) / 2, (h - keep_h) / 2, (w + keep_w) / 2, (h + keep_h) / 2)
    size = (resolution, resolution // 2) if crop == "wide" else (resolution // 2, resolution) if crop == "tall" \
        else (resolution, resolution)
    picture = img.resize(size, Image.LANCZOS, box=box)
    if size == (resolution, resolution):
        return picture
    canvas = Image.new(img.mode, (resolution, resolution), PAD_COLOUR)
    canvas.paste(picture, ((resolution - size[0]) // 2, (resolution - size[1]) // 2))
    return canvas


def fingerprint(img: Image.Image) -> tuple[int, np.ndarray]:
    """(64-bit DCT hash (pHash), uint8 [32, 32] grey thumbnail) of a picture: similar pictures' hashes
    differ in few bits."""
    from scipy.fft import dctn
    thumbnail = np.asarray(img.convert("L").resize((32, 32), Image.LANCZOS))
    low = dctn(thumbnail.astype(np.float64), norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])   # the DC term would set the median's scale, not the picture's shape
    return int.from_bytes(np.packbits(bits).tobytes(), "big"), thumbnail


_BITS_IN_BYTE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class NearDuplicates:
    """The fingerprints of the pictures kept so far; a new picture is checked against them all (a vectorised
    scan of the hashes: 20,000 pictures take about 13 s in all on one core)."""

    def __init__(self, max_bits: int):   # hashes further apart than this are different pictures
        self.max_bits = max_bits
        self.hashes = np.zeros(64, dtype=np.uint64)
        self.thumbnails = np.zeros((64, 32, 32), dtype=np.uint8)
        self.names: list[str] = []

    def find(self, value: int, thumbnail: np.ndarray) -> tuple[str, int, float] | None:
        """(name, hash bits apart, mean grey difference) of a kept picture this one nearly duplicates, or None."""
        if not self.names or self.max_bits < 0:
            return None
        xor = self.hashes[:len(self.names)] ^ np.uint64(value)
        bits = _BITS_IN_BYTE[xor.view(np.uint8)].reshape(-1, 8).sum(1)
        close = np.nonzero(bits <= self.max_bits)[0]
        if not len(close):
            return None
        grey = np.abs(self.thumbnails[close].astype(np.int16) - thumbnail.astype(np.int16)).mean(axis=(1, 2))
        best = int(grey.argmin())
        if grey[best] > NEAR_GREY_LEVELS:
            return None
        return self.names[close[best]], int(bits[close[best]]), float(grey[best])

    def add(self, value: int, thumbnail: np.ndarray, name: str) -> None:
        if len(self.names) == len(self.hashes):
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
            self.thumbnails = np.concatenate([self.thumbnails, np.zeros_like(self.thumbnails)])
        self.hashes[len(self.names)], self.thumbnails[len(self.names)] = value, thumbnail
        self.names.append(name)


# ---------------------------------------------------------------------------------------------
# The whole dataset

def _class_folders(pictures, labels: bool) -> list[str]:
    """The class names: the first-level sub-folders, when there are two or more and labels are asked for."""
    if not labels or not isinstance(pictures, list):
        return []
    folders = sorted({p.folder for p in pictures if p.folder})
    return folders if len(folders) >= 2 else []


def build_dataset(source: str | Path, out: str | Path, settings: DatasetSettings = DatasetSettings(),
                  sheet: str | Path | None = None,
                  progress: Callable[[int, int | None], None] | None = None) -> DatasetReport:
    """Make the zip `out` (and the contact sheet `sheet`, None: none) from `source`; progress(done,
    total) after each picture (total None for a video of unknown length). DatasetToolError when the
    source has no usable picture; OSError from writing. Returns the report."""
    if settings.crop not in CROPS:
        raise DatasetToolError(f"--crop {settings.crop}: choose from {', '.join(CROPS)}")
    if settings.channels not in (1, 3):
        raise DatasetToolError(f"--channels {settings.channels}: choose 1 (grey) or 3 (RGB)")
    resolution = nearest_power_of_two(settings.resolution)
    min_size = settings.min_size or resolution // 2
    pictures, total, ignored = list_pictures(source, max(1, settings.every))
    classes = _class_folders(pictures, settings.labels)
    report = DatasetReport(str(source), str(out), settings.resolution, resolution, settings.crop,
                           settings.channels, ignored=ignored, class_names=classes)
    report.per_class = {c: 0 for c in classes}
    exact: dict[bytes, str] = {}
    near = NearDuplicates(settings.near_distance)
    labels: list[tuple[str, str]] = []   # (zip member, class folder)

    def add(archive: zipfile.ZipFile, picture: Picture) -> None:
        if classes and not picture.folder:
            report.skipped["outside a class folder"].append((picture.name, "classes come from sub-folders"))
            return
        try:
            img = picture.open()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            report.skipped["unreadable"].append((picture.name, f"{type(exc).__name__}: {exc}"))
            return
        img, conversions = normalise(img, settings.channels)
        if min(img.size) < min_size:
            report.skipped["too small"].append((picture.name, f"{img.size[0]}x{img.size[1]}, under {min_size} px"))
            return
        digest = hashlib.sha256(f"{img.size}".encode() + img.tobytes()).digest()
        if digest in exact:
            report.skipped["exact duplicate"].append((picture.name, f"the pixels of {exact[digest]}"))
            return
        phash, thumbnail = fingerprint(img)
        match = near.find(phash, thumbnail)
        if match:
            report.skipped["near duplicate"].append((picture.name, f"{match[1]} bits and {match[2]:.1f} grey levels "
                                                                   f"from {match[0]}"))
            return
        exact[digest] = picture.name
        near.add(phash, thumbnail, picture.name)
        for conversion in conversions:
            report.converted[conversion] += 1
        member = f"img{report.written:08d}.png"
        if classes:
            member = f"{picture.folder}/{member}"
            labels.append((member, picture.folder))
            report.per_class[picture.folder] += 1
        buffer = io.BytesIO()
        frame(img, resolution, settings.crop).save(buffer, format="PNG")
        archive.writestr(member, buffer.getvalue())
        report.written += 1

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:   # PNGs do not compress further
            for picture in pictures:
                add(archive, picture)
                report.seen += 1
                if progress:
                    progress(report.seen, total)
            if not report.written:
                counts = ", ".join(f"{n} {r}" for r, n in report.skip_counts().items() if n)
                raise DatasetToolError(f"{source}: none of its {report.seen} pictures could be used ({counts})")
            # a class whose pictures were all skipped is left out, so the indices are those the loader counts
            report.class_names = [c for c in classes if report.per_class[c]]
            indexed = [[member, report.class_names.index(folder)] for member, folder in labels]
            archive.writestr("dataset.json", json.dumps({"labels": indexed or None, "class_names": report.class_names}))

    atomic_write(out, write)
    if sheet is not None:
        report.sheet, report.sheet_cells = str(sheet), write_contact_sheet(out, sheet, settings.sheet_cells)
    return report


def sheet_layout(count: int) -> tuple[int, int]:
    """(columns, rows) of a contact sheet of `count` cells: about 4:3, filled row by row."""
    columns = max(1, math.ceil(math.sqrt(count * 4 / 3)))
    return columns, math.ceil(count / columns)


SHEET_CELL = 64        # pixels per picture on the contact sheet
SHEET_GAP = 2          # pixels between them
SHEET_BACKGROUND = (48, 48, 48)


def write_contact_sheet(dataset_zip: str | Path, path: str | Path, max_cells: int = 400) -> int:
    """A PNG of the zip's pictures (at most max_cells of them, evenly spaced) at SHEET_CELL pixels each,
    in the zip's order. Returns the number of cells drawn."""
    with zipfile.ZipFile(dataset_zip) as archive:
        names = [n for n in archive.namelist() if n.endswith(".png")]
        chosen = names if len(names) <= max_cells else \
            [names[round(i * (len(names) - 1) / (max_cells - 1))] for i in range(max_cells)]
        columns, rows = sheet_layout(len(chosen))
        step = SHEET_CELL + SHEET_GAP
        sheet = Image.new("RGB", (columns * step - SHEET_GAP, rows * step - SHEET_GAP), SHEET_BACKGROUND)
        for i, name in enumerate(chosen):
            cell = _decode(archive.read(name)).convert("RGB").resize((SHEET_CELL, SHEET_CELL), Image.LANCZOS)
            sheet.paste(cell, ((i % columns) * step, (i // columns) * step))
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return len(chosen)
