"""DCGAN (Radford et al., 2016): transposed convolutions up, strided convolutions down,
batch norm everywhere but G's output and D's input, ReLU in G, LeakyReLU(0.2) in D, tanh out,
weights from N(0, 0.02). Any power-of-two resolution from 16 up."""
from __future__ import annotations


import torch
import torch.nn as nn

from trainer.models.common import (ConditionalHead, MinibatchDiscrimination, MinibatchStd, as_onehot, concat_label_maps,
                     dcgan_init)


def feature_maps(resolution: int, img_resolution: int, width: int, max_width: int) -> int:
    """Channels at a given resolution: `width` just below the output, doubling per halving."""
    return min(width * img_resolution // (2 * resolution), max_width)


def _check_resolution(img_resolution: int) -> None:
    if img_resolution < 16 or img_resolution & (img_resolution - 1):
        raise ValueError(f"dcgan needs a power-of-two resolution of at least 16, got {img_resolution}")


class DCGANGenerator(nn.Module):
    num_ws = 0  # no W space: the studio works in Z

    def __init__(self,
                 z_dim: int,           # latent dimensions
                 c_dim: int,           # classes; 0 = unconditional
                 img_resolution: int,  # output size, a power of two >= 16
                 img_channels: int,    # 1 grey or 3 RGB
                 width: int = 64,      # feature maps at half the output resolution (ngf)
                 max_width: int = 512, # cap on feature maps at 4x4
                 cond_g: str = "embed",  # "embed" (learned, accepts soft labels) or "concat" (one-hot)
                 ):
        super().__init__()
        _check_resolution(img_resolution)
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.embed = nn.Linear(c_dim, z_dim, bias=False) if c_dim and cond_g == "embed" else None
        z_in = z_dim + (0 if not c_dim else (z_dim if self.embed is not None else c_dim))
        ch = lambda r: feature_maps(r, img_resolution, width, max_width)
        layers = [nn.ConvTranspose2d(z_in, ch(4), 4, 1, 0, bias=False), nn.BatchNorm2d(ch(4)), nn.ReLU(True)]
        res = 4
        while res < img_resolution // 2:
            layers += [nn.ConvTranspose2d(ch(res), ch(2 * res), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch(2 * res)), nn.ReLU(True)]
            res *= 2
        layers += [nn.ConvTranspose2d(ch(res), img_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0, **_unused):
        """z: [N, z_dim] -> images [NCHW] in [-1, 1]. Without a W space there is no ψ: truncate z itself
        (trainer.latents.sample_z resamples components beyond a threshold)."""
        if truncation_psi != 1:
            raise ValueError(f"{type(self).__name__} has no W space, so truncation psi does not apply; "
                             "truncate z instead (a truncated normal: --z-threshold in the CLI)")
        onehot = as_onehot(c, self.c_dim, z.shape[0], z.device)
        x = z
        if onehot is not None:
            x = torch.cat([x, self.embed(onehot) if self.embed is not None else onehot], dim=1)
        img = self.net(x[:, :, None, None])
        assert img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution)  # [NCHW]
        return img


class DCGANDiscriminator(nn.Module):
    def __init__(self,
                 c_dim: int,           # classes; 0 = unconditional
                 img_resolution: int,  # input size, a power of two >= 16
                 img_channels: int,    # 1 grey or 3 RGB
                 width: int = 64,      # feature maps after the first layer (ndf)
                 max_width: int = 512, # cap on feature maps at 4x4
                 norm: str = "batch",  # "batch" | "layer" | "none" (no batch norm for WGAN-GP critics)
                 cond_d: str = "projection",  # "projection" | "acgan" | "concat"
                 minibatch_discrimination: bool = False,  # add Salimans' minibatch features
                 mbstd_group: int = 0,  # minibatch standard deviation group size; 0 = off
                 ):
        super().__init__()
        _check_resolution(img_resolution)
        self.c_dim, self.cond_d, self.img_resolution = c_dim, cond_d, img_resolution
        ch = lambda r: feature_maps(r, img_resolution, width, max_width)
        in_ch = img_channels + (c_dim if c_dim and cond_d == "concat" else 0)
        layers = [nn.Conv2d(in_ch, ch(img_resolution // 2), 4, 2, 1), nn.LeakyReLU(0.2, True)]
        res = img_resolution // 2
        while res > 4:
            out = ch(res // 2)
            layers.append(nn.Conv2d(ch(res), out, 4, 2, 1, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(out))
            elif norm == "layer":
                layers.append(nn.GroupNorm(1, out))
            layers.append(nn.LeakyReLU(0.2, True))
            res //= 2
        self.net = nn.Sequential(*layers)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else None
        features = (ch(4) + (1 if mbstd_group else 0)) * 16
        self.minibatch = MinibatchDiscrimination(features) if minibatch_discrimination else None
        head_in = features + (self.minibatch.kernels if self.minibatch is not None else 0)
        self.head = ConditionalHead(head_in, c_dim, cond_d)
        dcgan_init(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None):
        """img: [NCHW] in [-1, 1] -> (logits [N], class logits [N, c_dim] or None)"""
        onehot = as_onehot(c, self.c_dim, img.shape[0], img.device)
        if onehot is not None and self.cond_d == "concat":
            img = concat_label_maps(img, onehot)
        h = self.net(img)  # [N, ch(4), 4, 4]
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = h.flatten(1)
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.head(h, onehot)
