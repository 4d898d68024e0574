"""`ganstudio-train [--preset P] ...`: parse training options into a config and start or resume a run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.cli.options import ConfigHelpFormatter, add_config_options, overrides_from_args
from trainer.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig, merge
from trainer.training.presets import PRESETS

SECTIONS = (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ganstudio-train",
        description="Train a GAN and write a run directory (config.json, events.jsonl, samples/, "
                    "checkpoints/, state/). Other commands: generate, metrics, invert, encoder, presets "
                    "(`ganstudio-train generate --help`).",
        formatter_class=ConfigHelpFormatter)
    p.add_argument("--preset", default="dcgan", choices=sorted(PRESETS),
                   help="named starting configuration; the options below override it")
    p.add_argument("--outdir", default="runs", help="parent folder of new run directories")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its state/last.pt; --kimg, --metrics, --metrics-every, "
                        "--sample-kimg, --snapshot-kimg, --log-every, --threads and --device may change")
    p.add_argument("--config", metavar="JSON", default=None,
                   help="start from a config.json (e.g. an earlier run's) instead of a preset")
    p.add_argument("--nproc", "--gpus", dest="nproc", type=_positive, default=1, metavar="N",
                   help="train on N processes on this machine (one per GPU; gloo on CPU) by starting torchrun; "
                        "the batch is split across them. For several machines run torchrun yourself (README)")
    add_config_options(p, SECTIONS, {"source": ["--data"], "metrics_kimg": ["--metrics-every"]})  # names DESIGN.md uses
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    if args.config:
        base = RunConfig.from_json(Path(args.config).read_text(encoding="utf-8")).to_dict()
    else:
        base = merge(RunConfig().to_dict(), PRESETS[args.preset])
        base["preset"] = args.preset
    return RunConfig.from_dict(merge(base, overrides_from_args(args)))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def run_train(argv: list[str]) -> int:
    args = train_parser().parse_args(argv)
    from trainer.training.distributed import ranks_from_environment
    if args.nproc > 1 and not ranks_from_environment().active:
        from trainer.training.launch import launch_torchrun
        return launch_torchrun(args.nproc, argv)
    from trainer.training.loop import train
    from trainer.data.datasets import DataError
    from trainer.checkpoint import CheckpointError
    try:
        if args.resume:   # loop.train decides which options a resume may change
            given = {key.split(".")[1]: value for key, value in vars(args).items() if "." in key and value is not None}
            result = train(run_dir=args.resume, resume=True, resume_overrides=given)
        else:
            cfg = config_from_args(args)
            result = train(cfg, outdir=args.outdir)
    except (ConfigError, DataError, CheckpointError, ValueError, OSError) as exc:
        print(f"ganstudio-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if ranks_from_environment().is_main:
        print(f"{result.state}: {result.run_dir} at step {result.step} ({result.kimg:.1f} kimg)"
              + (f"\n{result.message}" if result.message else ""))
    return EXIT_FAILED if result.state == "failed" else EXIT_OK
