"""Checkpoints that hold tensors and strings, never code.

Export (`.safetensors`): the EMA generator's weights and buffers plus string metadata
(format, format_version, arch, config, step, kimg, dataset). Loading picks the class from the
registry by the `arch` name, builds it from the validated config and loads weights strictly.
Resume state (`state/last.pt`): state dicts and plain values, read with weights_only=True.
Every file is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from trainer.config import ConfigError, ModelConfig
from trainer.files import JSONFileError, parse_json
from trainer.files import atomic_write, looks_like_safetensors, step_from_name, write_safetensors  # noqa: F401 (re-exported)
from trainer.models import ARCH_ALIASES, ARCHS, STYLEGAN2_COMPACT, build_generator

FORMAT = "ganstudio.generator"
FORMAT_VERSION = "1"
JSON_METADATA = ("config", "dataset", "discriminator_config")   # metadata entries that hold JSON
BYTES_PER_TRAINED_VALUE = 16   # float32 weight, its gradient and Adam's two moments


class CheckpointError(ValueError):
    """A file that is not a usable GAN Studio checkpoint; the message says why."""


def export_generator(G: torch.nn.Module, path, model_cfg: ModelConfig, step: int, kimg: float,
                     dataset: dict, extra: dict[str, str] | None = None) -> None:
    """Write G's weights and buffers with the format's metadata (plus `extra` string entries, e.g.
    an importer's `source`). The metadata records a checksum of the tensor bytes, so a damaged file
    is caught when it is loaded."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": model_cfg.arch,
                "config": json.dumps(model_cfg.to_dict(), sort_keys=True), "step": str(int(step)),
                "kimg": f"{float(kimg):.4f}", "dataset": json.dumps(dataset, sort_keys=True),
                **(extra or {}), "tensors_sha256": tensors_sha256(tensors)}
    write_safetensors(path, tensors, metadata)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _sniff(path: Path) -> str:
    """Name the kind of a file that is not safetensors ("" for safetensors or unknown)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if looks_like_safetensors(head, path.stat().st_size):
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
    for key in JSON_METADATA:   # checked once here: json's parser recurses once per nesting level
        if key in metadata:
            try:
                parse_json(metadata[key], f"its {key} metadata")
            except JSONFileError as exc:
                raise CheckpointError(f"{path.name}: {exc}") from None
    return tensors, metadata


def newest_checkpoint(run_dir) -> Path:
    """The newest step-*.safetensors of a run directory, or of its checkpoints/ folder itself (the
    folder users see the files in, and so the one they often pass)."""
    run_dir = Path(run_dir)
    for folder in (run_dir / "checkpoints", run_dir):
        ckpts = sorted(folder.glob("step-*.safetensors"), key=lambda p: step_from_name(p) or 0)
        if ckpts:
            return ckpts[-1]
    raise CheckpointError(f"{run_dir} has no checkpoints yet (no step-*.safetensors in it or in its "
                          "checkpoints/ folder); pass a run directory or a .safetensors file")


DISCRIMINATOR_PREFIX = "discriminator."   # an export that keeps D (imports with --with-d) stores it here


def load_generator(path, device="cpu") -> torch.nn.Module:
    """Checkpoint file (or run directory: its newest checkpoint) -> EMA generator in eval mode.

    The generator carries `checkpoint_info` (step, kimg, dataset dict, config dict, path, source,
    metadata, and a note when the file could not be verified)."""
    path = Path(path)
    if path.is_dir():
        path = newest_checkpoint(path)
    tensors, metadata = read_checkpoint(path)
    arch, cfg = _model_config(path, metadata, "config")
    try:
        dataset = json.loads(metadata.get("dataset", "{}"))
        if not isinstance(dataset, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise CheckpointError(f"{path.name} has unusable dataset metadata: {exc}") from None
    try:
        step, kimg = int(metadata.get("step", 0)), float(metadata.get("kimg", 0))
        if step < 0 or not math.isfinite(kimg):
            raise ValueError
    except ValueError:
        raise CheckpointError(f"{path.name} has unusable progress metadata (step {metadata.get('step')!r}, "
                              f"kimg {metadata.get('kimg')!r})") from None
    if cfg.arch != arch:
        raise CheckpointError(f"{path.name}: metadata arch {metadata.get('arch')!r} disagrees with its config "
                              f"({cfg.arch!r})")
    try:
        G = build_within_file_size(lambda: build_generator(cfg), tensors, "its config")
    except (ValueError, KeyError, ArithmeticError) as exc:   # sizes the model's arithmetic cannot use
        raise CheckpointError(f"{path.name}: cannot build the model its config describes: {exc}") from None
    own = tensors
    if "discriminator_config" in metadata:
        own = {k: v for k, v in tensors.items() if not k.startswith(DISCRIMINATOR_PREFIX)}
    _check_tensors(path, arch, G, own)                 # names and shapes first: the clearer message
    note = _verify_tensors(path, tensors, metadata)   # then the bytes, over every tensor, D's included
    G.load_state_dict(own, strict=True)
    G.checkpoint_info = {"path": str(path), "step": step, "kimg": kimg, "dataset": dataset,
                         "config": cfg.to_dict(), "source": metadata.get("source", ""),
                         "metadata": dict(metadata), "note": note}
    return G.eval().requires_grad_(False).to(device)


def _model_config(path: Path, metadata: dict[str, str], key: str):
    """The arch a checkpoint is opened as and its validated config (metadata[key]: "config", or
    "discriminator_config" with the D config type). Names of earlier versions are read as today's:
    `stylegan2-nvlabs` is `stylegan2`, and `stylegan2` written with the compact model's config
    (width, max_width ...) is `stylegan2-compact`."""
    arch = ARCH_ALIASES.get(metadata.get("arch", ""), metadata.get("arch", ""))
    if arch not in ARCHS:
        raise CheckpointError(f"{path.name} names architecture {arch!r}, which this version does not know "
                              f"(known: {', '.join(sorted(ARCHS))})")
    try:
        values = json.loads(metadata.get(key, ""))
        if isinstance(values, dict) and values.get("arch") in ARCH_ALIASES:
            values = {**values, "arch": ARCH_ALIASES[values["arch"]]}
        compact = key == "config" and isinstance(values, dict) and "width" in values and arch == "stylegan2"
        if compact:
            arch, values = STYLEGAN2_COMPACT, {**values, "arch": STYLEGAN2_COMPACT}
        config_type = ARCHS[arch].config_type if key == "config" else ARCHS[arch].discriminator_config_type
        cfg = config_type.from_dict(values)
    except (json.JSONDecodeError, ConfigError) as exc:
        what = "model" if key == "config" else "discriminator"
        raise CheckpointError(f"{path.name} has an unusable {what} config: {exc}") from None
    return arch, cfg


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


def _verify_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Refuse damaged weights: a checksum that does not match, or NaN / infinite values. Returns a
    note for a file too old to carry a checksum ("" otherwise)."""
    expected = metadata.get("tensors_sha256")
    if expected is not None and tensors_sha256(tensors) != expected:
        raise CheckpointError(f"{path.name} is damaged: its tensor data does not match the checksum written "
                              "with it (a copy cut short or altered bytes); use another copy")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path.name} holds NaN or infinite values in {name}: these weights cannot draw "
                                  "images (was it saved from a run that diverged?)")
    return "" if expected is not None else f"{path.name} has no checksum (written by an older version): not verified"


def load_discriminator(path, device="cpu") -> torch.nn.Module:
    """The discriminator an export kept (imports with --with-d) -> D in eval mode, or CheckpointError."""
    path = Path(path)
    tensors, metadata = read_checkpoint(path)
    arch = ARCH_ALIASES.get(metadata.get("arch", ""), metadata.get("arch", ""))
    if arch not in ARCHS or ARCHS[arch].discriminator_config_type is None or "discriminator_config" not in metadata:
        raise CheckpointError(f"{path.name} holds no discriminator (only imports made with --with-d keep one)")
    arch, cfg = _model_config(path, metadata, "discriminator_config")
    try:
        D = build_within_file_size(lambda: ARCHS[arch].make_discriminator(cfg), tensors, "its discriminator config")
    except ModelTooLarge as exc:
        raise CheckpointError(f"{path.name}: {exc}") from None
    own = {k[len(DISCRIMINATOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(DISCRIMINATOR_PREFIX)}
    _check_tensors(path, arch, D, own)
    _verify_tensors(path, tensors, metadata)
    D.load_state_dict(own, strict=True)
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
                              f"objects other than tensors and plain values): {_first_sentence(exc)}") from None


def _first_sentence(exc: Exception) -> str:
    """What PyTorch's refusal means, without its terminal colours and without its advice to load
    with weights_only=False (which would let the file run code)."""
    import re
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it holds a {found.group(1)} object, which is not a tensor or a plain value"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if not any(word in line for word in
                                                ("weights_only", "can still be loaded", "trust", "torch.serialization"))]
    return (kept[0] if kept else type(exc).__name__)[:300]

class ModelTooLarge(ConfigError):
    """A config describing a model larger than the file holding it, or than this machine can hold."""


def count_values(build, limit: int) -> int:
    """How many values (parameters and buffers) build() creates, counted on the meta device, where
    nothing is allocated. Stops with ModelTooLarge as soon as the count passes `limit`, so an absurd
    config (a width of 10^7, a million layers) is not even built on paper."""
    from torch.nn.modules import module as hooks
    thread, count = threading.get_ident(), 0

    def counted(module, name, tensor):
        nonlocal count
        if tensor is not None and threading.get_ident() == thread:
            count += tensor.numel()
            if count > limit:
                raise ModelTooLarge(f"{count:,} values")
    handles = [hooks.register_module_parameter_registration_hook(counted),
               hooks.register_module_buffer_registration_hook(counted)]
    try:
        with torch.device("meta"):
            build()
    finally:
        for handle in handles:
            handle.remove()
    return count


class AllocationBudget(TorchFunctionMode):
    """While active, every tensor a factory function (torch.empty, randn, zeros ...) would create is
    sized first, on the meta device, and ModelTooLarge is raised before the allocation that would
    take the total past `limit` values. Builds a model for real, but never an absurd one."""

    SIZES = {torch.eye: lambda n, m=None, *a, **k: n * (n if m is None else m),   # their meta versions
             torch.linspace: lambda start, end, steps, *a, **k: steps,           # are slow (they load
             torch.logspace: lambda start, end, steps, *a, **k: steps}           # the compiler)

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.count = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _device_constructors():
            size = self.SIZES.get(func)
            self.count += size(*args, **kwargs) if size else func(*args, **{**kwargs, "device": "meta"}).numel()
            if self.count > self.limit:
                raise ModelTooLarge(f"{self.count:,} values ({_gb(4 * self.count)} as float32)")
        return func(*args, **kwargs)


def build_within_file_size(build, tensors: dict[str, torch.Tensor], what: str) -> torch.nn.Module:
    """build() -> the model, built while its allocations stay near what the file stores;
    ModelTooLarge (naming `what`) before an allocation would go far past it (a config edited
    or damaged to describe a model of 10^9 values)."""
    stored = sum(t.numel() for t in tensors.values())
    limit = 2 * stored + 2**20   # slack for the temporaries of weight initialisation
    try:
        with AllocationBudget(limit):
            return build()
    except ModelTooLarge as exc:
        raise ModelTooLarge(f"{what} describes a model of over {exc}, but the file stores {stored:,} "
                            "values: refused before allocating it") from None

def memory_bytes() -> int:
    """This machine's physical memory in bytes (a terabyte where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**40


def check_trainable_size(builds: dict, what: str = "the config") -> int:
    """The models a run trains ({"G": build, "D": build}) -> their values, or ModelTooLarge when
    their weights, gradients and Adam moments (BYTES_PER_TRAINED_VALUE each) would not fit in this
    machine's memory. Counted on the meta device: nothing is allocated."""
    memory = memory_bytes()
    limit, total = memory // BYTES_PER_TRAINED_VALUE, 0
    for name, build in builds.items():
        try:
            total += count_values(build, limit - total)
        except ModelTooLarge as exc:
            raise ModelTooLarge(f"{what} describes a {name} of over {exc}; training it needs over "
                                f"{_gb(memory)}, this machine's memory: give a smaller resolution, width or "
                                "latent size") from None
    return total


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:,.1f} GB"
