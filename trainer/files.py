"""Writing files so that a failure loses nothing, and reading safetensors headers cheaply.

A leaf module: no torch at import time, so the monitor and the CLI can rename a file or read a
checkpoint's metadata without loading PyTorch's model code.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path

STEP_IN_NAME = re.compile(r"step-(\d+)")  # samples/step-000500.png, checkpoints/step-000500.safetensors


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), then rename over `path`; a failure leaves `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); this one gets the usual umask-based mode.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path, value, indent: int = 1) -> None:
    """Atomically write `value` as JSON text (workspace, timeline and other small user files)."""
    text = json.dumps(value, indent=indent)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_safetensors(path, tensors: dict, metadata: dict[str, str]) -> None:
    """Atomically write a safetensors file of torch tensors. Serialised in memory and written with
    Python's own I/O, so a full disk is an OSError like any other write failure (safetensors' own
    file writer raises its own error type)."""
    from safetensors.torch import save
    data = save(tensors, metadata=metadata)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def looks_like_safetensors(head: bytes, file_size: int) -> bool:
    """The first bytes of a file -> whether they are a safetensors header: an 8-byte little-endian
    length, then JSON. The length's first byte can be anything (0x80 included), so check this before
    looking for a pickle's opcodes."""
    return len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= file_size - 8


def read_safetensors_metadata(path) -> dict[str, str]:
    """The string metadata of a safetensors file, reading only its JSON header (no tensors, no
    torch). Raises ValueError for a file that is not safetensors or whose header is cut short."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        if not looks_like_safetensors(head, size):
            raise ValueError(f"{path.name} is not a safetensors file")
        length = int.from_bytes(head[:8], "little")
        f.seek(8)
        header = f.read(length)
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path.name}: the safetensors header is not readable JSON (truncated?)") from None
    meta = parsed.get("__metadata__", {}) if isinstance(parsed, dict) else {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def step_from_name(path) -> int | None:
    """The training step in a run file's name (`step-000500.png` -> 500), or None."""
    match = STEP_IN_NAME.search(Path(path).stem)
    return int(match.group(1)) if match else None


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (checkpoints can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def new_run_dir(outdir, cfg) -> Path:
    """outdir/NNNNN-<preset or arch>-<data>, numbered after the runs already there."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in outdir.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    data_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(cfg.data.source).stem or cfg.data.source)
    name = f"{(max(numbers) + 1) if numbers else 0:05d}-{cfg.preset or cfg.model.arch}-{data_name}"
    run_dir = outdir / name
    run_dir.mkdir()
    return run_dir
