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
import nvlabs_reference  # noqa: E402
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
        return {"ours": (exact, "fastest"), "nv-path": (exact, "nvlabs"), "compact": (compact, "fastest")}
    defaults = StyleGAN3GeneratorConfig.for_arch(model)
    cfg = StyleGAN3GeneratorConfig.for_arch(model, z_dim=LATENT, w_dim=LATENT, img_resolution=res,
                                            channel_base=defaults.channel_base // divide[0],
                                            channel_max=defaults.channel_max // divide[1])
    return {"ours": (StyleGAN3Generator(cfg).eval(), "fastest")}


def time_once(G, z, c, execution: str, device: str) -> float:
    nv_ops.EXECUTION = execution
    try:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        G(z, c, noise_mode="const")
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
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
    torch.set_num_threads(args.threads)
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    root, why = nvlabs_reference.locate(args.nvlabs)
    nv = nvlabs_reference.load(root) if root else None
    devices = [d for d in args.devices if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    say(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), devices: {', '.join(devices)}; "
        f"{os.cpu_count()} cores, load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(f"NVlabs: {f'{root} (commit {nv.commit}), reference ops' if nv else 'rows skipped: ' + why}")
    say(f"stylegan2 widths min({CHANNEL_BASE}/r, {CHANNEL_MAX}); stylegan3 NVlabs' defaults with channel_base / "
        f"{args.sg3_divide[0]}, channel_max / {args.sg3_divide[1]}; z = w = {LATENT}")
    say(f"{'model':11s} {'device':6s} {'res':>4s} {'batch':>5s} {'ours':>9s} {'NVlabs':>9s} {'ours/NV':>7s} "
        f"{'nv-path':>9s} {'compact':>9s}   (ms per image, median of {args.reps}; |ours - NVlabs|)")
    for model in args.models:
        for device in devices:
            for res in args.resolutions:
                runs = {name: (G.to(device), ex) for name, (G, ex) in build(model, res, tuple(args.sg3_divide)).items()}
                diff = ""
                if nv is not None:
                    ours = runs["ours"][0]
                    theirs = nvlabs_reference.generator(nv, ours).eval().to(device)
                    diff = f"{nvlabs_reference.check_generators(ours, theirs):.1e}"
                    runs["NVlabs"] = (theirs, "fastest")
                for batch in args.batches:
                    z = torch.randn(batch, LATENT, device=device)
                    c = torch.zeros(batch, 0, device=device)
                    times = {name: [] for name in runs}
                    with torch.inference_mode():
                        for G, execution in runs.values():   # warm-up: allocations, caches, kernel choice
                            time_once(G, z, c, execution, device)
                        for _ in range(args.reps):           # interleaved, so load changes hit all rows alike
                            for name, (G, execution) in runs.items():
                                times[name].append(time_once(G, z, c, execution, device))
                    ms = {name: 1000 * statistics.median(t) / batch for name, t in times.items()}
                    cell = {name: f"{ms[name]:9.1f}" if name in ms else f"{'-':>9s}"
                            for name in ("ours", "NVlabs", "nv-path", "compact")}
                    ratio = f"{ms['ours'] / ms['NVlabs']:7.2f}" if "NVlabs" in ms else f"{'-':>7s}"
                    say(f"{model:11s} {device:6s} {res:4d} {batch:5d} {cell['ours']} {cell['NVlabs']} {ratio} "
                        f"{cell['nv-path']} {cell['compact']}   {diff} (load {os.getloadavg()[0]:.2f})")
    say(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
