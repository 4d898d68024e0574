"""ProGAN (Karras et al., 2018, "Progressive Growing of GANs"): G and D grow from 4x4 by
resolution levels, each new level faded in (trainer.models.growing: `lod`); pixelwise feature
normalisation in G, equalised learning rate everywhere, minibatch standard deviation in D,
nearest upsampling, average-pool downsampling, leaky ReLU 0.2, linear outputs. As NVlabs'
networks.py (G_paper, D_paper), computed only up to the level of the moment.

Feature maps at resolution r: min(channel_base / r, channel_max); the paper's fmap_base 8192 and
fmap_max 512 are channel_base 16384 and channel_max 512 (the StyleGAN2 convention)."""
from __future__ import annotations

import torch
import torch.nn as nn

from trainer.models.common import ConditionalHead, MinibatchDiscrimination, MinibatchStd, as_onehot, concat_label_maps
from trainer.models.growing import (SQRT2, EqualizedConv2d, EqualizedLinear, Growing, downscale_avg, fade, lrelu,
                                    pixel_norm, upscale_nearest)


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return max(min(channel_base // resolution, channel_max), 1)


def _resolutions(img_resolution: int) -> list[int]:
    """8, 16, ..., img_resolution: the levels above 4x4."""
    return [2 ** k for k in range(3, img_resolution.bit_length())]


class ProGANGenerator(Growing, nn.Module):
    num_ws = 0  # no W space: the studio works in Z (truncation by resampling z beyond a threshold)

    def __init__(self,
                 z_dim: int,               # latent dimensions
                 c_dim: int,               # classes; 0 = unconditional
                 img_resolution: int,      # output size, a power of two >= 4
                 img_channels: int,        # 1 grey or 3 RGB
                 channel_base: int = 16384,  # feature maps at resolution r: min(channel_base / r, channel_max)
                 channel_max: int = 512,   # cap on feature maps
                 cond_g: str = "concat",   # "concat" (the paper: one-hot beside z) or "embed" (learned, soft labels)
                 ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.register_lod(img_resolution)
        ch = lambda r: channels_at(r, channel_base, channel_max)
        self.embed = nn.Linear(c_dim, z_dim, bias=False) if c_dim and cond_g == "embed" else None
        z_in = z_dim + (0 if not c_dim else (z_dim if self.embed is not None else c_dim))
        # 4x4: z -> dense to 4x4 maps (NVlabs' gain sqrt(2) / 4 over the 16 positions) -> conv
        self.dense = EqualizedLinear(z_in, ch(4) * 16, gain=SQRT2 / 4)
        self.conv4 = EqualizedConv2d(ch(4), ch(4), 3)
        self.torgb4 = EqualizedConv2d(ch(4), img_channels, 1, gain=1)
        for res in _resolutions(img_resolution):
            setattr(self, f"b{res}", nn.ModuleList([EqualizedConv2d(ch(res // 2), ch(res), 3),
                                                    EqualizedConv2d(ch(res), ch(res), 3)]))
            setattr(self, f"torgb{res}", EqualizedConv2d(ch(res), img_channels, 1, gain=1))

    def _block(self, x: torch.Tensor, res: int) -> torch.Tensor:
        x = upscale_nearest(x, 2)
        for conv in getattr(self, f"b{res}"):
            x = pixel_norm(lrelu(conv(x)))
        return x

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0, **_unused):
        """z: [N, z_dim] -> images [N, C, img_resolution, img_resolution], the level of the
        moment nearest-upsampled; linear output, real images in [-1, 1]."""
        if truncation_psi != 1:
            raise ValueError(f"{type(self).__name__} has no W space, so truncation psi does not apply; "
                             "truncate z instead (a truncated normal: --z-threshold in the CLI)")
        halvings, alpha = self.level()
        top = self.img_resolution >> halvings
        onehot = as_onehot(c, self.c_dim, z.shape[0], z.device)
        x = pixel_norm(z)   # the paper normalises the latents
        if onehot is not None:
            x = torch.cat([x, self.embed(onehot) if self.embed is not None else onehot], dim=1)
        x = pixel_norm(lrelu(self.dense(x)).reshape(z.shape[0], -1, 4, 4))
        x = pixel_norm(lrelu(self.conv4(x)))   # [N, ch(4), 4, 4]
        coarse = None
        for res in _resolutions(top):
            if res == top and alpha < 1:
                coarse = upscale_nearest(getattr(self, f"torgb{res // 2}")(x), 2)
            x = self._block(x, res)
        img = fade(coarse, getattr(self, f"torgb{top}")(x), alpha)
        img = upscale_nearest(img, 2 ** halvings)
        assert img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution)  # [NCHW]
        return img


class ProGANDiscriminator(Growing, nn.Module):
    """D(img [N, C, img_resolution, img_resolution], c) -> (logits [N], class logits [N, c_dim] or
    None). The image is average-pooled to the level of the moment; while a level fades in, its
    fromRGB path is lerped with the coarser level's by alpha."""

    def __init__(self,
                 c_dim: int,               # classes; 0 = unconditional
                 img_resolution: int,      # input size, a power of two >= 4 (always this size)
                 img_channels: int,        # 1 grey or 3 RGB
                 channel_base: int = 16384,  # feature maps at resolution r: min(channel_base / r, channel_max)
                 channel_max: int = 512,   # cap on feature maps
                 mbstd_group: int = 4,     # minibatch standard deviation group size; 0 = off
                 cond_d: str = "projection",  # "projection" | "acgan" (the paper's) | "concat" (label maps in)
                 minibatch_discrimination: bool = False,  # add Salimans' minibatch features
                 ):
        super().__init__()
        self.c_dim, self.cond_d = c_dim, cond_d
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.register_lod(img_resolution)
        ch = lambda r: channels_at(r, channel_base, channel_max)
        in_ch = img_channels + (c_dim if c_dim and cond_d == "concat" else 0)
        for res in [4] + _resolutions(img_resolution):
            setattr(self, f"fromrgb{res}", EqualizedConv2d(in_ch, ch(res), 1))
        for res in _resolutions(img_resolution):
            setattr(self, f"b{res}", nn.ModuleList([EqualizedConv2d(ch(res), ch(res), 3),
                                                    EqualizedConv2d(ch(res), ch(res // 2), 3)]))
        # 4x4: minibatch std, conv, dense to ch(2) (NVlabs' nf(0)), then the head
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else None
        self.conv4 = EqualizedConv2d(ch(4) + (1 if mbstd_group else 0), ch(4), 3)
        self.dense = EqualizedLinear(ch(4) * 16, ch(2))
        self.minibatch = MinibatchDiscrimination(ch(2)) if minibatch_discrimination else None
        head_in = ch(2) + (self.minibatch.kernels if self.minibatch is not None else 0)
        self.head = ConditionalHead(head_in, c_dim, cond_d, linear=lambda i, o: EqualizedLinear(i, o, gain=1))

    def _fromrgb(self, img: torch.Tensor, res: int) -> torch.Tensor:
        return lrelu(getattr(self, f"fromrgb{res}")(img))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None):
        onehot = as_onehot(c, self.c_dim, img.shape[0], img.device)
        if onehot is not None and self.cond_d == "concat":
            img = concat_label_maps(img, onehot)
        assert img.shape[2:] == (self.img_resolution, self.img_resolution)   # [NCHW]
        halvings, alpha = self.level()
        top = self.img_resolution >> halvings
        img = downscale_avg(img, 2 ** halvings)
        x = self._fromrgb(img, top)
        for res in reversed(_resolutions(top)):
            for conv in getattr(self, f"b{res}"):
                x = lrelu(conv(x))
            x = downscale_avg(x, 2)
            if res == top and alpha < 1:
                x = fade(self._fromrgb(downscale_avg(img, 2), res // 2), x, alpha)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = lrelu(self.conv4(x))   # [N, ch(4), 4, 4]
        h = lrelu(self.dense(x.flatten(1)))
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.head(h, onehot)
