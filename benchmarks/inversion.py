"""Inversion on the demo: how well, how fast, and how well the results edit.

On the first --images Fashion-MNIST TEST images (the demo trained on the training split only):
  * mean PSNR, SSIM and seconds per image for W, W+, W+ with noise maps (the defaults), and the
    defaults then PTI, each at --steps (100 / 300 / 1000), with the default settings otherwise;
  * the baseline, run in the same process: a plain 1000-step W+ projection (MSE only, Adam lr 0.1
    constant, fixed noise, start at the class mean of the image's true class) — the issue's target
    is the defaults at <= 100 steps reaching this PSNR;
  * how well each result edits: KID (x1000, Inception features) between held-out test images and
    the inversions as reconstructed, after a psi 0.7 edit (toward w_avg) and after a coarse style
    mix (layers at 4-8 px from a random latent), for W, W+, W+ with e4e's pull toward one w and
    W+ with noise maps (kept through the edits, as the studio does), with how far each edit moves
    the image (mean absolute pixel change), since an edit that changes nothing also scores well;
  * a strip of originals, reconstructions and edits (assets/readme/inversion-strip.png).

Images are optimised as one batch (one latent each, one synthesis call per step for all), so the
seconds per image are the batch's time divided by its size.

  python benchmarks/inversion.py [--images 100] [--steps 100,300,1000] [--pti-steps 100]
                                 [--methods w,w+,w+noise,w+best,pti] [--pti-images N]
                                 [--kid-reference 500] [--threads 1] [--out benchmarks/results/inversion.md]

The defaults start from the demo's encoder when one for its checkpoint is there
(assets/demo/checkpoints/encoders/, `ganstudio-train encoder`); the `w+best` rows start from the
best of 512 random w instead, to show what the encoder adds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def demo_and_test_images(n: int):
    """The demo as the studio finds it and the first n Fashion-MNIST test images at its resolution
    -> (checkpoint path, G, the test split, targets [n, C, H, W] in [-1, 1])."""
    from ganstudio.engine.demo import find_demo_checkpoint
    from trainer import load_generator
    from trainer.config import DataConfig
    from trainer.data.datasets import load_dataset
    checkpoint = find_demo_checkpoint()
    G = load_generator(checkpoint)
    test = load_dataset(DataConfig(source="fashion-mnist", split="test", resolution=G.img_resolution,
                                   channels=G.img_channels))
    return checkpoint, G, test, test.data[:n].float() / 127.5 - 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=100, help="N Fashion-MNIST test images to invert")
    p.add_argument("--first", type=int, default=0, help="the index of the first test image inverted")
    p.add_argument("--steps", default="100,300,1000", help="step counts to compare")
    p.add_argument("--pti-steps", type=int, default=100, help="PTI tuning steps after W+")
    p.add_argument("--pti-images", type=int, default=0, help="tune only the first N images (0: all)")
    p.add_argument("--pti-lr", type=float, default=3e-3, help="PTI learning rate")
    p.add_argument("--pti-locality", type=float, default=0.1, help="weight of PTI's locality regulariser")
    p.add_argument("--no-edits", action="store_true", help="skip the editability table and the strip")
    p.add_argument("--pti-only", action="store_true", help="only W+ (the pivots) and PTI at each step count")
    p.add_argument("--methods", default="w,w+,w+noise,w+best,pti",
                   help="rows at each step count: w, w+, w+noise, w+best (W+ from the best of random w), pti")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the plain 1000-step W+ baseline (when another run of the same images measured it)")
    p.add_argument("--kid-reference", type=int, default=500, help="held-out test images as KID's reference")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inversion.md"))
    p.add_argument("--strip", default=str(ROOT / "assets" / "readme" / "inversion-strip.png"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from trainer.images import make_grid, save_png
    from trainer.inversion.project import ProjectionSettings, noise_override, project
    from trainer.inversion.pti import PTISettings, pivotal_tuning
    from trainer.latents import layer_groups, truncate
    from trainer.metrics.distances import kernel_inception_distance
    from trainer.metrics.inception import load_inception
    from ganstudio.engine.model_info import layer_resolutions

    checkpoint, G, test, targets = demo_and_test_images(args.first + args.images)
    n, first = args.images, args.first
    targets = targets[first:]
    labels = test.labels[first:first + n].tolist()
    reference = test.data[first + n:first + n + args.kid_reference]   # held out from the inverted images too
    steps_list = [int(s) for s in args.steps.split(",")]
    defaults = ProjectionSettings()
    lines: list[str] = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    say(f"# Inversion on the demo ({Path(checkpoint).name}), {n} Fashion-MNIST test images "
        f"({first}-{first + n - 1}), "
        f"{torch.get_num_threads()} CPU thread(s)")
    say()
    say(f"Defaults: {json.dumps(defaults.to_dict(), sort_keys=True)}")
    say()
    from trainer.inversion.encoder import encoder_for_inversion
    encoder, note = encoder_for_inversion(G, False, defaults.encoder, str(checkpoint))
    if encoder is not None:
        say(f"Encoder (the defaults' start): {encoder.metadata.get('training', '')}")
    else:
        say(f"No encoder for this checkpoint: the defaults start from the best of random w. {note}")
    say()
    say("| method | steps | PSNR dB | SSIM | s / image |")
    say("|---|---:|---:|---:|---:|")
    results = {}

    def row(name, steps, psnr, ssim, seconds):
        say(f"| {name} | {steps} | {np.mean(psnr):.2f} | {np.mean(ssim):.4f} | {seconds / n:.3f} |")

    plain = ProjectionSettings(space="w+", precondition=False, steps=1000, schedule="constant", lr=0.1, w_noise=0.0,
                               init="class_mean", losses={"mse": 1.0}, optimize_noise=False)
    baseline = None if args.no_baseline else project(G, targets, plain, labels)
    if baseline is not None:
        results["baseline"] = baseline
        row("baseline: plain W+ (MSE, lr 0.1 constant, class-mean start)", 1000, baseline.psnr, baseline.ssim,
            baseline.seconds)

    wanted = {"w+", "pti"} if args.pti_only else set(args.methods.split(","))
    for steps in steps_list:
        methods = (("w", "W", defaults.replace(space="w", steps=steps, optimize_noise=False)),
                   ("w+", "W+", defaults.replace(steps=steps, optimize_noise=False)),
                   ("w+noise", "W+ and noise", defaults.replace(steps=steps)),
                   ("w+best", "W+ and noise from the best of 512 random w", defaults.replace(steps=steps, init="best_of_n")))
        for key, name, settings in methods:
            if key in wanted or (key == "w+noise" and "pti" in wanted):
                r = project(G, targets, settings)
                results[(name, steps)] = r
                row(f"{name} (defaults; start: {r.start})", steps, r.psnr, r.ssim, r.seconds)
        if "pti" not in wanted:
            continue
        pivots = results[("W+ and noise", steps)]   # the defaults, as the studio and CLI tune
        m = args.pti_images or n
        tuned_psnr, tuned_ssim, seconds, locality = [], [], pivots.seconds * m / n, []
        for i in range(m):
            t = pivotal_tuning(G, torch.from_numpy(pivots.ws[i]), targets[i:i + 1],
                               PTISettings(steps=args.pti_steps, lr=args.pti_lr, locality=args.pti_locality),
                               noise={k: torch.from_numpy(v[i:i + 1, None]) for k, v in pivots.noise.items()})
            tuned_psnr.append(t.psnr)
            tuned_ssim.append(t.ssim)
            locality.append(t.locality_psnr)
            seconds += t.seconds
            if i == 0:
                results[("PTI", steps)] = t
        say(f"| W+ then PTI ({args.pti_steps} steps, lr {args.pti_lr:g}, locality {args.pti_locality:g}"
            f"{'' if m == n else f', first {m} images'}) | {steps} | "
            f"{np.mean(tuned_psnr):.2f} | {np.mean(tuned_ssim):.4f} | {seconds / m:.3f} |")
        say(f"|   (PTI locality: random latents near the pivot redrawn at {np.mean(locality):.1f} dB vs the original) | | | | |")

    target_steps = min(s for s in steps_list)
    fast = results.get(("W+ and noise", target_steps))
    if fast is not None and baseline is not None:
        say()
        say(f"Speed target: the defaults (W+ and noise maps) at {target_steps} steps {fast.psnr.mean():.2f} dB vs plain 1000-step W+ "
            f"{baseline.psnr.mean():.2f} dB -> {'met' if fast.psnr.mean() >= baseline.psnr.mean() else 'NOT met'}")

    if args.no_edits or not {"w", "w+", "w+noise"} <= wanted:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
        return 0

    # ---- how well the results edit ----
    edit_steps = max(steps_list)
    regularised = project(G, targets, defaults.replace(steps=edit_steps, layer_regularize=1e-4, optimize_noise=False))
    say()
    say(f"## Editability ({edit_steps}-step inversions unless the row says otherwise; KID x1000 against "
        f"{len(reference)} held-out test images)")
    say()
    say("| latent | PSNR dB | KID reconstruction | KID psi 0.7 | KID coarse mix | psi 0.7 moves (0-255) | mix moves "
        "| mean \\|ws - w_avg\\| |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    net, _ = load_inception(download=False)

    def features(images_u8: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([net(images_u8[i:i + 50]) for i in range(0, len(images_u8), 50)]).numpy()

    real = features(reference)
    coarse = torch.tensor(layer_groups(layer_resolutions(G))["coarse"])
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(n, G.z_dim, generator=gen)
    c = torch.randint(0, G.c_dim, (n,), generator=gen) if G.c_dim else None
    with torch.no_grad():
        style = G.mapping(z, c)

    def draw(ws, noise):   # fitted noise maps stay through the edits, as in the studio
        maps = {k: torch.from_numpy(v[:, None]) for k, v in noise.items()}
        with torch.no_grad(), noise_override(G, maps):
            return (G.synthesis(ws, noise_mode="const") * 127.5 + 128).clamp(0, 255).to(torch.uint8)

    strip_rows = {"original": ((targets + 1) * 127.5).round().to(torch.uint8)}
    rows = [("W", results[("W", edit_steps)]), ("W+", results[("W+", edit_steps)]),
            ("W+ with e4e layer pull (1e-4)", regularised),
            ("W+ and noise maps (the defaults)", results[("W+ and noise", edit_steps)])]
    if target_steps != edit_steps:   # the fast defaults against the baseline they are measured by
        rows.append((f"W+ and noise maps (the defaults), {target_steps} steps", results[("W+ and noise", target_steps)]))
    if baseline is not None:
        rows.append(("plain 1000-step W+ baseline", baseline))
    for name, r in rows:
        ws = torch.from_numpy(r.ws)
        recon = draw(ws, r.noise)
        psi = draw(truncate(ws, G.w_avg, 0.7, None), r.noise)
        mixed = draw(torch.where(coarse[None, :, None], style, ws), r.noise)
        moved = [(x.float() - recon.float()).abs().mean().item() for x in (psi, mixed)]
        kids = [kernel_inception_distance(real, features(x)).value * 1000 for x in (recon, psi, mixed)]
        distance = (ws - G.w_avg.float()).norm(dim=2).mean().item()   # per layer, over images and layers
        say(f"| {name} | {r.psnr.mean():.2f} | {kids[0]:.1f} | {kids[1]:.1f} | {kids[2]:.1f} | "
            f"{moved[0]:.1f} | {moved[1]:.1f} | {distance:.1f} |")
        if name in ("W+", "W+ and noise maps (the defaults)"):
            strip_rows[f"{name} reconstruction"] = recon
            strip_rows[f"{name} psi 0.7"] = psi
            strip_rows[f"{name} coarse mix"] = mixed
    say()
    say("Strip rows (top to bottom): " + "; ".join(strip_rows))

    count = min(10, n)
    tiles = torch.cat([rows[:count] for rows in strip_rows.values()])
    tiles = tiles.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy() if tiles.shape[1] == 1 else \
        tiles.permute(0, 2, 3, 1).numpy()
    grid = make_grid(np.ascontiguousarray(tiles), count, pad=2, pad_value=96)
    save_png(args.strip, grid.repeat(3, axis=0).repeat(3, axis=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out} and {args.strip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
