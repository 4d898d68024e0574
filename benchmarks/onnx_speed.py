"""ONNX export speed: ms per image of onnxruntime's CPU provider running an exported generator
against our PyTorch model, in one process, on one thread each (torch.set_num_threads(1);
onnxruntime intra- and inter-op threads 1), on the same inputs (the outputs are checked to agree
within 1e-3 first). Models:

  demo       the bundled demo (`stylegan2-compact`, 32 px, conditional)
  sg2-256    the NVlabs-exact StyleGAN2 at 256 px with NVlabs' paper256 widths (feature maps
             min(16384 / r, 512), z = w = 512, 8 mapping layers), random weights

Both take z (and c) and psi = 0.7 through the whole graph (mapping, truncation, synthesis, stored
noise). Times are medians of --reps interleaved runs after one warm-up each; the ratio is
onnxruntime's time over ours (below 1: onnxruntime is faster). The export time is printed too.

  python benchmarks/onnx_speed.py [--models demo sg2-256] [--batches 1 4] [--reps 15] [--out FILE]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ganstudio.engine.demo import find_demo_checkpoint  # noqa: E402

DEMO = find_demo_checkpoint()
PSI = 0.7


def model(name: str):
    from trainer.checkpoint import load_generator
    from trainer.models.stylegan2_nvlabs import NVlabsGenerator, NVlabsGeneratorConfig
    if name == "demo":
        return load_generator(DEMO)
    torch.manual_seed(0)
    G = NVlabsGenerator(NVlabsGeneratorConfig(z_dim=512, w_dim=512, img_resolution=256, layer_features=512,
                                              channel_base=16384, channel_max=512)).eval().requires_grad_(False)
    G.mapping.w_avg.normal_()   # a trained model's centre is not zero
    return G


def session(path: Path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def inputs_for(G, batch: int) -> dict[str, torch.Tensor]:
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(batch))
    feeds = {"z": z, "psi": torch.full([1], PSI)}
    if G.c_dim:
        feeds["c"] = torch.eye(G.c_dim)[torch.arange(batch) % G.c_dim]
    return feeds


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, batches, reps: int, folder: Path) -> list[str]:
    from trainer.export import export_onnx
    G = model(name)
    path = folder / f"{name}.onnx"
    export = timed(lambda: export_onnx(G, path))
    ort_session = session(path)
    rows = [f"{name}: exported in {export:.1f} s, {path.stat().st_size / 2 ** 20:.1f} MiB"]
    for batch in batches:
        feeds = inputs_for(G, batch)
        numpy_feeds = {k: v.numpy() for k, v in feeds.items()}

        def ours():
            with torch.inference_mode():
                return G(feeds["z"], feeds.get("c"), truncation_psi=PSI, noise_mode="const")

        def theirs():
            return ort_session.run(None, numpy_feeds)[0]
        difference = float(np.abs(ours().numpy() - theirs()).max())   # also the warm-up of each
        assert difference <= 1e-3, f"{name}: onnxruntime differs from PyTorch by {difference}"
        times = {"ours": [], "onnxruntime": []}
        for _ in range(reps):
            times["ours"].append(timed(ours))
            times["onnxruntime"].append(timed(theirs))
        ms = {k: statistics.median(v) * 1000 / batch for k, v in times.items()}
        rows.append(f"  batch {batch}: ours {ms['ours']:8.2f} ms/img   onnxruntime {ms['onnxruntime']:8.2f} ms/img   "
                    f"ratio ort/ours {ms['onnxruntime'] / ms['ours']:.2f}   max abs diff {difference:.1e}")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["demo", "sg2-256"], choices=("demo", "sg2-256"))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args()
    torch.set_num_threads(1)
    import onnxruntime
    lines = [f"onnx_speed: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, 1 thread each, "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at start"]
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            rows = measure(name, args.batches, args.reps, Path(folder))
            print(rows[0], flush=True)
            lines += rows
    lines.append(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(lines[-1])
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
