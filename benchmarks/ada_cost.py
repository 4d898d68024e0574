"""What ADA costs: img/s of the same small `stylegan2` run on real digits without augmentation
and with `--augment ada` at fixed probabilities (--ada-target 0, so the pipe does the same work
throughout; p = 1 is its most expensive case, every op on every image), in one process. The
variants take the same steps in turn, in rounds of a few steps, so a change in the machine's load
falls on all of them; the figure is the median over rounds of each round's ratio to the
unaugmented variant (the img/s beside it is the mean over rounds).

  python benchmarks/ada_cost.py [--steps 2] [--rounds 8] [--resolution 32] [--p 0.2 1]
                                [--pipe bgc] [--threads 1] [--out results/ada_cost.txt]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.training.loop import Trainer   # noqa: E402
from trainer.training.presets import preset_config   # noqa: E402


def task(resolution: int, threads: int, folder: Path, augment: dict):
    cfg = preset_config("stylegan2", data={"source": "digits", "resolution": resolution},
                        train={"device": "cpu", "threads": threads, "kimg": 1000, **augment})
    return Trainer(cfg, folder, progress=False, log=lambda *a: None)


def img_per_s(trainer, steps: int) -> float:
    start, nimg = time.perf_counter(), trainer.nimg
    for _ in range(steps):
        trainer.train_step()
    return (trainer.nimg - nimg) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="G steps per round and variant")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--p", type=float, nargs="+", default=[0.2, 1.0], help="fixed ADA probabilities")
    p.add_argument("--pipe", default="bgc")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    variants = {"no augmentation": {}}
    for prob in args.p:
        variants[f"ada {args.pipe} p={prob:g}"] = {"augment": "ada", "ada_pipe": args.pipe, "augment_p": prob,
                                                   "ada_target": 0.0}
    lines = [f"# python benchmarks/ada_cost.py --steps {args.steps} --rounds {args.rounds} --resolution "
             f"{args.resolution} --p {' '.join(f'{x:g}' for x in args.p)} --pipe {args.pipe} --threads {args.threads}",
             f"torch {torch.__version__}; {os.cpu_count()} CPU cores; {args.threads} thread(s); "
             f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: task(args.resolution, args.threads, Path(tmp) / str(i), augment)
                    for i, (name, augment) in enumerate(variants.items())}
        batch = next(iter(trainers.values())).cfg.train.batch
        for trainer in trainers.values():   # warm-up: first-step allocations
            img_per_s(trainer, 2)
        speeds = {name: [] for name in trainers}
        for _ in range(args.rounds):   # the variants take the same steps in turn, lazy R1 and PL included
            for name, trainer in trainers.items():
                speeds[name].append(img_per_s(trainer, args.steps))
    base = speeds["no augmentation"]
    ratios = {name: statistics.median(v / b for v, b in zip(values, base)) for name, values in speeds.items()}
    lines.append(f"stylegan2 preset, digits at {args.resolution} px, batch {batch}, {args.rounds} rounds x "
                 f"{args.steps} steps per variant, alternating")
    lines.append(f"{'variant':<22}{'img/s':>8}{'ratio':>8}  (median of per-round ratios)")
    lines += [f"{name:<22}{statistics.mean(speeds[name]):8.1f}{ratios[name]:8.2f}" for name in speeds]
    lines.append(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
