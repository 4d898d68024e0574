"""Render settings measured per machine and model: precision (fp32, or bf16 autocast where the CPU
computes bf16 natively, fp16 autocast on CUDA), memory format (channels-last), thread count (CPU)
and the compiled graph.

The studio's worker measures them once after the first image of a model is on screen (Tuning.tune,
a job on the worker): every candidate renders the same probe latents, interleaved, and the fastest
whose pixels match fp32 at PSNR >= PSNR_FLOOR wins. The choice is kept per machine and model in
cache_dir()/render_settings.json, so a reopen applies it at once. The compiled graph is made on a
background thread (GANSTUDIO_RENDER_COMPILE=1: see COMPILE); the worker times it against eager on a
later frame and switches only when it is faster and its pixels match, so no frame waits for the
compiler. Qt-free; set GANSTUDIO_RENDER_PROBE=0 to render plain fp32 eager without probing or the cache.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from trainer.images import to_uint8

PROBE_ENV = "GANSTUDIO_RENDER_PROBE"   # "0": no probe, no cache: fp32, eager, threads left alone
PSNR_FLOOR = 40.0                      # dB of a setting's pixels against fp32 eager
PROBE_SEEDS = 3                        # probe latents; each round renders the next one under every candidate
PROBE_BUDGET_S = 2.0                   # timed rounds (3 to 15, after a warm-up) that fit this; the quickest is kept
# Try the compiled graph (on a background thread) after the probe: opt-in with
# GANSTUDIO_RENDER_COMPILE=1, since a process that exits while inductor compiles on another thread
# aborts ("terminate called without an active exception", seen closing the studio mid-compile).
COMPILE = os.environ.get("GANSTUDIO_RENDER_COMPILE", "0") == "1"
FIXED_THREADS = False                  # the user chose the thread count (ganstudio --threads N): keep it
MARGIN = 0.95                          # a setting replaces the default only when this much faster (noise)
SLOW_FRAME_MS = 3.0                    # below this an fp32 frame is kept as it is: no probe, no compiling
# The probe's rules (candidates, SLOW_FRAME_MS, MARGIN): a cached choice made under other rules is
# measured again. Rules 2 added the fast-frame rule; choices cached before it chose bf16 for the demo,
# whose bf16 frames are slower than fp32 ones (8.5 against 4.7 ms, benchmarks/README.md).
PROBE_RULES = 2


@dataclass(frozen=True)
class RenderSettings:
    bf16: bool = False            # synthesis under bf16 autocast (CPU)
    channels_last: bool = False   # the synthesis weights (and so its activations) channels-last
    compiled: bool = False        # torch.compile'd synthesis
    threads: int = 0              # intra-op threads; 0 = as the process has them
    speedup: float = 1.0          # measured against fp32 eager at the process's thread count
    psnr: float = math.inf        # dB of its pixels against fp32 eager on the probe images
    measured: bool = False        # False: defaults, nothing measured
    fp16: bool = False            # synthesis under fp16 autocast (CUDA)

    def label(self) -> str:
        """'bf16, channels-last, 1 thread'"""
        parts = ["bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"] + ["channels-last"] * self.channels_last + ["compiled"] * self.compiled
        if self.threads:
            parts.append(f"{self.threads} thread{'s' * (self.threads != 1)}")
        return ", ".join(parts)

    def describe(self, device: str) -> str:
        """'rendering on cpu: bf16, channels-last, 1 thread (measured 2.1x fp32)'"""
        note = f"measured {self.speedup:.1f}x fp32" if self.measured else "not measured"
        return f"rendering on {device}: {self.label()} ({note})"

    def autocast(self):
        if self.fp16:   # no weight cache: it would hold casts made while a CUDA graph is captured
            return torch.autocast("cuda", torch.float16, cache_enabled=False)
        return torch.autocast("cpu", torch.bfloat16) if self.bf16 else contextlib.nullcontext()


def probing_enabled() -> bool:
    return os.environ.get(PROBE_ENV, "1") != "0"


def tunable(device: str, half: bool = False) -> bool:
    """Devices the probe measures settings on: the CPU, and CUDA (fp16, channels-last), unless
    Render > Half precision made the weights fp16 already."""
    return not half and (str(device) == "cpu" or str(device).startswith("cuda"))


def native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), so oneDNN runs bf16 convolutions
    natively instead of converting to fp32."""
    cpu = torch.cpu
    return torch.backends.mkldnn.is_available() and (cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


def machine_key(device: str = "cpu") -> str:
    """What the settings were measured on: the CPU, its cores and the torch build (and the GPU)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    gpu = f" {torch.cuda.get_device_name(device)}" if str(device).startswith("cuda") else ""
    return f"{name} x{os.cpu_count()} torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}{gpu}"


def candidates(device: str, bf16: bool | None = None) -> list[RenderSettings]:
    """fp32 first (the default), then the precision the device computes natively in 16 bits (fp16
    on CUDA; bf16 on a CPU with native bf16, or as `bf16` says), each in both memory formats."""
    cuda = str(device).startswith("cuda")
    short = ({"fp16": True},) if cuda else ({"bf16": True},) if (native_bf16() if bf16 is None else bf16) else ()
    return [RenderSettings(channels_last=cl, **p) for p in ({}, *short) for cl in (False, True)]


def cache_file():
    from trainer.data.datasets import cache_dir
    return cache_dir() / "render_settings.json"


def read_cached(key: str) -> RenderSettings | None:
    try:
        stored = json.loads(cache_file().read_text(encoding="utf-8")).get(key)
        if not stored or stored.pop("rules", 1) != PROBE_RULES:
            return None
        return RenderSettings(**stored)
    except (OSError, ValueError, TypeError):
        return None   # a missing or damaged cache only costs a probe


def write_cached(key: str, settings: RenderSettings) -> None:
    from trainer.files import atomic_write
    path = cache_file()
    try:
        table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        table = {}
    table[key] = {k: (None if v == math.inf else v) for k, v in asdict(settings).items()}
    if table[key]["psnr"] is None:
        del table[key]["psnr"]
    table[key]["rules"] = PROBE_RULES
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=1)
    try:
        atomic_write(path, write)
    except OSError:
        pass


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """dB between two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def set_channels_last(module: torch.nn.Module, on: bool) -> None:
    """4-D weights channels-last (oneDNN then keeps the activations so) or back, in place; outside
    inference mode, so the weights stay usable by autograd (inversion)."""
    fmt = torch.channels_last if on else torch.contiguous_format
    with torch.inference_mode(False), torch.no_grad():
        for p in module.parameters():
            if p.ndim == 4 and not p.is_contiguous(memory_format=fmt):
                p.data = p.data.contiguous(memory_format=fmt)


@contextlib.contextmanager
def threads(count: int):
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def thread_counts() -> tuple[int, ...]:
    """1, 2 and every core (where there are that many)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return tuple(sorted({1, min(2, cores), cores}))


def measure(G, ws_list, candidates, progress=lambda f, m: None):
    """Render the probe latents in turn under each candidate, interleaved rounds so that load
    changes hit all alike -> {settings: (quickest ms, worst PSNR against fp32 eager)}."""
    with torch.inference_mode():
        reference = [to_uint8(G.synthesis(ws, noise_mode="const")) for ws in ws_list]
    times = {c: [] for c in candidates}
    worst = {c: math.inf for c in candidates}
    rounds, round_ = len(ws_list), 0
    while round_ < rounds + 1:   # round 0 warms up (allocations, oneDNN kernel choice)
        index = round_ % len(ws_list)
        for c in candidates:
            set_channels_last(G.synthesis, c.channels_last)
            with threads(c.threads), torch.inference_mode(), c.autocast():
                start = time.perf_counter()
                image = to_uint8(G.synthesis(ws_list[index], noise_mode="const"))
                times[c].append(1000 * (time.perf_counter() - start))
            worst[c] = min(worst[c], psnr(image, reference[index]))
        if round_ == 0:   # as many rounds as fit the budget, at least every probe latent once
            rounds = max(rounds, min(15, int(PROBE_BUDGET_S * 1000 / sum(t[0] for t in times.values()))))
        round_ += 1
        progress(round_ / (rounds + 1), "measuring render settings")
    return {c: (min(times[c][1:]), worst[c]) for c in candidates}   # the quickest: load only ever adds


def fp32_frame_ms(G, ws, renders: int = 3) -> float:
    """The quickest of a few fp32 eager renders after a warm-up (load only ever adds); to the host,
    so a GPU's queue is included."""
    times = []
    with torch.inference_mode():
        for _ in range(renders + 1):
            start = time.perf_counter()
            to_uint8(G.synthesis(ws, noise_mode="const"))
            times.append(1000 * (time.perf_counter() - start))
    return min(times[1:])


def fastest(results: dict, default: RenderSettings) -> RenderSettings:
    """The fastest candidate whose pixels match fp32; the default unless one beats it by MARGIN."""
    fits = {c: ms for c, (ms, db) in results.items() if db >= PSNR_FLOOR}
    best = min(fits, key=fits.get)
    return best if fits[best] < MARGIN * results[default][0] else default


class Tuning:
    """The render settings of the open model, and its compiled synthesis when that wins."""

    def __init__(self,
                 force_compile: bool = False,   # Renderer(compile=True): always compiled, made on first use
                 device: str = "cpu"):
        self.force_compile, self.device = force_compile, device
        self.settings = RenderSettings()
        self.log: list[str] = []       # what the last probe measured, a line per candidate
        self._compiled = None          # (synthesis module, its compiled form or None)
        self._trial = None             # (synthesis module, compiled form) warm, not yet timed against eager
        self._probe_ws = None          # the first probe latent's final ws: the compiled trial renders it
        self._key = ""                 # the cache entry of the model tuned

    def reset(self) -> None:
        """A new model (or device): defaults until it is tuned."""
        self.settings, self._compiled, self._trial, self.log = RenderSettings(), None, None, []

    def synthesis(self, G, armed: bool = False):
        """What renders now: the compiled synthesis when chosen (never while hooks are armed)."""
        if armed or not (self.force_compile or self.settings.compiled):
            return G.synthesis
        if self.force_compile and (self._compiled is None or self._compiled[0] is not G.synthesis):
            self._compiled = (G.synthesis, compile_synthesis(G.synthesis, self.device))
        return self._compiled[1] if self._compiled and self._compiled[0] is G.synthesis else G.synthesis

    def autocast(self, armed: bool = False):
        """The precision to render in; fp32 while the layer view's hooks are armed."""
        return contextlib.nullcontext() if armed else self.settings.autocast()

    def broken(self, G) -> None:
        """The compiled form raised: eager from now on."""
        self._compiled = (G.synthesis, None)
        self.settings = replace(self.settings, compiled=False)

    def tune(self, G, ws_list, key: str, progress=lambda f, m: None, compile_allowed: bool = True) -> RenderSettings:
        """Apply the cached choice for `key`, or measure the candidates and keep the fastest that
        matches fp32; then start compiling in the background where a frame is slow enough to pay."""
        self._probe_ws, self._key = ws_list[0], key
        cached = read_cached(key)
        if cached is not None:
            self._apply(G, replace(cached, compiled=False))
            if cached.compiled and compile_allowed and COMPILE:
                self._compile_in_background(G, ws_list[0])
            return self.settings
        if fp32_frame_ms(G, ws_list[0]) < SLOW_FRAME_MS:   # nothing worth changing pixels for
            self._apply(G, RenderSettings(measured=True))
            write_cached(key, self.settings)
            return self.settings
        tried = candidates(self.device)
        results = measure(G, ws_list, tried, progress)
        best = fastest(results, tried[0])
        speedup = results[tried[0]][0] / results[best][0]
        if str(self.device) == "cpu":   # thread counts for the winner only: they change speed, not pixels
            now = replace(best, threads=torch.get_num_threads())
            counts = () if FIXED_THREADS else thread_counts()
            more = measure(G, ws_list, [replace(best, threads=n) for n in sorted({now.threads, *counts})], progress)
            best = fastest(more, now)
            speedup *= more[now][0] / more[best][0]
            results.update(more)
        db = results[best][1]
        self.log = [f"{c.label()}: {r[0]:.1f} ms, PSNR {r[1]:.1f} dB" for c, r in results.items()]
        self._apply(G, replace(best, speedup=speedup, psnr=db, measured=True))
        write_cached(key, self.settings)
        if compile_allowed and COMPILE:
            self._compile_in_background(G, ws_list[0])
        return self.settings

    def _apply(self, G, settings: RenderSettings) -> None:
        set_channels_last(G.synthesis, settings.channels_last)
        if FIXED_THREADS and settings.threads:   # a cached count gives way to the user's
            settings = replace(settings, threads=torch.get_num_threads())
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.settings = settings

    def _compile_in_background(self, G, ws) -> None:
        synthesis, settings = G.synthesis, self.settings

        def work():
            try:
                compiled = compile_synthesis(synthesis, "cpu")
                with torch.inference_mode(), settings.autocast():
                    for _ in range(2):   # the first call compiles, the second settles
                        compiled(ws, noise_mode="const")
                self._trial = (synthesis, compiled)
            except Exception:  # noqa: BLE001 - a compiler that fails here: eager stays
                self._trial = None

        # not a daemon: torch aborts the process when it exits in the middle of a compile, so an exit
        # waits for the compiler instead (seconds with inductor's on-disk cache warm)
        threading.Thread(target=work, name="compile synthesis").start()

    @property
    def trial_ready(self) -> bool:
        return self._trial is not None

    def try_compiled(self, G) -> bool:
        """On the worker, between frames: time the warm compiled synthesis against eager on the
        probe latent and switch to it when faster with matching pixels. True when switched."""
        trial, self._trial = self._trial, None
        if trial is None or trial[0] is not G.synthesis:
            return False
        images, times = {}, {"eager": [], "compiled": []}
        with torch.inference_mode(), self.settings.autocast():
            for _ in range(5):
                for name, fn in (("eager", G.synthesis), ("compiled", trial[1])):
                    start = time.perf_counter()
                    images[name] = to_uint8(fn(self._probe_ws, noise_mode="const"))
                    times[name].append(time.perf_counter() - start)
        eager_ms, compiled_ms = (1000 * min(times[n][1:]) for n in ("eager", "compiled"))
        if compiled_ms >= eager_ms or psnr(images["eager"], images["compiled"]) < PSNR_FLOOR:
            self.log.append(f"compiled: {compiled_ms:.1f} ms against eager {eager_ms:.1f} ms: not used")
            return False
        self._compiled = trial
        self.settings = replace(self.settings, compiled=True, speedup=self.settings.speedup * eager_ms / compiled_ms)
        self.log.append(f"compiled: {compiled_ms:.1f} ms against eager {eager_ms:.1f} ms")
        write_cached(self._key, self.settings)
        return True


def compile_synthesis(synthesis, device: str):
    """torch.compile'd synthesis; on CUDA, mode reduce-overhead records CUDA graphs per batch shape."""
    mode = "reduce-overhead" if str(device).startswith("cuda") else None
    return torch.compile(synthesis, mode=mode, dynamic=False)
