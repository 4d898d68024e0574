"""CPU thread counts side by side: training img/s per preset and the studio renderer's renders/s
with 1 thread, 2 threads and torch's default, as ratios to 1 thread, all in one process and one
run, beside the thread count trainer.device.choose_threads picks and the load each figure was taken
under (a shared machine's other work takes cores).

  python benchmarks/threads.py [--seconds 1] [--rounds 3] [--busy 0] [--workloads pix2pix dcgan ...]
                               [--out FILE]

Each workload is a short real run through the library on the README's tiny settings: the run loop's
task stepping on real data (Pix2Pix, CycleGAN, DCGAN, StyleGAN2, the toy GAN), or the Renderer
drawing the bundled demo one image at a time. Every cell gets a warm-up step, then `--seconds` of
timed steps; the thread counts take turns within each round (their order rotates round to round, so
a change in load hits them alike) and the median over rounds is reported. `others` is how many
cores other processes kept busy meanwhile (from /proc/stat, less this process's own CPU time); the
load average is os.getloadavg() before and after. `--busy N` runs N competing single-threaded
matmul processes throughout. OpenMP settings that libgomp reads only when torch is imported
(OMP_WAIT_POLICY, GOMP_SPINCOUNT) are measured by running the script under them; the header
prints them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.device import choose_threads  # noqa: E402

TORCH_DEFAULT_THREADS = torch.get_num_threads()   # read before anything here sets it
OPENMP_SETTINGS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
BUSY_LOOP = "import numpy as np\na = np.random.rand(256, 256)\nwhile True:\n    a = np.tanh(a @ a)\n"


def _train_step(preset: str, data: dict, model: dict, train: dict):
    """A real run of `preset` (its task, its data) set up by the run loop; the step returns images shown."""
    from trainer.training.loop import Trainer
    from trainer.training.presets import preset_config
    cfg = preset_config(preset, data=data, model=model, train={"seed": 0, "metrics": "", **train})
    task = Trainer(cfg, tempfile.mkdtemp(prefix="threads-"), progress=False, log=lambda *_: None)

    def step() -> int:
        before = task.nimg
        task.train_step()
        return task.nimg - before
    return step


def _render_step(path: Path):
    from ganstudio.engine.renderer import Renderer, RenderRequest
    from trainer.latents import LatentState
    renderer = Renderer("cpu")
    info = renderer.load(path)
    seeds = iter(range(10**9))

    def render_one() -> int:   # a new seed each time: the studio's dragging, batch 1
        result = renderer.render(RenderRequest(1, renderer.generation, LatentState(
            seed=next(seeds), class_index=0 if info.c_dim else None)))
        assert not result.error, result.error
        return 1
    return render_one


# name -> (purpose for choose_threads, unit, builder); settings are the README's tiny ones
WORKLOADS = {
    "pix2pix": ("train", "img/s", lambda: _train_step("pix2pix", {"resolution": 32},
                                                      {"g_width": 32, "d_width": 32}, {"batch": 16})),
    "cyclegan": ("train", "img/s", lambda: _train_step("cyclegan", {"resolution": 32}, {"g_width": 16, "d_width": 16,
                                                       "resnet_blocks": 4}, {"batch": 4})),
    "dcgan": ("train", "img/s", lambda: _train_step("dcgan", {"source": "digits", "resolution": 16}, {}, {})),
    "stylegan2": ("train", "img/s", lambda: _train_step("stylegan2", {"source": "digits", "resolution": 16}, {},
                                                        {"batch": 16})),
    "toy-gan": ("train", "img/s", lambda: _train_step("toy-gan", {}, {}, {})),
    "renderer": ("render", "renders/s", lambda: _render_step(ROOT / "assets" / "demo")),
}


def rate(step, seconds: float) -> float:
    """One warm-up step, then steps for at least `seconds`: items per second."""
    step()
    done, start = 0, time.perf_counter()
    while True:
        done += step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return 0.0
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def measure(step, counts: list[int], seconds: float, rounds: int) -> dict[int, float]:
    """thread count -> median rate over `rounds`; the order of the counts rotates each round."""
    rates: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(rounds):
        for n in counts[r % len(counts):] + counts[:r % len(counts)]:
            torch.set_num_threads(n)
            rates[n].append(rate(step, seconds))
    return {n: statistics.median(v) for n, v in rates.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per cell per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per workload (the median is reported)")
    p.add_argument("--busy", type=int, default=0, help="competing single-threaded matmul processes to run")
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--out", default="", help="also append the table to this file")
    args = p.parse_args()
    counts = [1, 2, TORCH_DEFAULT_THREADS]
    columns = ["1 thread", "2 threads", f"default ({TORCH_DEFAULT_THREADS})"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env=env) for _ in range(args.busy)]
    lines = [f"torch {torch.__version__}; os.cpu_count() {os.cpu_count()}, affinity "
             f"{len(os.sched_getaffinity(0))} cores, torch default {TORCH_DEFAULT_THREADS} threads; "
             f"{args.busy} competing busy process(es); "
             + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in OPENMP_SETTINGS),
             "load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()),
             f"{'workload':<10} {'unit':<10}" + "".join(f"{c:>14}" for c in columns)
             + f"{'2 / 1':>8}{'default / 1':>13}{'fastest':>9}{'chosen':>8}{'others':>9}   load average"]
    print("\n".join(lines), flush=True)
    reasons: dict[str, str] = {}   # purpose -> what choose_threads(0, purpose) said here
    try:
        for name in args.workloads:
            purpose, unit, build = WORKLOADS[name]
            torch.set_num_threads(TORCH_DEFAULT_THREADS)
            step = build()
            load, start = os.getloadavg()[0], (time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds())
            rates = measure(step, sorted(set(counts)), args.seconds, args.rounds)
            wall, busy, own = (now - then for now, then in zip((time.perf_counter(), busy_cpu_seconds(),
                                                               own_cpu_seconds()), start))
            others = max(0.0, busy - own) / wall   # cores other processes kept busy meanwhile
            row = [rates[n] for n in counts]
            chosen, reasons[purpose] = choose_threads(0, purpose)
            line = (f"{name:<10} {unit:<10}" + "".join(f"{r:>14.1f}" for r in row)
                    + f"{row[1] / row[0]:>8.2f}{row[2] / row[0]:>13.2f}{max(rates, key=rates.get):>9}{chosen:>8}"
                    + f"{others:>9.2f}   {load:.2f} -> {os.getloadavg()[0]:.2f}")
            lines.append(line)
            print(line, flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    lines += [f"chosen for {purpose}: {reason}" for purpose, reason in reasons.items()]
    lines.append("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("\n".join(lines[-len(reasons) - 1:]))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n\n")


if __name__ == "__main__":
    main()
