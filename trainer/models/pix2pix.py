"""Pix2Pix (Isola et al., 2017): a U-Net generator with skip connections and a PatchGAN
discriminator that judges (input, output) pairs patch by patch.

Both follow the reference implementation's layer recipe (4x4 convolutions with stride 2,
LeakyReLU 0.2 in the encoder, ReLU in the decoder, tanh output, N(0, 0.02) weights, no bias
before batch norm); dropout in the inner decoder layers is the paper's only source of noise.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

MAX_WIDTH_FACTOR = 8        # feature maps stop doubling at 8x the first layer's (512 for ngf 64)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Batch norm, or instance norm without learned affine or running statistics (as the reference)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise ValueError(f"unknown norm '{kind}' (batch or instance)")


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions, N(1, 0.02) for batch-norm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def check_images(x: torch.Tensor, channels: int, resolution: int, what: str) -> None:
    """Refuse anything but [N, channels, resolution, resolution] with a message naming `what`."""
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] != resolution or x.shape[3] != resolution:
        raise ValueError(f"{what} expects images [N, {channels}, {resolution}, {resolution}], "
                         f"got {list(x.shape)}")


class UNetGenerator(nn.Module):
    """Input image [N, in_channels, R, R] in [-1, 1] -> output [N, out_channels, R, R] in [-1, 1].

    The encoder halves the image down to 1x1 (log2 R steps); the decoder mirrors it, and each
    decoder level also reads the encoder's feature maps of its resolution (the skips)."""

    translates = True           # image-to-image: the studio shows the Translate panel
    z_dim = c_dim = num_ws = 0  # no latent: the public generator API's fields, for code that asks

    def __init__(self,
                 in_channels: int,        # channels of the input domain (1 grey, 3 RGB)
                 out_channels: int,       # channels of the output domain
                 img_resolution: int,     # image side in pixels, a power of two >= 8
                 width: int = 64,         # feature maps of the first encoder layer (ngf)
                 norm: str = "batch",     # "batch" or "instance"
                 dropout: float = 0.5,    # in up to three innermost decoder levels; 0 off
                 direction: str = "AtoB", # which way this generator translates (metadata for the studio)
                 ):
        super().__init__()
        levels = int(round(math.log2(img_resolution)))
        if img_resolution < 8 or 2 ** levels != img_resolution:
            raise ValueError(f"the U-Net needs a power-of-two resolution of at least 8, got {img_resolution}")
        self.in_channels, self.img_channels, self.img_resolution = in_channels, out_channels, img_resolution
        self.direction = direction
        bias = norm == "instance"   # batch norm's shift makes a bias redundant
        widths = [width * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(levels)]
        self.encoders = nn.ModuleList([nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=bias)])
        for i in range(1, levels):
            innermost = i == levels - 1   # 1x1: nothing to normalise over
            self.encoders.append(nn.Sequential(
                nn.LeakyReLU(0.2), nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=bias or innermost),
                *([] if innermost else [norm_layer(norm, widths[i])])))
        self.decoders = nn.ModuleList()   # decoders[i] produces the resolution of encoders[i]'s input
        dropout_levels = min(3, levels - 2)
        for i in range(levels):
            read = widths[i] if i == levels - 1 else 2 * widths[i]   # innermost reads no skip
            if i == 0:
                self.decoders.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(read, out_channels, 4, 2, 1),
                                                   nn.Tanh()))
                continue
            noisy = dropout > 0 and i >= levels - dropout_levels
            self.decoders.append(nn.Sequential(
                nn.ReLU(), nn.ConvTranspose2d(read, widths[i - 1], 4, 2, 1, bias=bias),
                norm_layer(norm, widths[i - 1]), *([nn.Dropout(dropout)] if noisy else [])))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels, self.img_resolution, "the pix2pix generator")
        skips = []
        h = x
        for encoder in self.encoders:
            h = encoder(h)
            skips.append(h)                                  # [N, widths[i], R / 2^(i+1), same]
        h = self.decoders[-1](skips[-1])
        for i in range(len(self.decoders) - 2, -1, -1):
            h = self.decoders[i](torch.cat([h, skips[i]], dim=1))   # [NCHW] skip joins on channels
        return h

    def translate(self, images: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        """The studio's call: images [N, in_channels, R, R] in [-1, 1] translated in `direction`
        (None: this model's own). A Pix2Pix model translates one way only."""
        if direction not in (None, self.direction):
            raise ValueError(f"this Pix2Pix model translates {self.direction} only, not {direction}")
        return self(images)


class PatchDiscriminator(nn.Module):
    """Images [N, channels, R, R] -> a map of real/fake logits, one per overlapping patch.

    `layers` strided convolutions set the receptive field: 1 -> 16x16, 2 -> 34x34, 3 -> 70x70
    pixels (the paper's default)."""

    def __init__(self,
                 channels: int,        # input channels (pix2pix: input and output concatenated)
                 width: int = 64,      # feature maps of the first layer (ndf)
                 layers: int = 3,      # strided layers: 3 gives the 70x70 PatchGAN
                 norm: str = "batch",  # "batch" or "instance"
                 ):
        super().__init__()
        bias = norm == "instance"
        body = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        factor = 1
        for n in range(1, layers + 1):
            previous, factor = factor, min(2 ** n, MAX_WIDTH_FACTOR)
            stride = 2 if n < layers else 1   # the last one keeps the resolution, as the reference
            body += [nn.Conv2d(width * previous, width * factor, 4, stride, 1, bias=bias),
                     norm_layer(norm, width * factor), nn.LeakyReLU(0.2)]
        body.append(nn.Conv2d(width * factor, 1, 4, 1, 1))
        self.channels = channels
        self.body = nn.Sequential(*body)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"the PatchGAN expects [N, {self.channels}, H, W], got {list(x.shape)}")
        return self.body(x)                                  # [N, 1, h, w] logits


class ConditionalPatchDiscriminator(PatchDiscriminator):
    """Pix2Pix's D: judges the output together with the input it was made from."""

    def forward(self, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        if inputs.shape[2:] != outputs.shape[2:] or inputs.shape[0] != outputs.shape[0]:
            raise ValueError(f"input {list(inputs.shape)} and output {list(outputs.shape)} differ in size")
        return super().forward(torch.cat([inputs, outputs], dim=1))   # [NCHW] pair on channels


def build_pix2pix_generator(cfg) -> UNetGenerator:
    return UNetGenerator(cfg.in_channels, cfg.out_channels, cfg.img_resolution, cfg.g_width, cfg.norm,
                         cfg.dropout, cfg.direction)


def build_pix2pix_discriminator(cfg) -> ConditionalPatchDiscriminator:
    return ConditionalPatchDiscriminator(cfg.in_channels + cfg.out_channels, cfg.d_width, cfg.d_layers, cfg.norm)
