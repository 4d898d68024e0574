"""`ganstudio-train encoder`: train the W+ encoder inversion starts from (trainer.inversion.encoder_train).

  ganstudio-train encoder --checkpoint C [--out E.safetensors] [--kimg 32] [--data fashion-mnist] [--threads 1]
"""
from __future__ import annotations

import argparse
import dataclasses

from trainer.cli.common import add_device_option, add_threads_option, command_parser, parse_command_line, subcommand

NAME = "encoder"
OPTION_HELP = {   # one line per EncoderTrainSettings field
    "kimg": "thousands of images shown", "batch": "images per step", "lr": "Adam's peak learning rate",
    "latent_weight": "weight of the W+ error (generator samples)",
    "image_weight": "weight of the pixel error of what G redraws from the prediction",
    "psi_min": "samples are truncated toward w_avg with a psi drawn from [psi_min, 1]",
    "mixing": "share of samples whose later layers come from a second latent",
    "layer_jitter": "per-layer noise on the sampled W+, in W's per-dimension spread",
    "data": "also train on this dataset's real training images (image loss only), e.g. fashion-mnist "
            "(default: none, generator samples only)",
    "real_fraction": "with --data: the share of each batch that is real",
    "width": "the encoder's first feature maps", "max_width": "the encoder's widest feature maps",
    "hidden": "the encoder's fully connected units", "eval_samples": "held-out samples for the final figures",
    "seed": "fixes the samples"}


def parser() -> argparse.ArgumentParser:
    from trainer.inversion.encoder_train import EncoderTrainSettings
    d = EncoderTrainSettings()
    p = command_parser(NAME, "Train an encoder that predicts a photo's W+ latent, on the generator's own samples; "
                             "inversion (ganstudio-train invert, the studio's Invert panel) then starts from its "
                             "prediction whenever it finds an encoder for the checkpoint.")
    p.add_argument("--checkpoint", required=True, help="a .safetensors export or a run directory (newest checkpoint)")
    p.add_argument("--out", default=None,
                   help="the encoder file (default: encoders/<checkpoint stem>.safetensors beside the checkpoint, "
                        "where inversion looks)")
    for field in dataclasses.fields(EncoderTrainSettings):
        p.add_argument("--" + field.name.replace("_", "-"), type=type(getattr(d, field.name)),
                       default=getattr(d, field.name), help=OPTION_HELP[field.name])
    add_device_option(p)
    add_threads_option(p)
    return p


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    from tqdm import tqdm
    from trainer.checkpoint import load_generator
    from trainer.inversion.encoder import default_encoder_path, save_encoder
    from trainer.inversion.encoder_train import EncoderTrainSettings, train_encoder
    names = {f.name for f in dataclasses.fields(EncoderTrainSettings)}
    settings = EncoderTrainSettings(**{k: v for k, v in vars(args).items() if k in names})
    G = load_generator(args.checkpoint, device=args.device)
    checkpoint = G.checkpoint_info["path"]
    out = args.out or default_encoder_path(checkpoint)
    with tqdm(total=settings.steps, unit="step", desc="training the encoder", disable=None) as bar:
        def advance(step, steps, losses):
            bar.update(1)
            if step % 10 == 0 or step == steps:
                bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})

        result = train_encoder(G, settings, advance)
    save_encoder(out, result.encoder, checkpoint, {**settings.to_dict(), **result.figures()})
    print(f"held-out samples redrawn from the encoder's W+: PSNR {result.start_psnr:.2f} dB "
          f"(from w_avg: {result.w_avg_psnr:.2f} dB); W+ error {result.latent_error:.3f}; "
          f"{result.steps} steps in {result.seconds:.0f} s")
    print(f"wrote {out}")
