"""StyleGAN, the first version (Karras, Laine, Aila, "A Style-Based Generator Architecture for
Generative Adversarial Networks", 2019), as NVlabs' stylegan (TensorFlow) repository's G_style
computes it, behind the NVlabs generator API the rest of the project uses (`mapping`,
`synthesis`, `num_ws`, `w_avg`, `synthesis.blocks`), so the studio, inversion and the latent
module treat it as they treat StyleGAN2.

What it computes, per layer:
- mapping (the StyleGAN2 class, which computes the same thing): z normalised to unit second
  moment (pixel norm), 8 equalised-lr fully connected layers with leaky ReLU and a 0.01
  learning-rate multiplier; `w_avg` tracked in training and the truncation trick with a cutoff.
- synthesis: a learned 4x4 constant (initialised to ones); every layer is
  [conv] -> noise (per-pixel, learned per-channel strength) -> bias -> leaky ReLU -> AdaIN
  (instance norm, then a per-channel scale and bias from w). Two ws per resolution; above 4x4
  the first conv reads the nearest-upsampled features and is followed by the [1, 2, 1] blur.
- progressive growing (trainer.models.growing's contract): each resolution has its own 1x1
  toRGB; at level of detail `lod` the image of the moment is lerped with the coarser one's
  (upsampled) by the fade-in alpha, then nearest-upsampled, so G always returns img_resolution.
Equalised learning rate throughout (weights stored N(0, 1), scaled by He's constant at run time).
The discriminator is ProGAN's, as in the paper (trainer.models.progan).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import ConfigError, ModelConfig, _opt
from trainer.models.growing import SQRT2, EqualizedConv2d, EqualizedLinear, Growing, fade, upscale_nearest
from trainer.models.nvlabs_ops import filter_2d, fir
from trainer.models.style_config import StyleGeneratorConfig
from trainer.models.stylegan2_nvlabs import MappingNetwork, channels_at

ARCH_NAME = "stylegan1"


@dataclass
class StyleGAN1GeneratorConfig(StyleGeneratorConfig):
    arch: str = _opt(ARCH_NAME, "architecture name in the registry", choices=(ARCH_NAME,))
    w_avg_beta: float = _opt(0.995, "decay of the w_avg tracking during training (NVlabs' dlatent_avg_beta)")
    channel_base: int = _opt(16384, "feature maps at resolution r are min(channel_base // r, channel_max) "
                                    "(NVlabs' fmap_base 8192 counts stages from 2x2)")
    blur_filter: list = field(default_factory=lambda: [1.0, 2.0, 1.0],
                              metadata={"help": "1-D taps of the blur after each upsampling (empty: no blur)"})

    def validate(self) -> None:
        super().validate()
        if self.blur_filter and sum(self.blur_filter) == 0:
            raise ConfigError(f"blur_filter must have a non-zero sum, got {self.blur_filter}")


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each feature map of each image to zero mean, unit variance: [NCHW] -> [NCHW]."""
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return x * (x.square().mean(dim=(2, 3), keepdim=True) + eps).rsqrt()


class SynthesisLayer(nn.Module):
    def __init__(self,
                 in_channels: int,           # input feature maps; 0 = no convolution (reads the 4x4 constant)
                 out_channels: int,          # output feature maps
                 w_dim: int,                 # intermediate latent width
                 resolution: int,            # output resolution of this layer
                 up: bool = False,           # nearest-upsample x2 before the conv, blur after it
                 use_noise: bool = True,     # per-pixel noise with a learned per-channel strength
                 blur_filter: list[float] = (1, 2, 1),  # 1-D blur taps after upsampling; empty = none
                 ):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        if in_channels:   # NVlabs' G_style: no conv bias; the layer's bias comes after blur and noise
            self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
            self.weight_gain = SQRT2 / math.sqrt(in_channels * 9)
        self.blur = up and bool(blur_filter)
        if self.blur:
            self.register_buffer("blur_filter", filter_2d(list(blur_filter)))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([out_channels]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.style = EqualizedLinear(w_dim, out_channels * 2, gain=1)   # AdaIN's (scale - 1, bias) per channel

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """x: [N, in, r/2, r/2] (up), [N, in, r, r], or [N, out, r, r] without a conv; w: [N, w_dim]
        -> [N, out, r, r]"""
        if hasattr(self, "weight"):
            if self.up:
                x = upscale_nearest(x, 2)
            x = F.conv2d(x, (self.weight * self.weight_gain).to(x.dtype), padding=1)
            if self.blur:
                k = self.blur_filter.shape[-1]
                x = fir(x, self.blur_filter, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2))
        strength = self.noise_strength.to(x.dtype).reshape(1, -1, 1, 1) if self.use_noise else None
        if self.use_noise and noise_mode == "const":
            # [r, r], or [N, 1, r, r] while trainer.latents swaps in per-image maps
            x = x + self.noise_const.to(x.dtype).reshape(-1, 1, self.resolution, self.resolution) * strength
        elif self.use_noise and noise_mode == "random":
            x = x + torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                dtype=x.dtype) * strength
        x = instance_norm(F.leaky_relu(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1), 0.2))
        scale, shift = self.style(w).to(x.dtype).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (scale + 1) + shift


class SynthesisBlock(nn.Module):
    def __init__(self,
                 in_channels: int,           # feature maps from the block below; 0 = the 4x4 constant
                 out_channels: int,          # feature maps of this block
                 w_dim: int,                 # intermediate latent width
                 resolution: int,            # output resolution of the block
                 img_channels: int,          # image channels (of its toRGB)
                 use_noise: bool = True,     # per-layer noise inputs
                 blur_filter: list[float] = (1, 2, 1),  # 1-D blur taps after upsampling
                 ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        layer = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, blur_filter=blur_filter)
        if in_channels == 0:
            self.const = nn.Parameter(torch.ones([out_channels, resolution, resolution]))
        self.conv0 = SynthesisLayer(in_channels, out_channels, up=in_channels > 0, **layer)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer)
        self.torgb = EqualizedConv2d(out_channels, img_channels, 1, gain=1)   # this resolution's image, for growing
        self.num_conv = 2    # ws read by the block's layers
        self.num_torgb = 0   # StyleGAN v1's toRGB reads no w

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """x: [N, in, r/2, r/2] (None for the 4x4 block), ws: [N, 2, w_dim] -> [N, out, r, r]"""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        elif x.shape[1:] != (self.in_channels, self.resolution // 2, self.resolution // 2):
            raise ValueError(f"block {self.resolution}: features {tuple(x.shape)}, expected "
                             f"[N, {self.in_channels}, {self.resolution // 2}, {self.resolution // 2}]")
        x = self.conv0(x, ws[:, 0], noise_mode)
        return self.conv1(x, ws[:, 1], noise_mode)


class SynthesisNetwork(Growing, nn.Module):
    def __init__(self,
                 w_dim: int,                 # intermediate latent width
                 img_resolution: int,        # output resolution, a power of two >= 4
                 img_channels: int,          # image channels
                 channel_base: int = 16384,  # feature maps at r: min(channel_base // r, channel_max)
                 channel_max: int = 512,     # cap on feature maps
                 use_noise: bool = True,     # per-layer noise inputs
                 blur_filter: list[float] = (1, 2, 1),  # 1-D blur taps after upsampling
                 ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        for res in self.block_resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(in_ch, channels_at(res, channel_base, channel_max), w_dim, res,
                                                    img_channels, use_noise, blur_filter))
        self.num_ws = 2 * len(self.block_resolutions)
        self.register_lod(img_resolution)

    @property
    def num_active_ws(self) -> int:
        """The ws the level of the moment reads (NVlabs' cur_layers: num_layers - 2 * floor(lod))."""
        return 2 * (len(self.block_resolutions) - self.level()[0])

    @property
    def blocks(self) -> list[SynthesisBlock]:
        """Blocks from 4x4 up, each with .resolution, .num_conv and .num_torgb."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img [N, C, R, R] (about [-1, 1]) at the current level of detail,
        nearest-upsampled to R. update_emas: accepted as NVlabs' synthesis accepts it (no EMAs here)."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws has shape {tuple(ws.shape)}, expected [N, {self.num_ws}, {self.w_dim}]")
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, not {noise_mode!r}")
        ws = ws.to(self.b4.const.dtype)
        halvings, alpha = self.level()
        top = len(self.blocks) - 1 - halvings   # the block at the resolution of the moment
        x = coarse = None
        for index, block in enumerate(self.blocks[:top + 1]):
            if index == top and alpha < 1:   # the level below fades out: its image, upsampled
                coarse = upscale_nearest(self.blocks[index - 1].torgb(x), 2)
            x = block(x, ws[:, 2 * index:2 * index + 2], noise_mode)
        img = fade(coarse, self.blocks[top].torgb(x), alpha)   # [N, C, r, r]
        return upscale_nearest(img, 2 ** halvings)


class StyleGAN1Generator(nn.Module):
    def __init__(self, cfg: StyleGAN1GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg.w_dim, cfg.img_resolution, cfg.img_channels, cfg.channel_base,
                                          cfg.channel_max, cfg.use_noise, cfg.blur_filter)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers,
                                      cfg.embed_features, cfg.layer_features, cfg.mapping_lr_multiplier,
                                      w_avg_beta=cfg.w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    @property
    def lod(self) -> torch.Tensor:
        """The level of detail (0-dim; 0 = full resolution), held by the synthesis network."""
        return self.synthesis.lod

    def set_lod(self, lod: float) -> None:
        self.synthesis.set_lod(lod)

    @property
    def num_active_ws(self) -> int:
        """The ws the images of the moment read; style mixing draws its cutoff among these."""
        return self.synthesis.num_active_ws

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const", update_emas: bool = False):
        """z: [N, z_dim], c: labels [N] or one-hot [N, c_dim] (None if unconditional) -> img [NCHW]."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode, update_emas=update_emas)


def stylegan1_configs(m: ModelConfig) -> tuple[StyleGAN1GeneratorConfig, None]:
    """A run's ModelConfig -> (G config, None: D is ProGAN's, built from the ModelConfig itself).
    The hidden mapping width is w_dim (NVlabs: 512 both)."""
    if m.c_dim and m.cond_g != "embed":
        raise ConfigError(f"--cond-g {m.cond_g}: {ARCH_NAME}'s mapping network embeds the label; use --cond-g embed")
    g = StyleGAN1GeneratorConfig(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, img_resolution=m.img_resolution,
                                 img_channels=m.img_channels, mapping_layers=m.mapping_layers,
                                 embed_features=m.w_dim if m.c_dim else 0, layer_features=m.w_dim,
                                 channel_base=m.channel_base, channel_max=m.channel_max)
    g.validate()
    return g, None
