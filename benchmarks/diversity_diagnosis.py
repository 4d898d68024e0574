"""Where a conditional image generator loses diversity: per class, how spread its samples are
against the real test images, how many have a near-duplicate, and whether the duplicates come
from the mapping network (different z, nearly the same w) or from the synthesis network (well
separated w, nearly the same image). Inference only: minutes on one CPU thread.

  python benchmarks/diversity_diagnosis.py [--checkpoint assets/demo] [--per-class 300]

Near-duplicate: a sample whose nearest generated neighbour (same class, pixels, noise fixed) is
closer than the 1st percentile of the real images' nearest-neighbour distances in that class.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import load_generator  # noqa: E402
from trainer.config import DataConfig  # noqa: E402
from trainer.data.datasets import load_dataset  # noqa: E402


def mean_pair_distance(x: torch.Tensor) -> float:
    """x [N, F] -> mean distance between distinct rows."""
    n = x.shape[0]
    return float(torch.cdist(x, x).sum() / (n * (n - 1)))


def nearest_other(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, F] -> (distance to, index of) each row's nearest other row."""
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return d.min(dim=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="assets/demo")
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    G = load_generator(args.checkpoint).eval()
    if not G.c_dim or not getattr(G, "num_ws", 0):
        raise SystemExit("this diagnosis is for conditional generators with a W space")
    real = load_dataset(DataConfig(source="fashion-mnist", resolution=G.img_resolution, split="test",
                                   conditional=True, channels=G.img_channels))
    torch.manual_seed(args.seed)
    n = args.per_class
    print(f"{args.checkpoint}: {n} samples per class (psi 1, noise const) against {n} real test images per class\n")
    print("| class | pixel spread generated | pixel spread real | near-duplicate share | "
          "w distance of duplicate pairs / median |")
    print("| --- | ---: | ---: | ---: | ---: |")
    shares = []
    with torch.inference_mode():
        for k, name in enumerate(real.class_names):
            w = G.mapping(torch.randn(n, G.z_dim), torch.full((n,), k))
            fake = G.synthesis(w, noise_mode="const").flatten(1)
            reals = real.data[real.labels == k][:n].float().div(127.5).sub(1).flatten(1)
            threshold = torch.quantile(nearest_other(reals)[0], 0.01)
            gap, partner = nearest_other(fake)
            duplicate = gap < threshold
            w_gap = torch.cdist(w[:, 0], w[:, 0])
            typical = w_gap[~torch.eye(n, dtype=torch.bool)].median()
            pair_ratio = float((w_gap[torch.arange(n), partner][duplicate] / typical).median()) \
                if duplicate.any() else float("nan")
            shares.append(float(duplicate.float().mean()))
            print(f"| {name} | {mean_pair_distance(fake):.2f} | {mean_pair_distance(reals):.2f} | "
                  f"{shares[-1]:.2f} | {pair_ratio:.2f} |", flush=True)
    print(f"\nnear-duplicate share over all classes: {sum(shares) / len(shares):.2f}")
    print("A ratio near 1 means duplicate images come from well separated w: the synthesis network "
          "ignores much of W; near 0, the mapping network collapses z.")


if __name__ == "__main__":
    main()
