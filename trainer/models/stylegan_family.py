"""The NVlabs-exact StyleGANs as the trainer builds them: their generator and discriminator
configs from a run's ModelConfig, with the choices NVlabs' train.py makes (stylegan2-ada-pytorch
for `stylegan2`, the stylegan3 repository for `stylegan3-t` / `stylegan3-r`), and the
discriminator as the GAN task calls it. The classes are the ones imported networks open in, so a
checkpoint trained here and an imported pickle are the same kind of file."""
from __future__ import annotations

import torch
import torch.nn as nn

from trainer.config import ConfigError, ModelConfig
from trainer.models.common import MinibatchDiscrimination
from trainer.models.stylegan2_nvlabs import ARCH_NAME as STYLEGAN2
from trainer.models.stylegan2_nvlabs import (FullyConnectedLayer, NVlabsDiscriminator, NVlabsDiscriminatorConfig,
                                             NVlabsGeneratorConfig, channels_at)
from trainer.models.stylegan3 import ARCH_R, StyleGAN3GeneratorConfig

CONV_CLAMP = 256.0            # NVlabs' train.py: conv_clamp 256 in G and D for every config
STYLEGAN2_W_AVG_BETA = 0.995  # stylegan2-ada-pytorch's mapping network
STYLEGAN3_W_AVG_BETA = 0.998  # the stylegan3 repository's


def magnitude_ema_beta(batch: int) -> float:
    """NVlabs' StyleGAN3 magnitude-EMA decay per step for a global batch: a half-life of 20k images."""
    return 0.5 ** (batch / (20 * 1e3))


def _check(m: ModelConfig) -> None:
    if m.c_dim and m.cond_d != "projection":
        raise ConfigError(f"--cond-d {m.cond_d}: {m.arch}'s discriminator conditions by projecting onto the "
                          "mapped label (NVlabs' cmap); use --cond-d projection")
    if m.c_dim and m.cond_g != "embed":
        raise ConfigError(f"--cond-g {m.cond_g}: {m.arch}'s mapping network embeds the label; use --cond-g embed")


def discriminator_config(m: ModelConfig) -> NVlabsDiscriminatorConfig:
    """NVlabs' StyleGAN2 D (resnet, mbstd, mapped-label projection), also StyleGAN3's: widths from
    --channel-base / --channel-max, as NVlabs' train.py gives D the unscaled --cbase / --cmax."""
    cmap_dim = channels_at(4, m.channel_base, m.channel_max) if m.c_dim else 0
    return NVlabsDiscriminatorConfig(
        arch=STYLEGAN2, c_dim=m.c_dim, img_resolution=m.img_resolution,
        img_channels=m.img_channels, channel_base=m.channel_base, channel_max=m.channel_max, conv_clamp=CONV_CLAMP,
        cmap_dim=cmap_dim, mbstd_group_size=m.mbstd_group, mbstd_num_channels=1 if m.mbstd_group else 0)


def stylegan2_configs(m: ModelConfig) -> tuple[NVlabsGeneratorConfig, NVlabsDiscriminatorConfig]:
    """ModelConfig -> (G config, D config) of the exact StyleGAN2 (NVlabs' hidden mapping width = w_dim)."""
    _check(m)
    g = NVlabsGeneratorConfig(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, img_resolution=m.img_resolution,
                              img_channels=m.img_channels, mapping_layers=m.mapping_layers,
                              embed_features=m.w_dim if m.c_dim else 0, layer_features=m.w_dim,
                              w_avg_beta=STYLEGAN2_W_AVG_BETA, channel_base=m.channel_base,
                              channel_max=m.channel_max, conv_clamp=CONV_CLAMP)
    g.validate()
    return g, discriminator_config(m)


def stylegan3_configs(m: ModelConfig) -> tuple[StyleGAN3GeneratorConfig, NVlabsDiscriminatorConfig]:
    """ModelConfig -> (G config, D config) of StyleGAN3-T or -R. As NVlabs' train.py: -R doubles G's
    channel_base and channel_max and uses 1x1 convolutions; the magnitude-EMA decay comes from the
    batch (ModelConfig.magnitude_ema_beta, filled in by the GAN task; 0 here means 32 images)."""
    _check(m)
    scale = 2 if m.arch == ARCH_R else 1
    g = StyleGAN3GeneratorConfig.for_arch(
        m.arch, z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, img_resolution=m.img_resolution,
        img_channels=m.img_channels, mapping_layers=m.mapping_layers, w_avg_beta=STYLEGAN3_W_AVG_BETA,
        channel_base=m.channel_base * scale, channel_max=m.channel_max * scale, conv_clamp=CONV_CLAMP,
        magnitude_ema_beta=m.magnitude_ema_beta or magnitude_ema_beta(32))
    return g, discriminator_config(m)


class TrainingDiscriminator(NVlabsDiscriminator):
    """NVlabs' discriminator as the GAN task calls every D: (logits [N], None: no auxiliary
    classifier), `head` (the layer whose input feature matching reads) and, when asked, Salimans'
    minibatch discrimination features before that layer. Its tensors keep NVlabs' names."""

    def __init__(self,
                 cfg: NVlabsDiscriminatorConfig,       # NVlabs' D
                 minibatch_discrimination: bool = False,  # append minibatch features before the output layer
                 ):
        super().__init__(cfg)
        if minibatch_discrimination:
            out = self.b4.out
            features = MinibatchDiscrimination(out.weight.shape[1])
            self.b4.out = nn.Sequential(features, FullyConnectedLayer(out.weight.shape[1] + features.kernels,
                                                                      out.weight.shape[0]))

    @property
    def head(self) -> nn.Module:
        return self.b4.out

    def forward(self, img: torch.Tensor, c=None):
        """img: [N, C, R, R], c: labels [N] or one-hot [N, c_dim] -> (logits [N], None)"""
        return super().forward(img, c)[:, 0], None
