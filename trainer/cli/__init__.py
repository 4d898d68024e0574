"""`ganstudio-train`: one module per subcommand, one shared preamble (trainer.cli.common).

  ganstudio-train [train] --data D --preset P --outdir runs/ --kimg K     train (the default command)
  ganstudio-train [train] --resume RUN_DIR [--kimg K]                      continue a run
  ganstudio-train SUBCOMMAND --help                                        each subcommand's options

The registry below is the list `ganstudio-train --help` prints; a module is imported only when its
command runs, so `--help` and the cheap commands start quickly.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from trainer.cli.common import EXIT_USAGE, PROG, error, guarded


@dataclass(frozen=True)
class Command:
    module: str     # trainer.cli.<module>, whose main(argv) -> exit code runs the command
    purpose: str    # one line for `ganstudio-train --help`


DEFAULT_COMMAND = "train"
COMMANDS: dict[str, Command] = {
    "train": Command("train", "train a GAN or an image-to-image model into a run directory, or resume one "
                              "(the default: no subcommand means train)"),
    "generate": Command("generate", "draw samples of a checkpoint with the studio's latent settings, or render "
                                    "a studio workspace file"),
    "metrics": Command("metrics", "evaluate a checkpoint or a folder of images against a dataset (FID, KID, "
                                  "precision/recall, IS ...)"),
    "invert": Command("invert", "find the latent that draws each photo (W or W+ projection, optionally PTI)"),
    "encoder": Command("encoder", "train the W+ encoder that inversion starts from"),
    "presets": Command("presets", "list the named starting configurations for --preset"),
    "import": Command("import_model", "convert an NVlabs network pickle or a rosinality checkpoint into a "
                                      "GAN Studio checkpoint"),
    "render-video": Command("render_video", "render a timeline file or a preset to MP4, GIF or PNG frames"),
    "translate": Command("translate", "translate images with a Pix2Pix or CycleGAN checkpoint"),
    "blend": Command("blend", "blend two generators of one architecture layer by layer (low resolutions from "
                              "A, high from B)"),
    "dataset": Command("dataset", "make a training zip from a folder, a zip or a video: framed, labelled by "
                                  "sub-folder, duplicates and unreadable pictures skipped and counted"),
    "export": Command("export", "write a checkpoint's generator as an ONNX file for onnxruntime, TouchDesigner "
                                "and other tools"),
}


def overview() -> str:
    """The subcommands and their purposes, from the registry."""
    width = max(map(len, COMMANDS)) + 2
    lines = [f"usage: {PROG} [SUBCOMMAND] [options]    (no subcommand: {DEFAULT_COMMAND})", "",
             f"subcommands (`{PROG} SUBCOMMAND --help` lists each one's options):"]
    lines += [f"  {name:{width}s}{command.purpose}" for name, command in COMMANDS.items()]
    return "\n".join(lines + ["", f"training options (`{PROG} [{DEFAULT_COMMAND}] ...`):", ""])


def main(argv: list[str] | None = None) -> int:
    """The `ganstudio-train` entry point: argv (default sys.argv[1:]) -> exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        name, argv = argv[0], argv[1:]
    elif argv and not argv[0].startswith("-"):   # training takes no positional arguments: a mistyped command
        error(None, f"unknown subcommand {argv[0]!r} (choose from {', '.join(COMMANDS)})")
        return EXIT_USAGE
    else:
        name = DEFAULT_COMMAND
        if "-h" in argv or "--help" in argv:
            print(overview())
    if name == DEFAULT_COMMAND:
        return run_training(argv)
    return importlib.import_module(f"trainer.cli.{COMMANDS[name].module}").main(argv)


def run_training(argv: list[str]) -> int:
    """The training command, through the shared error handling (messages start `ganstudio-train: error:`)."""
    training = importlib.import_module(f"trainer.cli.{COMMANDS[DEFAULT_COMMAND].module}")
    return guarded(None, training.main)(argv)


__all__ = ["COMMANDS", "Command", "main"]
