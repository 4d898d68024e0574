"""StyleGAN2 as NVlabs' stylegan2-ada-pytorch computes it, so imported networks reproduce their
images to float tolerance (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
2020; "Training Generative Adversarial Networks with Limited Data", 2020).

Written here from the published description of the format and the papers; the tensor names
match NVlabs' state dicts (`synthesis.b16.conv0.weight`, `mapping.fc3.bias`, ...), so an
imported file maps one to one. What it computes, per layer:
- mapping: z normalised to unit second moment, (one-hot c through `embed`, normalised, appended),
  `mapping_layers` equalised-lr fully connected layers with leaky ReLU; `w_avg` truncation with
  an optional cutoff, tracked in training (EMA of the batch's mean w) where update_emas says.
- synthesis (the "skip" generator, the one every NVlabs release uses): a learned 4x4 constant,
  modulated 3x3 convolutions with demodulation and upsampling through the [1, 3, 3, 1] FIR
  filter (the operations are in nvlabs_ops.py); per-layer noise, stored or drawn; conv clamping.
- discriminator (the "resnet" one): FIR-filtered strided downsampling, residual blocks,
  minibatch standard deviation and, for conditional models, a projection onto the mapped label.
Everything runs in float32 here (or under the trainer's autocast): NVlabs' `num_fp16_res` is kept
in the config for the record. The same classes open imported networks and are what the
`stylegan2` presets train (trainer.models.stylegan_family builds them from a run's config).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import _Config, ConfigError, _opt
from trainer.latents import truncate
from trainer.models.common import as_onehot
from trainer.models.style_config import StyleGeneratorConfig
from trainer.models.nvlabs_ops import (LRELU_GAIN, MinibatchStdLayer, PreparedWeight, ScaledWeight, bias_act,
                                      filter_2d, fir, modulated_conv, normalize_2nd_moment, rendering_on_cpu, skip_image)

ARCH_NAME = "stylegan2"
# ----------------------------------------------------------------------------------------------
# Configuration (stored as JSON in the checkpoint's metadata)

@dataclass
class NVlabsGeneratorConfig(StyleGeneratorConfig):
    arch: str = _opt(ARCH_NAME, "architecture name in the registry", choices=(ARCH_NAME,))
    w_avg_beta: float = _opt(0.995, "decay of the w_avg tracking during training (stylegan2-ada-pytorch's)")
    num_fp16_res: int = _opt(0, "resolutions NVlabs ran in float16 (informational: float32 here)")
    conv_clamp: float = _opt(0.0, "clamp conv outputs to +-this value; 0 = no clamping")
    resample_filter: list = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0],
                                  metadata={"help": "1-D low-pass filter taps for up/downsampling"})

    def validate(self) -> None:
        super().validate()
        if self.conv_clamp < 0:
            raise ConfigError(f"conv_clamp cannot be negative, got {self.conv_clamp}")
        if not self.resample_filter or sum(self.resample_filter) == 0:
            raise ConfigError(f"resample_filter must be non-empty with a non-zero sum, got {self.resample_filter}")


@dataclass
class NVlabsDiscriminatorConfig(_Config):
    arch: str = _opt(ARCH_NAME, "architecture name in the registry", choices=(ARCH_NAME,))
    c_dim: int = _opt(0, "classes; 0 = unconditional")
    img_resolution: int = _opt(1024, "input resolution, a power of two")
    img_channels: int = _opt(3, "input channels")
    channel_base: int = _opt(32768, "feature maps at resolution r are min(channel_base // r, channel_max)")
    channel_max: int = _opt(512, "cap on feature maps")
    num_fp16_res: int = _opt(0, "resolutions NVlabs ran in float16 (informational: float32 here)")
    conv_clamp: float = _opt(0.0, "clamp conv outputs to +-this value; 0 = no clamping")
    cmap_dim: int = _opt(0, "width of the mapped label projected onto the features (0: unconditional)")
    mapping_layers: int = _opt(8, "layers of the label mapping network (conditional models)")
    mapping_lr_multiplier: float = _opt(0.01, "the label mapping network's learning-rate multiplier")
    mbstd_group_size: int = _opt(4, "minibatch-std group size; 0 = the whole batch")
    mbstd_num_channels: int = _opt(1, "minibatch-std feature channels; 0 = off")
    resample_filter: list = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0],
                                  metadata={"help": "1-D low-pass filter taps for downsampling"})

    def validate(self) -> None:
        super().validate()
        r = self.img_resolution
        if r < 8 or r & (r - 1):
            raise ConfigError(f"img_resolution must be a power of two >= 8, got {r}")
        if self.c_dim and not self.cmap_dim:
            raise ConfigError("a conditional discriminator needs cmap_dim > 0")


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


class FullyConnectedLayer(nn.Module):
    equalized = True   # weight scaled at run time (spectral normalisation looks for this)

    def __init__(self,
                 in_features: int,            # input width
                 out_features: int,           # output width
                 bias: bool = True,           # learned additive bias
                 lrelu: bool = False,         # leaky ReLU with gain sqrt(2) after the bias
                 lr_multiplier: float = 1.0,  # 0.01 in mapping networks: weights stored / lr_multiplier
                 bias_init: float = 0.0,      # initial bias (1 for style affines)
                 ):
        super().__init__()
        self.lrelu = lrelu
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.scaled_weight = ScaledWeight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # [N, in] -> [N, out]
        w = self.scaled_weight(self.weight, self.weight_gain, x) if rendering_on_cpu(x) \
            else self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype)
        b = b * self.bias_gain if b is not None and self.bias_gain != 1 else b
        if not self.lrelu and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.lrelu)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional FIR downsampling (the discriminator's layers)."""
    equalized = True

    def __init__(self,
                 in_channels: int,            # input feature maps
                 out_channels: int,           # output feature maps
                 kernel_size: int,            # square kernel, odd
                 bias: bool = True,           # learned additive bias
                 lrelu: bool = False,         # leaky ReLU with gain sqrt(2)
                 down: bool = False,          # halve the resolution (FIR low-pass, then stride 2)
                 resample_filter: list[float] = (1, 3, 3, 1),  # 1-D low-pass taps
                 conv_clamp: float = 0.0,     # clamp outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.lrelu, self.down, self.conv_clamp = lrelu, down, conv_clamp
        self.register_buffer("resample_filter", filter_2d(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        f = self.resample_filter
        k, kw = f.shape[-1], w.shape[-1]
        if self.down and kw == 1:       # low-pass and subsample first, then the 1x1 conv
            p0, p1 = (k - 1) // 2, (k - 2) // 2
            x = F.conv2d(fir(x, f, (p0, p1, p0, p1), down=2), w)
        elif self.down:                 # low-pass at full resolution, then a strided conv
            p0, p1 = self.padding + (k - 1) // 2, self.padding + (k - 2) // 2
            x = F.conv2d(fir(x, f, (p0, p1, p0, p1)), w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, self.lrelu, gain, self.conv_clamp)


class SynthesisLayer(nn.Module):
    def __init__(self,
                 in_channels: int,           # input feature maps
                 out_channels: int,          # output feature maps
                 w_dim: int,                 # intermediate latent width
                 resolution: int,            # output resolution of this layer
                 up: bool = False,           # double the resolution first
                 kernel_size: int = 3,       # square kernel
                 use_noise: bool = True,     # per-pixel noise with a learned strength
                 resample_filter: list[float] = (1, 3, 3, 1),  # 1-D low-pass taps
                 conv_clamp: float = 0.0,    # clamp outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.resolution, self.up, self.use_noise, self.conv_clamp = resolution, up, use_noise, conv_clamp
        self.register_buffer("resample_filter", filter_2d(list(resample_filter)))
        self.prepared = PreparedWeight()
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                gain: float = 1.0) -> torch.Tensor:
        """x: [N, in, r/up, r/up], w: [N, w_dim] -> [N, out, r, r]"""
        # NVlabs: lrelu(conv + noise + bias) * sqrt(2) * gain, clamped. The gain is positive, so it
        # is folded into the convolution's output scale, the noise and the bias (one pass fewer).
        g = LRELU_GAIN * gain
        rendering = rendering_on_cpu(x)   # the bias then goes into the convolution (one pass fewer)
        x = modulated_conv(x, self.weight, self.affine(w), demodulate=True,
                           up_filter=self.resample_filter if self.up else None, out_gain=g, prepared=self.prepared,
                           bias=self.bias * g if rendering else None)
        noise = None
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const.to(x.dtype) * (self.noise_strength.to(x.dtype) * g)
        elif self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                dtype=x.dtype) * (self.noise_strength.to(x.dtype) * g)
        bias = (self.bias.to(x.dtype) * g).reshape(1, -1, 1, 1)
        if torch.is_grad_enabled():   # the same sums, out of place: autograd keeps what it needs
            x = F.leaky_relu((x if noise is None else x + noise) + bias, 0.2)
            return x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain) if self.conv_clamp else x
        x = x if noise is None else x.add_(noise)
        x = F.leaky_relu_(x if rendering else x.add_(bias), 0.2)
        if self.conv_clamp:
            x = x.clamp_(-self.conv_clamp * gain, self.conv_clamp * gain)
        return x


class ToRGBLayer(nn.Module):
    def __init__(self,
                 in_channels: int,           # input feature maps
                 out_channels: int,          # image channels
                 w_dim: int,                 # intermediate latent width
                 conv_clamp: float = 0.0,    # clamp outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.prepared = PreparedWeight()

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:   # [N, in, r, r] -> [N, C, r, r]
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv(x, self.weight, styles, demodulate=False, prepared=self.prepared)
        return bias_act(x, self.bias.to(x.dtype), False, 1.0, self.conv_clamp)


class SynthesisBlock(nn.Module):
    def __init__(self,
                 in_channels: int,           # feature maps from the block below; 0 = the 4x4 constant
                 out_channels: int,          # feature maps of this block
                 w_dim: int,                 # intermediate latent width
                 resolution: int,            # output resolution of the block
                 img_channels: int,          # image channels
                 use_noise: bool = True,     # per-layer noise inputs
                 resample_filter: list[float] = (1, 3, 3, 1),  # 1-D low-pass taps
                 conv_clamp: float = 0.0,    # clamp conv outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.register_buffer("resample_filter", filter_2d(list(resample_filter)))
        layer = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, resample_filter=resample_filter,
                     conv_clamp=conv_clamp)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=True, **layer)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "const"):
        """ws: [N, num_conv + 1, w_dim]; x: [N, in, r/2, r/2] or None; img: [N, C, r/2, r/2] or None
        -> (x [N, out, r, r], img [N, C, r, r])"""
        n = ws.shape[0]
        if self.in_channels == 0:
            x = self.conv1(self.const.unsqueeze(0).expand(n, -1, -1, -1), ws[:, 0], noise_mode)
        else:
            if x.shape[1:] != (self.in_channels, self.resolution // 2, self.resolution // 2):
                raise ValueError(f"block {self.resolution}: features {tuple(x.shape)}, expected "
                                 f"[N, {self.in_channels}, {self.resolution // 2}, {self.resolution // 2}]")
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        return x, skip_image(img, y, self.resample_filter)


class SynthesisNetwork(nn.Module):
    def __init__(self,
                 w_dim: int,                 # intermediate latent width
                 img_resolution: int,        # output resolution, a power of two >= 4
                 img_channels: int,          # image channels
                 channel_base: int = 32768,  # feature maps at r: min(channel_base // r, channel_max)
                 channel_max: int = 512,     # cap on feature maps
                 use_noise: bool = True,     # per-layer noise inputs
                 resample_filter: list[float] = (1, 3, 3, 1),  # 1-D low-pass taps
                 conv_clamp: float = 0.0,    # clamp conv outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            block = SynthesisBlock(in_ch, channels_at(res, channel_base, channel_max), w_dim, res, img_channels,
                                   use_noise, resample_filter, conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1   # the last toRGB

    @property
    def blocks(self) -> list[SynthesisBlock]:
        """Blocks from 4x4 up, each with .resolution, .num_conv and .num_torgb."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img [N, C, R, R] (NVlabs' raw output, about [-1, 1]).
        update_emas: accepted as NVlabs' synthesis accepts it (StyleGAN2's has no EMAs)."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws has shape {tuple(ws.shape)}, expected [N, {self.num_ws}, {self.w_dim}]")
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, not {noise_mode!r}")
        ws = ws.to(self.b4.const.dtype)
        x = img = None
        w_idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise_mode)
            w_idx += block.num_conv
        return img


class MappingNetwork(nn.Module):
    def __init__(self,
                 z_dim: int,                 # input latent width; 0 = labels only (the discriminator's)
                 c_dim: int,                 # label width; 0 = unconditional
                 w_dim: int,                 # output width
                 num_ws: int | None,         # copies of w to output; None = a single [N, w_dim]
                 num_layers: int = 8,        # fully connected layers
                 embed_features: int = 0,    # label embedding width (used when c_dim > 0)
                 layer_features: int = 512,  # hidden layer width
                 lr_multiplier: float = 0.01,  # weights stored divided by this
                 w_avg: bool = True,         # keep a `w_avg` buffer (the truncation centre)
                 w_avg_beta: float = 0.995,  # its decay per update in training (update_emas)
                 ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = embed_features if c_dim else 0
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], lrelu=True,
                                                          lr_multiplier=lr_multiplier))
        if w_avg:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False):
        """z: [N, z_dim] (None when z_dim is 0), c: int labels [N] or one-hot [N, c_dim]
        -> ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None). update_emas: move w_avg
        towards this batch's mean w (NVlabs: when generating for D's step)."""
        n = (z if z is not None else c).shape[0]
        x = None
        if self.z_dim:
            if z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z has shape {tuple(z.shape)}, expected [N, {self.z_dim}]")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim:
            device = (z if z is not None else c).device
            y = normalize_2nd_moment(self.embed(as_onehot(c, self.c_dim, n, device)))
            x = y if x is None else torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas and hasattr(self, "w_avg"):
            self.track_w_avg(x.detach().mean(dim=0))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:   # the project's one truncation (trainer.latents), NVlabs' formula
            x = truncate(x, self.w_avg, truncation_psi, truncation_cutoff)
        return x


    @torch.no_grad()
    def track_w_avg(self, w_mean: torch.Tensor) -> None:
        """w_avg <- lerp(w_mean, w_avg, w_avg_beta): one training update from a batch's mean w [w_dim]."""
        self.w_avg.copy_(w_mean.to(self.w_avg.dtype).lerp(self.w_avg, self.w_avg_beta))


class NVlabsGenerator(nn.Module):
    def __init__(self, cfg: NVlabsGeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg.w_dim, cfg.img_resolution, cfg.img_channels, cfg.channel_base,
                                          cfg.channel_max, cfg.use_noise, cfg.resample_filter, cfg.conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers,
                                      cfg.embed_features, cfg.layer_features, cfg.mapping_lr_multiplier,
                                      w_avg_beta=cfg.w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const", update_emas: bool = False):
        """z: [N, z_dim], c: labels [N] or one-hot [N, c_dim] (None if unconditional) -> img [NCHW]."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode, update_emas=update_emas)


# ----------------------------------------------------------------------------------------------
# Discriminator

class DiscriminatorBlock(nn.Module):
    def __init__(self,
                 in_channels: int,           # feature maps from above; 0 = the first block (reads the image)
                 tmp_channels: int,          # feature maps inside the block
                 out_channels: int,          # feature maps passed down (at half resolution)
                 resolution: int,            # input resolution of the block
                 img_channels: int,          # image channels
                 resample_filter: list[float] = (1, 3, 3, 1),  # 1-D low-pass taps
                 conv_clamp: float = 0.0,    # clamp conv outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", filter_2d(list(resample_filter)))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, lrelu=True, conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, lrelu=True, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, lrelu=True, down=True,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=True, resample_filter=resample_filter)

    def forward(self, x, img):
        """x: [N, in, r, r] or None (first block), img: [N, C, r, r] -> [N, out, r/2, r/2]"""
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    def __init__(self,
                 in_channels: int,           # feature maps at 4x4
                 cmap_dim: int,              # mapped label width; 0 = unconditional
                 resolution: int,            # 4
                 mbstd_group_size: int = 4,  # minibatch-std group; 0 = whole batch
                 mbstd_num_channels: int = 1,  # minibatch-std channels; 0 = off
                 conv_clamp: float = 0.0,    # clamp conv outputs to +-this; 0 = off
                 ):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, lrelu=True, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, lrelu=True)
        self.out = FullyConnectedLayer(in_channels, cmap_dim or 1)

    def forward(self, x, cmap):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class NVlabsDiscriminator(nn.Module):
    def __init__(self, cfg: NVlabsDiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.img_resolution, cfg.img_channels
        self.block_resolutions = [2 ** i for i in range(int(math.log2(cfg.img_resolution)), 2, -1)]
        ch = lambda r: channels_at(r, cfg.channel_base, cfg.channel_max)
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(ch(res) if res < cfg.img_resolution else 0, ch(res),
                                                        ch(res // 2), res, cfg.img_channels, cfg.resample_filter,
                                                        cfg.conv_clamp))
        if cfg.c_dim:
            self.mapping = MappingNetwork(0, cfg.c_dim, cfg.cmap_dim, None, cfg.mapping_layers, cfg.cmap_dim,
                                          cfg.cmap_dim, cfg.mapping_lr_multiplier, w_avg=False)
        self.b4 = DiscriminatorEpilogue(ch(4), cfg.cmap_dim if cfg.c_dim else 0, 4, cfg.mbstd_group_size,
                                        cfg.mbstd_num_channels, cfg.conv_clamp)

    def forward(self, img: torch.Tensor, c=None) -> torch.Tensor:
        """img: [N, C, R, R], c: labels [N] or one-hot [N, c_dim] -> logits [N, 1]"""
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"img has shape {tuple(img.shape)}, expected "
                             f"[N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}]")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if self.c_dim else None
        return self.b4(x, cmap)
