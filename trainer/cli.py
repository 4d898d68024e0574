"""`ganstudio-train`: parse arguments into a RunConfig and call the library.

  ganstudio-train --data D --preset P --outdir runs/ --kimg K [options]   train
  ganstudio-train --resume RUN_DIR [--kimg K]                            continue a run
  ganstudio-train generate --checkpoint C --seeds 0-63 --out grid.png    sample a checkpoint
  ganstudio-train metrics ...                                            evaluate (see its --help)
  ganstudio-train presets                                                list the presets
  ganstudio-train import NETWORK.pkl --out model.safetensors             open an NVlabs/rosinality model
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig, merge
from .presets import PRESETS

SECTIONS = (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ganstudio-train",
        description="Train a GAN and write a run directory (config.json, events.jsonl, samples/, "
                    "checkpoints/, state/). Other commands: generate, metrics, presets "
                    "(`ganstudio-train generate --help`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="dcgan", choices=sorted(PRESETS),
                   help="named starting configuration; the options below override it")
    p.add_argument("--outdir", default="runs", help="parent folder of new run directories")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its state/last.pt; --kimg, --metrics, --metrics-every, "
                        "--sample-kimg, --snapshot-kimg, --log-every, --threads and --device may change")
    p.add_argument("--config", metavar="JSON", default=None,
                   help="start from a config.json (e.g. an earlier run's) instead of a preset")
    for section, cls in SECTIONS:
        group = p.add_argument_group(f"{section} options")
        for f in dataclasses.fields(cls):
            flags = [_flag(f.name)] + (["--data"] if f.name == "source" else []) \
                + (["--metrics-every"] if f.name == "metrics_kimg" else [])  # the name DESIGN.md uses
            kwargs = {"dest": f"{section}.{f.name}", "default": None,
                      "help": f"{f.metadata['help']} (default: {f.default!r})"}
            if f.type in ("bool", bool):
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = {"int": int, "float": float, "str": str}.get(f.type, f.type)
                if "choices" in f.metadata:
                    kwargs["choices"] = f.metadata["choices"]
            group.add_argument(*flags, **kwargs)
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    if args.config:
        base = RunConfig.from_json(Path(args.config).read_text(encoding="utf-8")).to_dict()
    else:
        base = merge(RunConfig().to_dict(), PRESETS[args.preset])
        base["preset"] = args.preset
    overrides: dict = {}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".")
            overrides.setdefault(section, {})[name] = value
    return RunConfig.from_dict(merge(base, overrides))


def run_train(argv: list[str]) -> int:
    args = train_parser().parse_args(argv)
    from .loop import train
    from .data import DataError
    from .checkpoint import CheckpointError
    try:
        if args.resume:
            given = {key: value for key, value in vars(args).items() if "." in key and value is not None}
            other = sorted(key for key in given if not key.startswith("train."))
            if other:
                raise ValueError(f"--{other[0].split('.')[1].replace('_', '-')} cannot change when resuming: "
                                 "the run keeps its data and model")
            result = train(run_dir=args.resume, resume=True,
                           resume_overrides={key.split(".")[1]: value for key, value in given.items()})
        else:
            cfg = config_from_args(args)
            result = train(cfg, outdir=args.outdir)
    except (ConfigError, DataError, CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"ganstudio-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{result.state}: {result.run_dir} at step {result.step} ({result.kimg:.1f} kimg)"
          + (f"\n{result.message}" if result.message else ""))
    return EXIT_FAILED if result.state == "failed" else EXIT_OK


MAX_SEED = 2**32 - 1  # numpy's RandomState, which turns a seed into z, takes 0 to 2**32 - 1


def parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> list of ints, each from 0 to MAX_SEED."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"cannot read seeds {part!r}: use numbers from 0 to {MAX_SEED}, "
                             "ranges like 0-63 and commas") from None
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    if max(seeds) > MAX_SEED:
        raise ValueError(f"seed {max(seeds)} is too large: seeds go from 0 to {MAX_SEED}")
    return seeds


def run_generate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ganstudio-train generate",
                                description="Draw samples from a checkpoint, one per seed.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .safetensors export or a run directory (newest checkpoint)")
    p.add_argument("--seeds", default="0-63", help="seeds as ranges and lists: 0-63, or 1,5,9")
    p.add_argument("--out", required=True, help="grid.png for images; .npz for raw outputs (2-D models: points)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (W space; z scale for models without W)")
    p.add_argument("--class", dest="class_index", type=int, default=None,
                   help="class for conditional models (default: seed modulo the number of classes)")
    p.add_argument("--columns", type=int, default=0, help="grid columns (0: square-ish)")
    p.add_argument("--noise-mode", default="const", choices=("const", "random", "none"),
                   help="per-pixel noise for style-based models")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from .checkpoint import CheckpointError, load_generator
    from .images import make_grid, save_png, scatter_image, to_uint8
    try:
        seeds = parse_seeds(args.seeds)
        G = load_generator(args.checkpoint, device=args.device)
    except (CheckpointError, ValueError) as exc:
        print(f"ganstudio-train generate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    z = torch.stack([torch.from_numpy(np.random.RandomState(s).randn(G.z_dim)).float() for s in seeds])
    c = None
    if G.c_dim:
        labels = [args.class_index if args.class_index is not None else s % G.c_dim for s in seeds]
        c = torch.tensor(labels)
    kwargs = {"noise_mode": args.noise_mode} if getattr(G, "num_ws", 0) else {}
    with torch.inference_mode():
        out = torch.cat([G(zb.to(args.device), None if c is None else cb.to(args.device),
                           truncation_psi=args.trunc, **kwargs)
                         for zb, cb in zip(z.split(64), c.split(64) if c is not None else [None] * len(z.split(64)))])
    target = Path(args.out)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".npz":
        np.savez(target, outputs=out.cpu().numpy(), seeds=np.array(seeds))
    elif G.img_resolution == 0:
        save_png(target, scatter_image(out.cpu().numpy()))
    else:
        columns = args.columns or int(np.ceil(np.sqrt(len(seeds))))
        save_png(target, make_grid(to_uint8(out), columns))
    print(f"wrote {len(seeds)} sample(s) to {target}")
    return EXIT_OK


def run_presets(argv: list[str]) -> int:
    for name, preset in sorted(PRESETS.items()):
        model = preset.get("model", {})
        train = preset.get("train", {})
        print(f"{name:16s} arch={model.get('arch', 'stylegan2'):10s} loss={train.get('loss', 'nonsat'):8s}"
              f" conditional={preset.get('data', {}).get('conditional', False)}")
    return EXIT_OK


def run_metrics(argv: list[str]) -> int:
    from .metrics.cli import main as metrics_main
    return metrics_main(argv)


def run_import(argv: list[str]) -> int:
    from .importers.cli import run_import as import_main
    return import_main(argv)


COMMANDS = {"generate": run_generate, "metrics": run_metrics, "presets": run_presets, "import": run_import}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return run_train(argv)


if __name__ == "__main__":
    sys.exit(main())
