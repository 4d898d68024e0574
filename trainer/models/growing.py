"""Progressive growing (Karras et al., 2018) as the NVlabs TF code counts it: the level of detail
`lod` is a float, 0 = full resolution, lod = k shows img_resolution / 2**k; between integers the
finer level fades in with alpha = 1 - (lod - floor(lod)). A progressive G and D each hold `lod`
as a persistent 0-dim buffer (checkpoints, G_ema and resume carry it); G always returns
img_resolution images (nearest-upsampled), D always takes them and pools down inside.

Also the pieces ProGAN and StyleGAN (v1) share: equalised-lr layers with He's gain, pixel norm."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2)


def max_lod(img_resolution: int) -> int:
    """The lod of 4x4 images: log2(img_resolution) - 2 (a power of two >= 4)."""
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"progressive growing needs a power-of-two resolution of at least 4, got {img_resolution}")
    return int(math.log2(img_resolution)) - 2


def level(lod: float) -> tuple[int, float]:
    """lod -> (halvings, alpha): the level of the moment shows img_resolution / 2**halvings
    (halvings = floor(lod)) and is faded in by alpha in (0, 1] over the level below it."""
    halvings = math.floor(lod)
    return halvings, 1.0 - (lod - halvings)


def resolution_at(img_resolution: int, lod: float) -> int:
    """The resolution of the moment: img_resolution / 2**floor(lod)."""
    return img_resolution >> level(lod)[0]


def upscale_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H * factor, W * factor], each pixel repeated (NVlabs' upscale2d)."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def downscale_avg(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H / factor, W / factor], the mean of each factor x factor block."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def fade(coarse: torch.Tensor, fine: torch.Tensor, alpha: float) -> torch.Tensor:
    """The fade-in of a new level: coarse + (fine - coarse) * alpha (NVlabs' lerp_clip); alpha 1 is fine."""
    return fine if alpha >= 1 else coarse + (fine - coarse) * alpha


class Growing:
    """Mixin for a progressive nn.Module: call `register_lod(img_resolution)` in __init__; the
    level of the moment is `self.level()`. A fresh model sits at lod 0 (full resolution)."""

    def register_lod(self, img_resolution: int) -> None:
        self.max_lod = max_lod(img_resolution)
        self.register_buffer("lod", torch.zeros([], dtype=torch.float32))

    def set_lod(self, lod: float) -> None:
        if not 0 <= lod <= self.max_lod:
            raise ValueError(f"lod {lod} is outside [0, {self.max_lod}] for {self.img_resolution} px")
        self.lod.fill_(lod)

    def level(self) -> tuple[int, float]:
        """(halvings, alpha) of the stored lod, as `level`."""
        return level(float(self.lod))


def set_lod(lod: float, *modules: nn.Module) -> None:
    """Set lod on every progressive part of these modules (a packed or wrapped D included)."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, Growing):
                m.set_lod(lod)


def is_progressive(module: nn.Module) -> bool:
    return any(isinstance(m, Growing) for m in module.modules())


# ---- layers of ProGAN and StyleGAN v1: weights N(0, 1) scaled at run time by gain / sqrt(fan_in)
class EqualizedLinear(nn.Module):
    equalized = True   # weight scaled at run time (spectral normalisation looks for this)

    def __init__(self,
                 in_features: int,         # input width
                 out_features: int,        # output width
                 gain: float = SQRT2,      # He's gain: sqrt(2) before leaky ReLU, 1 for linear outputs
                 lr_multiplier: float = 1.0,  # 0.01 in StyleGAN's mapping network
                 bias_init: float = 0.0,   # initial bias
                 ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = gain * lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # [N, in] -> [N, out]
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)


class EqualizedConv2d(nn.Module):
    equalized = True

    def __init__(self,
                 in_channels: int,         # input feature maps
                 out_channels: int,        # output feature maps
                 kernel_size: int,         # square, odd; padded to keep the size
                 gain: float = SQRT2,      # He's gain: sqrt(2) before leaky ReLU, 1 for toRGB
                 ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # [NCHW] -> [N, out, H, W]
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each pixel's feature vector scaled to unit mean square (ProGAN's pixelwise normalisation, dim 1)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """ProGAN's leaky ReLU, slope 0.2 (the sqrt(2) gain lives in the equalised weights)."""
    return F.leaky_relu(x, 0.2)
