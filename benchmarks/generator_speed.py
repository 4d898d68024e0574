"""Generator speed: ms per image of our NVlabs-exact StyleGANs against NVlabs' own code on its
CPU reference path, in one process, at the same widths and with the same weights (the outputs
are checked to agree before anything is timed). Columns:

  ours       our model as shipped (`stylegan2`, `stylegan3-t`, `stylegan3-r`)
  NVlabs     NVlabs' stylegan3 repository (training/networks_stylegan2.py / networks_stylegan3.py,
             torch_utils ops on their 'ref' path: no CUDA plugins on a CPU), from --nvlabs DIR or
             $NVLABS_STYLEGAN3 (`git clone https://github.com/NVlabs/stylegan3`); without a
             checkout these rows are skipped and the reason printed
  nv-path    StyleGAN2 only: our model forced onto NVlabs' inference path (per-sample weights in
             one grouped convolution, stride-2 transposed convolution, then the FIR), plain PyTorch
  compact    StyleGAN2 only: the older look-alike `stylegan2-compact` (bilinear, unfused)
  bf16       ours with the synthesis under bf16 autocast and the mapping in fp32, as the studio renders
             where the CPU has native bf16 (CPU only), with its PSNR against ours in fp32 (uint8 images)
  CPU-time   at the end of a row: ours / NVlabs and bf16 / NVlabs in this thread's CPU time (medians),
             which leaves out the time other jobs held the core (a loaded machine moves wall times a lot)
  GFLOP/s    of the quicker of ours and bf16 (convolution and matmul FLOPs of G(z), torch.utils.flop_counter),
             and its fraction of the machine's peak in its precision (a plain matmul and 3x3 convolution
             measured at the start and the end of this run: the better of the two)

Widths: StyleGAN2 as NVlabs' cifar / paper256 configurations (feature maps min(16384 / r, 512),
z = w = 512, 8 mapping layers); StyleGAN3 NVlabs' defaults (channel_base 32768, channel_max 512;
-R twice both, 1x1 kernels) divided by --sg3-divide (8, 4 by default, so that 256 px fits a
shared CPU), z = w = 512, 2 mapping layers. Each time is the median of --reps interleaved runs
of G(z) (mapping + synthesis) under torch.inference_mode(), after one warm-up run each.

  python benchmarks/generator_speed.py [--nvlabs DIR] [--threads 1] [--models stylegan2 stylegan3-t stylegan3-r]
                                       [--resolutions 32 64 256] [--batches 1 8] [--reps 3] [--out FILE]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (Report, best_peak, describe_peak, flops, load_average, machine_peak, nvlabs,  # noqa: E402
                     of_peak, without_grad)
import nvlabs_reference  # noqa: E402
from ganstudio.engine.render_settings import native_bf16, psnr  # noqa: E402
from trainer.images import to_uint8  # noqa: E402
import trainer.models.nvlabs_ops as nv_ops  # noqa: E402 (the execution switches)
from trainer.models.stylegan2 import StyleGAN2Generator  # noqa: E402
from trainer.models.stylegan2_nvlabs import NVlabsGenerator, NVlabsGeneratorConfig  # noqa: E402
from trainer.models.stylegan3 import StyleGAN3Generator, StyleGAN3GeneratorConfig  # noqa: E402

CHANNEL_BASE, CHANNEL_MAX, LATENT = 16384, 512, 512
MODELS = ("stylegan2", "stylegan3-t", "stylegan3-r")


def build(model: str, res: int, divide: tuple[int, int]) -> dict:
    """name -> (generator, execution) for one model and size; NVlabs' twin is added by the caller."""
    if model == "stylegan2":
        exact = NVlabsGenerator(NVlabsGeneratorConfig(z_dim=LATENT, w_dim=LATENT, img_resolution=res,
                                                      layer_features=LATENT, channel_base=CHANNEL_BASE,
                                                      channel_max=CHANNEL_MAX)).eval()
        compact = StyleGAN2Generator(LATENT, 0, LATENT, res, 3, width=CHANNEL_BASE // res, max_width=CHANNEL_MAX,
                                     mapping_layers=8).eval()
        return {"ours": (exact, "fastest"), "bf16": (exact, "bf16"), "nv-path": (exact, "nvlabs"),
                "compact": (compact, "fastest")}
    defaults = StyleGAN3GeneratorConfig.for_arch(model)
    cfg = StyleGAN3GeneratorConfig.for_arch(model, z_dim=LATENT, w_dim=LATENT, img_resolution=res,
                                            channel_base=defaults.channel_base // divide[0],
                                            channel_max=defaults.channel_max // divide[1])
    G = StyleGAN3Generator(cfg).eval()
    return {"ours": (G, "fastest"), "bf16": (G, "bf16")}


def time_once(G, z, c, execution: str, device: str, images: dict, name: str) -> tuple[float, float]:
    """One G(z) under `execution` ("bf16": ours, the synthesis under bf16 autocast) -> (wall, this thread's
    CPU seconds); the first image of each row is kept."""
    nv_ops.EXECUTION = "fastest" if execution == "bf16" else execution
    try:
        if device == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.thread_time()
        if execution == "bf16":
            ws = G.mapping(z, c)
            with torch.autocast("cpu", torch.bfloat16):   # the mapping stays fp32, as in the studio
                image = G.synthesis(ws, noise_mode="const")
        else:
            image = G(z, c, noise_mode="const")
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start, time.thread_time() - cpu
        images.setdefault(name, to_uint8(image))
        return elapsed
    finally:
        nv_ops.EXECUTION = "fastest"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nvlabs", default=None, help=f"NVlabs stylegan3 checkout (default: ${nvlabs_reference.ENV})")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--resolutions", nargs="+", type=int, default=[32, 64, 256])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sg3-divide", nargs=2, type=int, default=[8, 4], metavar=("BASE", "MAX"),
                   help="StyleGAN3 widths: NVlabs' channel_base / BASE, channel_max / MAX")
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    p.add_argument("--out", default=None, help="also write the report to this file")
    args = p.parse_args()
    report = Report(args.threads)
    say = report.say
    nv = nvlabs(args.nvlabs, say)
    devices = [d for d in args.devices if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    say(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), devices: {', '.join(devices)}; "
        f"{os.cpu_count()} cores, native bf16: {native_bf16()}, load average before {load_average()}")
    peak = machine_peak()
    say(f"stylegan2 widths min({CHANNEL_BASE}/r, {CHANNEL_MAX}); stylegan3 NVlabs' defaults with channel_base / "
        f"{args.sg3_divide[0]}, channel_max / {args.sg3_divide[1]}; z = w = {LATENT}")
    say(f"{'model':11s} {'device':6s} {'res':>4s} {'batch':>5s} {'ours':>9s} {'NVlabs':>9s} {'ours/NV':>7s} "
        f"{'nv-path':>9s} {'compact':>9s} {'bf16':>9s} {'bf16/NV':>7s} {'PSNR':>5s} {'GFLOP/s':>8s} {'of peak':>7s}"
        f"   (ms per image, median of {args.reps}; |ours - NVlabs|)")
    rows = []
    for model in args.models:
        for device in devices:
            for res in args.resolutions:
                runs = {name: (G.to(device), ex) for name, (G, ex) in build(model, res, tuple(args.sg3_divide)).items()
                        if not (ex == "bf16" and device != "cpu")}
                diff = ""
                if nv is not None:
                    ours = runs["ours"][0]
                    theirs = nvlabs_reference.generator(nv, ours).eval().to(device)
                    diff = f"{nvlabs_reference.check_generators(ours, theirs):.1e}"
                    runs["NVlabs"] = (theirs, "fastest")
                for batch in args.batches:
                    z = torch.randn(batch, LATENT, device=device)
                    c = torch.zeros(batch, 0, device=device)
                    times, cpu, images = {name: [] for name in runs}, {name: [] for name in runs}, {}
                    with torch.inference_mode():
                        for name, (G, execution) in runs.items():   # warm-up: allocations, caches, kernel choice
                            time_once(G, z, c, execution, device, images, name)
                        for _ in range(args.reps):           # interleaved, so load changes hit all rows alike
                            for name, (G, execution) in runs.items():
                                wall, cpu_s = time_once(G, z, c, execution, device, images, name)
                                times[name].append(wall)
                                cpu[name].append(cpu_s)
                    count = flops(lambda: without_grad(runs["ours"][0])(z, c, noise_mode="const")) / batch
                    rows.append((model, device, res, batch, times, cpu, images, count, diff, os.getloadavg()[0]))
    peak = best_peak(peak, machine_peak())   # the load only ever takes away
    say_rows(say, rows, peak)
    say(f"peak GFLOP/s, the better of the start and the end of this run: {describe_peak(peak)}")
    say(f"load average after {load_average()}")
    report.write(args.out)


def say_rows(say, rows, peak) -> None:
    for model, device, res, batch, times, cpu, images, count, diff, load in rows:
        ms = {name: 1000 * statistics.median(t) / batch for name, t in times.items()}
        cell = {name: f"{ms[name]:9.1f}" if name in ms else f"{'-':>9s}"
                for name in ("ours", "NVlabs", "nv-path", "compact", "bf16")}
        ratio = {name: f"{ms[name] / ms['NVlabs']:7.2f}" if name in ms and "NVlabs" in ms else f"{'-':>7s}"
                 for name in ("ours", "bf16")}
        on_cpu = {name: statistics.median(t) for name, t in cpu.items()}   # not counting time other jobs took
        cpu_ratio = " ".join(f"{on_cpu[name] / on_cpu['NVlabs']:.2f}" if name in on_cpu and "NVlabs" in on_cpu
                             else "-" for name in ("ours", "bf16"))
        db = f"{psnr(images['bf16'], images['ours']):5.1f}" if "bf16" in images else f"{'-':>5s}"
        best = min((n for n in ("ours", "bf16") if n in times), key=lambda n: min(times[n]))
        gflops = count * batch / min(times[best]) / 1e9   # the quickest run, as the peak: load only takes away
        fraction = of_peak(gflops, peak, "bf16" if best == "bf16" else "fp32") if device == "cpu" else float("nan")
        say(f"{model:11s} {device:6s} {res:4d} {batch:5d} {cell['ours']} {cell['NVlabs']} {ratio['ours']} "
            f"{cell['nv-path']} {cell['compact']} {cell['bf16']} {ratio['bf16']} {db} {gflops:8.1f} {fraction:7.0%}"
            f"   {diff} (load {load:.2f}; CPU-time ours/NV, bf16/NV {cpu_ratio})")


if __name__ == "__main__":
    main()
