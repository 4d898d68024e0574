"""Metric speed on this machine: Inception feature extraction (the plain-module port, with the
TorchScript it was ported from as the baseline in the same process), the FID matrix square root
(our symmetric-eigh route vs scipy.linalg.sqrtm), KID, and what a 10k FID costs.

  python benchmarks/metric_speed.py [--images 32] [--batch 16] [--device auto] [--threads 0]

The 10k-FID time is the measured extraction rate applied to 10,000 generated images plus the
measured statistics time (real-data features are cached after the first run); on a machine
where that takes minutes, pass --full-10k to time a real one end to end.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.metrics import distances  # noqa: E402
from trainer.metrics.inception import load_inception, packaged_weights  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn, images, batch, device, repeats=1) -> float:
    """Images per second of fn over `images` in batches (after one warm-up batch)."""
    with torch.inference_mode():
        fn(images[:batch].to(device))
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            for chunk in images.split(batch):
                fn(chunk.to(device))
        sync(device)
    return repeats * len(images) / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32, help="images timed per network")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--resolution", type=int, default=32, help="input side before the resize to 299")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default, all cores)")
    p.add_argument("--full-10k", action="store_true", help="also time a real 10k-sample FID end to end")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from trainer.device import select_device
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}; device {device} ({name})")

    net, info = load_inception(device=device)
    images = torch.randint(0, 256, (args.images, 3, args.resolution, args.resolution), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    port = rate(net, images, args.batch, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(packaged_weights()), map_location=device).eval()
    script = rate(lambda x: scripted(net.preprocess(x)), images, args.batch, device)
    print(f"Inception features, {args.resolution}px -> 299, batch {args.batch}: port {port:.2f} img/s, "
          f"TorchScript {script:.2f} img/s (port/TorchScript = {port / script:.2f})")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((3000, 2048)).astype(np.float32)
    b = (rng.standard_normal((3000, 2048)) + 0.1).astype(np.float32)
    t0 = time.perf_counter()
    mu1, s1 = distances.feature_stats(a)
    mu2, s2 = distances.feature_stats(b)
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = distances.frechet_distance(mu1, s1, mu2, s2)[0]
    t_eigh = time.perf_counter() - t0
    import scipy.linalg
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)
    t_sqrtm = time.perf_counter() - t0
    print(f"FID statistics at 2048-d: mean/cov of 2 x 3000 vectors {t_stats:.2f} s; trace sqrt via eigh "
          f"{t_eigh:.2f} s vs scipy.linalg.sqrtm {t_sqrtm:.2f} s (sqrtm/eigh = {t_sqrtm / t_eigh:.1f}); "
          f"values agree to {abs(ours - ref) / ref:.1e} relative")
    t0 = time.perf_counter()
    distances.kernel_inception_distance(a, b, num_subsets=100, subset_size=1000)
    t_kid = time.perf_counter() - t0
    print(f"KID, 100 subsets of 1000: {t_kid:.2f} s")

    estimate = 10_000 / port + t_stats * 10_000 / 6000 + t_eigh
    print(f"10k FID (generated side; real statistics cached): about {estimate / 60:.1f} min "
          f"= 10,000 / {port:.2f} img/s + statistics; computing the real statistics once costs the same again")
    if args.full_10k:
        from trainer.metrics.features import Dataset, dataset_source, extract_features
        data = torch.randint(0, 256, (10_000, 3, args.resolution, args.resolution), dtype=torch.uint8)
        t0 = time.perf_counter()
        feats = extract_features(net, dataset_source(Dataset("noise", data, torch.zeros(10_000), []), 10_000),
                                 args.batch * 4, device, desc="10k features")
        distances.frechet_distance(*distances.feature_stats(feats), mu1, s1)
        sync(device)
        print(f"measured 10k FID (generated side): {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
