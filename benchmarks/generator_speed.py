"""Generator speed: ms per image of the NVlabs-exact StyleGAN2 (`stylegan2`, what imported networks
run on and the presets train) against the older compact `stylegan2-compact`, at the same widths and resolutions, in one
run. Three rows per size:

  exact      stylegan2 as shipped (execution chosen per layer: fused or shared modulated
             convolution, polyphase upsampling on CPU from 64 px inputs)
  nv-path    the same model forced onto NVlabs' own inference path (per-sample weights in one
             grouped convolution, stride-2 transposed convolution, then the FIR filter), i.e. the
             operations NVlabs' reference ops run, in plain PyTorch; a stand-in for NVlabs' code,
             which is not installed here
  project    trainer.models.stylegan2, arch stylegan2-compact (bilinear resampling, non-fused modulation)

Widths follow NVlabs' configurations for these sizes (cifar / paper256): feature maps
min(16384 / r, 512) at resolution r, z_dim = w_dim = 512, 8 mapping layers. Each time is the
best of --reps interleaved runs of G(z) (mapping + synthesis) under torch.inference_mode().

  python benchmarks/generator_speed.py [--threads 1] [--resolutions 32 64 256] [--batches 1 16]
                                       [--reps 3] [--devices cpu cuda]
"""
import argparse
import time

import torch

import trainer.models.nvlabs_ops as nv  # noqa: E402 (the execution switches)
from trainer.models.stylegan2_nvlabs import NVlabsGenerator, NVlabsGeneratorConfig
from trainer.models.stylegan2 import StyleGAN2Generator

CHANNEL_BASE, CHANNEL_MAX, LATENT = 16384, 512, 512


def build(res: int):
    exact = NVlabsGenerator(NVlabsGeneratorConfig(z_dim=LATENT, w_dim=LATENT, img_resolution=res,
                                                        layer_features=LATENT, channel_base=CHANNEL_BASE,
                                                        channel_max=CHANNEL_MAX)).eval()
    project = StyleGAN2Generator(LATENT, 0, LATENT, res, 3, width=CHANNEL_BASE // res, max_width=CHANNEL_MAX,
                                 mapping_layers=8).eval()
    return exact, project


def time_once(G, z, execution: str, device: str) -> float:
    nv.EXECUTION = execution
    try:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        G(z)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    finally:
        nv.EXECUTION = "fastest"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resolutions", nargs="+", type=int, default=[32, 64, 256])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    devices = [d for d in args.devices if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), devices: {', '.join(devices)}; "
          f"widths min({CHANNEL_BASE}/r, {CHANNEL_MAX}), z = w = {LATENT}")
    print(f"{'device':6s} {'res':>4s} {'batch':>5s} {'exact':>10s} {'nv-path':>10s} {'project':>10s}   "
          f"{'exact/nv-path':>13s} {'exact/project':>13s}   (ms per image, best of {args.reps})")
    for device in devices:
        for res in args.resolutions:
            exact, project = build(res)
            exact, project = exact.to(device), project.to(device)
            for batch in args.batches:
                z = torch.randn(batch, LATENT, device=device)
                runs = {"exact": (exact, "fastest"), "nv-path": (exact, "nvlabs"), "project": (project, "fastest")}
                best = {name: float("inf") for name in runs}
                with torch.inference_mode():
                    for G, execution in runs.values():   # warm-up: allocations, caches, kernel choice
                        time_once(G, z, execution, device)
                    for _ in range(args.reps):           # interleaved, so load changes hit all rows alike
                        for name, (G, execution) in runs.items():
                            best[name] = min(best[name], time_once(G, z, execution, device))
                ms = {name: 1000 * t / batch for name, t in best.items()}
                print(f"{device:6s} {res:4d} {batch:5d} {ms['exact']:10.1f} {ms['nv-path']:10.1f} {ms['project']:10.1f}   "
                      f"{ms['exact'] / ms['nv-path']:13.2f} {ms['exact'] / ms['project']:13.2f}", flush=True)


if __name__ == "__main__":
    main()
