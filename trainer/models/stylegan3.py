"""StyleGAN3 (alias-free), configs T and R, as NVlabs' stylegan3 repository computes it, so that
imported networks reproduce their images to float tolerance (Karras et al. 2021, "Alias-Free
Generative Adversarial Networks"). Written here from the paper and the pickle format; tensor
names follow NVlabs' state dicts (`synthesis.input.freqs`, `synthesis.L3_36_64.affine.weight`,
`mapping.fc1.bias`, ...), so an imported file maps one to one.

- mapping: StyleGAN2's mapping network (stylegan2_nvlabs.MappingNetwork) with 2 layers of width
  w_dim and the label embedding of width w_dim; `w_avg` truncation with an optional cutoff.
- synthesis input: Fourier features of a fixed random set of frequencies, rotated and translated
  by a learned affine of w[0] and then by the `transform` buffer. NVlabs' meaning is kept: the
  buffer holds the INVERSE of the image transform the user asks for
  (trainer.latents.stylegan3_transform builds it).
- synthesis layers: modulated convolution (the input scaled by 1 / sqrt of a magnitude EMA that
  is updated in training mode), then the filtered leaky ReLU (bias, FIR upsampling, leaky ReLU
  with gain sqrt(2) and clamp, FIR downsampling). The schedule of cutoffs, stopbands, sampling
  rates and sizes is Appendix F's (stylegan3_ops.layer_schedule); the last num_critical layers
  are critically sampled; the last layer is ToRGB (1x1, no demodulation) scaled by output_scale.
- T and R: `stylegan3-r` uses radially symmetric downsampling filters in every layer that is not
  critically sampled (NVlabs' use_radial_filters). NVlabs' config R also uses 1x1 convolutions and
  twice the channels: those are the conv_kernel / channel_base / channel_max fields
  (`StyleGAN3GeneratorConfig.for_arch` fills NVlabs' choices for each).

Sizes, rates and paddings are recomputed from the config (the importer checks them against the
values a pickle stores); the designed filters, frequencies, phases, transform and magnitude EMAs
are buffers, so an imported checkpoint carries the pickle's own. The discriminator of StyleGAN3
is StyleGAN2's (stylegan2_nvlabs.NVlabsDiscriminator). Everything runs in float32 (num_fp16_res
is kept for the record). The `stylegan3-t` and `stylegan3-r` presets train these classes
(trainer.models.stylegan_family builds them from a run's config).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import ConfigError, _Config, _opt
from trainer.models.stylegan2_nvlabs import FullyConnectedLayer, MappingNetwork
from trainer.models.stylegan3_ops import (LRELU_GAIN, LRELU_SLOPE, LayerSpec, filtered_lrelu, layer_padding,
                                          layer_schedule, lowpass_filter, modulated_conv2d)

ARCH_T = "stylegan3-t"
ARCH_R = "stylegan3-r"
ARCH_NAMES = (ARCH_T, ARCH_R)
# NVlabs' train.py: config R doubles the feature maps and uses 1x1 convolutions
NVLABS_ARCH_DEFAULTS = {ARCH_T: {"conv_kernel": 3, "channel_base": 32768, "channel_max": 512},
                        ARCH_R: {"conv_kernel": 1, "channel_base": 65536, "channel_max": 1024}}


@dataclass
class StyleGAN3GeneratorConfig(_Config):
    arch: str = _opt(ARCH_T, "stylegan3-t, or stylegan3-r: radially symmetric downsampling filters", choices=ARCH_NAMES)
    z_dim: int = _opt(512, "input latent dimensions", low=1)
    c_dim: int = _opt(0, "classes (one-hot label length); 0 = unconditional", low=0)
    w_dim: int = _opt(512, "intermediate latent dimensions", low=1)
    img_resolution: int = _opt(1024, "output resolution, a power of two", low=4)
    img_channels: int = _opt(3, "output channels", low=1)
    mapping_layers: int = _opt(2, "fully connected layers in the mapping network", low=1)
    mapping_lr_multiplier: float = _opt(0.01, "the mapping network's learning-rate multiplier (scales its weights)",
                                        above=0)
    w_avg_beta: float = _opt(0.998, "decay of the w_avg tracking during training", low=0, high=1)
    channel_base: int = _opt(32768, "feature maps are rint(min((channel_base / 2) / cutoff, channel_max))", low=1)
    channel_max: int = _opt(512, "cap on feature maps", low=1)
    num_layers: int = _opt(14, "synthesis layers, not counting the Fourier-feature input and ToRGB", low=2)
    num_critical: int = _opt(2, "critically sampled layers at the end", low=0)
    first_cutoff: float = _opt(2.0, "cutoff of the first layer, cycles per image (f_c,0)", above=0)
    first_stopband: float = _opt(2 ** 2.1, "minimum stopband of the first layer (f_t,0)", above=0)
    last_stopband_rel: float = _opt(2 ** 0.3, "minimum stopband of the last layer relative to its cutoff", above=1)
    margin_size: int = _opt(10, "pixels computed outside the image on each side", low=0)
    output_scale: float = _opt(0.25, "scale of the ToRGB output")
    conv_kernel: int = _opt(3, "convolution kernel size (NVlabs: 3 for T, 1 for R)", low=1)
    filter_size: int = _opt(6, "filter taps per unit of resampling factor", low=1)
    lrelu_upsampling: int = _opt(2, "the nonlinearity runs at this multiple of the sampling rate", low=1)
    conv_clamp: float = _opt(256.0, "clamp layer outputs to +-this value; 0 = no clamping", low=0)
    magnitude_ema_beta: float = _opt(0.999, "decay of each layer's input magnitude EMA per training step",
                                     low=0, high=1)
    num_fp16_res: int = _opt(0, "resolutions NVlabs ran in float16 (informational: float32 here)", low=0)

    def validate(self) -> None:
        super().validate()
        r = self.img_resolution
        if r & (r - 1):
            raise ConfigError(f"img_resolution must be a power of two, got {r}")
        if self.num_critical >= self.num_layers:
            raise ConfigError(f"num_critical ({self.num_critical}) must be below num_layers ({self.num_layers})")

    @property
    def radial_filters(self) -> bool:
        return self.arch == ARCH_R

    @classmethod
    def for_arch(cls, arch: str, **values) -> "StyleGAN3GeneratorConfig":
        """NVlabs' choices for config T or R (kernel and widths), overridden by `values`."""
        if arch not in NVLABS_ARCH_DEFAULTS:
            raise ConfigError(f"unknown StyleGAN3 config {arch!r}; choose {' or '.join(ARCH_NAMES)}")
        return cls.from_dict({"arch": arch, **NVLABS_ARCH_DEFAULTS[arch], **values})


def schedule(cfg: StyleGAN3GeneratorConfig) -> list[LayerSpec]:
    return layer_schedule(cfg.img_resolution, cfg.img_channels, cfg.channel_base, cfg.channel_max, cfg.num_layers,
                          cfg.num_critical, cfg.first_cutoff, cfg.first_stopband, cfg.last_stopband_rel,
                          cfg.margin_size)


# ----------------------------------------------------------------------------------------------
# Layers

class SynthesisInput(nn.Module):
    def __init__(self,
                 w_dim: int,                 # intermediate latent width
                 channels: int,              # Fourier features (= feature maps out)
                 size: int,                  # pixels per side, the margin included
                 sampling_rate: float,       # samples per image width
                 bandwidth: float,           # largest frequency, cycles per image (the first cutoff)
                 ):
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, size
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        # Frequencies inside the disc of radius `bandwidth`, denser towards the centre; random phases.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        # (cos, sin, tx, ty) of the learned rotation and translation; identity at initialisation
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))   # inverse of the user's image transform
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w: [N, w_dim] -> features [N, channels, size, size]"""
        n = w.shape[0]
        t = self.affine(w)                                          # [N, 4]
        t = t / t[:, :2].norm(dim=1, keepdim=True)                  # unit rotation (cos, sin)
        cos, sin, tx, ty = t.unbind(dim=1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        # the learned transform, inverse with respect to the image: rotate, then translate
        rotation = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(n, 3, 3)
        translation = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(n, 3, 3)
        transforms = rotation @ translation @ self.transform.unsqueeze(0)          # [N, 3, 3]
        freqs = self.freqs.unsqueeze(0)                                             # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)   # [N, C]
        freqs = freqs @ transforms[:, :2, :2]                                       # [N, C, 2]
        # fade out frequencies the user transform pushed beyond the band the input may carry
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)     # [N, C]
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)  # [1, H, W, 2]
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)                                                # [NCHW]


class SynthesisLayer(nn.Module):
    def __init__(self,
                 w_dim: int,                   # intermediate latent width
                 spec_in: LayerSpec,           # schedule entry of the layer feeding this one
                 spec_out: LayerSpec,          # this layer's schedule entry
                 is_torgb: bool,               # the last layer: 1x1, no demodulation, linear, no filters
                 is_critically_sampled: bool,  # one of the last num_critical layers (never radial)
                 conv_kernel: int = 3,         # square kernel (ToRGB: always 1)
                 filter_size: int = 6,         # filter taps per unit of resampling factor
                 lrelu_upsampling: int = 2,    # the nonlinearity runs at this multiple of the rate
                 radial_filters: bool = False,  # radially symmetric downsampling filters (config R)
                 conv_clamp: float = 0.0,      # clamp outputs to +-this; 0 = off
                 magnitude_ema_beta: float = 0.999,  # decay of the input magnitude EMA per training step
                 ):
        super().__init__()
        self.w_dim, self.is_torgb, self.is_critically_sampled = w_dim, is_torgb, is_critically_sampled
        self.in_channels, self.out_channels = spec_in.channels, spec_out.channels
        self.in_size, self.out_size = spec_in.size, spec_out.size
        self.in_sampling_rate, self.out_sampling_rate = spec_in.sampling_rate, spec_out.sampling_rate
        # the nonlinearity runs at lrelu_upsampling times the higher of the two rates (ToRGB has none)
        fastest = max(self.in_sampling_rate, self.out_sampling_rate)
        self.tmp_sampling_rate = fastest * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = spec_in.cutoff, spec_out.cutoff
        self.in_half_width, self.out_half_width = spec_in.half_width, spec_out.half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta
        self.weight_gain = 1 / math.sqrt(self.in_channels * self.conv_kernel ** 2)   # ToRGB's style scale

        self.affine = FullyConnectedLayer(w_dim, self.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([self.out_channels, self.in_channels, self.conv_kernel,
                                                self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = self.tmp_sampling_rate // self.in_sampling_rate
        self.down_factor = self.tmp_sampling_rate // self.out_sampling_rate
        if self.up_factor * self.in_sampling_rate != self.tmp_sampling_rate or \
                self.down_factor * self.out_sampling_rate != self.tmp_sampling_rate:
            raise ValueError(f"sampling rates {self.in_sampling_rate} -> {self.tmp_sampling_rate} -> "
                             f"{self.out_sampling_rate} are not integer multiples")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = radial_filters and not is_critically_sampled
        self.register_buffer("up_filter", lowpass_filter(self.up_taps, self.in_cutoff, self.in_half_width * 2,
                                                         self.tmp_sampling_rate))
        self.register_buffer("down_filter", lowpass_filter(self.down_taps, self.out_cutoff, self.out_half_width * 2,
                                                           self.tmp_sampling_rate, radial=self.down_radial))
        self.padding = layer_padding(self.in_size, self.out_size, self.conv_kernel, self.up_factor, self.down_factor,
                                     self.up_taps, self.down_taps)

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        """x: [N, in_channels, in_size, in_size], w: [N, w_dim] -> [N, out_channels, out_size, out_size]"""
        if x.shape[1:] != (self.in_channels, self.in_size, self.in_size):
            raise ValueError(f"layer {self.out_size}/{self.out_channels}: input {tuple(x.shape)}, expected "
                             f"[N, {self.in_channels}, {self.in_size}, {self.in_size}]")
        if update_emas:
            with torch.no_grad():
                magnitude = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb,
                             input_gain=self.magnitude_ema.rsqrt())
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, self.up_factor, self.down_factor,
                           self.padding, gain=1 if self.is_torgb else LRELU_GAIN,
                           slope=1 if self.is_torgb else LRELU_SLOPE, clamp=self.conv_clamp)
        return x


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: StyleGAN3GeneratorConfig):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        self.num_layers, self.num_critical, self.output_scale = cfg.num_layers, cfg.num_critical, cfg.output_scale
        self.num_ws = cfg.num_layers + 2          # the input, num_layers layers and ToRGB
        specs = schedule(cfg)
        self.input = SynthesisInput(cfg.w_dim, specs[0].channels, specs[0].size, specs[0].sampling_rate,
                                    specs[0].cutoff)
        self.layer_names = []
        for idx in range(cfg.num_layers + 1):
            layer = SynthesisLayer(cfg.w_dim, specs[max(idx - 1, 0)], specs[idx], is_torgb=idx == cfg.num_layers,
                                   is_critically_sampled=idx >= cfg.num_layers - cfg.num_critical,
                                   conv_kernel=cfg.conv_kernel, filter_size=cfg.filter_size,
                                   lrelu_upsampling=cfg.lrelu_upsampling, radial_filters=cfg.radial_filters,
                                   conv_clamp=cfg.conv_clamp, magnitude_ema_beta=cfg.magnitude_ema_beta)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"   # NVlabs' names
            setattr(self, name, layer)
            self.layer_names.append(name)

    @property
    def layers(self) -> list[SynthesisLayer]:
        """The synthesis layers in order, ToRGB last; layer i reads ws[:, i + 1]."""
        return [getattr(self, name) for name in self.layer_names]

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool | None = None) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img [N, C, R, R] (NVlabs' raw output, about [-1, 1]).
        noise_mode is accepted for the common API and ignored (StyleGAN3 has no noise inputs);
        update_emas: update the magnitude EMAs (None: in training mode)."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws has shape {tuple(ws.shape)}, expected [N, {self.num_ws}, {self.w_dim}]")
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, not {noise_mode!r}")
        update_emas = self.training if update_emas is None else update_emas
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for layer, w in zip(self.layers, ws[1:]):
            x = layer(x, w, update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        if x.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"synthesis produced {tuple(x.shape)}, expected "
                             f"[N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}]")
        return x


class StyleGAN3Generator(nn.Module):
    def __init__(self, cfg: StyleGAN3GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers,
                                      embed_features=cfg.w_dim, layer_features=cfg.w_dim,
                                      lr_multiplier=cfg.mapping_lr_multiplier, w_avg_beta=cfg.w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const", update_emas: bool | None = None):
        """z: [N, z_dim], c: labels [N] or one-hot [N, c_dim] (None if unconditional) -> img [NCHW].
        update_emas: w_avg moves only when it is True; the magnitude EMAs also when None in training."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas is True)
        return self.synthesis(ws, noise_mode, update_emas)
