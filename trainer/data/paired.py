"""Data for image-to-image models: paired (A, B) images and unpaired domains A and B.

Layouts of a folder or a .zip (the same file handling and bad-file rules as `trainer.data.datasets`:
unreadable files are skipped and named; no readable file at all is an error):

  paired, side by side   train/*.png (or images at the top): each image holds A | B, left | right
  paired, two folders    trainA/ and trainB/ (or A/ and B/): files matched by name, any suffix
  unpaired               trainA/ and trainB/ (or A/ and B/): any images of each domain

`--split test` reads test/, or testA/ and testB/. Built-ins from Fashion-MNIST: `edges2fashion`
(Canny edges -> the garment, paired) and `sneakers2boots` (sneakers | ankle boots, unpaired,
disjoint images). Each built-in's test split comes from Fashion-MNIST's test split.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from trainer.config import DataConfig
from trainer.data.datasets import (FASHION_MNIST_CLASSES, BatchSampler, DataError, Dataset, _folder_entries, _is_grey,
                   _to_square, _zip_entries, cache_dir, load_dataset)
from trainer.data.edges import edge_images
from trainer.files import atomic_write, recorded_source
from trainer.config import TranslationDataConfig

TRANSLATION_BUILTINS = {"edges2fashion": True, "sneakers2boots": False}   # name -> paired
SNEAKER, ANKLE_BOOT = FASHION_MNIST_CLASSES.index("Sneaker"), FASHION_MNIST_CLASSES.index("Ankle boot")
EDGES_VERSION = 1   # bump when the edge drawing changes, so cached drawings are redrawn
BAD_FILE_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)


@dataclass
class TranslationData:
    name: str
    a: torch.Tensor                    # uint8 [N_A, C_A, R, R] images of domain A
    b: torch.Tensor                    # uint8 [N_B, C_B, R, R]; row i is a[i]'s partner when paired
    paired: bool
    domains: tuple[str, str] = ("A", "B")          # what each domain shows, for people
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (file, reason) passed over
    source: str = ""                   # how to open it again: a built-in's name or an absolute path

    def __post_init__(self):
        if self.a.dtype != torch.uint8 or self.b.dtype != torch.uint8 or self.a.ndim != 4 or self.b.ndim != 4:
            raise ValueError("domains must be uint8 [N, C, R, R]")
        if self.paired and len(self.a) != len(self.b):
            raise ValueError(f"paired data needs as many A as B images, got {len(self.a)} and {len(self.b)}")

    @property
    def resolution(self) -> int:
        return int(self.a.shape[-1])

    def describe(self) -> dict:
        """Plain metadata stored with checkpoints."""
        return {"name": self.name, "resolution": self.resolution, "channels": int(self.b.shape[1]),
                "a_channels": int(self.a.shape[1]), "b_channels": int(self.b.shape[1]), "paired": self.paired,
                "domains": list(self.domains), "size_a": len(self.a), "size_b": len(self.b), "class_names": [],
                **({"source": self.source} if self.source else {})}


def load_translation_data(cfg: TranslationDataConfig, paired: bool) -> TranslationData:
    """The data a config names, as pairs (`paired`) or two domains; DataError when it can't."""
    source = cfg.source
    if source in TRANSLATION_BUILTINS:
        if paired and not TRANSLATION_BUILTINS[source]:
            raise DataError(f"'{source}' is unpaired (disjoint images of two classes): Pix2Pix needs pairs; "
                            "use CycleGAN (--preset cyclegan)")
        data = _builtin(cfg)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"dataset '{source}' is neither a built-in ({', '.join(TRANSLATION_BUILTINS)}) "
                            "nor an existing path")
        if path.is_dir():
            entries, root = list(_folder_entries(path)), str(path)
        elif zipfile.is_zipfile(path):
            entries, root = list(_zip_entries(path)), f"{path}:"
        else:
            raise DataError(f"'{source}' is a file but not a zip archive of images")
        data = _from_entries(cfg, path.stem if path.is_file() else path.name, entries, root, str(path), paired)
    if cfg.max_images:   # built-ins cut before drawing edges; folders here
        data.a, data.b = data.a[:cfg.max_images], data.b[:cfg.max_images]
    data.source = recorded_source(source, TRANSLATION_BUILTINS)
    return data


def held_out_config(cfg: TranslationDataConfig, count: int = 0) -> TranslationDataConfig:
    """The same data's test part (built-ins: Fashion-MNIST's test split; folders: test/ or testA, testB),
    its first `count` images per domain (0: all)."""
    return TranslationDataConfig.from_dict(dict(cfg.to_dict(), split="test", xflip=False, max_images=count))


# ---------------------------------------------------------------------------------------------
# Built-ins

def _builtin(cfg: TranslationDataConfig) -> TranslationData:
    base = load_dataset(DataConfig(source="fashion-mnist", resolution=cfg.resolution, channels=1, split=cfg.split))
    images, labels = base.data, base.labels

    def colour(x: torch.Tensor) -> torch.Tensor:
        x = x[:cfg.max_images] if cfg.max_images else x
        return x.expand(-1, 3, -1, -1).contiguous() if cfg.channels == 3 else x

    if cfg.source == "edges2fashion":
        images = images[:cfg.max_images] if cfg.max_images else images
        return TranslationData("edges2fashion", colour(_cached_edges(images, cfg)), colour(images), True,
                               ("edges", "fashion"))
    return TranslationData("sneakers2boots", colour(images[labels == SNEAKER]), colour(images[labels == ANKLE_BOOT]),
                           False, ("sneakers", "ankle boots"))


def _cached_edges(images: torch.Tensor, cfg: TranslationDataConfig) -> torch.Tensor:
    """Canny drawings of the images, kept in the cache folder: a whole split takes a minute to draw."""
    if len(images) < 1000:
        return edge_images(images)
    digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]
    path = cache_dir() / "translation" / f"edges-{cfg.split}-{cfg.resolution}px-v{EDGES_VERSION}-{digest}.npy"
    try:
        stored = np.load(path)
        if stored.shape == tuple(images.shape) and stored.dtype == np.uint8:
            return torch.from_numpy(stored)
    except (OSError, ValueError):
        pass   # absent or damaged: drawn again and replaced
    edges = edge_images(images)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, edges.numpy())
    try:
        atomic_write(path, write)
    except OSError:
        pass   # an unwritable cache only costs time next load
    return edges


# ---------------------------------------------------------------------------------------------
# Folders and zip archives

def _key(path: str, root: str, folder: str) -> str:
    """A file's name inside its domain folder, without suffix: how partners are matched."""
    inside = PurePosixPath(path[len(root):].lstrip("/").replace("\\", "/"))
    parts = inside.parts[1:] if folder else inside.parts
    return str(PurePosixPath(*parts).with_suffix("")) if parts else ""


def _from_entries(cfg, name: str, entries, root: str, where: str, paired: bool) -> TranslationData:
    by_folder: dict[str, list] = {}
    for entry in entries:
        by_folder.setdefault(entry[1], []).append(entry)
    split = cfg.split
    a_name = next((f for f in (f"{split}A", "A" if split == "train" else None) if f in by_folder), None)
    b_name = next((f for f in (f"{split}B", "B" if split == "train" else None) if f in by_folder), None)
    if a_name and b_name:
        a_entries, b_entries = by_folder[a_name], by_folder[b_name]
        if paired:
            a_entries, b_entries = _match_pairs(a_entries, b_entries, root, a_name, b_name, where)
        a, a_skipped = _decode(a_entries)
        b, b_skipped = _decode(b_entries)
        skipped = a_skipped + b_skipped
        if paired:   # a pair with an unreadable half is dropped whole
            good = [i for i in range(len(a_entries)) if a[i] is not None and b[i] is not None]
            a, b = [a[i] for i in good], [b[i] for i in good]
        a, b = [x for x in a if x is not None], [x for x in b if x is not None]
        for images, folder in ((a, a_name), (b, b_name)):
            if not images:
                raise DataError(f"no readable images in '{where}/{folder}'"
                                + (f" (first unreadable: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
        return TranslationData(name, _stack(a, cfg), _stack(b, cfg), paired, (a_name, b_name), skipped)
    if not paired:
        raise DataError(f"unpaired data needs two folders, trainA/ and trainB/ (or A/ and B/), in '{where}'; "
                        f"found {', '.join(sorted(k or '(top level)' for k in by_folder))}")
    folder = split if split in by_folder else ("" if "" in by_folder else None)
    if folder is None:
        raise DataError(f"no paired images in '{where}': expected {split}/ with A|B images side by side, "
                        f"or {split}A/ and {split}B/ with files matched by name")
    decoded, skipped = _decode(by_folder[folder])
    a, b = [], []
    for (path, _, _), img in zip(by_folder[folder], decoded):
        if img is None:
            continue
        width, height = img.size
        if abs(width - 2 * height) > max(2, width // 20):
            skipped.append((path, f"not an A|B pair side by side: {width}x{height} is not twice as wide as high"))
            continue
        a.append(img.crop((0, 0, width // 2, height)))
        b.append(img.crop((width // 2, 0, 2 * (width // 2), height)))
    if not a:
        raise DataError(f"none of the {len(skipped)} files in '{where}' is a readable A|B pair "
                        f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return TranslationData(name, _stack(a, cfg), _stack(b, cfg), True, ("A", "B"), skipped)


def _match_pairs(a_entries, b_entries, root: str, a_name: str, b_name: str, where: str):
    """Entries of A and B in matching order, or DataError naming the first file without a partner."""
    a_keys = {_key(e[0], root, a_name): e for e in a_entries}
    b_keys = {_key(e[0], root, b_name): e for e in b_entries}
    for mine, theirs, folder, other in ((a_keys, b_keys, a_name, b_name), (b_keys, a_keys, b_name, a_name)):
        missing = sorted(set(mine) - set(theirs))
        if missing:
            raise DataError(f"{mine[missing[0]][0]} has no partner in '{where}/{other}' (no file named "
                            f"{missing[0]}.* there); paired folders must hold the same file names"
                            + (f" ({len(missing)} files of {folder}/ lack partners)" if len(missing) > 1 else ""))
    keys = sorted(a_keys)
    return [a_keys[k] for k in keys], [b_keys[k] for k in keys]


def _decode(entries) -> tuple[list, list[tuple[str, str]]]:
    """-> (Pillow images, None where a file could not be read), (file, reason) for each skipped."""
    images, skipped = [], []
    for path, _, read in entries:
        try:
            img = Image.open(io.BytesIO(read()))
            img.load()
        except BAD_FILE_ERRORS as exc:
            skipped.append((path, f"{type(exc).__name__}: {exc}"))
            images.append(None)
            continue
        images.append(img)
    return images, skipped


def _stack(images: list, cfg) -> torch.Tensor:
    channels = cfg.channels or (1 if all(_is_grey(img) for img in images) else 3)
    return torch.from_numpy(np.stack([_to_square(img, cfg.resolution, channels) for img in images]))


# ---------------------------------------------------------------------------------------------
# Batches

class TranslationSampler:
    """Batches (A, B) in [-1, 1]: rows of a pair together (one shuffled order, the same flips),
    or the two domains each in their own order. Reuses `BatchSampler`, so the order depends only
    on (seed, epoch, position) and a resumed run draws the batches the uninterrupted one would."""

    def __init__(self,
                 data: TranslationData,     # pairs or two domains, uint8 on the host
                 batch: int,                # images per domain per batch
                 seed: int,                 # fixes the order (domain B's order uses seed + 1)
                 xflip: bool,               # mirror random rows (a pair's two images together)
                 device: torch.device,      # where batches go
                 ):
        self.data, self.paired = data, data.paired
        self.a_channels = int(data.a.shape[1])
        if data.paired:
            both = torch.cat([data.a, data.b], dim=1)      # [N, C_A + C_B, R, R]: a pair travels as one image
            self.samplers = [BatchSampler(_as_dataset(data.name, both), batch, seed, xflip, device)]
        else:
            self.samplers = [BatchSampler(_as_dataset(data.name, data.a), batch, seed, xflip, device),
                             BatchSampler(_as_dataset(data.name, data.b), batch, seed + 1, xflip, device)]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (A [B, C_A, R, R], B [B, C_B, R, R]), float32 in [-1, 1]."""
        if self.paired:
            both, _ = self.samplers[0].next()
            return both[:, :self.a_channels], both[:, self.a_channels:]
        return self.samplers[0].next()[0], self.samplers[1].next()[0]

    def state_dict(self) -> dict:
        return {f"sampler{i}": s.state_dict() for i, s in enumerate(self.samplers)}

    def load_state_dict(self, state: dict) -> None:
        for i, s in enumerate(self.samplers):
            s.load_state_dict(state[f"sampler{i}"])


def _as_dataset(name: str, images: torch.Tensor) -> Dataset:
    return Dataset(name, images, torch.zeros(len(images), dtype=torch.int64), [])
