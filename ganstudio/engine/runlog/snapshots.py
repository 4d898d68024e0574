"""Sample grids and checkpoints of a run: those its log names and those found on disk."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from trainer.events import to_float
from trainer.files import read_safetensors_metadata, step_from_name


@dataclass(frozen=True)
class Snapshot:
    """A sample grid or a checkpoint that exists on disk."""
    step: int
    kimg: float
    path: Path


def existing_snapshots(logged: list[Snapshot], folder: Path, pattern: str) -> list[Snapshot]:
    by_step = {s.step: s for s in logged if s.path.is_file()}
    if folder.is_dir():
        for path in folder.glob(pattern):
            step = step_from_name(path)
            if step is not None and step not in by_step:
                by_step[step] = Snapshot(step, math.nan, path)
    return [by_step[k] for k in sorted(by_step)]


def mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def checkpoint_step(path: Path) -> tuple[int | None, float]:
    """(step, kimg) from a .safetensors file's name or its header metadata (plain JSON)."""
    step = step_from_name(path)
    if step is not None:
        return step, math.nan
    try:
        metadata = read_safetensors_metadata(path)
        return int(metadata["step"]), to_float(metadata.get("kimg"))
    except (OSError, ValueError, KeyError):
        return None, math.nan

