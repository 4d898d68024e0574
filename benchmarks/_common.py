"""What the speed benchmarks share: the report (its lines printed and kept for --out, the load
beside them), NVlabs' code located, the machine's measured peak and the FLOPs of a model, so every
report can say what fraction of this machine's peak a renderer reaches, measured in the same run."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nvlabs_reference  # noqa: E402


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Report:
    """say() prints a line and keeps it; write() puts them all in --out."""

    def __init__(self, threads: int):
        torch.set_num_threads(threads)
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def write(self, out) -> None:
        if out:
            Path(out).write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def nvlabs(path: str | None, say):
    """NVlabs' stylegan3 code from --nvlabs DIR or $NVLABS_STYLEGAN3, or None (the reason said)."""
    root, why = nvlabs_reference.locate(path)
    nv = nvlabs_reference.load(root) if root else None
    say(f"NVlabs: {f'{root} (commit {nv.commit}), reference ops' if nv else 'rows skipped: ' + why}")
    return nv


def best_gflops(fn, flops: float, runs: int = 5) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


def machine_peak() -> dict:
    """GFLOP/s of a plain matmul and convolution, fp32 and bf16 (the most this CPU gave)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(1, 256, 64, 64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * 256 * 256 * 9 * 64 * 64
    peak = {}
    with torch.inference_mode():
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            a_, b_, x_, w_ = (t.to(dtype) for t in (a, b, x, w))
            peak[f"matmul {name}"] = best_gflops(lambda a_=a_, b_=b_: a_ @ b_, 2 * n ** 3)
            peak[f"conv {name}"] = best_gflops(lambda x_=x_, w_=w_: torch.nn.functional.conv2d(x_, w_, padding=1),
                                               conv_flops)
    return peak


def best_peak(peak: dict, again: dict) -> dict:
    """The better of two peak measurements, key by key (the load only ever takes away)."""
    return {k: max(v, again[k]) for k, v in peak.items()}


def describe_peak(peak: dict) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in peak.items())


def of_peak(gflops: float, peak: dict, precision: str = "fp32") -> float:
    """The fraction of the peak of `precision` (the better of matmul and convolution)."""
    return gflops / max(peak[f"conv {precision}"], peak[f"matmul {precision}"])


def flops(fn) -> float:
    """The convolution and matmul FLOPs of one call of `fn()` (torch.utils.flop_counter), counted with
    grad mode on (no weight wants a gradient, so nothing is recorded): the renderers' no-grad paths
    call oneDNN ops the counter does not know (kept kernels), the model's arithmetic is the same."""
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def without_grad(G):
    """G with no parameter wanting gradients (the flop counter's module tracker trips over them)."""
    for p in G.parameters():
        p.requires_grad_(False)
    return G
