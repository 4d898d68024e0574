"""`ganstudio-train blend A B --swap-at 16 --out C.safetensors`: a new checkpoint whose synthesis
layers up to a resolution come from model A and the rest from model B (trainer.models.blend)."""
from __future__ import annotations

import argparse
from pathlib import Path

from trainer.cli.common import (CommandFailed, add_threads_option, command_parser, number, parse_command_line,
                                subcommand)

NAME = "blend"


def parser() -> argparse.ArgumentParser:
    p = command_parser(NAME, "Blend two generators of one architecture layer by layer (layer swapping): the "
                             "synthesis layers at resolutions up to --swap-at come from A (shape, pose, layout), "
                             "those above from B (texture, colour, detail), or a mix of the two by layer. Writes "
                             "an ordinary checkpoint whose metadata names both parents and the settings.")
    p.add_argument("a", metavar="A", help="the model whose low-resolution layers (and mapping network) are kept: "
                                          "a .safetensors checkpoint, a run directory or an NVlabs .pkl")
    p.add_argument("b", metavar="B", help="the model whose high-resolution layers come in (same kinds of file)")
    p.add_argument("--out", required=True, help="the blended checkpoint (.safetensors)")
    p.add_argument("--swap-at", type=number(int, 0), default=16,
                   help="resolution in px: layers at or below it from A, above it from B (0: every layer mixes by "
                        "--mix)")
    p.add_argument("--mix", type=number(float, 0, 1), default=1.0,
                   help="B's share of the layers above --swap-at: 1 = the swap, 0.5 = half of each, 0 = A")
    p.add_argument("--width", type=number(float, 0, 8), default=0.0,
                   help="octaves over which A gives way to B around --swap-at (a logistic ramp); 0 = a hard switch")
    p.add_argument("--mapping", choices=("a", "b"), default="a",
                   help="the parent whose mapping network and w_avg the blend keeps")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    add_threads_option(p)
    return p


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    from trainer.models.blend import BlendSpec, describe, load_parent, write_blend
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CommandFailed(f"{out} exists; pass --force to overwrite it")
    spec = BlendSpec(swap_at=args.swap_at, mix=args.mix, width=args.width, mapping=args.mapping)
    a, b = load_parent(args.a), load_parent(args.b)
    if out.resolve() in (Path(a.path).resolve(), Path(b.path).resolve()):
        raise CommandFailed("--out would overwrite a parent")
    try:
        write_blend(a, b, spec, out)
    except OSError as exc:
        raise CommandFailed(f"could not write {out}: {exc}") from exc
    print(f"wrote {out}: {a.arch}, {Path(a.path).name} (A) + {Path(b.path).name} (B)")
    for line in describe(a.arch, a.config, a.tensors, spec):
        print("  " + line)
    print(f"open it with: ganstudio {out}")
