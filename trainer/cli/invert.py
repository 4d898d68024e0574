"""`ganstudio-train invert`: parse arguments, open the photos, call trainer.inversion.project, write the files.

  ganstudio-train invert --checkpoint C IMAGE... --out DIR [--space w|w+] [--steps N] [--pti] [--class K]

For each image: DIR/<stem>.npz (the W+ latent, settings, record), DIR/<stem>-reconstruction.png
(at the model's resolution), DIR/<stem>-pair.png (the fitted target beside the reconstruction, enlarged to at least 256 pixels high),
and with --pti DIR/<stem>-pti.safetensors (the tuned generator, an ordinary checkpoint).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trainer.cli.common import (EXIT_OK, EXIT_USAGE, UsageError, add_device_option, add_threads_option,
                                command_parser, error, note, number, parse_command_line, subcommand)

NAME = "invert"
PAIR_GAP = 2                 # pixels of mid grey between target and reconstruction (before enlarging)
PAIR_MIN_HEIGHT = 256        # a small model's pair is enlarged (whole pixels) to be seen: 32 px -> 256
PAIR_GAP_GREY = 128


def parse_losses(text: str) -> dict[str, float]:
    """"mse=1,ssim=0.5" (a bare name means weight 1) -> {"mse": 1.0, "ssim": 0.5}."""
    out = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition("=")
        try:
            out[name.strip().replace("-", "_")] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"cannot read loss weight {part!r}: use name=number, e.g. mse=1,ssim=0.5") from None
    return out


def parser() -> argparse.ArgumentParser:
    from trainer.inversion.project import INITS, SCHEDULES, ProjectionSettings
    from trainer.inversion.pti import PTISettings
    d, pti = ProjectionSettings(), PTISettings()
    p = command_parser(NAME, "Find the latent that draws each photo (W or W+ projection), optionally fine-tune "
                             "the generator around it (--pti). The defaults are the fast settings measured in "
                             "benchmarks/inversion.py.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos: PNG, JPEG, GIF, BMP, TIFF, WebP ...")
    p.add_argument("--checkpoint", required=True, help="a .safetensors export or a run directory (newest checkpoint)")
    p.add_argument("--out", required=True, help="folder for the results (created)")
    p.add_argument("--space", default=d.space, choices=("w", "w+"), help="one w for all layers, or one per layer")
    p.add_argument("--noise", action=argparse.BooleanOptionalAction, default=d.optimize_noise,
                   help="also fit the per-pixel noise maps (they carry the detail the latent cannot; edits keep them)")
    p.add_argument("--noise-reg", type=number(float, 0), default=d.noise_regularize,
                   help="weight of the noise maps' autocorrelation penalty (NVlabs: 1e5, which keeps them noise)")
    p.add_argument("--steps", type=number(int, 1, 10**6), default=d.steps, help="optimisation steps")
    p.add_argument("--lr", type=number(float, above=0, high=10), default=d.lr, help="Adam's peak learning rate")
    p.add_argument("--schedule", default=d.schedule, choices=SCHEDULES,
                   help="nvlabs: warm-up then cosine ramp-down; constant: a fixed rate")
    p.add_argument("--w-noise", type=number(float, 0, 10), default=d.w_noise, help="initial noise on w in W's std (NVlabs: 0.05)")
    p.add_argument("--layer-reg", type=number(float, 0), default=d.layer_regularize,
                   help="pull W+ layers toward their mean (e4e's idea; edits better, fits less)")
    p.add_argument("--loss", default=",".join(f"{name}={weight:g}" for name, weight in d.losses.items()),
                   help="weighted losses: mse, detail (MSE of the difference's fine detail, which speeds up the fit), "
                        "l1, ssim, ms_ssim, inception, discriminator (the run's D, when its state/ is there), "
                        "lpips (where installed)")
    p.add_argument("--init", default=d.init, choices=INITS, help="where the optimisation starts")
    p.add_argument("--encoder", default=d.encoder,
                   help="an encoder file for the start (default: encoders/<checkpoint stem>.safetensors beside the "
                        "checkpoint, used when it was trained for this checkpoint; see `ganstudio-train encoder`)")
    p.add_argument("--init-samples", type=number(int, 1, 10**6), default=d.init_samples, help="random w tried by best_of_n")
    p.add_argument("--class", dest="class_index", type=number(int, 0), default=None,
                   help="conditional models: the photos' class (default: search)")
    p.add_argument("--crop", default=None, metavar="LEFT,TOP,SIDE",
                   help="the square to fit, in photo pixels (default: the centre square)")
    p.add_argument("--pti", action="store_true", help="then fine-tune the generator around each latent (PTI)")
    p.add_argument("--pti-steps", type=number(int, 0, 10**6), default=pti.steps, help="PTI tuning steps")
    p.add_argument("--pti-lr", type=number(float, above=0, high=10), default=pti.lr, help="PTI learning rate")
    p.add_argument("--seed", type=number(int, 0, 2**32 - 1), default=0, help="fixes the random starts and noise")
    add_device_option(p)
    add_threads_option(p)
    return p


@subcommand(NAME)
def main(argv: list[str]) -> int:
    args = parse_command_line(parser(), argv)
    import torch
    from tqdm import tqdm
    from trainer.checkpoint import load_generator
    from trainer.images import save_png
    from trainer.files import file_sha256
    from trainer.inversion.result import inversion_from_batch, save_inversion
    from trainer.inversion.project import ProjectionSettings, project, target_tensor
    from trainer.inversion.pti import PTISettings, pivotal_tuning, save_tuned
    from trainer.inversion.photo import PhotoError, fit_photo, open_photo

    crop = parse_crop(args.crop)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file: give a folder for the results (it is created)")
    settings = ProjectionSettings(space=args.space, optimize_noise=args.noise, noise_regularize=args.noise_reg,
                                  steps=args.steps, lr=args.lr,
                                  schedule=args.schedule, w_noise=args.w_noise, layer_regularize=args.layer_reg,
                                  losses=parse_losses(args.loss), init=args.init, encoder=args.encoder,
                                  init_samples=args.init_samples, seed=args.seed)
    pti_settings = PTISettings(steps=args.pti_steps, lr=args.pti_lr, losses=settings.losses, seed=args.seed)
    device = args.device
    G = load_generator(args.checkpoint, device=device)
    checkpoint = G.checkpoint_info["path"]

    photos, refused = [], 0
    for name in args.images:
        try:
            photo = open_photo(name)
            target, box, notes = fit_photo(photo, G.img_resolution, G.img_channels, crop)
        except PhotoError as exc:
            error(NAME, str(exc))
            refused += 1
            continue
        for text in (*photo.notes, *notes):
            note(NAME, f"{Path(name).name}: {text}")
        photos.append((photo, target, box))
    if not photos:
        raise UsageError("no usable photos")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = target_tensor(np.stack([t for _, t, _ in photos]), device)
    classes = [args.class_index] * len(photos)
    bar = tqdm(total=settings.steps + (pti_settings.steps * len(photos) if args.pti else 0),
               unit="step", desc="projecting", disable=None)
    position, offset = [0], [0]      # steps shown on the bar; steps of the phases before this one

    def advance(report):
        bar.update(offset[0] + report.step - position[0])
        position[0] = offset[0] + report.step
        bar.set_postfix(psnr=f"{float(np.mean(report.psnr)):.2f}")

    with bar:   # InversionError, LossUnavailable (ValueErrors) and CheckpointError reach the wrapper
        result = project(G, targets, settings, classes, on_report=advance, checkpoint_path=checkpoint)
        for text in result.notes:
            note(NAME, text)
        checkpoint_sha = file_sha256(checkpoint)
        stems = unique_stems([Path(p.path).stem for p, _, _ in photos])
        for i, ((photo, target, box), stem) in enumerate(zip(photos, stems)):
            meta = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": checkpoint_sha,
                    "image": str(Path(photo.path).resolve()), "image_sha256": photo.sha256, "crop": list(box),
                    "notes": list(photo.notes)}
            inv = inversion_from_batch(result, i, target, meta)
            line = (f"{stem}: PSNR {inv.meta['psnr']:.2f} dB, SSIM {inv.meta['ssim']:.4f} "
                    f"({settings.space}, {result.steps_done} steps)")
            if args.pti:
                bar.set_description(f"tuning {stem}")
                offset[0] = settings.steps + i * pti_settings.steps
                noise = {k: torch.from_numpy(v[None, None]).to(device) for k, v in inv.noise.items()}
                tuned = pivotal_tuning(G, torch.from_numpy(inv.ws).to(device), targets[i:i + 1], pti_settings,
                                       noise=noise, on_report=advance, checkpoint_path=checkpoint)
                tuned_path = out / f"{stem}-pti.safetensors"
                save_tuned(tuned.G, tuned_path, checkpoint, photo.sha256, pti_settings, str(out / f"{stem}.npz"))
                inv.meta.update({"pti": {"checkpoint": str(tuned_path.resolve()), "psnr": tuned.psnr,
                                         "ssim": tuned.ssim, "locality_psnr": tuned.locality_psnr,
                                         "steps": tuned.steps_done, "settings": pti_settings.to_dict()},
                                 "projection_psnr": inv.meta["psnr"]})
                inv.reconstruction = tuned.reconstruction
                line += f"; after PTI: PSNR {tuned.psnr:.2f} dB, SSIM {tuned.ssim:.4f} -> {tuned_path.name}"
            save_inversion(out / f"{stem}.npz", inv)
            save_png(out / f"{stem}-reconstruction.png", grey_or_rgb(inv.reconstruction))
            save_png(out / f"{stem}-pair.png", grey_or_rgb(side_by_side(inv.target, inv.reconstruction)))
            tqdm.write(line)
    print(f"wrote {len(photos)} inversion(s) to {out}" + (f"; {refused} photo(s) refused" if refused else ""))
    return EXIT_USAGE if refused else EXIT_OK


def parse_crop(text: str | None) -> tuple[int, int, int] | None:
    """"LEFT,TOP,SIDE" in photo pixels -> a tuple (None: the centre square)."""
    if text is None:
        return None
    try:
        crop = tuple(int(v) for v in text.split(","))
    except ValueError:
        crop = ()
    if len(crop) != 3:
        raise UsageError(f"--crop {text!r}: expected LEFT,TOP,SIDE in pixels")
    return crop


def unique_stems(stems: list[str]) -> list[str]:
    """File stems made unique (photo.png twice -> photo, photo-2), so no result overwrites another."""
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two uint8 [H, W, C] images with a grey gap between them -> uint8 [kH, k(2W + gap), C], each
    pixel a k x k block where H is under PAIR_MIN_HEIGHT (a 64x32 pair is too small to look at)."""
    gap = np.full((a.shape[0], PAIR_GAP, a.shape[2]), PAIR_GAP_GREY, dtype=np.uint8)
    pair = np.concatenate([a, gap, b], axis=1)
    k = max(1, -(-PAIR_MIN_HEIGHT // a.shape[0]))
    return pair.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else pair


def grey_or_rgb(image: np.ndarray) -> np.ndarray:
    """[H, W, 1] -> [H, W] (a grey PNG); RGB unchanged."""
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
