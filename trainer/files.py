"""Writing files so that a failure loses nothing, reading JSON and safetensors headers safely, and
the lock that keeps two processes from training in one run directory.

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
MAX_JSON_DEPTH = 100            # our files nest a handful of levels; json's parser recurses once per level
MAX_JSON_BYTES = 512 * 2**20    # a workspace with W+ latents and directions is a few MB
JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
JSON_BRACKET = re.compile(r"[\[\]{}]")
RUN_LOCK_NAME = ".lock"         # in a run directory: locked while a process trains in it


class JSONFileError(ValueError):
    """JSON text that cannot be read (not UTF-8, not JSON, nested too deeply); the message names the file."""


def json_nesting_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply the brackets outside strings nest, counted up to limit + 1 (a scan, no recursion)."""
    depth = deepest = 0
    for bracket in JSON_BRACKET.findall(JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def parse_json(text: str | bytes, what: str) -> object:
    """JSON text -> its value. JSONFileError naming `what` for text that is not UTF-8 or JSON, or that
    nests deeper than MAX_JSON_DEPTH (checked before parsing: Python's parser would recurse 100,000
    levels deep for a file nested that deep)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONFileError(f"{what} is not UTF-8 text") from None
    if json_nesting_depth(text) > MAX_JSON_DEPTH:
        raise JSONFileError(f"{what} nests more than {MAX_JSON_DEPTH} levels deep: not a file GAN Studio reads")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONFileError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:   # a parser with a smaller stack than the scan assumes
        raise JSONFileError(f"{what} nests too deeply to read") from None


def read_json(path, what: str | None = None) -> object:
    """A JSON file (config, workspace, timeline) -> its value. OSError when it cannot be opened;
    JSONFileError when it is larger than MAX_JSON_BYTES or its text is unusable (parse_json)."""
    path = Path(path)
    what = what or str(path)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise JSONFileError(f"{what} is {path.stat().st_size / 2**20:.0f} MB: larger than any settings file "
                            f"GAN Studio writes (at most {MAX_JSON_BYTES // 2**20} MB)")
    return parse_json(path.read_bytes(), what)


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
        parsed = parse_json(header, f"{path.name}'s safetensors header")
    except JSONFileError as exc:
        raise ValueError(f"{exc} (truncated?)") from None
    meta = parsed.get("__metadata__", {}) if isinstance(parsed, dict) else {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def step_from_name(path) -> int | None:
    """The training step in a run file's name (`step-000500.png` -> 500), or None."""
    match = STEP_IN_NAME.search(Path(path).stem)
    return int(match.group(1)) if match else None


def beside(file, name: str) -> str:
    """A path named inside `file` (a workspace, a timeline): an absolute one as it is, a relative one
    relative to the file's folder, so the file and what it names can move together; "" stays ""."""
    return name if not name or Path(name).is_absolute() else str(Path(file).parent / name)


def recorded_source(source: str, names) -> str:
    """A data source as runs and checkpoints record it: one of the built-in `names` as it is, a path
    absolute, so the run finds it again from any folder."""
    return source if source in names else os.path.abspath(Path(source).expanduser())


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


class DirectoryInUse(ValueError):
    """A run directory another process holds the lock of; the message names that process."""


class DirectoryLock:
    """An OS lock on `directory/.lock`, held while a process works in the directory: flock on
    POSIX, msvcrt on Windows. The kernel drops it when the process ends, however it ends (SIGKILL
    included), so a killed run leaves no stale lock; the file stays and names its last holder's pid."""

    def __init__(self, directory):
        self.path = Path(directory) / RUN_LOCK_NAME
        self._file = None

    def acquire(self) -> "DirectoryLock":
        """Take the lock at once, or raise DirectoryInUse with the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a file object, not a bare descriptor: the lock goes with it if its owner is dropped unreleased
        handle = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666), "r+b", buffering=0)
        try:
            _lock_file(handle.fileno())
        except OSError:
            holder = handle.read(32).decode("ascii", "replace").strip()
            handle.close()
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise DirectoryInUse(f"{self.path.parent} is in use: {who} is training in it. Wait for it to end "
                                 "or stop it first (only one process may write a run directory)") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            _unlock_file(self._file.fileno())
            self._file.close()
            self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


if os.name == "nt":
    import msvcrt

    _LOCKED_BYTE = 1 << 20   # far from the pid at the start: Windows refuses reads of a locked range

    def _lock_file(fd: int) -> None:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        finally:
            os.lseek(fd, 0, os.SEEK_SET)

    def _unlock_file(fd: int) -> None:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
