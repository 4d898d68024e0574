"""Copy a training run into assets/demo/ as the bundled demo: its config, its whole run log, its
newest checkpoint and a spread of its sample grids (every grid would bloat the repository).

    python scripts/ship_demo.py runs/00000-stylegan2-cond-fashion-mnist [--grids 8] [--checkpoint step-N]

It ships the newest checkpoint with the run's resume state (`state/last.pt`, so the demo can be
trained further), or the checkpoint --checkpoint names (say, the snapshot with the best FID,
without state), and only the grids up to that step.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run directory to ship")
    parser.add_argument("--grids", type=int, default=8, help="how many sample grids to keep, spread over the run")
    parser.add_argument("--checkpoint", default="", help="the snapshot to ship, e.g. step-012345 (default: the newest)")
    parser.add_argument("--dest", type=Path, default=ROOT / "assets" / "demo")
    args = parser.parse_args()
    if args.run.resolve() == args.dest.resolve():
        raise SystemExit("copy the demo to a run directory first: shipping a folder onto itself would delete it")

    checkpoints = sorted((args.run / "checkpoints").glob("step-*.safetensors"))
    if args.checkpoint:
        checkpoints = [c for c in checkpoints if c.stem == Path(args.checkpoint).stem]
        if not checkpoints:
            raise SystemExit(f"{args.run}/checkpoints has no {Path(args.checkpoint).stem}.safetensors")
    if not checkpoints:
        raise SystemExit(f"{args.run} has no checkpoint yet")
    grids = [g for g in sorted((args.run / "samples").glob("step-*.png")) if g.stem <= checkpoints[-1].stem]
    keep = sorted({grids[round(i * (len(grids) - 1) / max(args.grids - 1, 1))] for i in range(args.grids)}) \
        if grids else []

    state = args.run / "state" / "last.pt"
    shipped_state = not args.checkpoint and state.is_file()   # the resume state of the newest step only
    for sub in ("checkpoints", "samples", "state"):
        shutil.rmtree(args.dest / sub, ignore_errors=True)
        (args.dest / sub).mkdir(parents=True)
    shutil.copy2(args.run / "config.json", args.dest / "config.json")
    shutil.copy2(args.run / "events.jsonl", args.dest / "events.jsonl")
    shutil.copy2(checkpoints[-1], args.dest / "checkpoints" / checkpoints[-1].name)
    for grid in keep:
        shutil.copy2(grid, args.dest / "samples" / grid.name)
    if shipped_state:   # so a later session can continue the run (`--resume`) instead of starting over
        shutil.copy2(state, args.dest / "state" / "last.pt")
    for path in args.dest.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    print(f"shipped {checkpoints[-1].name} and {len(keep)} grids to {args.dest}")


if __name__ == "__main__":
    main()
