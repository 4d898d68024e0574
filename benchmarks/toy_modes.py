"""Real learning on the 2-D mixtures: train toy presets and print the mode figures.

  python benchmarks/toy_modes.py [--kimg 300] [--data ring8 grid25] [--presets toy-gan ...]

`toy_mode_rows` is also the `toys` section of benchmarks/fid_figures.py.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import load_generator  # noqa: E402
from trainer.config import RunConfig, merge  # noqa: E402
from trainer.data.datasets import TOY_STD, toy_modes  # noqa: E402
from trainer.training.loop import train  # noqa: E402
from trainer.metrics.modes import mode_report  # noqa: E402
from trainer.training.presets import PRESETS  # noqa: E402

PRESET_NAMES = ("toy-gan", "toy-wgan-gp", "toy-hinge-sn")
DATA_NAMES = ("ring8", "grid25")


def toy_mode_rows(kimg: float, samples: int, data_names=DATA_NAMES, presets=PRESET_NAMES, outdir=None):
    """Train each preset on each mixture for `kimg` (seed 0) and yield one dict of mode figures per run."""
    outdir = outdir or tempfile.mkdtemp(prefix="toy-modes-")
    for data in data_names:
        for preset in presets:
            cfg = RunConfig.from_dict(merge(merge(RunConfig().to_dict(), PRESETS[preset]),
                                            {"preset": preset, "data": {"source": data},
                                             "train": {"kimg": kimg, "seed": 0}}))
            t0 = time.time()
            result = train(cfg, outdir=outdir, progress=False)
            G = load_generator(result.run_dir)
            with torch.inference_mode():
                pts = G(torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(1))).numpy()
            r = mode_report(pts, toy_modes(data), TOY_STD[data])
            yield {"data": data, "preset": preset, "loss": cfg.train.loss, "kimg": kimg,
                   "modes_captured": r.modes_captured, "modes_total": r.modes_total,
                   "high_quality": r.high_quality, "reverse_kl": r.reverse_kl, "num_samples": samples,
                   "train_seconds": round(time.time() - t0, 1), "seed": 0, "run_dir": str(result.run_dir)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kimg", type=float, default=300)
    p.add_argument("--data", nargs="+", default=list(DATA_NAMES))
    p.add_argument("--presets", nargs="+", default=list(PRESET_NAMES))
    p.add_argument("--outdir", default=None)
    p.add_argument("--samples", type=int, default=10000)
    args = p.parse_args()
    print(f"{'data':8s} {'preset':14s} {'kimg':>6s} {'modes':>7s} {'high-q':>7s} {'revKL':>7s} {'secs':>6s}  run")
    for r in toy_mode_rows(args.kimg, args.samples, args.data, args.presets, args.outdir):
        print(f"{r['data']:8s} {r['preset']:14s} {args.kimg:6.0f} {r['modes_captured']:3d}/{r['modes_total']:<3d} "
              f"{r['high_quality']:7.3f} {r['reverse_kl']:7.3f} {r['train_seconds']:6.0f}  {r['run_dir']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
