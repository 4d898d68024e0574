"""`ganstudio-train dataset SRC --out data.zip`: a folder, a zip or a video's frames -> a training zip
of square PNGs with class labels from sub-folders, a report of what was skipped and converted, and a
contact sheet. The work is trainer.data.dataset_tool's; this module parses and prints."""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from trainer.cli.common import CommandFailed, UsageError, command_parser, number, parse_command_line, subcommand
from trainer.data.dataset_tool import CROPS, DatasetSettings, DatasetToolError

NAME = "dataset"


def parser() -> argparse.ArgumentParser:
    defaults = DatasetSettings()
    p = command_parser(NAME, "Make a training zip from a folder of pictures (searched recursively), a zip of them "
                             "or a video's frames: each picture upright, in RGB or grey, framed to a square of "
                             "a power-of-two size, as PNGs with a dataset.json of class labels (from the "
                             "first level of sub-folders) in NVlabs' format. Unreadable and too-small pictures, "
                             "exact and near duplicates are skipped and counted. Train on the result with "
                             "`ganstudio-train --data data.zip` (add --conditional for the classes).")
    p.add_argument("source", help="a folder, a .zip of pictures, or a video file (.mp4, .mov, .mkv, .webm, .avi)")
    p.add_argument("--out", required=True, help="the zip to write (written whole or not at all)")
    p.add_argument("--resolution", type=number(int, 4, 8192), default=defaults.resolution,
                   help="pixels per side, rounded to the nearest power of two (300 -> 256)")
    p.add_argument("--crop", choices=tuple(CROPS), default=defaults.crop,
                   help="; ".join(f"{name}: {what}" for name, what in CROPS.items()))
    p.add_argument("--channels", type=int, choices=(1, 3), default=defaults.channels, help="3 RGB, 1 grey")
    p.add_argument("--every", type=number(int, 1), default=defaults.every, help="video: keep every Nth frame")
    p.add_argument("--min-size", type=number(int, 0), default=defaults.min_size,
                   help="skip pictures whose shorter side is under this many pixels (0: half the resolution)")
    p.add_argument("--near-distance", type=number(int, -1, 64), default=defaults.near_distance,
                   help="skip a picture whose 64-bit perceptual hash is within this many bits of a kept one's and "
                        "whose 32x32 thumbnail differs from it by at most 3 grey levels on average: the same "
                        "picture re-saved or resized (-1: keep near duplicates; exact ones are always skipped)")
    p.add_argument("--no-labels", dest="labels", action="store_false",
                   help="ignore sub-folders: no class labels")
    p.add_argument("--sheet", default=None,
                   help="contact sheet PNG of what went in (default: beside the zip, NAME-sheet.png)")
    p.add_argument("--no-sheet", action="store_true", help="write no contact sheet")
    p.add_argument("--report", default=None, help="also write the full report (every skipped file) as JSON here")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def _interrupt_on_terminate() -> None:
    """SIGTERM (the studio's Cancel) ends the command as Ctrl-C does, so the temporary zip is removed."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    from tqdm import tqdm
    from trainer.data.dataset_tool import build_dataset
    from trainer.files import write_json
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise UsageError(f"--out {args.out}: the dataset is a .zip file")
    if out.exists() and not args.force:
        raise CommandFailed(f"{out} exists; pass --force to overwrite it")
    sheet = None if args.no_sheet else Path(args.sheet) if args.sheet else out.with_name(f"{out.stem}-sheet.png")
    settings = DatasetSettings(resolution=args.resolution, crop=args.crop, channels=args.channels, every=args.every,
                               min_size=args.min_size, near_distance=args.near_distance, labels=args.labels)
    _interrupt_on_terminate()
    bars = []   # made at the first picture, when the total is known

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="img", desc=NAME))
        bars[0].update(done - bars[0].n)

    try:
        report = build_dataset(args.source, out, settings, sheet, progress)
    except DatasetToolError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise CommandFailed(f"could not write {out}: {exc}") from exc
    finally:
        for bar in bars:
            bar.close()
    if args.report:
        write_json(args.report, report.to_dict())
    print(report.text())
