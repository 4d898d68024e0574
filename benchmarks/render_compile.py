"""The studio renderer eager against compiled (`Renderer(compile=True)`): ms per single image on
the bundled demo model, and whether the pixels agree, in one run.

  python benchmarks/render_compile.py [--device cpu] [--threads 1] [--seeds 10]
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from ganstudio.engine.renderer import Renderer, RenderRequest
from trainer.latents import LatentState

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
          f"load average {os.getloadavg()[0]:.2f}")
    eager, fast = Renderer(args.device), Renderer(args.device, compile=True)
    eager.load(DEMO)
    t0 = time.perf_counter()
    fast.load(DEMO)   # its warm-up render compiles
    print(f"load with compile: {time.perf_counter() - t0:.1f} s")
    times, worst = {"eager": [], "compiled": []}, 0
    for seed in range(args.seeds):
        images = []
        for name, renderer in (("eager", eager), ("compiled", fast)):
            result = renderer.render(RenderRequest(request_id=seed, generation=renderer.generation,
                                                   latent=LatentState(seed=seed)))
            assert not result.error, result.error
            times[name].append(result.milliseconds)
            images.append(result.image.astype(int))
        worst = max(worst, int(np.abs(images[0] - images[1]).max()))
    eager_ms, fast_ms = np.median(times["eager"]), np.median(times["compiled"])
    print(f"median ms per image: eager {eager_ms:.1f}, compiled {fast_ms:.1f}, ratio {eager_ms / fast_ms:.2f}; "
          f"largest pixel difference {worst}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
