"""Real learning on the 2-D mixtures: train toy presets and print the mode figures.

  python benchmarks/toy_modes.py [--kimg 300] [--data ring8 grid25] [--presets toy-gan ...]
"""
import argparse
import sys
import tempfile
import time

import torch

from trainer import load_generator
from trainer.config import RunConfig, merge
from trainer.data import TOY_STD, toy_modes
from trainer.loop import train
from trainer.metrics.modes import mode_report
from trainer.presets import PRESETS


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kimg", type=float, default=300)
    p.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    p.add_argument("--presets", nargs="+", default=["toy-gan", "toy-wgan-gp", "toy-hinge-sn"])
    p.add_argument("--outdir", default=None)
    p.add_argument("--samples", type=int, default=10000)
    args = p.parse_args()
    outdir = args.outdir or tempfile.mkdtemp(prefix="toy-modes-")
    print(f"{'data':8s} {'preset':14s} {'kimg':>6s} {'modes':>7s} {'high-q':>7s} {'revKL':>7s} {'secs':>6s}  run")
    for data in args.data:
        for preset in args.presets:
            cfg = RunConfig.from_dict(merge(merge(RunConfig().to_dict(), PRESETS[preset]),
                                            {"preset": preset, "data": {"source": data},
                                             "train": {"kimg": args.kimg, "seed": 0}}))
            t0 = time.time()
            result = train(cfg, outdir=outdir, progress=False)
            G = load_generator(result.run_dir)
            with torch.inference_mode():
                pts = G(torch.randn(args.samples, G.z_dim, generator=torch.Generator().manual_seed(1))).numpy()
            r = mode_report(pts, toy_modes(data), TOY_STD[data])
            print(f"{data:8s} {preset:14s} {args.kimg:6.0f} {r.modes_captured:3d}/{r.modes_total:<3d} "
                  f"{r.high_quality:7.3f} {r.reverse_kl:7.3f} {time.time() - t0:6.0f}  {result.run_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
