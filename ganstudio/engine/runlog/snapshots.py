"""Sample grids and checkpoints of a run: those its log names and those found on disk."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from trainer.events import to_float

STEP_IN_NAME = re.compile(r"step-(\d+)")


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
            match = STEP_IN_NAME.search(path.stem)
            if match and int(match.group(1)) not in by_step:
                by_step[int(match.group(1))] = Snapshot(int(match.group(1)), math.nan, path)
    return [by_step[k] for k in sorted(by_step)]


def mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def checkpoint_step(path: Path) -> tuple[int | None, float]:
    """(step, kimg) from a .safetensors file's name or its header metadata (plain JSON)."""
    match = STEP_IN_NAME.search(path.stem)
    if match:
        return int(match.group(1)), math.nan
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < (1 << 24):
                return None, math.nan
            metadata = json.loads(f.read(size)).get("__metadata__", {}) or {}
        return int(metadata["step"]), to_float(metadata.get("kimg"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, math.nan

