"""`ganstudio-train --preset pix2pix|cyclegan ...`: image-to-image runs from the command line.

  ganstudio-train --preset pix2pix --data edges2fashion --kimg 20 --outdir runs/
  ganstudio-train --preset cyclegan --data sneakers2boots --kimg 5 --g-width 32
  ganstudio-train --resume runs/00003-pix2pix-edges2fashion --kimg 40
  ganstudio-train translate --checkpoint RUN_OR_FILE IMAGE... --out DIR [--direction BtoA] [--round-trip]

The options are built from the translation config's fields, like the GAN trainer's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer.config import ConfigError, merge
from trainer.cli.options import ConfigHelpFormatter, add_config_options, overrides_from_args
from trainer.training.translation_config import (TRANSLATION_PRESETS, TranslationDataConfig, TranslationModelConfig,
                                 TranslationRunConfig, TranslationTrainConfig, is_translation_config)

SECTIONS = (("data", TranslationDataConfig), ("model", TranslationModelConfig), ("train", TranslationTrainConfig))
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def wants_translation(argv: list[str]) -> bool:
    """Whether a training command line is for an image-to-image run: a translation preset, or a
    --resume / --config whose config.json says so."""
    def value(flag):
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None

    if value("--preset") in TRANSLATION_PRESETS:
        return True
    for flag, name in (("--resume", "config.json"), ("--config", "")):
        given = value(flag)
        if given:
            path = Path(given) / name if name else Path(given)
            try:
                return is_translation_config(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                return False
    return False


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ganstudio-train", formatter_class=ConfigHelpFormatter,
        description="Train an image-to-image model (Pix2Pix on pairs, CycleGAN on two unpaired domains) "
                    "and write a run directory like the GAN trainer's.")
    p.add_argument("--preset", required=False, default="pix2pix", choices=sorted(TRANSLATION_PRESETS))
    p.add_argument("--outdir", default="runs", help="parent folder of new run directories")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue the run in RUN_DIR")
    p.add_argument("--config", metavar="JSON", default=None, help="start from a translation run's config.json")
    p.add_argument("--metrics-kimg", "--metrics-every", dest="metrics_kimg", type=float, default=0.0,
                   help="translation metrics run once, at the end: only 0 is accepted (the GAN trainer's option)")
    add_config_options(p, SECTIONS, {"source": ["--data"]})
    return p


def config_from_args(args: argparse.Namespace) -> TranslationRunConfig:
    if args.config:
        base = TranslationRunConfig.from_json(Path(args.config).read_text(encoding="utf-8")).to_dict()
    else:
        base = merge(TranslationRunConfig().to_dict(), TRANSLATION_PRESETS[args.preset])
        base["preset"] = args.preset
    return TranslationRunConfig.from_dict(merge(base, overrides_from_args(args)))


def run_train(argv: list[str]) -> int:
    parser = train_parser()
    args = parser.parse_args(argv)
    if args.metrics_kimg:
        parser.error(f"--metrics-kimg {args.metrics_kimg:g}: translation metrics are computed at the end of a run "
                     "only (give 0)")
    from trainer.checkpoint import CheckpointError
    from trainer.data.datasets import DataError
    from trainer.training.translation import train_translation
    try:
        if args.resume:
            given = {key.split(".")[1]: value for key, value in vars(args).items() if "." in key and value is not None}
            result = train_translation(run_dir=args.resume, resume=True, resume_overrides=given)
        else:
            result = train_translation(config_from_args(args), outdir=args.outdir)
    except (ConfigError, DataError, CheckpointError, ValueError, OSError) as exc:
        print(f"ganstudio-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{result.state}: {result.run_dir} at step {result.step} ({result.kimg:.1f} kimg)"
          + (f"\n{result.message}" if result.message else ""))
    return EXIT_FAILED if result.state == "failed" else EXIT_OK


def run_translate(argv: list[str]) -> int:
    """Translate image files with a checkpoint; writes <stem>-translated.png (and -round-trip.png)."""
    p = argparse.ArgumentParser(prog="ganstudio-train translate",
                                description="Translate images with a Pix2Pix or CycleGAN checkpoint.")
    p.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    p.add_argument("--checkpoint", required=True, help="a .safetensors export or a run directory")
    p.add_argument("--out", required=True, help="folder for the results")
    p.add_argument("--direction", default=None, choices=("AtoB", "BtoA"),
                   help="CycleGAN: which way (default: the checkpoint's)")
    p.add_argument("--round-trip", action="store_true", help="CycleGAN: also write there-and-back")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from trainer.checkpoint import CheckpointError, load_generator
    from trainer.images import save_png
    from trainer.inversion.photo import PhotoError
    from trainer.translation import translate_pixels
    try:
        G = load_generator(args.checkpoint, device=args.device)
        if not getattr(G, "translates", False):
            raise CheckpointError(f"{args.checkpoint} is not an image-to-image model (arch "
                                  f"{G.checkpoint_info['config']['arch']})")
    except CheckpointError as exc:
        print(f"ganstudio-train translate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    failed = 0
    for name in args.images:
        try:
            result = translate_pixels(G, name, args.direction, args.round_trip)
        except PhotoError as exc:
            print(f"ganstudio-train translate: {exc}", file=sys.stderr)
            failed += 1
            continue
        save_png(out / f"{Path(name).stem}-translated.png", result.output)
        if result.round_trip is not None:
            save_png(out / f"{Path(name).stem}-round-trip.png", result.round_trip)
        print(f"{name} -> {out / (Path(name).stem + '-translated.png')}")
    return EXIT_USAGE if failed else EXIT_OK
