"""Training throughput side by side: img/s (real images shown to D per second) for the dcgan and
stylegan2 presets on real digits, each variant as a ratio to the 1-process fp32 eager row of the
same run. Besides the presets, `stylegan2-compact` names the older look-alike StyleGAN2 trained
with the stylegan2 preset's settings and the same feature maps at every resolution (width =
channel_base / resolution, max_width = channel_max), so the exact StyleGAN2, the compact one and
StyleGAN3 (`--presets stylegan2 stylegan2-compact stylegan3-t --variants "1 proc"`) compare in one
run.

With --nvlabs DIR (or $NVLABS_STYLEGAN3; `git clone https://github.com/NVlabs/stylegan3`) each
NVlabs-exact preset (stylegan2, stylegan3-t, stylegan3-r) also gets a row against NVlabs' own
training phases on its CPU reference ops (benchmarks/nvlabs_reference.py: StyleGAN2Loss with
Gmain, Dmain, Greg every pl_every and Dreg every r1_every steps, Adam, G_ema), with the same
widths, batch, regularisation settings and starting weights as our Trainer, in the same process:
--nvlabs-steps steps of each, interleaved one by one, after two warm-up steps each. Without a
checkout those rows are skipped and the reason printed.

  1 proc         one process, --threads threads (the baseline)
  2 proc gloo    two processes under torch.distributed (gloo), same global batch, --threads each
  bf16 / fp16    autocast (fp16 with a gradient scaler), 1 process
  channels_last  channels-last memory order, 1 process
  compile        torch.compile of G's and D's main forward passes, 1 process (compile time apart)
  bf16 + channels_last   both, 1 process (on CPUs with AMX the pair is what pays: oneDNN's bf16
                 kernels want channels-last tensors)

On a GPU it adds img/s at 32x32 and 256x256 (stylegan2, bf16/fp16 auto, batch 32) next to
NVlabs' published StyleGAN2-ADA figures; without one it prints those reference rows only. The
load average is printed beside the figures: on a shared machine other work takes cores.

  python benchmarks/train_speed.py [--steps 4] [--threads 1] [--presets dcgan stylegan2]
                                   [--resolution 32] [--variants ...] [--out results/train_speed.txt]
                                   [--nvlabs DIR] [--nvlabs-steps 16]
"""
import argparse
import copy
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nvlabs_reference  # noqa: E402
from trainer.config import RunConfig  # noqa: E402
from trainer.training.presets import PRESETS  # noqa: E402

VARIANTS = {"1 proc": ({}, 1), "2 proc gloo": ({}, 2), "bf16": ({"precision": "bf16"}, 1),
            "fp16": ({"precision": "fp16"}, 1), "channels_last": ({"channels_last": True}, 1),
            "compile": ({"compile": True}, 1),
            "bf16 + channels_last": ({"precision": "bf16", "channels_last": True}, 1)}
# NVlabs stylegan2-ada-pytorch README, "Expected training time": 256x256, 1 GPU.
NVLABS_REFERENCE = [("V100 (NVlabs, stylegan2-ada-pytorch)", 256, "21.6-24.2 s/kimg", 1000 / 24.2, 1000 / 21.6),
                    ("A100 (NVlabs, stylegan2-ada-pytorch)", 256, "12.5 s/kimg", 1000 / 12.5, 1000 / 12.5)]


COMPACT = "stylegan2-compact"   # not a preset: the stylegan2 preset on the compact model
EXACT = ("stylegan2", "stylegan2-cond", "stylegan3-t", "stylegan3-r")   # presets NVlabs' code can train too


def config(preset: str, resolution: int, device: str, threads: int, options: dict) -> RunConfig:
    from trainer.training.presets import preset_config
    name = "stylegan2" if preset == COMPACT else preset
    cfg = preset_config(name, data={"source": "digits", "resolution": resolution},
                        train={"device": device, "threads": threads, **options})
    if preset == COMPACT:   # the exact preset's feature maps at every resolution
        m = cfg.model
        m.arch, m.width, m.max_width = COMPACT, m.channel_base // resolution, m.channel_max
    return cfg


def timed_steps(cfg_json: str, steps: int, out: str) -> None:
    """Build a Trainer (one rank, or the whole job), warm up, time `steps` steps; rank 0 writes
    'img_s first_step_s' to `out`."""
    from trainer.training.loop import Trainer
    trainer = Trainer(RunConfig.from_json(cfg_json), tempfile.mkdtemp(prefix="speed-"), progress=False,
                      log=lambda *_: None)
    t0 = time.perf_counter()
    trainer.train_step()   # warm-up: allocations, the first R1/PL step, compilation
    trainer.train_step()
    first = time.perf_counter() - t0
    _barrier(trainer)
    n0, t0 = trainer.nimg, time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    _barrier(trainer)
    rate = (trainer.nimg - n0) / (time.perf_counter() - t0)
    if trainer.ranks.is_main:
        Path(out).write_text(f"{rate} {first}")


def _barrier(trainer) -> None:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    if trainer.ranks.active:
        torch.distributed.barrier()


def _rank(rank: int, world: int, port: int, cfg_json: str, steps: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    timed_steps(cfg_json, steps, out)
    torch.distributed.destroy_process_group()


def measure(cfg: RunConfig, steps: int, world: int) -> tuple[float, float]:
    """(img/s, seconds of the two warm-up steps) on `world` processes."""
    out = tempfile.mktemp(suffix=".txt")
    if world == 1:
        threads = torch.get_num_threads()
        timed_steps(cfg.to_json(), steps, out)
        torch.set_num_threads(threads)
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.start_processes(_rank, args=(world, port, cfg.to_json(), steps, out), nprocs=world, start_method="spawn")
    rate, first = map(float, Path(out).read_text().split())
    os.unlink(out)
    return rate, first


def against_nvlabs(nv, cfg: RunConfig, steps: int) -> tuple[float, float]:
    """(our img/s, NVlabs' img/s): one Trainer and NVlabs' phases from the same weights, `steps`
    steps each, interleaved one by one so that load changes hit both alike."""
    from trainer.training.loop import Trainer
    threads = torch.get_num_threads()
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix="speed-"), progress=False, log=lambda *_: None)
    m = trainer.cfg.model
    theirs = nvlabs_reference.NVlabsTraining(nv, trainer, nvlabs_reference.real_batch(   # Trainer() is the task
        trainer.cfg.train.batch, m.img_channels, m.img_resolution))
    nvlabs_reference.check_generators(copy.deepcopy(trainer.G).eval(), copy.deepcopy(theirs.G).eval())
    for _ in range(2):   # warm-up: allocations, the first path-length step
        trainer.train_step()
        theirs.step()
    ours_s = nvlabs_s = 0.0
    n0, nv0 = trainer.nimg, theirs.nimg
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.train_step()
        t1 = time.perf_counter()
        theirs.step()
        ours_s, nvlabs_s = ours_s + t1 - t0, nvlabs_s + time.perf_counter() - t1
    torch.set_num_threads(threads)
    return (trainer.nimg - n0) / ours_s, (theirs.nimg - nv0) / nvlabs_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--presets", nargs="+", default=["dcgan", "stylegan2"], choices=sorted([*PRESETS, COMPACT]))
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   default=[v for v in VARIANTS if v != "fp16" or torch.cuda.is_available()],
                   help="default: all but fp16 on CPUs (fp16 arithmetic is emulated there, ~100x slower)")
    p.add_argument("--out", default=None, help="also write the report to this file")
    p.add_argument("--nvlabs", default=None, help=f"NVlabs stylegan3 checkout (default: ${nvlabs_reference.ENV})")
    p.add_argument("--nvlabs-steps", type=int, default=16, help="timed steps of each side (16: one R1 cycle)")
    args = p.parse_args()
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    say(f"torch {torch.__version__}; {os.cpu_count()} CPU cores; {args.threads} thread(s) per process; "
        f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(f"{'preset':17s} {'res':>4s} {'variant':14s} {'batch':>5s} {'img/s':>8s} {'ratio':>6s} {'warm-up s':>9s}")
    for preset in args.presets:
        base = None
        for name in args.variants:
            options, world = VARIANTS[name]
            cfg = config(preset, args.resolution, "cpu", args.threads, options)
            rate, first = measure(cfg, args.steps, world)
            base = base or rate
            say(f"{preset:17s} {args.resolution:4d} {name:14s} {cfg.train.batch:5d} {rate:8.1f} {rate / base:6.2f} "
                f"{first:9.1f}   (load {os.getloadavg()[0]:.2f})")
    say()
    root, why = nvlabs_reference.locate(args.nvlabs)
    exact = [preset for preset in args.presets if preset in EXACT]
    if root is None:
        say(f"NVlabs rows skipped: {why}")
    elif exact:
        nv = nvlabs_reference.load(root)
        say(f"Against NVlabs' own training phases ({root}, commit {nv.commit}, reference ops; 1 process, fp32, "
            f"{args.nvlabs_steps} steps each, interleaved):")
        say(f"{'preset':17s} {'res':>4s} {'batch':>5s} {'ours img/s':>10s} {'NVlabs img/s':>12s} {'ours/NVlabs':>11s}")
        for preset in exact:
            cfg = config(preset, args.resolution, "cpu", args.threads, {})
            ours, theirs = against_nvlabs(nv, cfg, args.nvlabs_steps)
            say(f"{preset:17s} {args.resolution:4d} {cfg.train.batch:5d} {ours:10.1f} {theirs:12.1f} "
                f"{ours / theirs:11.2f}   (load {os.getloadavg()[0]:.2f})")
    say()
    say("GPU rows (stylegan2 preset, batch 32, img/s):")
    if torch.cuda.is_available():
        for res in (32, 256):
            cfg = config("stylegan2", res, "cuda", 0, {"precision": "auto"})
            rate, _ = measure(cfg, args.steps, 1)
            say(f"  {torch.cuda.get_device_name():38s} {res:4d}px  {rate:8.1f} img/s (measured here)")
    else:
        say("  not measured here: this machine has no GPU")
    for name, res, published, low, high in NVLABS_REFERENCE:
        say(f"  {name:38s} {res:4d}px  {low:5.1f}-{high:5.1f} img/s ({published}, published reference)")
    say(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
