"""`ganstudio-train [--preset P] ...`: parse training options into a config and start or resume a
run, whatever its task. The preset (or the run being resumed, or the --config file) decides the
task, and the options offered are that task's config fields."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, error
from trainer.cli.options import ConfigHelpFormatter, add_config_options, overrides_from_args
from trainer.config import SECTION_NAMES, TASK_SECTIONS, ConfigError, RunConfig, is_translation_config, merge
from trainer.files import read_json
from trainer.training.presets import PRESETS, preset_config, preset_task

DEFAULT_PRESET = "dcgan"
WHAT = {"gan": "a latent GAN (presets: {gan})",
        "translation": "an image-to-image model: Pix2Pix on pairs, CycleGAN on two unpaired domains "
                       "(presets: {translation})"}


def _presets_of(task: str) -> str:
    return ", ".join(sorted(name for name, p in PRESETS.items() if p["task"] == task))


def train_parser(task: str = "gan") -> argparse.ArgumentParser:
    """The training options of one task ("gan" or "translation")."""
    other = "translation" if task == "gan" else "gan"
    example = "pix2pix" if other == "translation" else DEFAULT_PRESET
    names = {name: _presets_of(name) for name in WHAT}
    p = argparse.ArgumentParser(
        prog=PROG,
        description=f"Train {WHAT[task].format(**names)} and write a run directory (config.json, events.jsonl, "
                    f"samples/, checkpoints/, state/). The options below are this task's; the preset decides the "
                    f"task, so `ganstudio-train --preset {example} --help` lists those for {WHAT[other].format(**names)}. "
                    "Other commands: generate, metrics, invert, encoder, translate, presets "
                    "(`ganstudio-train generate --help`).",
        formatter_class=ConfigHelpFormatter)
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help=f"named starting configuration, which decides what is trained; the options below override "
                        f"it (default: {DEFAULT_PRESET}, or the --config file's)")
    p.add_argument("--outdir", default="runs", help="parent folder of new run directories")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its state/last.pt; --kimg, --metrics, --metrics-every, "
                        "--sample-kimg, --snapshot-kimg, --log-every, --threads, --device, --precision, "
                        "--channels-last and --compile may change, and --data names data that has moved")
    p.add_argument("--config", metavar="JSON", default=None,
                   help="start from a config.json (e.g. an earlier run's) instead of a preset")
    p.add_argument("--nproc", "--gpus", dest="nproc", type=_positive, default=1, metavar="N",
                   help="train on N processes on this machine (one per GPU; gloo on CPU) by starting torchrun; "
                        "the batch is split across them. For several machines run torchrun yourself (README)")
    add_config_options(p, zip(SECTION_NAMES, TASK_SECTIONS[task]),
                       {"source": ["--data"], "metrics_kimg": ["--metrics-every"],   # names DESIGN.md uses
                        "mapping_layers": ["--map"]})                                # and NVlabs' train.py
    return p


def task_of(argv: list[str]) -> str:
    """The task a training command line is for: its --preset's, else that of the run it resumes or
    the config file it starts from, else a GAN's."""
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--preset", "--resume", "--config"):
        first.add_argument(flag)
    given, _ = first.parse_known_args(argv)
    if given.preset in PRESETS:
        return preset_task(given.preset)
    path = Path(given.resume) / "config.json" if given.resume else Path(given.config) if given.config else None
    try:   # an unreadable file is reported when the run starts; here it only picks the options
        return "translation" if path and is_translation_config(read_json(path)) else "gan"
    except (OSError, ValueError):
        return "gan"


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """A new run's config: the --config file's or the preset's, with the options given on top (with
    --init, the source's architecture between the two, and the default preset the source's)."""
    given = overrides_from_args(args)
    base = RunConfig.from_dict(read_json(args.config)).to_dict() if args.config else None
    init = given.get("train", {}).get("init") or (base or {}).get("train", {}).get("init")
    if init:
        from trainer.training.distributed import ranks_from_environment
        from trainer.training.init import new_run_config
        notes: list[str] = []
        cfg = new_run_config(init, args.preset, base, given, notes)
        for note in notes if ranks_from_environment().is_main else ():
            print(f"note: {note}", file=sys.stderr)
        return cfg
    if base is not None:
        return RunConfig.from_dict(merge(base, given))
    return preset_config(args.preset or DEFAULT_PRESET, **given)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def main(argv: list[str]) -> int:
    """Train or resume from a command line; the exit code: 0 finished or stopped, 1 failed, 2 refused."""
    args = train_parser(task_of(argv)).parse_args(argv)
    from trainer.training.distributed import ranks_from_environment
    if args.nproc > 1 and not ranks_from_environment().active:
        from trainer.training.launch import launch_torchrun
        return launch_torchrun(args.nproc, argv)
    from trainer.checkpoint import CheckpointError
    from trainer.data.datasets import DataError
    from trainer.training.loop import train
    try:
        if args.resume:   # loop.train decides which options a resume may change
            if args.config:
                raise ConfigError("--config starts a new run; a resumed run keeps its own config.json")
            given = {name: value for section in overrides_from_args(args).values() for name, value in section.items()}
            if args.preset is not None:   # refused with the other options that would make it another run
                given["preset"] = args.preset
            result = train(run_dir=args.resume, resume=True, resume_overrides=given)
        else:
            cfg = config_from_args(args)
            result = train(cfg, outdir=args.outdir)
    except (ConfigError, DataError, CheckpointError, ValueError, OSError) as exc:
        error(None, str(exc))
        return EXIT_USAGE
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise   # a bug keeps its traceback
        error(None, "out of memory while setting up the run: the data or the model at this --resolution is too "
                    f"large for this machine ({str(exc).splitlines()[0][:200]})")
        return EXIT_FAILED
    if ranks_from_environment().is_main:
        print(f"{result.state}: {result.run_dir} at step {result.step} ({result.kimg:.1f} kimg)"
              + (f"\n{result.message}" if result.message else ""))
    return EXIT_FAILED if result.state == "failed" else EXIT_OK
