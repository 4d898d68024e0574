"""What makes each training process fast: mixed precision, channels-last memory order and
torch.compile, each an option of TrainConfig, each falling back with a message where the
device or the machine cannot do it.

Mixed precision follows StyleGAN2-ADA: autocast around G's and D's main forward passes (losses
in fp32), fp16 with a gradient scaler per network, bf16 without one; the regularisation passes
(R1, path length) stay fp32, and the style-based models keep their lowest resolutions in fp32
and clamp activations (trainer.models.stylegan2).
"""
from __future__ import annotations

import contextlib
import functools

import torch

CLAMP = 256.0   # activation bound in low precision (NVlabs' conv_clamp)


def resolve_precision(requested: str, device: torch.device) -> str:
    """fp32 | bf16 | fp16 for a requested precision on a device ('auto' picks)."""
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"   # bf16 pays on CPUs with AMX / AVX512-BF16 only: there, ask for it by name
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("--precision bf16: this GPU has no bf16 arithmetic; use --precision fp16 or auto")
    return requested


class Precision:
    """The autocast context, gradient scalers and memory format of one training process."""

    def __init__(self, requested: str, channels_last: bool, device: torch.device):
        self.device = device
        self.mode = resolve_precision(requested, device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)
        self.channels_last = channels_last

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler for fp16 (one per optimiser); a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.mode == "fp16")

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module


@functools.lru_cache(maxsize=None)
def compile_problem() -> str:
    """'' when torch.compile works here; otherwise why not (inductor needs a C++ compiler on CPU,
    Triton on GPU). Tried once per process on a tiny function."""
    try:
        fn = torch.compile(lambda x: torch.nn.functional.leaky_relu(x * 2 + 1, 0.2))
        fn(torch.randn(8))
    except Exception as exc:  # noqa: BLE001 - any failure means: run eager
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
    return ""


def maybe_compile(module: torch.nn.Module, enabled: bool, log) -> torch.nn.Module:
    """torch.compile(module) when asked and it works here; else the module, with a message."""
    if not enabled:
        return module
    problem = compile_problem()
    if problem:
        log(f"--compile: torch.compile does not work on this machine ({problem}); training runs eager")
        return module
    return torch.compile(module)
