"""`ganstudio-train generate`: samples of a checkpoint, one per seed, with the studio's latent settings
(the same settings give the same pixels), or the image a studio workspace file shows."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from trainer.cli.common import (CommandFailed, UsageError, add_device_option, add_threads_option, command_parser,
                                note, number, parse_command_line, require_latent_model, subcommand)

NAME = "generate"
PSI_LIMIT = 5.0                 # |psi| beyond this extrapolates W into noise
CHUNK = 64                      # samples rendered at once
MAX_OUTPUT_VALUES = 2**28       # 1 GiB of float32 outputs, whatever the model
MAX_SEEDS = 65536               # a 256 x 256 grid; --seeds 0-999999 is refused, not rendered for minutes


def parser() -> argparse.ArgumentParser:
    from trainer.latents import DEFAULT_PSI, NOISE_MODES, TRUNCATION_CENTERS
    p = command_parser(NAME, "Draw samples from a checkpoint, one per seed, with the studio's latent settings: the "
                             "same settings give the same pixels as the studio. Or render a studio workspace file.")
    p.add_argument("--checkpoint", default=None,
                   help="a .safetensors export or a run directory (newest checkpoint); with --workspace, "
                        "the workspace's own checkpoint when left out")
    p.add_argument("--workspace", metavar="JSON", default=None,
                   help="render the image a studio workspace file shows (its seed, class, truncation, mix, "
                        "W+, directions and StyleGAN3 transform); the settings below are then ignored")
    p.add_argument("--seeds", default="0-63", help="seeds as ranges and lists: 0-63, or 1,5,9")
    p.add_argument("--out", required=True, help="grid.png for images; .npz for raw outputs (2-D models: points)")
    p.add_argument("--psi", "--trunc", dest="psi", type=number(float, -PSI_LIMIT, PSI_LIMIT), default=DEFAULT_PSI,
                   help=f"truncation psi in W, from {-PSI_LIMIT:g} to {PSI_LIMIT:g} (1: none; default "
                        f"{DEFAULT_PSI:g}, the studio's too); models without W use --z-threshold")
    p.add_argument("--trunc-cutoff", type=number(int, 0, 1024), default=None,
                   help="truncate only ws layers below this (default: all)")
    p.add_argument("--trunc-center", default=None, choices=TRUNCATION_CENTERS,
                   help="truncate toward w_avg (global) or the mean w of each image's class (default: class "
                        "for conditional models, as the studio; global otherwise)")
    p.add_argument("--z-threshold", type=number(float, 0, 100), default=0.0,
                   help="models without W: resample z components beyond this (a truncated normal); 0: off")
    p.add_argument("--class", dest="class_index", type=number(int, 0), default=None,
                   help="class for conditional models (default: seed modulo the number of classes)")
    p.add_argument("--columns", type=number(int, 0, 4096), default=0, help="grid columns (0: square-ish)")
    p.add_argument("--noise-mode", default="const", choices=NOISE_MODES,
                   help="per-pixel noise for style-based models")
    p.add_argument("--translate", metavar="TX,TY", default="0,0",
                   help="StyleGAN3: move the picture right by TX and down by TY image widths (1/resolution is "
                        "one pixel), through the model's input transform")
    p.add_argument("--rotate", metavar="DEG", type=float, default=0.0,
                   help="StyleGAN3: turn the picture DEG degrees counterclockwise")
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
    from trainer.latents import MAX_ROTATE_DEG
    args.translate = parse_translate(args.translate)
    if not (math.isfinite(args.rotate) and abs(args.rotate) <= MAX_ROTATE_DEG):
        raise UsageError(f"--rotate {args.rotate}: expected degrees from {-MAX_ROTATE_DEG:g} to {MAX_ROTATE_DEG:g}")
    return target


def parse_translate(text: str) -> tuple[float, float]:
    """'TX,TY' in image widths -> (tx, ty); UsageError names the option and the range."""
    from trainer.latents import MAX_TRANSLATE
    try:
        tx, ty = (float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--translate {text!r}: expected two numbers TX,TY in image widths, e.g. 0.1,-0.05") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_TRANSLATE for v in (tx, ty)):
        raise UsageError(f"--translate {text}: expected numbers from {-MAX_TRANSLATE:g} to {MAX_TRANSLATE:g} image widths")
    return tx, ty


@subcommand(NAME)
def main(argv: list[str]) -> int:
    args = parse_command_line(parser(), argv)
    target = check_options(args)
    import torch
    from tqdm import tqdm
    from trainer.checkpoint import load_generator
    from trainer.latents import (DEFAULT_PSI, LatentMapper, LatentState, has_input_transform, parse_seeds, sample_z,
                                 default_truncation_center, state_from_workspace)
    if args.workspace:
        checkpoint, fields = read_workspace_file(args.workspace)
        checkpoint = args.checkpoint or checkpoint
        if not checkpoint:
            raise UsageError(f"{args.workspace} names no checkpoint: give --checkpoint")
        seeds = None
    else:
        if not args.checkpoint:
            raise UsageError("give --checkpoint (or --workspace)")
        checkpoint, seeds = args.checkpoint, parse_seeds(args.seeds, limit=MAX_SEEDS)
    G = load_generator(checkpoint, device=args.device)
    require_latent_model(G, checkpoint)
    if G.checkpoint_info["note"]:
        note(NAME, G.checkpoint_info["note"])
    check_output_size(len(seeds) if seeds else 1, G)
    if args.workspace:
        check_workspace_for_model(fields, G, args.workspace)
        states = [state_from_workspace(fields, G.c_dim, G.num_ws, getattr(G, "w_dim", 0))]
        seeds = [states[0].seed]
    else:
        if not G.num_ws and args.psi != DEFAULT_PSI:
            note(NAME, "this model has no W space, so --psi does not apply; use --z-threshold")
        if (args.translate != (0, 0) or args.rotate) and not has_input_transform(G):
            note(NAME, "--translate and --rotate move StyleGAN3 images only: this model has no input transform")
        center = args.trunc_center or default_truncation_center(G.c_dim, bool(G.num_ws))
        states = [LatentState(seed=s, class_index=args.class_index, psi=args.psi, cutoff=args.trunc_cutoff,
                              truncation_center=center, z_threshold=args.z_threshold,
                              noise_mode=args.noise_mode, translate_x=args.translate[0], translate_y=args.translate[1],
                              rotate_deg=args.rotate) for s in seeds]
    mapper = LatentMapper(G)
    chunks = []
    with torch.inference_mode(), tqdm(total=len(states), unit="sample", desc=NAME, disable=None) as bar:
        for i in range(0, len(states), CHUNK):   # kept on the host chunk by chunk; Ctrl-C stops between them
            batch = states[i:i + CHUNK]
            if G.img_resolution == 0:   # the studio's scatter: 2000 points per seed
                chunks += [G(torch.from_numpy(sample_z(s.seed, G.z_dim, s.z_threshold, count=2000)).to(
                    mapper.device), mapper.labels([s] * 2000)).cpu() for s in batch]
            else:
                chunks.append(mapper.images(batch).cpu())
            bar.update(len(batch))
    out = torch.cat(chunks)
    try:
        write_outputs(target, out, seeds, G.img_resolution == 0, args.columns)
    except OSError as exc:
        raise CommandFailed(f"cannot write {target}: {exc}") from exc
    print(f"wrote {len(states)} sample(s) to {target}")


def check_output_size(count: int, G) -> None:
    """UsageError when `count` samples of G would make more than MAX_OUTPUT_VALUES output values."""
    shape = (2000, 2) if G.img_resolution == 0 else (G.img_channels, G.img_resolution, G.img_resolution)
    per_sample = math.prod(shape)
    if count * per_sample > MAX_OUTPUT_VALUES:
        raise UsageError(f"--seeds: {count:,} samples of {'x'.join(map(str, shape))} values are "
                         f"{4 * count * per_sample / 1e9:,.1f} GB as float32; at most "
                         f"{MAX_OUTPUT_VALUES // per_sample:,} samples of this model fit one output: give fewer seeds")


def check_workspace_for_model(fields: dict, G, path) -> None:
    """UsageError when a workspace's settings cannot be shown by G as they are: a class it does not
    have, a W+ latent of another shape, psi outside the CLI's range (the studio drops what does not
    fit a model; a command line says so)."""
    c_dim, num_ws, w_dim = G.c_dim, getattr(G, "num_ws", 0), getattr(G, "w_dim", 0)
    cls = fields.get("class_index")
    if cls is not None and c_dim and not (isinstance(cls, int) and 0 <= cls < c_dim):
        raise UsageError(f"{path}: class_index {cls!r} is out of range: the model has classes 0-{c_dim - 1}")
    psi = fields.get("psi")
    if psi is not None and not (isinstance(psi, (int, float)) and not isinstance(psi, bool)
                                and math.isfinite(psi) and abs(psi) <= PSI_LIMIT):
        raise UsageError(f"{path}: psi {psi!r}: expected a number from {-PSI_LIMIT:g} to {PSI_LIMIT:g}")
    base = fields.get("base_ws")
    if base is not None:
        import numpy as np
        try:
            shape = np.asarray(base, dtype=np.float32).shape
        except (TypeError, ValueError):
            shape = None
        if shape != (num_ws, w_dim):
            raise UsageError(f"{path}: base_ws (a W+ latent) has shape {shape}; the model needs ({num_ws}, {w_dim})")


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
    from trainer.files import beside, read_json
    try:
        d = read_json(path, "the file")
    except (OSError, ValueError) as exc:   # unreadable, not JSON, nested too deeply
        raise UsageError(f"cannot read workspace {path}: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != "ganstudio.workspace":
        raise UsageError(f"{path} is not a GAN Studio workspace (missing \"format\": \"ganstudio.workspace\")")
    return beside(path, d.get("checkpoint") or ""), d
