"""`ganstudio-train export CHECKPOINT --onnx out.onnx`: the generator as an ONNX file for
onnxruntime, TouchDesigner and the like (trainer.export; docs/export.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from trainer.cli.common import (CommandFailed, UsageError, add_threads_option, command_parser, number,
                                parse_command_line, subcommand)

NAME = "export"


def parser() -> argparse.ArgumentParser:
    from trainer.export import CENTERS, INPUTS, NOISE_MODES, OPSET
    p = command_parser(NAME, "Write a checkpoint's generator as an ONNX file (opset 17, dynamic batch) that "
                             "onnxruntime runs on CPU or CUDA. Latent GANs take z (and a one-hot class c) and "
                             "psi, or the final W+ latents; image-to-image models take an image in [-1, 1]. "
                             "The output is images in [-1, 1], [N, C, H, W].")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .safetensors checkpoint or a run directory")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write")
    p.add_argument("--input", choices=INPUTS, default="z",
                   help="style-based models: z (z, c if conditional, psi) or ws (the final W+ latents "
                        "[N, num_ws, w_dim], not truncated again)")
    p.add_argument("--noise", choices=NOISE_MODES, default="const",
                   help="StyleGAN2 per-layer noise: const bakes the model's stored maps into the file; input "
                        "makes each layer's map an input noise_<layer> [N or 1, 1, r, r]")
    p.add_argument("--transform", choices=("fixed", "input"), default="fixed",
                   help="StyleGAN3: the model's stored input transform (fixed) or a [3, 3] input `transform` "
                        "(NVlabs' meaning: the inverse of the image transform)")
    p.add_argument("--center", choices=CENTERS, default="mean",
                   help="truncation centre for psi: w_avg (mean) or the class's mean w, estimated as the "
                        "studio does (class; conditional models)")
    p.add_argument("--cutoff", type=number(int, 1), default=None,
                   help="truncate only the first CUTOFF layers of W+ (default: all)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default=None,
                   help="CycleGAN: which of the two generators (default: the model's own direction)")
    p.add_argument("--opset", type=number(int, 13, 21), default=OPSET, help="ONNX opset version")
    p.add_argument("--check", action="store_true",
                   help="run the file with onnxruntime beside the PyTorch model on random inputs (batch 3) and "
                        "print the largest absolute difference (needs the onnxruntime package)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    add_threads_option(p)
    return p


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    from trainer.checkpoint import load_generator
    from trainer.export import OnnxSettings, check_onnx, export_onnx
    out = Path(args.onnx)
    if out.exists() and not args.force:
        raise CommandFailed(f"{out} exists; pass --force to overwrite it")
    if args.check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise UsageError("--check needs onnxruntime: pip install onnxruntime") from None
    settings = OnnxSettings(input=args.input, noise=args.noise, transform_input=args.transform == "input",
                            center=args.center, cutoff=args.cutoff, direction=args.direction, opset=args.opset)
    G = load_generator(args.checkpoint)
    try:
        report = export_onnx(G, out, settings)
    except OSError as exc:
        raise CommandFailed(f"could not write {out}: {exc}") from exc
    print(report.describe())
    if args.check:
        print(f"onnxruntime vs PyTorch, batch 3: max abs difference {check_onnx(out, G, settings):.3g}")
