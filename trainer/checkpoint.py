"""Checkpoints that hold tensors and strings, never code.

Export (`.safetensors`): the EMA generator's weights and buffers plus string metadata
(format, format_version, arch, config, step, kimg, dataset). Loading picks the class from the
registry by the `arch` name, builds it from the validated config and loads weights strictly.
Resume state (`state/last.pt`): state dicts and plain values, read with weights_only=True.
Every file is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import torch

from .config import ConfigError, ModelConfig
from .models import ARCHS, build_generator

FORMAT = "ganstudio.generator"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A file that is not a usable GAN Studio checkpoint; the message says why."""


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


def export_generator(G: torch.nn.Module, path, model_cfg: ModelConfig, step: int, kimg: float,
                     dataset: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": model_cfg.arch,
                "config": json.dumps(model_cfg.to_dict(), sort_keys=True), "step": str(int(step)),
                "kimg": f"{float(kimg):.4f}", "dataset": json.dumps(dataset, sort_keys=True)}
    write_safetensors(path, tensors, metadata)


def write_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write a safetensors file. Serialised in memory and written with Python's own
    I/O, so a full disk is an OSError like any other write failure (safetensors' own file writer
    raises its own error type)."""
    from safetensors.torch import save
    data = save(tensors, metadata=metadata)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _sniff(path: Path) -> str:
    """Name the kind of a file that is not safetensors ("" for safetensors or unknown)."""
    with open(path, "rb") as f:
        head = f.read(16)
    # safetensors: an 8-byte little-endian header length, then the JSON header. The length's first
    # byte can be anything (0x80 included), so recognise this layout before looking for a pickle.
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= path.stat().st_size - 8:
        return ""
    if head[:2] == b"PK":
        return "a PyTorch/zip archive (torch.save)"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"]", b"}"):
        return "a Python pickle"
    return ""


def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Open a .safetensors export -> (tensors, metadata), or raise CheckpointError."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    kind = _sniff(path)
    if kind:
        raise CheckpointError(f"{path.name} is {kind}, not a GAN Studio checkpoint; it was not opened, "
                              "because unpickling a file can run code. Export it to .safetensors first.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file "
                              f"(truncated or corrupt?): {exc}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a safetensors file but not a GAN Studio generator "
                              f"(format = {metadata.get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path.name} has format version {metadata.get('format_version')!r}; "
                              f"this version of GAN Studio reads version {FORMAT_VERSION}")
    return tensors, metadata


def newest_checkpoint(run_dir) -> Path:
    ckpts = sorted(Path(run_dir, "checkpoints").glob("step-*.safetensors"), key=_step_of)
    if not ckpts:
        raise CheckpointError(f"run directory {run_dir} has no checkpoints yet")
    return ckpts[-1]


def _step_of(p: Path) -> int:
    try:
        return int(p.stem.split("-")[1])
    except (IndexError, ValueError):
        return -1


DISCRIMINATOR_PREFIX = "discriminator."   # an export that keeps D (imports with --with-d) stores it here


def _check_tensors(path: Path, arch: str, model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise CheckpointError(f"{path.name} does not match its {arch} config ({'; '.join(parts)})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path.name}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"the config expects {tuple(expected[name].shape)}")


def load_generator(path, device="cpu") -> torch.nn.Module:
    """Checkpoint file (or run directory: its newest checkpoint) -> EMA generator in eval mode.

    The generator carries `checkpoint_info` (step, kimg, dataset dict, config dict, path)."""
    path = Path(path)
    if path.is_dir():
        path = newest_checkpoint(path)
    tensors, metadata = read_checkpoint(path)
    arch = metadata.get("arch", "")
    if arch not in ARCHS:
        raise CheckpointError(f"{path.name} names architecture {arch!r}, which this version does not know "
                              f"(known: {', '.join(sorted(ARCHS))})")
    try:
        cfg = ARCHS[arch].config_type.from_dict(json.loads(metadata.get("config", "")))
        dataset = json.loads(metadata.get("dataset", "{}"))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path.name} has an unusable model config: {exc}") from None
    if cfg.arch != arch:
        raise CheckpointError(f"{path.name}: metadata arch {arch!r} disagrees with its config ({cfg.arch!r})")
    try:
        G = build_generator(cfg)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path.name}: cannot build the model its config describes: {exc}") from None
    if "discriminator_config" in metadata:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(DISCRIMINATOR_PREFIX)}
    _check_tensors(path, arch, G, tensors)
    G.load_state_dict(tensors, strict=True)
    G.checkpoint_info = {"path": str(path), "step": int(metadata.get("step", 0)),
                         "kimg": float(metadata.get("kimg", 0)), "dataset": dataset, "config": cfg.to_dict(),
                         "source": metadata.get("source", "")}
    return G.eval().requires_grad_(False).to(device)


def load_discriminator(path, device="cpu") -> torch.nn.Module:
    """The discriminator an export kept (imports with --with-d) -> D in eval mode, or CheckpointError."""
    path = Path(path)
    tensors, metadata = read_checkpoint(path)
    arch = metadata.get("arch", "")
    d_type = ARCHS[arch].discriminator_config_type if arch in ARCHS else None
    if d_type is None or "discriminator_config" not in metadata:
        raise CheckpointError(f"{path.name} holds no discriminator (only imports made with --with-d keep one)")
    try:
        cfg = d_type.from_dict(json.loads(metadata["discriminator_config"]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path.name} has an unusable discriminator config: {exc}") from None
    D = ARCHS[arch].make_discriminator(cfg)
    tensors = {k[len(DISCRIMINATOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(DISCRIMINATOR_PREFIX)}
    _check_tensors(path, arch, D, tensors)
    D.load_state_dict(tensors, strict=True)
    return D.eval().requires_grad_(False).to(device)


def save_state(path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path) -> dict:
    """Resume state, loaded without ever running code from the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no resume state at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain values
        raise CheckpointError(f"{path} is not a usable resume state (corrupt, truncated, or holds "
                              f"objects other than tensors and plain values): {exc}") from None
