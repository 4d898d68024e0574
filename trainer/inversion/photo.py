"""Opening a user's photo for inversion: any file Pillow reads, checked, made square and sized.

Every odd file gets either a clear refusal (PhotoError) or a note the user sees: an animated GIF
gives its first frame, transparency is composited on white, 16-bit images are reduced to 8 bits,
CMYK and palette images are converted. A huge image is refused from its header, before its pixels
are decoded (Pillow's decompression-bomb limit), so opening one never fills the memory.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

MIN_PHOTO_SIDE = 8              # pixels; smaller images hold too little to invert
UPSCALE_NOTE_FACTOR = 2.0       # say so when the crop is enlarged more than this to fit the model


class PhotoError(ValueError):
    """A file that cannot be used as a photo; the message names the file and says why."""


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded photo: 8-bit pixels and what was done to get them."""
    path: str                     # the file it came from ("" for pixels given directly)
    pixels: np.ndarray            # uint8 [H, W, 3] RGB (grey files are repeated to three channels)
    sha256: str                   # of the file's bytes (or of the pixels when there is no file)
    notes: tuple[str, ...] = ()   # what was changed, for the user ("first of 12 frames", ...)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def max_pixels() -> int:
    """The largest image opened, in pixels: Pillow's decompression-bomb limit (about 89 million)."""
    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def open_photo(path) -> Photo:
    """Decode an image file -> Photo, or raise PhotoError with a message for the user."""
    path = Path(path)
    if not path.is_file():
        raise PhotoError(f"no such file: {path}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    # Truncated files must fail loudly, not decode as grey padding: this is Pillow's default, and it
    # is process-wide, so make sure nothing turned it on.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():   # between 1x and 2x the limit Pillow only warns; refused below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:   # Pillow refuses from the header: nothing was decoded
        raise PhotoError(f"{path.name} is larger than the {max_pixels():,}-pixel limit for photos ({exc}); "
                         "it was not decoded. Scale it down first.") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{path.name} is not an image file this program can read "
                         "(PNG, JPEG, GIF, BMP, TIFF, WebP ...)") from None
    except OSError as exc:
        raise PhotoError(f"{path.name} cannot be opened: {exc}") from None
    with img:
        width, height = img.size
        # From the header only: nothing has been decoded yet.
        if width * height > max_pixels():
            raise PhotoError(f"{path.name} is {width}x{height} pixels, more than the {max_pixels():,}-pixel "
                             "limit for photos; it was not decoded. Scale it down first.")
        if min(width, height) < MIN_PHOTO_SIDE:
            raise PhotoError(f"{path.name} is only {width}x{height} pixels; a photo needs at least "
                             f"{MIN_PHOTO_SIDE} pixels on its short side")
        notes = []
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            img.seek(0)
            notes.append(f"{path.name} is animated ({frames} frames): the first frame is used")
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise PhotoError(f"{path.name} is truncated or corrupt and cannot be decoded ({exc})") from None
        pixels, more = to_rgb8(img)
    return Photo(str(path), pixels, digest, tuple(notes + more))


def photo_from_pixels(pixels: np.ndarray, name: str = "") -> Photo:
    """uint8 [H, W] / [H, W, 1|3|4] pixels (a clipboard image, a test array) -> Photo."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise PhotoError(f"expected uint8 pixels [H, W] or [H, W, 1|3|4], got {arr.dtype} {arr.shape}")
    if min(arr.shape[:2]) < MIN_PHOTO_SIDE:
        raise PhotoError(f"the image is only {arr.shape[1]}x{arr.shape[0]} pixels; a photo needs at least "
                         f"{MIN_PHOTO_SIDE} pixels on its short side")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    img = Image.fromarray(np.ascontiguousarray(arr))
    rgb, notes = to_rgb8(img)
    return Photo(name, rgb, hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(), tuple(notes))


def to_rgb8(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Any decoded Pillow image -> (uint8 [H, W, 3], notes on what was changed)."""
    notes = []
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":   # floats: stretch their range, there is no standard white
            arr = (arr - arr.min()) / max(arr.max() - arr.min(), 1e-12) * 255
            notes.append("a floating-point image: its value range was stretched to 8 bits")
        else:                 # 16-bit (Pillow opens 16-bit PNGs as I or I;16): full range 0-65535
            arr = arr / 257.0
            notes.append("a 16-bit image: reduced to 8 bits")
        img = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "L")
    if img.mode == "CMYK":
        notes.append("a CMYK image: converted to RGB")
    if img.mode in ("P", "PA"):
        transparent = "transparency" in img.info or img.mode == "PA"
        img = img.convert("RGBA" if transparent else "RGB")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:   # some pixel is not opaque
            notes.append("transparent areas were composited on white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy(), notes


def centre_crop(width: int, height: int) -> tuple[int, int, int]:
    """The largest centred square -> (left, top, side) in pixels."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def check_crop(crop, width: int, height: int) -> tuple[int, int, int]:
    """A user's square (left, top, side) -> the same as ints, or PhotoError when it leaves the image."""
    try:
        left, top, side = (int(v) for v in crop)
    except (TypeError, ValueError):
        raise PhotoError(f"a crop is (left, top, side) in pixels, got {crop!r}") from None
    if side < MIN_PHOTO_SIDE or left < 0 or top < 0 or left + side > width or top + side > height:
        raise PhotoError(f"crop {left},{top} size {side} does not fit inside the {width}x{height} image "
                         f"(and must be at least {MIN_PHOTO_SIDE} pixels)")
    return left, top, side


def fit_photo(photo: Photo,
              resolution: int,              # the model's img_resolution
              channels: int,                # the model's img_channels: 1 grey, 3 RGB
              crop=None,                    # (left, top, side) in photo pixels; None = centre square
              ) -> tuple[np.ndarray, tuple[int, int, int], list[str]]:
    """Crop a square and resize it to the model -> (uint8 [resolution, resolution, channels], the
    crop used, notes). Lanczos resampling; grey is the luma of RGB (ITU-R 601, Pillow's "L")."""
    width, height = photo.size
    box = centre_crop(width, height) if crop is None else check_crop(crop, width, height)
    left, top, side = box
    notes = []
    if side * UPSCALE_NOTE_FACTOR < resolution:
        notes.append(f"the {side}-pixel crop was enlarged to {resolution} pixels: expect a blurry target")
    img = Image.fromarray(photo.pixels).crop((left, top, left + side, top + side))
    img = img.resize((resolution, resolution), Image.LANCZOS)
    if channels == 1:
        img = img.convert("L")
    arr = np.asarray(img, dtype=np.uint8)
    return (arr[:, :, None] if arr.ndim == 2 else arr).copy(), box, notes
