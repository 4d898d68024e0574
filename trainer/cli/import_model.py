"""`ganstudio-train import NETWORK.pkl --out model.safetensors`: convert a network trained
elsewhere into a GAN Studio checkpoint, without running anything from the file."""
from __future__ import annotations

import argparse
from pathlib import Path

from trainer.cli.common import CommandFailed, add_threads_option, command_parser, parse_command_line, subcommand

NAME = "import"


def parser() -> argparse.ArgumentParser:
    p = command_parser(NAME, "Convert an NVlabs StyleGAN2(-ADA) network pickle (e.g. ffhq.pkl) or a rosinality "
                             "stylegan2-pytorch checkpoint into a GAN Studio .safetensors checkpoint. The file is "
                             "read as data: no code from it is imported or run, and anything that is not a "
                             "StyleGAN2 network is refused with a message (nothing is written then).")
    p.add_argument("network", help="the .pkl (NVlabs) or .pt (rosinality) file")
    p.add_argument("--out", default=None,
                   help="output checkpoint (default: the input's name with .safetensors, beside it)")
    p.add_argument("--from", dest="source", default="nvlabs", choices=("nvlabs", "rosinality"),
                   help="the file's origin: nvlabs network pickle or rosinality .pt")
    p.add_argument("--with-d", dest="with_d", action="store_true",
                   help="also keep the discriminator (nvlabs only), for inversion losses that use its features")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    add_threads_option(p)   # the conversion loads and checks tensors with torch
    return p


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    from trainer.importers import NetworkImportError, import_network
    out = Path(args.out) if args.out else Path(args.network).with_suffix(".safetensors")
    # import has always refused with EXIT_FAILED (1), files it cannot convert included
    if out.exists() and not args.force:
        raise CommandFailed(f"{out} exists; pass --force to overwrite it")
    if out.resolve() == Path(args.network).resolve():
        raise CommandFailed("--out would overwrite the input")
    try:
        summary = import_network(args.network, out, args.source, args.with_d)
    except NetworkImportError as exc:
        raise CommandFailed(str(exc)) from exc
    except OSError as exc:
        raise CommandFailed(f"could not write {out}: {exc}") from exc
    print(f"wrote {summary['out']}: {summary['arch']}, {summary['resolution']}x{summary['resolution']}, "
          f"{summary['c_dim']} classes, {summary['num_ws']} ws, kept {summary['kept']}, "
          f"source sha256 {summary['source_sha256'][:16]}...")
    print(f"open it with: ganstudio {summary['out']}")
