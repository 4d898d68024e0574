"""What a path the user opens (File > Open, a drop, the command line, the recent list) is: a
workspace file, a photo, or a model (a checkpoint file or a run directory). Qt-free."""
from __future__ import annotations

from pathlib import Path

from trainer.files import beside

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
OPEN_KINDS = ("workspace", "photo", "model")


def is_photo_file(path) -> bool:
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def open_kind(path) -> str:
    """"workspace" for an existing .json file, "photo" for a picture (the Invert or Translate panel
    takes it), else "model": a checkpoint or a run directory; the loader judges what it really is."""
    path = Path(path)
    if path.suffix.lower() == ".json" and path.is_file():
        return "workspace"
    if is_photo_file(path):
        return "photo"
    return "model"


def workspace_checkpoint(workspace_path, checkpoint: str) -> Path:
    """The checkpoint a workspace file names; a relative name is relative to the file's folder."""
    if not checkpoint:   # none named: the file's folder, which the loader then says holds no checkpoint
        return Path(workspace_path).parent
    return Path(beside(workspace_path, checkpoint))
