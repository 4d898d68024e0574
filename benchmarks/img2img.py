"""Does image-to-image training learn here? Pix2Pix on edges2fashion and CycleGAN on
sneakers2boots, trained on this machine's CPU, judged on Fashion-MNIST's held-out test split.

  python benchmarks/img2img.py [--pix2pix-kimg 12] [--cyclegan-kimg 20] [--threads 1] [--only cyclegan]

Pix2Pix: L1 / PSNR / SSIM against the targets and FID against the held-out target images, beside
two baselines: the identity (the edge drawing itself) and the mean image of the training targets.
CycleGAN: the held-out cycle error (mean |x - G_BA(G_AB(x))|, [0, 1] scale) at each snapshot, FID
of the translations against the target domain, and the share of translations that a small
Fashion-MNIST classifier (trainer.metrics.classifier, trained on the train split) calls the
target class, beside the same share for the untranslated inputs. Writes the figures to
benchmarks/results/img2img.txt and strips (input | output | target rows) to assets/readme/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.checkpoint import load_generator                                    # noqa: E402
from trainer.config import DataConfig                                            # noqa: E402
from trainer.images import make_grid, save_png                                   # noqa: E402
from trainer.training.loop import train                                                  # noqa: E402
from trainer.training.presets import preset_config                                        # noqa: E402
from trainer.data.paired import SNEAKER, ANKLE_BOOT, held_out_config, load_translation_data  # noqa: E402
from trainer.metrics.translation import (fid_between, inception_features, pair_scores,  # noqa: E402
                                         translate_images)


def strip(rows: list[torch.Tensor], scale: int = 4) -> np.ndarray:
    """uint8 rows [n, C, R, R] -> one picture, rows stacked, each image enlarged `scale` times (nearest)."""
    images = torch.cat([r.expand(-1, 3, -1, -1) for r in rows]).permute(0, 2, 3, 1).numpy()
    grid = make_grid(np.ascontiguousarray(images), len(rows[0]), pad=1, pad_value=128)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def pix2pix(args, out: list[str]) -> None:
    cfg = preset_config("pix2pix", data={"resolution": 32},
                        model={"g_width": args.width, "d_width": args.width},
                        train={"kimg": args.pix2pix_kimg, "batch": 16, "threads": args.threads, "seed": 0,
                               "log_every": 20, "sample_kimg": args.pix2pix_kimg / 6,
                               "snapshot_kimg": args.pix2pix_kimg / 3, "metrics": ""})
    start = time.time()
    result = train(cfg, outdir=args.outdir, progress=False, log=lambda *_: None)
    seconds = time.time() - start
    G = load_generator(result.run_dir)
    held = load_translation_data(held_out_config(cfg.data), paired=True)
    inputs, targets = held.a[:args.images], held.b[:args.images]
    outputs = translate_images(G.translate, inputs, "cpu")
    training_pairs = load_translation_data(cfg.data, paired=True)
    mean_image = training_pairs.b.float().mean(dim=0, keepdim=True).round().to(torch.uint8)
    rows = {"pix2pix": outputs, "identity (the edge drawing)": inputs,
            "mean training image": mean_image.expand(len(inputs), -1, -1, -1)}
    fid_n = min(args.fid_images, len(inputs))
    real = inception_features(targets[:fid_n], "cpu")
    mean_features = np.repeat(inception_features(mean_image, "cpu"), fid_n, axis=0)   # one image, n times
    out.append(f"## Pix2Pix on edges2fashion 32x32 ({args.pix2pix_kimg:g} kimg, batch 16, ngf = ndf = {args.width}, "
               f"{seconds / 60:.1f} min on {args.threads} CPU thread(s); run {result.run_dir})")
    out.append(f"held-out: the first {len(inputs)} pairs of Fashion-MNIST's test split (FID on {fid_n}, "
               "against their targets)")
    out.append(f"{'method':32s} {'L1 [0,1]':>9s} {'PSNR dB':>8s} {'SSIM':>6s} {'FID':>8s}")
    for name, images in rows.items():
        s = pair_scores(images, targets)
        if name.startswith("mean"):
            from trainer.metrics.distances import fid_from_features
            fid = fid_from_features(real, mean_features)[0]
        else:
            fid = fid_between(images[:fid_n], None, "cpu", reference_features=real)
        out.append(f"{name:32s} {s['l1']:9.4f} {s['psnr']:8.2f} {s['ssim']:6.3f} {fid:8.1f}")
    save_png(ROOT / "assets/readme/img2img-pix2pix-strip.png", strip([inputs[:12], outputs[:12], targets[:12]]))


def cyclegan(args, out: list[str]) -> None:
    from trainer.metrics.classifier import load_or_train_classifier
    snapshots = 5
    cfg = preset_config("cyclegan", data={"resolution": 32},
                        model={"g_width": args.cycle_width, "d_width": args.cycle_width,
                               "resnet_blocks": args.blocks},
                        train={"kimg": args.cyclegan_kimg, "batch": 4, "threads": args.threads, "seed": 0,
                               "log_every": 25, "sample_kimg": args.cyclegan_kimg / snapshots,
                               "snapshot_kimg": args.cyclegan_kimg / snapshots, "metrics": ""})
    start = time.time()
    result = train(cfg, outdir=args.outdir, progress=False, log=lambda *_: None)
    seconds = time.time() - start
    held = load_translation_data(held_out_config(cfg.data), paired=False)
    sneakers, boots = held.a[:args.images], held.b[:args.images]
    out.append(f"## CycleGAN on sneakers2boots 32x32 ({args.cyclegan_kimg:g} kimg, batch 4, ngf = ndf = "
               f"{args.cycle_width}, {args.blocks} residual blocks, {seconds / 60:.1f} min on {args.threads} "
               f"CPU thread(s); run {result.run_dir})")
    out.append(f"held-out: {len(sneakers)} sneakers and {len(boots)} ankle boots of the test split")
    out.append("cycle error over training (mean |x - there-and-back|, [0, 1] scale):")
    checkpoints = sorted((result.run_dir / "checkpoints").glob("step-*.safetensors"))
    for path in checkpoints:
        G = load_generator(path)
        a = pair_scores(translate_images(lambda x: G.round_trip(x, "AtoB"), sneakers, "cpu"), sneakers)["l1"]
        b = pair_scores(translate_images(lambda x: G.round_trip(x, "BtoA"), boots, "cpu"), boots)["l1"]
        out.append(f"  {G.checkpoint_info['kimg']:6.2f} kimg   sneaker->boot->sneaker {a:.4f}   "
                   f"boot->sneaker->boot {b:.4f}")
    G = load_generator(checkpoints[-1])
    to_boots = translate_images(lambda x: G.translate(x, "AtoB"), sneakers, "cpu")
    to_sneakers = translate_images(lambda x: G.translate(x, "BtoA"), boots, "cpu")
    classifier = load_or_train_classifier(DataConfig(source="fashion-mnist", resolution=32, channels=1),
                                          progress=False)
    def share(images, cls):
        return float((classifier.probabilities(images).argmax(axis=1) == cls).mean())
    fid_n = min(args.fid_images, len(sneakers), len(boots))
    real_boots = inception_features(boots[:fid_n], "cpu")
    real_sneakers = inception_features(sneakers[:fid_n], "cpu")
    from trainer.metrics.distances import fid_from_features
    out.append(f"classifier: {classifier.describe()}")
    out.append(f"{'':34s} {'share called target':>20s} {'FID vs target':>14s}")
    out.append(f"{'sneakers untranslated (as boots)':34s} {share(sneakers, ANKLE_BOOT):20.3f} "
               f"{fid_from_features(real_boots, real_sneakers)[0]:14.1f}")
    out.append(f"{'sneakers -> boots':34s} {share(to_boots, ANKLE_BOOT):20.3f} "
               f"{fid_between(to_boots[:fid_n], None, 'cpu', reference_features=real_boots):14.1f}")
    out.append(f"{'boots untranslated (as sneakers)':34s} {share(boots, SNEAKER):20.3f} "
               f"{fid_from_features(real_sneakers, real_boots)[0]:14.1f}")
    out.append(f"{'boots -> sneakers':34s} {share(to_sneakers, SNEAKER):20.3f} "
               f"{fid_between(to_sneakers[:fid_n], None, 'cpu', reference_features=real_sneakers):14.1f}")
    back = translate_images(lambda x: G.round_trip(x, "AtoB"), sneakers[:12], "cpu")
    save_png(ROOT / "assets/readme/img2img-cyclegan-strip.png",
             strip([sneakers[:12], to_boots[:12], back, boots[:12], to_sneakers[:12],
                    translate_images(lambda x: G.round_trip(x, "BtoA"), boots[:12], "cpu")]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pix2pix-kimg", type=float, default=12.0)
    p.add_argument("--cyclegan-kimg", type=float, default=20.0)
    p.add_argument("--width", type=int, default=32, help="Pix2Pix ngf and ndf")
    p.add_argument("--cycle-width", type=int, default=16, help="CycleGAN ngf and ndf")
    p.add_argument("--blocks", type=int, default=4, help="CycleGAN residual blocks")
    p.add_argument("--images", type=int, default=1000, help="held-out images per figure")
    p.add_argument("--fid-images", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--outdir", default="/tmp/img2img-benchmark")
    p.add_argument("--only", choices=("pix2pix", "cyclegan"), default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = [f"# benchmarks/img2img.py ({time.strftime('%Y-%m-%d %H:%M')}; {' '.join(sys.argv[1:]) or 'defaults'})"]
    for name, run in (("pix2pix", pix2pix), ("cyclegan", cyclegan)):
        if args.only in (None, name):
            run(args, out)
            out.append("")
            print("\n".join(out), flush=True)
    target = ROOT / "benchmarks/results/img2img.txt"
    text = "\n".join(out) + "\n"
    if args.only and target.is_file():   # keep the other model's section from an earlier run
        other = "## CycleGAN" if args.only == "pix2pix" else "## Pix2Pix"
        for block in target.read_text(encoding="utf-8").split("\n# "):
            if other in block:
                text += "\n# " + block.lstrip("# ").rstrip("\n") + "\n"
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
