"""`ganstudio-train translate`: apply an image-to-image model to image files.

  ganstudio-train translate --checkpoint RUN_OR_FILE IMAGE... --out DIR [--direction BtoA] [--round-trip]

Training Pix2Pix and CycleGAN (`ganstudio-train --preset pix2pix ...`) goes through trainer.cli.train,
like every run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from trainer.cli.common import (EXIT_OK, EXIT_USAGE, UsageError, add_device_option, add_threads_option,
                                command_parser, error, parse_command_line, subcommand)


def translate_parser() -> argparse.ArgumentParser:
    p = command_parser("translate", "Translate images with a Pix2Pix or CycleGAN checkpoint; writes "
                                    "<stem>-translated.png (and <stem>-round-trip.png) into --out.")
    p.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    p.add_argument("--checkpoint", required=True, help="a .safetensors export or a run directory")
    p.add_argument("--out", required=True, help="folder for the results")
    p.add_argument("--direction", default=None, choices=("AtoB", "BtoA"),
                   help="CycleGAN: which way (default: the checkpoint's)")
    p.add_argument("--round-trip", action="store_true", help="CycleGAN: also write there-and-back")
    add_device_option(p)
    add_threads_option(p)
    return p


@subcommand("translate")
def main(argv: list[str]) -> int:
    """`ganstudio-train translate`: image files through a checkpoint; EXIT_USAGE when any image was refused."""
    args = parse_command_line(translate_parser(), argv)
    from trainer.checkpoint import CheckpointError, load_generator
    from trainer.images import save_png
    from trainer.inversion.photo import PhotoError
    from trainer.translation import translate_pixels
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file: give a folder for the results")
    G = load_generator(args.checkpoint, device=args.device)
    if not getattr(G, "translates", False):
        raise CheckpointError(f"{args.checkpoint} is not an image-to-image model (arch "
                              f"{G.checkpoint_info['config']['arch']}): draw its samples with "
                              "`ganstudio-train generate`")
    if args.round_trip and not hasattr(G, "round_trip"):
        raise UsageError(f"--round-trip needs a CycleGAN, which translates both ways; {args.checkpoint} is a "
                         f"one-way {G.checkpoint_info['config']['arch']} model ({G.direction})")
    failed = 0
    for name in args.images:
        try:
            result = translate_pixels(G, name, args.direction, args.round_trip)
        except PhotoError as exc:
            error("translate", str(exc))
            failed += 1
            continue
        save_png(out / f"{Path(name).stem}-translated.png", result.output)
        if result.round_trip is not None:
            save_png(out / f"{Path(name).stem}-round-trip.png", result.round_trip)
        print(f"{name} -> {out / (Path(name).stem + '-translated.png')}")
    return EXIT_USAGE if failed else EXIT_OK
