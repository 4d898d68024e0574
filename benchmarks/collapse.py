"""Mode collapse on the 2-D mixtures, with and without each remedy: modes captured (by
high-quality samples only), the high-quality share and reverse KL, as mean ± spread over seeds,
with the wall time; uniform noise over the data's square as the floor. Prints a markdown table
and saves a figure of sample scatters.

  python benchmarks/collapse.py [--data ring8 grid25] [--losses nonsat hinge ...]
                                [--remedies none pack4 unrolled5 ...] [--seeds 3] [--kimg 100]
                                [--figure assets/readme/collapse.png]

Remedies: none, pack<m>, fm<w> (feature matching), hist<w> (historical averaging), ms<w> (mode
seeking), unrolled<k>, mbstd<group> (minibatch standard deviation in D), mbd (minibatch
discrimination); e.g. pack4, fm1, hist0.001, ms0.1, unrolled5, mbstd8.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import load_generator  # noqa: E402
from trainer.config import RunConfig, merge  # noqa: E402
from trainer.data.datasets import TOY_STD, toy_modes  # noqa: E402
from trainer.training.loop import train  # noqa: E402
from trainer.metrics.modes import mode_report  # noqa: E402
from trainer.training.presets import PRESETS  # noqa: E402

LOSS_PRESETS = {"minimax": "toy-minimax", "nonsat": "toy-gan", "lsgan": "toy-lsgan", "hinge": "toy-hinge-sn",
                "wgan-gp": "toy-wgan-gp"}
REMEDY = re.compile(r"^(none|pack(\d+)|fm([\d.e-]+)|hist([\d.e-]+)|ms([\d.e-]+)|unrolled(\d+)|mbstd(\d+)|mbd)$")


def remedy_options(name: str) -> dict:
    """-> the run-config sections a remedy sets, e.g. {"train": {"pack": 4}}."""
    m = REMEDY.match(name)
    if not m:
        raise SystemExit(f"unknown remedy {name!r} (see --help)")
    if name == "none":
        return {}
    if name == "mbd":
        return {"model": {"minibatch_discrimination": True}}
    if m.group(7):
        return {"model": {"mbstd": True, "mbstd_group": int(m.group(7))}}
    return {"train": _train_remedy(m)}


def _train_remedy(m) -> dict:
    if m.group(2):
        return {"pack": int(m.group(2))}
    if m.group(3):
        return {"feature_matching": float(m.group(3))}
    if m.group(4):
        return {"historical_averaging": float(m.group(4))}
    if m.group(5):
        return {"mode_seeking": float(m.group(5))}
    return {"unrolled_steps": int(m.group(6))}


def run_one(data: str, loss: str, remedy: str, seed: int, kimg: float, samples: int, outdir: str,
            overrides: dict | None = None):
    preset = LOSS_PRESETS[loss]
    values = merge(RunConfig().to_dict(), PRESETS[preset])
    values = merge(values, {"preset": preset, "data": {"source": data},
                            "train": {"kimg": kimg, "seed": seed, "snapshot_kimg": kimg, "sample_kimg": kimg}})
    for section in (remedy_options(remedy), overrides or {}):
        values = merge(values, section)
    cfg = RunConfig.from_dict(values)
    t0 = time.time()
    result = train(cfg, outdir=outdir, progress=False)
    seconds = time.time() - t0
    G = load_generator(result.run_dir)
    with torch.inference_mode():
        points = G(torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(1000 + seed))).numpy()
    return mode_report(points, toy_modes(data), TOY_STD[data]), points, seconds


def uniform_floor(data: str, samples: int):
    modes = toy_modes(data)
    lim = float(np.abs(modes).max()) + 3 * TOY_STD[data]
    points = np.random.RandomState(0).uniform(-lim, lim, size=(samples, 2)).astype(np.float32)
    return mode_report(points, modes, TOY_STD[data]), points


def spread(values) -> str:
    """mean ± standard deviation over seeds (inf stays inf: a run with no high-quality samples)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2 or not np.isfinite(values).all():
        return f"{mean:.3g}"
    return f"{mean:.3g} ± {float(values.std()):.2g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    p.add_argument("--losses", nargs="+", default=list(LOSS_PRESETS), choices=list(LOSS_PRESETS))
    p.add_argument("--remedies", nargs="+", default=["none", "pack4", "fm1", "hist0.001", "ms0.1", "unrolled5"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--kimg", type=float, default=100)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--figure", default=None, help="save scatters of seed 0 of every row here (PNG)")
    p.add_argument("--override", default="{}", help='run-config sections over every preset, as JSON, '
                   'e.g. \'{"train": {"g_lr": 1e-3}}\'')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = json.loads(args.override)
    outdir = tempfile.mkdtemp(prefix="collapse-")
    print(f"{args.kimg:g} kimg per run, {args.seeds} seed(s), {args.samples} samples, overrides {args.override}, "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| data | loss | remedy | modes captured | high-quality share | reverse KL | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    scatters = []
    for data in args.data:
        floor, points = uniform_floor(data, args.samples)
        print(f"| {data} | uniform noise | (floor) | {floor.modes_captured}/{floor.modes_total} | "
              f"{floor.high_quality:.3f} | {floor.reverse_kl:.3f} | 0 |", flush=True)
        scatters.append((f"{data}: uniform noise", points, data))
        for loss in args.losses:
            for remedy in args.remedies:
                reports, times = [], []
                for seed in range(args.seeds):
                    report, points, seconds = run_one(data, loss, remedy, seed, args.kimg, args.samples, outdir,
                                                      overrides)
                    reports.append(report)
                    times.append(seconds)
                    if seed == 0:
                        scatters.append((f"{data}: {loss} {remedy}", points, data))
                print(f"| {data} | {loss} | {remedy} | {spread([r.modes_captured for r in reports])}/"
                      f"{reports[0].modes_total} | {spread([r.high_quality for r in reports])} | "
                      f"{spread([r.reverse_kl for r in reports])} | {statistics.fmean(times):.0f} |", flush=True)
    if args.figure:
        save_figure(scatters, args.figure)
        print(f"\nscatters of seed 0: {args.figure}")


def save_figure(scatters, path) -> None:
    from PIL import Image, ImageDraw
    from trainer.images import make_grid, scatter_image
    tiles = []
    for title, points, data in scatters:
        lim = float(np.abs(toy_modes(data)).max()) * 1.3
        img = Image.fromarray(scatter_image(points[:2000], toy_modes(data), size=220, extent=lim))
        ImageDraw.Draw(img).text((4, 4), title, fill=(0, 0, 0))
        tiles.append(np.asarray(img))
    columns = max(1, min(6, len(tiles)))
    Image.fromarray(make_grid(np.stack(tiles), columns, pad=2, pad_value=255)).save(path)


if __name__ == "__main__":
    main()
