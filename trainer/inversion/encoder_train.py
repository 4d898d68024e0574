"""Training the W+ encoder (trainer/inversion/encoder.py) on the generator's own samples; its command
is `ganstudio-train encoder` (trainer/cli/encoder.py).

Each batch draws random z and classes, truncates toward w_avg with a random ψ, mixes the layers of
two latents at a random crossover for some samples and jitters each layer a little (real photos
land off W, in W+), then draws the images. The encoder is fitted to predict the W+ (latent loss,
in units of W's per-dimension spread) and to make G redraw the image from its prediction (pixel
MSE through the frozen generator). The result is written next to the checkpoint, in
`encoders/<stem>.safetensors`, where inversion finds it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from trainer.inversion.encoder import LatentEncoder, encoder_for_generator

EVAL_SEED = 987_654          # the held-out samples the result is judged on
WARMUP_FRACTION = 0.02       # of the steps, learning rate ramping up from 0


@dataclass(frozen=True)
class EncoderTrainSettings:
    """How to train an encoder. The defaults train the demo's in 5-15 minutes on one CPU thread (1,000 steps)."""
    kimg: float = 32.0            # thousands of images shown
    batch: int = 32               # samples per step
    lr: float = 2e-3              # Adam's peak learning rate (cosine decay to 0)
    latent_weight: float = 1.0    # MSE of the predicted W+ against the drawn one, in W's per-dimension spread
    image_weight: float = 10.0    # MSE of what the predicted W+ draws against the sample, pixels in [-1, 1]
    psi_min: float = 0.5          # truncation toward w_avg drawn uniformly from [psi_min, 1]
    mixing: float = 0.5           # fraction of samples whose later layers come from a second latent
    layer_jitter: float = 0.2     # Gaussian jitter of each W+ layer, in W's per-dimension spread
    data: str = ""                # also real images with the image loss only: a dataset the trainer reads
                                  # (its training split), e.g. the checkpoint's own; "" = generator samples only
    real_fraction: float = 0.5    # with data: the share of each batch that is real images
    width: int = 32               # the encoder's first feature maps (see EncoderConfig)
    max_width: int = 128          # the encoder's widest feature maps
    hidden: int = 256             # the encoder's fully connected units
    eval_samples: int = 256       # held-out samples for the final figures
    seed: int = 0                 # fixes the samples

    def __post_init__(self):
        if not (self.kimg > 0 and math.isfinite(self.kimg)):
            raise ValueError(f"kimg {self.kimg!r} must be a positive number")
        if self.batch < 1 or self.eval_samples < 1:
            raise ValueError("batch and eval_samples must be at least 1")
        if not 0 <= self.psi_min <= 1 or not 0 <= self.mixing <= 1 or self.layer_jitter < 0 \
                or not 0 <= self.real_fraction < 1:
            raise ValueError("psi_min and mixing must lie in [0, 1], real_fraction in [0, 1), "
                             "layer_jitter at or above 0")
        if self.data and not self.image_weight:
            raise ValueError("real images need the image loss (image_weight above 0): they have no latent to match")
        if self.latent_weight < 0 or self.image_weight < 0 or self.latent_weight + self.image_weight == 0:
            raise ValueError("latent_weight and image_weight must be >= 0, and not both 0")

    @property
    def steps(self) -> int:
        return max(1, round(self.kimg * 1000 / self.batch))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(eq=False)
class EncoderTrainResult:
    encoder: LatentEncoder
    steps: int
    seconds: float
    start_psnr: float             # dB, held-out samples redrawn from the encoder's W+
    w_avg_psnr: float             # dB, the same samples against w_avg (the start without an encoder)
    latent_error: float           # mean squared W+ error of the prediction, in W's per-dimension spread

    def figures(self) -> dict:
        return {"steps": self.steps, "seconds": round(self.seconds, 1), "start_psnr": round(self.start_psnr, 3),
                "w_avg_psnr": round(self.w_avg_psnr, 3), "latent_error": round(self.latent_error, 4)}


@torch.no_grad()
def draw_samples(G,
                 count: int,                 # samples to draw
                 settings: EncoderTrainSettings,
                 w_avg: torch.Tensor,        # [w_dim]
                 w_spread: torch.Tensor,     # [w_dim]
                 gen: torch.Generator,       # CPU generator fixing the draw
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (ws [count, num_ws, w_dim], images [count, C, R, R] in [-1, 1]) drawn with "const" noise."""
    device = w_avg.device

    def mapped():
        z = torch.randn(count, G.z_dim, generator=gen).to(device)
        c = torch.randint(0, G.c_dim, (count,), generator=gen).to(device) if G.c_dim else None
        return G.mapping(z, c).float()                                   # [count, num_ws, w_dim]

    ws = mapped()
    psi = (settings.psi_min + (1 - settings.psi_min) * torch.rand(count, 1, 1, generator=gen)).to(device)
    ws = w_avg + psi * (ws - w_avg)
    if settings.mixing and G.num_ws > 1:
        other = w_avg + psi * (mapped() - w_avg)
        crossover = torch.randint(1, G.num_ws, (count, 1, 1), generator=gen).to(device)
        mixed = (torch.rand(count, 1, 1, generator=gen) < settings.mixing).to(device)
        later = torch.arange(G.num_ws, device=device)[None, :, None] >= crossover
        ws = torch.where(mixed & later, other, ws)
    if settings.layer_jitter:
        ws = ws + settings.layer_jitter * w_spread * torch.randn(ws.shape, generator=gen).to(device)
    images = G.synthesis(ws, noise_mode="const").float()
    assert images.shape == (count, G.img_channels, G.img_resolution, G.img_resolution), images.shape  # [NCHW]
    return ws, images


def train_encoder(G,
                  settings: EncoderTrainSettings = EncoderTrainSettings(),
                  progress: Callable[[int, int, dict], None] | None = None,   # (step, steps, losses) each step
                  ) -> EncoderTrainResult:
    """Fit an encoder to generator G's samples -> EncoderTrainResult (the encoder in eval mode and its figures)."""
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    encoder = encoder_for_generator(G, settings.width, settings.max_width, settings.hidden).train()
    w_avg, w_spread = encoder.w_avg, encoder.w_spread
    optimizer = torch.optim.Adam(encoder.parameters(), lr=settings.lr, betas=(0.9, 0.99))
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    steps = settings.steps
    real = real_images(G, settings.data) if settings.data else None       # uint8 [M, C, R, R]
    real_count = round(settings.batch * settings.real_fraction) if real is not None else 0
    for step in range(steps):
        t = step / steps
        rate = settings.lr * min(1.0, t / WARMUP_FRACTION) * 0.5 * (1 + math.cos(math.pi * t))
        for group in optimizer.param_groups:
            group["lr"] = rate
        ws, images = draw_samples(G, settings.batch - real_count, settings, w_avg, w_spread, gen)
        if real_count:
            picked = torch.randint(0, len(real), (real_count,), generator=gen)
            images = torch.cat([images, real[picked].to(images.device).float() / 127.5 - 1])
        predicted = encoder(images)                                     # [B, num_ws, w_dim]
        sampled = len(ws)                                               # the first rows have a true latent
        latent_loss = ((predicted[:sampled] - ws) / w_spread).square().mean()
        total = settings.latent_weight * latent_loss
        losses = {"latent": float(latent_loss.detach())}
        if settings.image_weight:
            redrawn = G.synthesis(predicted, noise_mode="const").float()
            image_loss = (redrawn - images).square().mean()
            total = total + settings.image_weight * image_loss
            losses["image"] = float(image_loss.detach())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, steps, losses)
    encoder.eval().requires_grad_(False)
    figures = evaluate_encoder(G, encoder, settings)
    return EncoderTrainResult(encoder, steps, time.perf_counter() - started, **figures)


def real_images(G, source: str) -> torch.Tensor:
    """The training split of a dataset the trainer reads, at G's resolution and channels -> uint8 [M, C, R, R]."""
    from trainer.config import DataConfig
    from trainer.data.datasets import load_dataset
    data = load_dataset(DataConfig(source=source, split="train", resolution=G.img_resolution,
                                   channels=G.img_channels)).data
    if data.ndim != 4 or data.shape[1:] != (G.img_channels, G.img_resolution, G.img_resolution):
        raise ValueError(f"{source} gives images {tuple(data.shape[1:])}, the model draws "
                         f"{(G.img_channels, G.img_resolution, G.img_resolution)}")
    return data


@torch.no_grad()
def evaluate_encoder(G, encoder: LatentEncoder, settings: EncoderTrainSettings) -> dict:
    """PSNR of held-out samples redrawn from the encoder's W+ and from w_avg, and the W+ error."""
    from trainer.inversion.losses import psnr
    gen = torch.Generator(device="cpu").manual_seed(EVAL_SEED)
    ws, images = draw_samples(G, settings.eval_samples, settings, encoder.w_avg, encoder.w_spread, gen)
    predicted = encoder(images)
    from_encoder = G.synthesis(predicted, noise_mode="const").float()
    from_avg = G.synthesis(G.w_avg.float().expand(len(images), G.num_ws, -1), noise_mode="const").float()
    return {"start_psnr": float(psnr(from_encoder, images).mean()), "w_avg_psnr": float(psnr(from_avg, images).mean()),
            "latent_error": float(((predicted - ws) / encoder.w_spread).square().mean())}
