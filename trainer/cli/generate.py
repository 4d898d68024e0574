"""`ganstudio-train generate`: samples of a checkpoint, one per seed, with the studio's latent settings
(the same settings give the same pixels), or the image a studio workspace file shows."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from trainer.cli.common import (CommandFailed, UsageError, add_device_option, add_threads_option, command_parser,
                                note, parse_command_line, subcommand)

NAME = "generate"


def parser() -> argparse.ArgumentParser:
    from trainer.latents import DEFAULT_PSI, NOISE_MODES, TRUNCATION_CENTERS
    p = command_parser(NAME, "Draw samples from a checkpoint, one per seed, with the studio's latent settings: the "
                             "same settings give the same pixels as the studio. Or render a studio workspace file.")
    p.add_argument("--checkpoint", default=None,
                   help="a .safetensors export or a run directory (newest checkpoint); with --workspace, "
                        "the workspace's own checkpoint when left out")
    p.add_argument("--workspace", metavar="JSON", default=None,
                   help="render the image a studio workspace file shows (its seed, class, truncation, mix, "
                        "W+ and directions); the settings below are then ignored")
    p.add_argument("--seeds", default="0-63", help="seeds as ranges and lists: 0-63, or 1,5,9")
    p.add_argument("--out", required=True, help="grid.png for images; .npz for raw outputs (2-D models: points)")
    p.add_argument("--psi", "--trunc", dest="psi", type=float, default=DEFAULT_PSI,
                   help=f"truncation psi in W (1: none; default {DEFAULT_PSI:g}, the studio's too); "
                        "models without W use --z-threshold")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only ws layers below this (default: all)")
    p.add_argument("--trunc-center", default="global", choices=TRUNCATION_CENTERS,
                   help="truncate toward w_avg (global) or the mean w of each image's class")
    p.add_argument("--z-threshold", type=float, default=0.0,
                   help="models without W: resample z components beyond this (a truncated normal); 0: off")
    p.add_argument("--class", dest="class_index", type=int, default=None,
                   help="class for conditional models (default: seed modulo the number of classes)")
    p.add_argument("--columns", type=int, default=0, help="grid columns (0: square-ish)")
    p.add_argument("--noise-mode", default="const", choices=NOISE_MODES,
                   help="per-pixel noise for style-based models")
    add_device_option(p)
    add_threads_option(p)
    return p


def check_options(args: argparse.Namespace) -> Path:
    """Everything the options alone can tell, before a model is loaded -> the output path."""
    from trainer.images import IMAGE_FORMATS
    target = Path(args.out)
    if target.is_dir():
        raise UsageError(f"--out {target} is a folder: give a file name such as {target / 'grid.png'}")
    if target.suffix.lower() not in (*IMAGE_FORMATS, ".npz"):
        raise UsageError(f"--out {target.name}: use an image suffix ({', '.join(IMAGE_FORMATS)}) or .npz")
    if args.columns < 0:
        raise UsageError(f"--columns {args.columns}: give a number of columns, or 0 for a square-ish grid")
    for flag, value in (("--psi", args.psi), ("--z-threshold", args.z_threshold)):
        if not math.isfinite(value):
            raise UsageError(f"{flag} {value}: expected a finite number")
    return target


@subcommand(NAME)
def main(argv: list[str]) -> int:
    args = parse_command_line(parser(), argv)
    target = check_options(args)
    import torch
    from trainer.checkpoint import load_generator
    from trainer.latents import DEFAULT_PSI, LatentMapper, LatentState, parse_seeds, sample_z, state_from_workspace
    if args.workspace:
        checkpoint, fields = read_workspace_file(args.workspace)
        checkpoint = args.checkpoint or checkpoint
        if not checkpoint:
            raise UsageError(f"{args.workspace} names no checkpoint: give --checkpoint")
        seeds = None
    else:
        if not args.checkpoint:
            raise UsageError("give --checkpoint (or --workspace)")
        checkpoint, seeds = args.checkpoint, parse_seeds(args.seeds)
    G = load_generator(checkpoint, device=args.device)
    if G.checkpoint_info["note"]:
        note(NAME, G.checkpoint_info["note"])
    if args.workspace:
        states = [state_from_workspace(fields, G.c_dim, G.num_ws, getattr(G, "w_dim", 0))]
        seeds = [states[0].seed]
    else:
        if not G.num_ws and args.psi != DEFAULT_PSI:
            note(NAME, "this model has no W space, so --psi does not apply; use --z-threshold")
        states = [LatentState(seed=s, class_index=args.class_index, psi=args.psi, cutoff=args.trunc_cutoff,
                              truncation_center=args.trunc_center, z_threshold=args.z_threshold,
                              noise_mode=args.noise_mode) for s in seeds]
    mapper = LatentMapper(G)
    with torch.inference_mode():
        if G.img_resolution == 0:   # the studio's scatter: 2000 points per seed
            out = torch.cat([G(torch.from_numpy(sample_z(s.seed, G.z_dim, s.z_threshold, count=2000)).to(
                mapper.device), mapper.labels([s] * 2000)) for s in states])
        else:
            out = torch.cat([mapper.images(states[i:i + 64]) for i in range(0, len(states), 64)])
    try:
        write_outputs(target, out, seeds, G.img_resolution == 0, args.columns)
    except OSError as exc:
        raise CommandFailed(f"cannot write {target}: {exc}") from exc
    print(f"wrote {len(states)} sample(s) to {target}")


def write_outputs(target: Path, out, seeds: list[int], points: bool, columns: int) -> None:
    """Images [N, C, H, W] in [-1, 1] (or points [N, 2]) -> a grid image, a scatter plot, or an .npz of both."""
    import numpy as np
    from trainer.files import atomic_write
    from trainer.images import make_grid, save_image, scatter_image, to_uint8
    if target.suffix.lower() == ".npz":
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, outputs=out.cpu().numpy(), seeds=np.array(seeds))
        atomic_write(target, write)
    elif points:
        save_image(target, scatter_image(out.detach().cpu().numpy()))
    else:
        save_image(target, make_grid(to_uint8(out), columns or int(np.ceil(np.sqrt(len(out))))))


def read_workspace_file(path) -> tuple[str, dict]:
    """A studio workspace file -> (its checkpoint path, its fields). UsageError for anything else."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read workspace {path}: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != "ganstudio.workspace":
        raise UsageError(f"{path} is not a GAN Studio workspace (missing \"format\": \"ganstudio.workspace\")")
    checkpoint = d.get("checkpoint") or ""
    if checkpoint and not Path(checkpoint).is_absolute():
        checkpoint = str(Path(path).parent / checkpoint)   # relative paths are relative to the file
    return checkpoint, d
