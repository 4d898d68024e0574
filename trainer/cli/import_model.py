"""`ganstudio-train import NETWORK.pkl --out model.safetensors`: convert a network trained
elsewhere into a GAN Studio checkpoint, without running anything from the file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED = 0, 1


def import_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ganstudio-train import",
        description="Convert an NVlabs StyleGAN2(-ADA) network pickle (e.g. ffhq.pkl) or a rosinality "
                    "stylegan2-pytorch checkpoint into a GAN Studio .safetensors checkpoint. The file is read "
                    "as data: no code from it is imported or run, and anything that is not a StyleGAN2 "
                    "network is refused with a message (nothing is written then).")
    p.add_argument("network", help="the .pkl (NVlabs) or .pt (rosinality) file")
    p.add_argument("--out", default=None,
                   help="output checkpoint (default: the input's name with .safetensors, beside it)")
    p.add_argument("--from", dest="source", default="nvlabs", choices=("nvlabs", "rosinality"),
                   help="the file's origin: nvlabs network pickle or rosinality .pt")
    p.add_argument("--with-d", dest="with_d", action="store_true",
                   help="also keep the discriminator (nvlabs only), for inversion losses that use its features")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def run_import(argv: list[str]) -> int:
    from trainer.importers import NetworkImportError, import_network
    args = import_parser().parse_args(argv)
    out = Path(args.out) if args.out else Path(args.network).with_suffix(".safetensors")
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_FAILED
    if out.resolve() == Path(args.network).resolve():
        print("error: --out would overwrite the input", file=sys.stderr)
        return EXIT_FAILED
    try:
        summary = import_network(args.network, out, args.source, args.with_d)
    except NetworkImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"error: could not write {out}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {summary['out']}: {summary['arch']}, {summary['resolution']}x{summary['resolution']}, "
          f"{summary['c_dim']} classes, {summary['num_ws']} ws, kept {summary['kept']}, "
          f"source sha256 {summary['source_sha256'][:16]}...")
    print(f"open it with: ganstudio {summary['out']}")
    return EXIT_OK
