"""Datasets: image folders, zip archives and built-ins, loaded once into memory.

Everything is decoded up front in the main process, so an unreadable file is found, skipped and
counted here with its name, never deep inside a DataLoader worker. Images are kept as uint8
[N, C, H, W] at the training resolution; 2-D toy data as float32 [N, 2].
"""
from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from trainer.config import DataConfig
from trainer.files import recorded_source

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
BUILTINS = ("fashion-mnist", "digits", "ring8", "grid25")
TOY_STD = {"ring8": 0.02, "grid25": 0.05}


class DataError(ValueError):
    """The data cannot be used; the message names the problem and the file or folder."""


@dataclass
class Dataset:
    name: str
    data: torch.Tensor                   # uint8 [N, C, H, W] images, or float32 [N, 2] points
    labels: torch.Tensor                 # int64 [N]; zeros when the data has no classes
    class_names: list[str]               # [] when the data has no classes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) passed over
    modes: np.ndarray | None = None      # [M, 2] mode centres of a toy mixture
    mode_std: float = 0.0                # standard deviation of each toy mode
    source: str = ""                     # how to open it again: a built-in's name or an absolute path

    @property
    def is_image(self) -> bool:
        return self.data.dtype == torch.uint8

    @property
    def resolution(self) -> int:
        return int(self.data.shape[-1]) if self.is_image else 0

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def describe(self) -> dict:
        """Plain metadata stored with checkpoints."""
        return {"name": self.name, "resolution": self.resolution, "channels": self.channels,
                "class_names": list(self.class_names), "size": len(self), **({"source": self.source} if self.source else {})}


def cache_dir() -> Path:
    root = os.environ.get("GANSTUDIO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ganstudio")
    return Path(root)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Open the dataset a config names; raise DataError with a clear message when it can't."""
    source = cfg.source
    if source in BUILTINS:
        ds = {"fashion-mnist": _fashion_mnist, "digits": _digits,
              "ring8": _toy, "grid25": _toy}[source](cfg)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"dataset '{source}' is neither a built-in ({', '.join(BUILTINS)}) nor an existing path")
        if path.is_dir():
            ds = _from_files(cfg, path.name, _folder_entries(path), str(path))
        elif zipfile.is_zipfile(path):
            ds = _from_files(cfg, path.stem, _zip_entries(path), str(path))
        else:
            raise DataError(f"'{source}' is a file but not a zip archive of images")
    ds.source = recorded_source(source, BUILTINS)
    if cfg.max_images and len(ds) > cfg.max_images:
        ds.data, ds.labels = ds.data[:cfg.max_images], ds.labels[:cfg.max_images]
    if cfg.conditional:
        present = torch.unique(ds.labels).numel()
        if len(ds.class_names) < 2 or present < 2:
            raise DataError(f"a conditional model needs at least two classes, and '{source}' has "
                            f"{max(len(ds.class_names), present) if ds.class_names else 'no'} "
                            f"(for a folder, put each class's images in a sub-folder named after it)")
    return ds


def class_count(source: str) -> int | None:
    """How many classes a data source has, read from its names and labels alone (no picture is
    decoded), or None when that cannot be told cheaply; load_dataset reports the problems."""
    if source in BUILTINS:
        return {"fashion-mnist": len(FASHION_MNIST_CLASSES), "digits": 10}.get(source) or len(toy_modes(source))
    path = Path(source).expanduser()
    try:
        entries = _folder_entries(path) if path.is_dir() else _zip_entries(path) if zipfile.is_zipfile(path) else None
        return None if entries is None else len({label for _, label, _ in entries} - {""})
    except (DataError, OSError, zipfile.BadZipFile):
        return None


# ---------------------------------------------------------------------------------------------
# Built-ins

def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DataError(f"{path} is truncated: expected {math.prod(dims)} values, found {data.size}")
    return data.reshape(dims)


def _find_fashion_mnist() -> Path:
    names = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
    candidates = [Path(d) for d in FASHION_MNIST_DIRS] + [cache_dir() / "fashion-mnist",
                                                          cache_dir() / "FashionMNIST" / "raw"]
    for d in candidates:
        if all((d / n).exists() or (d / (n + ".gz")).exists() for n in names):
            return d
    try:  # the usual download, when online
        from torchvision.datasets import FashionMNIST
        FashionMNIST(str(cache_dir()), train=True, download=True)
        FashionMNIST(str(cache_dir()), train=False, download=True)
    except Exception as exc:  # no network, or torchvision cannot fetch
        raise DataError("Fashion-MNIST was not found in /usr/share/datasets/fashion-mnist (Debian package "
                        f"dataset-fashion-mnist) or {cache_dir()}, and downloading it failed: {exc}") from None
    return cache_dir() / "FashionMNIST" / "raw"


def _fashion_mnist(cfg: DataConfig) -> Dataset:
    root = _find_fashion_mnist()

    def part(prefix):
        def find(n):
            return root / n if (root / n).exists() else root / (n + ".gz")
        return (_read_idx(find(f"{prefix}-images-idx3-ubyte")),
                _read_idx(find(f"{prefix}-labels-idx1-ubyte")))

    parts = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[cfg.split]
    imgs, labels = zip(*(part(p) for p in parts))
    images = torch.from_numpy(np.concatenate(imgs))[:, None]  # [N, 1, 28, 28]
    return Dataset("fashion-mnist", _resize_batch(images, cfg.resolution, cfg.channels, "fashion-mnist"),
                   torch.from_numpy(np.concatenate(labels).astype(np.int64)), list(FASHION_MNIST_CLASSES))


def _digits(cfg: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits
    digits = load_digits()  # 1,797 real 8x8 digits, values 0..16; no official split: every split is all
    images = torch.from_numpy((digits.images * (255.0 / 16.0)).round().astype(np.uint8))[:, None]
    return Dataset("digits", _resize_batch(images, cfg.resolution, cfg.channels, "digits"),
                   torch.from_numpy(digits.target.astype(np.int64)), [str(i) for i in range(10)])


def toy_modes(name: str) -> np.ndarray:
    """Mode centres of the 2-D mixtures used in the mode-collapse literature."""
    if name == "ring8":
        angles = np.arange(8) * (2 * np.pi / 8)
        return np.stack([2.0 * np.cos(angles), 2.0 * np.sin(angles)], axis=1)
    if name == "grid25":
        return np.array([(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], dtype=np.float64)
    raise DataError(f"unknown toy dataset '{name}'")


def _toy(cfg: DataConfig) -> Dataset:
    modes, std = toy_modes(cfg.source), TOY_STD[cfg.source]
    n = 100_000 if cfg.split != "all" else 200_000
    rng = np.random.default_rng({"train": 0, "test": 1, "all": 2}[cfg.split])
    labels = rng.integers(0, len(modes), size=n)
    points = modes[labels] + std * rng.standard_normal((n, 2))
    return Dataset(cfg.source, torch.from_numpy(points.astype(np.float32)), torch.from_numpy(labels),
                   [f"mode {i}" for i in range(len(modes))], modes=modes, mode_std=std)


# ---------------------------------------------------------------------------------------------
# Folders and zip archives

def _image_suffixes() -> set[str]:
    return {ext.lower() for ext in Image.registered_extensions()}


def _folder_entries(root: Path):
    suffixes = _image_suffixes()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DataError(f"no images in folder '{root}' (looked recursively for files Pillow reads)")
    meta = root / "dataset.json"
    labels = _labels_from_dataset_json(meta.read_bytes(), str(meta)) if meta.is_file() else None
    for p in files:
        rel = p.relative_to(root)
        label = (rel.parts[0] if len(rel.parts) > 1 else "") if labels is None else labels.get(rel.as_posix(), "")
        yield str(p), label, (lambda p=p: p.read_bytes())


def _zip_entries(path: Path):
    suffixes = _image_suffixes()
    archive = zipfile.ZipFile(path)
    names = sorted(n for n in archive.namelist() if not n.endswith("/") and Path(n).suffix.lower() in suffixes)
    if not names:
        raise DataError(f"no images in zip archive '{path}'")
    labels = (_labels_from_dataset_json(archive.read("dataset.json"), f"{path}:dataset.json")
              if "dataset.json" in archive.namelist() else None)
    for n in names:
        parts = Path(n).parts
        label = (parts[0] if len(parts) > 1 else "") if labels is None else labels.get(n, "")
        yield f"{path}:{n}", label, (lambda n=n: archive.read(n))


def _labels_from_dataset_json(text: bytes, where: str) -> dict[str, str]:
    """NVlabs' dataset.json ({"labels": [[file, class index], ...] or null}) -> file -> class name.
    Its labels win over folder names: NVlabs' own tool puts images in 00000/, 00001/... by count,
    not by class. Names come from "class_names" when present (ganstudio-train dataset writes them),
    else the index, zero-padded so that names sort in index order; null labels: no classes."""
    from trainer.files import parse_json
    try:
        meta = parse_json(text, "dataset.json")
    except ValueError as exc:
        raise DataError(f"'{where}': {exc}") from None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if labels is None:
        return {}
    if not isinstance(labels, list) or not all(isinstance(x, list) and len(x) == 2 and isinstance(x[0], str)
                                               and isinstance(x[1], int) and x[1] >= 0 for x in labels):
        raise DataError(f"'{where}': \"labels\" must be a list of [file name, class index] pairs or null")
    names = meta.get("class_names")
    count = 1 + max((index for _, index in labels), default=0)
    if not (isinstance(names, list) and len(names) >= count and all(isinstance(n, str) and n for n in names)):
        names = [f"{i:0{len(str(count - 1))}d}" for i in range(count)]
    elif sorted(names[:count]) != names[:count]:   # the loader numbers classes by sorted name: keep the indices
        names = [f"{i:0{len(str(count - 1))}d} {name}" for i, name in enumerate(names[:count])]
    return {file: names[index] for file, index in labels}


def _from_files(cfg: DataConfig, name: str, entries, where: str) -> Dataset:
    from tqdm import tqdm
    decoded, skipped = [], []
    for path, label, read in tqdm(list(entries), desc=f"reading {name}", unit="img", leave=False,
                                  disable=None):
        try:
            img = Image.open(io.BytesIO(read()))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        decoded.append((img, label))
    if not decoded:
        raise DataError(f"none of the {len(skipped)} image files in '{where}' could be read "
                        f"(first: {skipped[0][0]}: {skipped[0][1]})")
    channels = cfg.channels or (1 if all(_is_grey(img) for img, _ in decoded) else 3)
    class_names = sorted({label for _, label in decoded})
    if class_names == [""]:
        class_names = []
    elif "" in class_names and cfg.conditional:
        loose = next(p for p, (img, lbl) in zip(range(len(decoded)), decoded) if lbl == "")
        raise DataError(f"'{where}' mixes images in its top folder with class sub-folders; a conditional "
                        f"model needs every image inside a class sub-folder (e.g. image #{loose})")
    index = {c: i for i, c in enumerate(class_names)}
    _check_fits_in_memory(len(decoded), channels, cfg.resolution, where)
    arrays = np.stack([_to_square(img, cfg.resolution, channels) for img, _ in decoded])
    labels = np.array([index.get(lbl, 0) for _, lbl in decoded], dtype=np.int64)
    return Dataset(name, torch.from_numpy(arrays), torch.from_numpy(labels), class_names, skipped)


def _is_grey(img: Image.Image) -> bool:
    return img.mode in ("1", "L", "LA", "I", "I;16", "F")


def _to_square(img: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """Any Pillow image -> uint8 [C, R, R]: resize the short side, crop the centre."""
    if img.mode in ("I", "I;16", "F"):
        arr = np.asarray(img, dtype=np.float64)
        span = max(arr.max() - arr.min(), 1e-8)
        img = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P", "PA"):  # flatten transparency onto white
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    img = img.resize((nw, nh), Image.LANCZOS)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _check_fits_in_memory(count: int, channels: int, resolution: int, where: str) -> None:
    """DataError, before anything is allocated, when `count` images at this resolution would take more
    than half this machine's memory (the images, and a working copy while they are made)."""
    from trainer.checkpoint import memory_bytes
    need, memory = count * channels * resolution * resolution, memory_bytes()
    if 2 * need > memory:
        raise DataError(f"'{where}' at --resolution {resolution}: {count:,} images of {channels}x{resolution}x"
                        f"{resolution} pixels need {need / 2**30:.1f} GiB, more than half of this machine's "
                        f"{memory / 2**30:.0f} GiB; use a smaller --resolution")


def _resize_batch(images: torch.Tensor, resolution: int, channels: int, where: str) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, channels, R, R] with antialiased bilinear resizing."""
    if channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images.contiguous()
    _check_fits_in_memory(len(images), images.shape[1], resolution, where)
    per_image = images.shape[1] * resolution * resolution * 4        # float32 while resizing
    out = []
    for chunk in images.split(max(1, min(4096, 2**28 // per_image))):   # at most ~256 MB of floats at a time
        x = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                          antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# Batches

class BatchSampler:
    """Epoch-wise shuffled batches whose order depends only on (seed, epoch, position),
    so a resumed run draws exactly the batches the uninterrupted run would have drawn."""

    def __init__(self, dataset: Dataset, batch: int, seed: int, xflip: bool, device: torch.device,
                 rank: int = 0,    # this process; it receives the rank-th contiguous share of each batch
                 world: int = 1,   # processes sharing each batch (DistributedSampler-style sharding)
                 ):
        if len(dataset) < 1:
            raise DataError(f"dataset '{dataset.name}' is empty")
        self.dataset, self.batch, self.seed, self.xflip, self.device = dataset, batch, seed, xflip, device
        self.rank, self.world = rank, world
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(len(self.dataset), generator=gen)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (data float32 in [-1, 1]: [B, C, H, W] or [B, 2]; labels int64 [B])"""
        picks = []
        need = self.batch
        while need:
            take = self._order[self.position:self.position + need]
            picks.append(take)
            need -= take.numel()
            self.position += take.numel()
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation()
        idx = torch.cat(picks)
        share = slice(self.rank * len(idx) // self.world, (self.rank + 1) * len(idx) // self.world)
        if self.xflip:   # drawn for the whole batch, so a share flips as it would in one process
            gen = torch.Generator().manual_seed(self.seed * 7919 + self.epoch * 1_000_003 + self.position)
            flip = (torch.rand(len(idx), generator=gen) < 0.5)[share]
        idx = idx[share]
        data = self.dataset.data[idx]
        if self.dataset.is_image:
            if self.device.type == "cuda":   # page-locked uint8, so the copy overlaps with compute
                data = data.pin_memory()
            data = data.to(self.device, non_blocking=True).float() / 127.5 - 1
            if self.xflip:
                data = torch.where(flip.to(self.device)[:, None, None, None], data.flip(3), data)
        else:
            data = data.to(self.device)
        return data, self.dataset.labels[idx].to(self.device)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()
