"""StyleGAN2-style generator and residual discriminator (Karras et al., 2020), compact: the
registry's `stylegan2-compact`, which the trainer's presets trained before the NVlabs-exact model
(stylegan2_nvlabs, registry name `stylegan2`) took its place. Kept so that its checkpoints (the
bundled demo's among them) and runs keep opening; no preset trains it.

G = mapping (z, c -> ws [N, num_ws, w_dim]) + synthesis (ws -> img). Synthesis starts from a
learned 4x4 constant; every layer is a modulated 3x3 convolution with weight demodulation,
per-pixel noise with a learned strength, and each resolution adds its RGB output to the
upsampled image of the one below (skip architecture). D is residual with minibatch standard
deviation. All weights use the equalised learning rate: stored N(0, 1), scaled at run time.

Departures from NVlabs' code, chosen for clarity on CPU: bilinear resampling instead of FIR
filters, and modulation applied to activations (the "non-fused" form) rather than grouped convs.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.latents import truncate
from trainer.models.common import ConditionalHead, MinibatchDiscrimination, MinibatchStd, as_onehot, concat_label_maps

SQRT2 = math.sqrt(2.0)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * SQRT2  # gain keeps activations at unit variance


# Mixed precision as in StyleGAN2-ADA: only the highest resolutions compute in fp16/bf16 (the low
# ones are cheap and where the signal is coarse), and activations there are clamped.
REDUCED_PRECISION_RESOLUTIONS = 4   # NVlabs' num_fp16_res
ACTIVATION_CLAMP = 256.0            # NVlabs' conv_clamp


def _autocasting(x: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


def _clamp_if_reduced(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-ACTIVATION_CLAMP, ACTIVATION_CLAMP) if _autocasting(x) else x


def in_full_precision(fn, *tensors):
    """fn(*tensors) in fp32 with autocast off, when autocast is on; plainly otherwise."""
    device = next(t for t in tensors if t is not None).device
    if not torch.is_autocast_enabled(device.type):
        return fn(*tensors)
    with torch.autocast(device.type, enabled=False):
        return fn(*(None if t is None else t.float() for t in tensors))


class FullyConnected(nn.Module):
    equalized = True

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 bias_init: float = 0.0,      # 1.0 for style affines, so styles start at one
                 lr_multiplier: float = 1.0,  # 0.01 in the mapping network
                 activation: str = "linear",  # "linear" | "lrelu"
                 ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x):
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, b)
        return lrelu(x) if self.activation == "lrelu" else x


class Conv2dLayer(nn.Module):
    equalized = True

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 bias: bool = True,
                 activation: str = "linear",  # "linear" | "lrelu"
                 down: bool = False,          # halve the resolution after the convolution
                 ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.activation, self.down, self.padding = activation, down, kernel_size // 2

    def forward(self, x):
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return lrelu(x) if self.activation == "lrelu" else x


def modulated_conv2d(x: torch.Tensor,        # [N, I, H, W]
                     weight: torch.Tensor,   # [O, I, k, k]
                     styles: torch.Tensor,   # [N, I]
                     demodulate: bool = True,
                     up: bool = False,
                     ) -> torch.Tensor:
    """Conv with weights scaled per sample by styles, then renormalised to unit output variance."""
    x = x * styles[:, :, None, None]
    if up:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    if demodulate:  # 1 / ||w * s|| per sample and output channel, without forming [N, O, I, k, k]
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        x = x * dcoefs[:, :, None, None]
    return x


class MappingNetwork(nn.Module):
    def __init__(self,
                 z_dim: int,            # input latent dimensions; 0 = no z
                 c_dim: int,            # classes; 0 = unconditional
                 w_dim: int,            # output latent dimensions
                 num_ws: int,           # how many copies of w the synthesis network takes
                 num_layers: int = 8,   # fully connected layers
                 lr_multiplier: float = 0.01,  # slower learning for the mapping network
                 w_avg_beta: float = 0.995,    # decay of the running mean of w (for truncation)
                 ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnected(c_dim, w_dim) if c_dim else None
        features = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(i, o, activation="lrelu", lr_multiplier=lr_multiplier)
            for i, o in zip(features[:-1], features[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False):
        """z: [N, z_dim], c: labels or one-hot -> ws [N, num_ws, w_dim]."""
        x = normalize_2nd_moment(z)
        onehot = as_onehot(c, self.c_dim, z.shape[0], z.device)
        if onehot is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed(onehot))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x[:, None].repeat(1, self.num_ws, 1)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)


class SynthesisLayer(nn.Module):
    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 w_dim: int,
                 resolution: int,      # output resolution of this layer
                 up: bool = False,     # double the resolution first
                 ):
        super().__init__()
        self.up, self.resolution = up, resolution
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))

    def forward(self, x, w, noise_mode: str = "random"):
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, up=self.up)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        return _clamp_if_reduced(lrelu(x + self.bias.to(x.dtype)[None, :, None, None]))   # stays fp16/bf16


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        rgb = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return _clamp_if_reduced(rgb + self.bias.to(rgb.dtype)[None, :, None, None])


class SynthesisBlock(nn.Module):
    def __init__(self,
                 in_channels: int,     # 0 for the first block, which starts from a constant
                 out_channels: int,
                 w_dim: int,
                 resolution: int,      # output resolution of the block
                 img_channels: int,
                 ):
        super().__init__()
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1
        self.full_precision = False   # set by the network: the lowest resolutions stay fp32 under autocast

    def forward(self, x, img, ws, noise_mode):
        if self.full_precision:
            return in_full_precision(lambda *t: self._forward(*t, noise_mode), x, img, ws)
        return self._forward(x, img, ws, noise_mode)

    def _forward(self, x, img, ws, noise_mode):
        """ws: [N, num_conv + num_torgb, w_dim]; x: [NCHW] features from below (None first)."""
        if self.conv0 is None:
            x = self.conv1(self.const[None].expand(ws.shape[0], -1, -1, -1), ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        rgb = self.torgb(x, ws[:, -1])
        if img is not None:
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        img = rgb if img is None else img + rgb
        assert img.shape[2] == self.resolution  # [NCHW]
        return x, img


def channels_at(resolution: int, img_resolution: int, width: int, max_width: int) -> int:
    """`width` feature maps at the output resolution, doubling per halving, capped at max_width."""
    return min(width * img_resolution // resolution, max_width)


def _check_resolution(img_resolution: int) -> None:
    if img_resolution < 8 or img_resolution > 1024 or img_resolution & (img_resolution - 1):
        raise ValueError(f"stylegan2 needs a power-of-two resolution from 8 to 1024, got {img_resolution}")


class SynthesisNetwork(nn.Module):
    def __init__(self,
                 w_dim: int,
                 img_resolution: int,  # a power of two, 8 to 1024
                 img_channels: int,
                 width: int = 64,      # feature maps at the output resolution
                 max_width: int = 256, # cap on feature maps at low resolutions
                 ):
        super().__init__()
        _check_resolution(img_resolution)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        resolutions = [2 ** i for i in range(2, int(np.log2(img_resolution)) + 1)]
        self.blocks = nn.ModuleList()
        in_ch = 0
        for res in resolutions:
            out_ch = channels_at(res, img_resolution, width, max_width)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels))
            self.blocks[-1].full_precision = len(resolutions) - len(self.blocks) >= REDUCED_PRECISION_RESOLUTIONS
            in_ch = out_ch
        self.num_ws = sum(b.num_conv for b in self.blocks) + self.blocks[-1].num_torgb

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img [NCHW], roughly in [-1, 1] (update_emas: nothing to update)."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws has shape {tuple(ws.shape)}, expected [N, {self.num_ws}, {self.w_dim}]")
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, not {noise_mode!r}")
        x = img = None
        w_idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise_mode)
            w_idx += block.num_conv
        return img


class StyleGAN2Generator(nn.Module):
    def __init__(self,
                 z_dim: int,           # input latent dimensions
                 c_dim: int,           # classes; 0 = unconditional
                 w_dim: int,           # intermediate latent dimensions
                 img_resolution: int,  # a power of two, 8 to 1024
                 img_channels: int,    # 1 grey or 3 RGB
                 width: int = 64,      # feature maps at the output resolution
                 max_width: int = 256, # cap on feature maps at low resolutions
                 mapping_layers: int = 8,
                 ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, width, max_width)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const", update_emas: bool = False):
        """z: [N, z_dim] -> img [NCHW] in about [-1, 1]."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, img_channels: int, first: bool):
        super().__init__()
        self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation="lrelu") if first else None
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=True)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False)
        self.full_precision = False   # set by the network: the lowest resolutions stay fp32 under autocast

    def forward(self, x):
        return in_full_precision(self._forward, x) if self.full_precision else self._forward(x)

    def _forward(self, x):
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        skip = self.skip(F.avg_pool2d(x, 2))
        return _clamp_if_reduced((skip + self.conv1(self.conv0(x))) / SQRT2)


class StyleGAN2Discriminator(nn.Module):
    def __init__(self,
                 c_dim: int,           # classes; 0 = unconditional
                 img_resolution: int,  # a power of two, 8 to 1024
                 img_channels: int,    # 1 grey or 3 RGB
                 width: int = 64,      # feature maps at the input resolution
                 max_width: int = 256, # cap on feature maps at low resolutions
                 mbstd_group: int = 4, # minibatch-std group size; 0 = off
                 cond_d: str = "projection",  # "projection" | "acgan" | "concat"
                 minibatch_discrimination: bool = False,  # add Salimans' minibatch features before the head
                 ):
        super().__init__()
        _check_resolution(img_resolution)
        self.c_dim, self.cond_d, self.img_resolution = c_dim, cond_d, img_resolution
        in_img = img_channels + (c_dim if c_dim and cond_d == "concat" else 0)
        ch = lambda r: channels_at(r, img_resolution, width, max_width)
        blocks, res = [], img_resolution
        while res > 4:
            blocks.append(DiscriminatorBlock(ch(res), ch(res // 2), in_img, first=res == img_resolution))
            blocks[-1].full_precision = len(blocks) > REDUCED_PRECISION_RESOLUTIONS
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else None
        self.conv = Conv2dLayer(ch(4) + (1 if mbstd_group else 0), ch(4), 3, activation="lrelu")
        self.fc = FullyConnected(ch(4) * 16, ch(4), activation="lrelu")
        self.minibatch = MinibatchDiscrimination(ch(4)) if minibatch_discrimination else None
        head_in = ch(4) + (self.minibatch.kernels if self.minibatch is not None else 0)
        self.head = ConditionalHead(head_in, c_dim, cond_d, linear=FullyConnected)

    def forward(self, img, c=None):
        """img: [NCHW] -> (logits [N], class logits [N, c_dim] or None)"""
        onehot = as_onehot(c, self.c_dim, img.shape[0], img.device)
        if onehot is not None and self.cond_d == "concat":
            img = concat_label_maps(img, onehot)
        x = self.blocks(img)  # [N, ch(4), 4, 4]
        return in_full_precision(self._epilogue, x, onehot)   # 4x4: always fp32

    def _epilogue(self, x, onehot):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.fc(self.conv(x).flatten(1))
        if self.minibatch is not None:
            x = self.minibatch(x)
        return self.head(x, onehot)
