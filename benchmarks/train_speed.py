"""Training throughput: img/s (real images shown to D per second) for dcgan and stylegan2
presets at 32x32 and 64x64 on real digits upsampled, on this machine's device.

  python benchmarks/train_speed.py [--steps 6] [--device auto] [--threads 0]
"""
import argparse
import tempfile
import time

import torch

from trainer.config import RunConfig, merge
from trainer.loop import Trainer
from trainer.presets import PRESETS


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--presets", nargs="+", default=["dcgan", "stylegan2"])
    p.add_argument("--resolutions", nargs="+", type=int, default=[32, 64])
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rows = []
    for preset in args.presets:
        for res in args.resolutions:
            cfg = RunConfig.from_dict(merge(merge(RunConfig().to_dict(), PRESETS[preset]),
                                            {"preset": preset, "data": {"source": "digits", "resolution": res},
                                             "train": {"device": args.device}}))
            trainer = Trainer(cfg, tempfile.mkdtemp(prefix="speed-"), progress=False)
            trainer.train_step()  # warm-up (allocations, first R1/PL step)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            n0, t0 = trainer.nimg, time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            rate = (trainer.nimg - n0) / (time.perf_counter() - t0)
            rows.append((preset, res, trainer.device.type, cfg.train.batch, rate))
            print(f"{preset:10s} {res:4d}px  {trainer.device.type:5s} batch {cfg.train.batch:3d}  {rate:8.1f} img/s",
                  flush=True)
    base = rows[0][4]
    print("ratio to the first row: " + ", ".join(f"{p}@{r}={v / base:.2f}" for p, r, _, _, v in rows))


if __name__ == "__main__":
    main()
