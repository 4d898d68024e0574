"""Why 100 projection steps do not reach the plain 1000-step W+ baseline on the exact demo: three
probes of what bounds a 100-step fit, each against the defaults run in the same process.

  * a better optimiser: L-BFGS (strong-Wolfe line search) on the same style-space offsets the
    defaults give Adam, for as many iterations, on the whole batch and image by image (its
    curvature pairs are only meaningful per image; the line search costs a few more evaluations);
  * a better start: the defaults' 100 steps from the latents a k-step run reached, standing in for
    an encoder as good as that (the shipped encoder starts at about 22.7 dB);
  * a wider step space: the pseudo-inverse cut of the style preconditioner (STYLE_PINV_RTOL, 0.2 so
    that latents stay editable) lowered, with the distance from w_avg it costs.

  python benchmarks/inversion_limits.py [--images 20] [--threads 1] [--probes lbfgs,start,rtol]

The first --images Fashion-MNIST test images, the demo and its encoder as the studio finds them.
Prints one line per setting: mean PSNR (dB), function evaluations, seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=20, help="first N Fashion-MNIST test images")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--probes", default="lbfgs,start,rtol", help="which probes to run")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import trainer.inversion.project as projection
    from inversion import demo_and_test_images   # benchmarks/inversion.py: the same demo and images
    from trainer.inversion.encoder import encoder_for_inversion, predicted_start
    from trainer.inversion.losses import psnr
    from trainer.inversion.project import ProjectionSettings, StylePreconditioner, project
    from trainer.latents import estimate_class_means

    checkpoint, G, _, targets = demo_and_test_images(args.images)
    n = args.images
    defaults = ProjectionSettings()
    probes = set(args.probes.split(","))
    print(f"demo {Path(checkpoint).name}, {n} test images, {torch.get_num_threads()} thread(s), "
          f"load average {os.getloadavg()[0]:.2f}")

    started = time.perf_counter()
    reference = project(G, targets, defaults)
    print(f"defaults, {defaults.steps} Adam steps: {reference.psnr.mean():.2f} dB, "
          f"{time.perf_counter() - started:.1f} s", flush=True)

    if "lbfgs" in probes:
        encoder, _ = encoder_for_inversion(G, True, "", str(checkpoint))
        class_means = estimate_class_means(G, "cpu") if G.c_dim else None
        for per_image in (False, True):
            started, evaluations, fitted = time.perf_counter(), 0, []
            for part in ([slice(i, i + 1) for i in range(n)] if per_image else [slice(0, n)]):
                target = targets[part]
                with torch.no_grad():
                    start, _ = predicted_start(G, encoder, target, None, class_means)
                styles = StylePreconditioner(G, start)
                optimizer = torch.optim.LBFGS(styles.offsets, lr=1.0, max_iter=defaults.steps, history_size=20,
                                              line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                                              tolerance_change=1e-15)

                def closure():
                    nonlocal evaluations
                    optimizer.zero_grad()
                    images = G.synthesis(styles.ws(), noise_mode="const").float()
                    loss = (images - target).square().flatten(1).mean(1).sum()
                    loss.backward()
                    evaluations += 1
                    return loss

                optimizer.step(closure)
                with torch.no_grad():
                    fitted.append(psnr(G.synthesis(styles.ws(), noise_mode="const").float(), target))
            groups = n if per_image else 1
            print(f"L-BFGS, {defaults.steps} iterations, {'image by image' if per_image else 'whole batch'}: "
                  f"{torch.cat(fitted).mean():.2f} dB, {evaluations / groups:.0f} evaluations each, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)

    if "start" in probes:
        original = projection.predicted_start
        for k in (10, 25, 50):
            first = project(G, targets, defaults.replace(steps=k))   # from the encoder
            start = torch.from_numpy(first.ws)
            projection.predicted_start = lambda *_, start=start: (start, [None] * n)
            try:
                second = project(G, targets, defaults.replace(optimize_noise=False))
            finally:
                projection.predicted_start = original
            print(f"start at {first.psnr.mean():.2f} dB (a {k}-step fit), then {defaults.steps} steps: "
                  f"{second.psnr.mean():.2f} dB", flush=True)

    if "rtol" in probes:
        original = projection.STYLE_PINV_RTOL
        try:
            for rtol in (0.2, 0.1, 0.05, 0.01):
                projection.STYLE_PINV_RTOL = rtol
                for lr in (0.3, 0.6):
                    r = project(G, targets, defaults.replace(lr=lr))
                    distance = torch.from_numpy(r.ws).sub(G.w_avg).norm(dim=2).mean()
                    print(f"pinv rtol {rtol}, lr {lr}: {r.psnr.mean():.2f} dB, |ws - w_avg| {distance:.1f}",
                          flush=True)
        finally:
            projection.STYLE_PINV_RTOL = original
    return 0


if __name__ == "__main__":
    sys.exit(main())
