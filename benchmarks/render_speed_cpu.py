"""CPU rendering against the machine's peak and against NVlabs' own code, in one process.

  peak       a plain matmul (2048 x 2048) and a 3x3 convolution (256 -> 256 channels at 64 px,
             channels-last) in fp32 and bf16: the best of a few runs, GFLOP/s, measured at the start and
             after each model; the best of all is the peak (the load only ever takes away)
  per model  the studio's synthesis (ws -> image, batch 1, const noise) under each render setting
             (engine/render_settings.py): fp32, bf16 autocast, channels-last, both, the compiled
             graph (--compile MODEL ...: compiling a 256 px model takes minutes on a busy CPU) and
             the setting the studio's probe chooses here; NVlabs' synthesis (their stylegan3
             repository, reference ops) with the same weights when --nvlabs DIR or
             $NVLABS_STYLEGAN3 is given. Each row: ms per image (median and quickest of --reps
             interleaved rounds), achieved GFLOP/s of the quickest (the model's convolution and matmul FLOPs counted by
             torch.utils.flop_counter on our fp32 run, the same count for every row), the fraction
             of the peak of its precision (the better of matmul and convolution), PSNR
             of the uint8 image against our fp32 one, and ms / NVlabs' ms (median, quickest).
  models     the bundled demo (compact StyleGAN2, 32 px); StyleGAN2 256 px with NVlabs' paper256
             widths (min(16384 / r, 512), z = w = 512, 8 mapping layers); StyleGAN3-T 256 px with
             NVlabs' default widths / 8 (channel_base) and / 4 (channel_max), as generator_speed.py.
             Random weights where not the demo (weights do not change the speed).

  python benchmarks/render_speed_cpu.py [--nvlabs DIR] [--threads 1] [--reps 5] [--models demo sg2-256 sg3t-256]
                                        [--compile demo] [--out FILE]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (Report, best_peak, describe_peak, flops, load_average, machine_peak, nvlabs,  # noqa: E402
                     of_peak, without_grad)
import nvlabs_reference  # noqa: E402
from ganstudio.engine import render_settings as rs  # noqa: E402
from trainer.images import to_uint8  # noqa: E402
from trainer.latents import LatentMapper, LatentState  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("demo", "sg2-256", "sg3t-256")


def build(name: str):
    from trainer import load_generator
    if name == "demo":
        return load_generator(ROOT / "assets" / "demo", device="cpu").eval()
    torch.manual_seed(0)
    if name == "sg2-256":
        from trainer.models.stylegan2_nvlabs import NVlabsGenerator, NVlabsGeneratorConfig
        return NVlabsGenerator(NVlabsGeneratorConfig(z_dim=512, w_dim=512, img_resolution=256, layer_features=512,
                                                     channel_base=16384, channel_max=512)).eval()
    from trainer.models.stylegan3 import StyleGAN3Generator, StyleGAN3GeneratorConfig
    base = StyleGAN3GeneratorConfig.for_arch("stylegan3-t")
    return StyleGAN3Generator(StyleGAN3GeneratorConfig.for_arch(
        "stylegan3-t", z_dim=512, w_dim=512, img_resolution=256, channel_base=base.channel_base // 8,
        channel_max=base.channel_max // 4)).eval()


def model_flops(G, ws) -> float:
    return flops(lambda: without_grad(G).synthesis(ws, noise_mode="const"))


class Row:
    """One way of drawing the model: a callable on ws under settings (format, threads, precision). A
    row of our model draws its own copy, set to its memory format once, so what it keeps between
    frames (converted kernels) stays as in the studio, which renders with one setting."""

    def __init__(self, name, G, settings: rs.RenderSettings, fn=None):
        self.name, self.settings = name, settings
        self.G = copy.deepcopy(G) if G is not None and fn is None else G
        if self.G is not None:
            rs.set_channels_last(self.G.synthesis, settings.channels_last)
        self.fn = self.G.synthesis if fn is None else fn
        self.times: list[float] = []
        self.image = None

    def run(self, ws) -> float:
        if self.G is not None:   # a no-op but for a compiled row, which draws the shared model
            rs.set_channels_last(self.G.synthesis, self.settings.channels_last)
        with rs.threads(self.settings.threads), torch.inference_mode(), self.settings.autocast():
            start = time.perf_counter()
            image = to_uint8(self.fn(ws, noise_mode="const"))
            elapsed = time.perf_counter() - start
        self.image = image if self.image is None else self.image
        return 1000 * elapsed


def chosen_settings(G, ws) -> tuple[rs.RenderSettings, list[str]]:
    """What the studio's probe picks for this model here (a fresh cache, no compiling)."""
    with tempfile.TemporaryDirectory() as cache:
        before = os.environ.get("GANSTUDIO_CACHE"), torch.get_num_threads()
        os.environ["GANSTUDIO_CACHE"] = cache
        try:
            tuning = rs.Tuning()
            settings = tuning.tune(G, [ws] * rs.PROBE_SEEDS, "benchmark", compile_allowed=False)
        finally:
            os.environ.pop("GANSTUDIO_CACHE") if before[0] is None else os.environ.update(GANSTUDIO_CACHE=before[0])
            torch.set_num_threads(before[1])
            rs.set_channels_last(G.synthesis, False)
    return settings, tuning.log


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nvlabs", default=None, help=f"NVlabs stylegan3 checkout (default: ${nvlabs_reference.ENV})")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--compile", nargs="*", default=["demo"], choices=MODELS, help="models to time compiled too")
    p.add_argument("--out", default=None, help="also write the report to this file")
    args = p.parse_args()
    report_ = Report(args.threads)
    say = report_.say
    say(f"torch {torch.__version__}, {args.threads} thread(s) unless a row says otherwise; {os.cpu_count()} cores "
        f"({rs.machine_key()}); native bf16: {rs.native_bf16()}; load average before {load_average()}")
    nv = nvlabs(args.nvlabs, say)
    peak, tables = machine_peak(), []
    for name in args.models:
        G = build(name)
        mapper, state = LatentMapper(G, "cpu"), LatentState(seed=1)
        with torch.inference_mode():
            ws = mapper.finish(mapper.untruncated_ws([state]), [state])
        flops = model_flops(G, ws)
        chosen, log = chosen_settings(G, ws)
        rows = [Row(s.label(), G, s) for s in (rs.RenderSettings(threads=args.threads),
                                               rs.RenderSettings(bf16=True, threads=args.threads),
                                               rs.RenderSettings(channels_last=True, threads=args.threads),
                                               rs.RenderSettings(bf16=True, channels_last=True, threads=args.threads))]
        rows.append(Row(f"chosen: {chosen.label()}", G, chosen))
        if name in args.compile:
            compiled = replace(chosen, compiled=True)
            start = time.perf_counter()
            row = Row(f"compiled: {compiled.label()}", G, compiled, rs.compile_synthesis(G.synthesis, "cpu"))
            row.run(ws)
            say(f"{name}: compiling took {time.perf_counter() - start:.0f} s")
            rows.append(row)
        if nv is not None and name != "demo":   # the demo is the compact look-alike: NVlabs has no twin
            theirs = nvlabs_reference.generator(nv, G).eval()
            say(f"{name}: |ours - NVlabs| {nvlabs_reference.check_generators(G, theirs):.1e}")
            rows.append(Row("NVlabs (fp32)", None, rs.RenderSettings(threads=args.threads), theirs.synthesis))
        for row in rows:   # warm-up: allocations, oneDNN kernel choice
            row.run(ws)
        for _ in range(args.reps):   # interleaved, so load changes hit every row alike
            for row in rows:
                row.times.append(row.run(ws))
        peak = best_peak(peak, machine_peak())   # load varies
        tables.append((name, flops, log, rows, os.getloadavg()[0]))
    say("peak GFLOP/s, the best of every measurement in this run: " + describe_peak(peak))
    for name, flops, log, rows, load in tables:
        report(say, name, flops, log, rows, peak, load)
    say(f"load average after {load_average()}")
    report_.write(args.out)


def report(say, name, flops, log, rows, peak, load):
    say(f"\n{name}: {flops / 1e9:.2f} GFLOP per image; the probe measured: {'; '.join(log) or 'nothing'}")
    say(f"{'setting':44s} {'median':>7s} {'min ms':>7s} {'GFLOP/s':>8s} {'of peak':>8s} {'PSNR dB':>8s} "
        f"{'/NVlabs':>8s} {'(min)':>6s}")
    theirs = rows[-1] if rows[-1].G is None else None
    for row in rows:
        ms, quickest = statistics.median(row.times), min(row.times)
        gflops = flops / quickest / 1e6   # the quickest run, as the peak: load only ever takes away
        fraction = of_peak(gflops, peak, "bf16" if row.settings.bf16 else "fp32")
        db = rs.psnr(row.image, rows[0].image)
        ratio = (f"{ms / statistics.median(theirs.times):8.2f} {quickest / min(theirs.times):6.2f}" if theirs
                 else f"{'-':>8s} {'-':>6s}")
        say(f"{row.name:44s} {ms:7.1f} {quickest:7.1f} {gflops:8.1f} {fraction:8.0%} {db:8.1f} {ratio}")
    say(f"(load average {load:.2f} after its rows)")


if __name__ == "__main__":
    main()
