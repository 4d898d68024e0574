"""`ganstudio-train`: parse arguments into a RunConfig and call the library.

  ganstudio-train --data D --preset P --outdir runs/ --kimg K [options]   train
  ganstudio-train --resume RUN_DIR [--kimg K]                            continue a run
  ganstudio-train generate --checkpoint C --seeds 0-63 --out grid.png    sample a checkpoint
  ganstudio-train metrics ...                                            evaluate (see its --help)
  ganstudio-train invert --checkpoint C IMAGE... --out DIR                invert photos (see its --help)
  ganstudio-train encoder --checkpoint C [--out E.safetensors]           train a W+ encoder for inversion
  ganstudio-train presets                                                list the presets
  ganstudio-train import NETWORK.pkl --out model.safetensors             open an NVlabs/rosinality model
  ganstudio-train render-video TIMELINE.json --out film.mp4              a timeline (or --preset) to video
  ganstudio-train --preset pix2pix|cyclegan ...                          image-to-image (trainer/translate_cli.py)
  ganstudio-train translate --checkpoint C IMAGE... --out DIR             translate images with such a model
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.cli import render_video as video_cli
from trainer.cli.train import config_from_args, run_train, train_parser  # noqa: F401 (tests and scripts import them here)
from trainer.latents import parse_seeds  # noqa: F401 (re-exported: scripts and tests import it from the CLI)
from trainer.training.presets import PRESETS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_generate(argv: list[str]) -> int:
    from trainer.latents import DEFAULT_PSI, NOISE_MODES, TRUNCATION_CENTERS
    p = argparse.ArgumentParser(
        prog="ganstudio-train generate",
        description="Draw samples from a checkpoint, one per seed, with the studio's latent settings: the "
                    "same settings give the same pixels as the studio. Or render a studio workspace file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="a .safetensors export or a run directory (newest checkpoint); with --workspace, "
                        "the default is the workspace's own checkpoint")
    p.add_argument("--workspace", metavar="JSON", default=None,
                   help="render the image a studio workspace file shows (its seed, class, truncation, mix, "
                        "W+ and directions); the settings below are then ignored")
    p.add_argument("--seeds", default="0-63", help="seeds as ranges and lists: 0-63, or 1,5,9")
    p.add_argument("--out", required=True, help="grid.png for images; .npz for raw outputs (2-D models: points)")
    p.add_argument("--psi", "--trunc", dest="psi", type=float, default=DEFAULT_PSI,
                   help="truncation psi in W (1: none; the studio's default too); models without W use --z-threshold")
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
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    args = p.parse_args(argv)

    import math
    import numpy as np
    import torch
    from trainer.checkpoint import CheckpointError, load_generator
    from trainer.device import pick_device
    from trainer.files import atomic_write
    from trainer.images import IMAGE_FORMATS, make_grid, save_image, scatter_image, to_uint8
    from trainer.latents import LatentMapper, LatentState
    target = Path(args.out)
    try:   # everything the options alone can tell, before a model is loaded
        if target.is_dir():
            raise ValueError(f"--out {target} is a folder: give a file name such as {target / 'grid.png'}")
        if target.suffix.lower() not in (*IMAGE_FORMATS, ".npz"):
            raise ValueError(f"--out {target.name}: use an image suffix ({', '.join(IMAGE_FORMATS)}) or .npz")
        if args.columns < 0:
            raise ValueError(f"--columns {args.columns}: give a number of columns, or 0 for a square-ish grid")
        for flag, value in (("--psi", args.psi), ("--z-threshold", args.z_threshold)):
            if not math.isfinite(value):
                raise ValueError(f"{flag} {value}: expected a finite number")
        pick_device(args.device)
    except ValueError as exc:
        print(f"ganstudio-train generate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.workspace:
            checkpoint, fields = read_workspace_file(args.workspace)
            checkpoint = args.checkpoint or checkpoint
            if not checkpoint:
                raise ValueError(f"{args.workspace} names no checkpoint: give --checkpoint")
            seeds = None
        else:
            if not args.checkpoint:
                raise ValueError("give --checkpoint (or --workspace)")
            checkpoint, seeds = args.checkpoint, parse_seeds(args.seeds)
        G = load_generator(checkpoint, device=args.device)
        if G.checkpoint_info["note"]:
            print(f"ganstudio-train generate: note: {G.checkpoint_info['note']}", file=sys.stderr)
        if args.workspace:
            from trainer.latents import state_from_workspace
            states = [state_from_workspace(fields, G.c_dim, G.num_ws, getattr(G, "w_dim", 0))]
            seeds = [states[0].seed]
        else:
            if not G.num_ws and args.psi != DEFAULT_PSI:
                print("ganstudio-train generate: note: this model has no W space, so --psi does not apply; "
                      "use --z-threshold", file=sys.stderr)
            states = [LatentState(seed=s, class_index=args.class_index, psi=args.psi, cutoff=args.trunc_cutoff,
                                  truncation_center=args.trunc_center, z_threshold=args.z_threshold,
                                  noise_mode=args.noise_mode) for s in seeds]
        mapper = LatentMapper(G)
        if G.img_resolution == 0:
            from trainer.latents import sample_z
            with torch.inference_mode():   # the studio's scatter: 2000 points per seed
                out = torch.cat([G(torch.from_numpy(sample_z(s.seed, G.z_dim, s.z_threshold, count=2000)).to(
                    mapper.device), mapper.labels([s] * 2000)) for s in states])
        else:
            with torch.inference_mode():
                out = torch.cat([mapper.images(states[i:i + 64]) for i in range(0, len(states), 64)])
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"ganstudio-train generate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if target.suffix.lower() == ".npz":
            def write(tmp):
                with open(tmp, "wb") as f:
                    np.savez(f, outputs=out.cpu().numpy(), seeds=np.array(seeds))
            atomic_write(target, write)
        elif G.img_resolution == 0:
            save_image(target, scatter_image(out.detach().cpu().numpy()))
        else:
            columns = args.columns or int(np.ceil(np.sqrt(len(states))))
            save_image(target, make_grid(to_uint8(out), columns))
    except OSError as exc:
        print(f"ganstudio-train generate: error: cannot write {target}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {len(states)} sample(s) to {target}")
    return EXIT_OK


def read_workspace_file(path) -> tuple[str, dict]:
    """A studio workspace file -> (its checkpoint path, its fields). ValueError for anything else."""
    import json
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read workspace {path}: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != "ganstudio.workspace":
        raise ValueError(f"{path} is not a GAN Studio workspace (missing \"format\": \"ganstudio.workspace\")")
    checkpoint = d.get("checkpoint") or ""
    if checkpoint and not Path(checkpoint).is_absolute():
        checkpoint = str(Path(path).parent / checkpoint)   # relative paths are relative to the file
    return checkpoint, d


def run_presets(argv: list[str]) -> int:
    for name, preset in sorted(PRESETS.items()):
        model = preset.get("model", {})
        train = preset.get("train", {})
        print(f"{name:16s} arch={model.get('arch', 'stylegan2'):10s} loss={train.get('loss', 'nonsat'):8s}"
              f" conditional={preset.get('data', {}).get('conditional', False)}")
    from trainer.training.translation_config import TRANSLATION_PRESETS
    for name, preset in sorted(TRANSLATION_PRESETS.items()):
        print(f"{name:16s} arch={preset['model']['arch']:10s} loss={preset['train']['loss']:8s}"
              f" data={preset['data']['source']} (image-to-image)")
    return EXIT_OK


def run_metrics(argv: list[str]) -> int:
    from trainer.cli.metrics import main as metrics_main
    return metrics_main(argv)


def run_invert(argv: list[str]) -> int:
    from trainer.cli.invert import main as invert_main
    return invert_main(argv)


def run_encoder(argv: list[str]) -> int:
    from trainer.inversion.encoder_train import main as encoder_main
    return encoder_main(argv)


def run_translate(argv: list[str]) -> int:
    from trainer.cli.translate import run_translate as translate_main
    return translate_main(argv)


def run_import(argv: list[str]) -> int:
    from trainer.cli.import_model import run_import as import_main
    return import_main(argv)


COMMANDS = {"generate": run_generate, "metrics": run_metrics, "presets": run_presets, "import": run_import,
            "render-video": video_cli.main, "invert": run_invert, "encoder": run_encoder,
            "translate": run_translate}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    from trainer.cli.translate import wants_translation
    if wants_translation(argv):   # Pix2Pix / CycleGAN runs have their own config and loop
        from trainer.cli.translate import run_train as run_translation_train
        return run_translation_train(argv)
    return run_train(argv)


if __name__ == "__main__":
    sys.exit(main())
