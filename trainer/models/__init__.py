"""Registry of architectures by short name. A checkpoint names its `arch`; the loader looks it
up here and builds the class from the validated config, never from a class path on disk."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from trainer.config import ModelConfig
from trainer.models.dcgan import DCGANDiscriminator, DCGANGenerator
from trainer.models.mlp import MLPDiscriminator, MLPGenerator
from trainer.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from trainer.models.stylegan2_nvlabs import (ARCH_NAME as NVLABS_ARCH, NVlabsDiscriminator, NVlabsDiscriminatorConfig,
                               NVlabsGenerator, NVlabsGeneratorConfig)
from trainer.models.stylegan3 import (ARCH_R as STYLEGAN3_R, ARCH_T as STYLEGAN3_T, StyleGAN3Generator,
                                     StyleGAN3GeneratorConfig)
from trainer.models.common import apply_spectral_norm
from trainer.models.cyclegan import build_cyclegan_discriminators, build_cyclegan_generators
from trainer.models.pix2pix import build_pix2pix_discriminator, build_pix2pix_generator
from trainer.config import TranslationModelConfig


@dataclass(frozen=True)
class Arch:
    name: str
    make_generator: Callable[[ModelConfig], nn.Module]
    make_discriminator: Callable[[ModelConfig], nn.Module]
    description: str
    config_type: type = ModelConfig             # the config class its checkpoints store
    discriminator_config_type: type | None = None  # set when exports may carry D with its own config
    trainable: bool = True                      # offered by the trainer (imported-only archs are not)


ARCHS: dict[str, Arch] = {
    "mlp": Arch(
        "mlp",
        lambda m: MLPGenerator(m.z_dim, m.c_dim, m.img_channels, m.hidden, m.depth, m.cond_g),
        lambda m: MLPDiscriminator(m.img_channels, m.c_dim, m.hidden, m.depth, m.cond_d,
                                   m.minibatch_discrimination, m.mbstd_group if m.mbstd else 0),
        "fully connected G and D for 2-D points"),
    "dcgan": Arch(
        "dcgan",
        lambda m: DCGANGenerator(m.z_dim, m.c_dim, m.img_resolution, m.img_channels, m.width, m.max_width,
                                 m.cond_g),
        lambda m: DCGANDiscriminator(m.c_dim, m.img_resolution, m.img_channels, m.width, m.max_width,
                                     m.d_norm, m.cond_d, m.minibatch_discrimination,
                                     m.mbstd_group if m.mbstd else 0),
        "Radford et al.'s convolutional GAN"),
    "stylegan2": Arch(
        "stylegan2",
        lambda m: StyleGAN2Generator(m.z_dim, m.c_dim, m.w_dim, m.img_resolution, m.img_channels, m.width,
                                     m.max_width, m.mapping_layers),
        lambda m: StyleGAN2Discriminator(m.c_dim, m.img_resolution, m.img_channels, m.width, m.max_width,
                                         m.mbstd_group, m.cond_d, m.minibatch_discrimination),
        "style-based generator with modulated convolutions; residual D"),
    NVLABS_ARCH: Arch(
        NVLABS_ARCH,
        NVlabsGenerator,
        NVlabsDiscriminator,
        "StyleGAN2 exactly as NVlabs' stylegan2-ada-pytorch computes it (imported networks)",
        config_type=NVlabsGeneratorConfig,
        discriminator_config_type=NVlabsDiscriminatorConfig,
        trainable=False),
    # StyleGAN3: one config type for both; -R means radially symmetric downsampling filters (the
    # config's arch field). D is NVlabs' StyleGAN2 discriminator, as in NVlabs' StyleGAN3 snapshots.
    **{name: Arch(name, StyleGAN3Generator, NVlabsDiscriminator, description,
                  config_type=StyleGAN3GeneratorConfig, discriminator_config_type=NVlabsDiscriminatorConfig,
                  trainable=False)
       for name, description in (
           (STYLEGAN3_T, "StyleGAN3-T (alias-free, translation equivariant), exactly as NVlabs"),
           (STYLEGAN3_R, "StyleGAN3-R (alias-free, rotation equivariant: radial filters), exactly as NVlabs"))},
    # Image-to-image models: trained by trainer.training.translation, not the latent GAN loop.
    "pix2pix": Arch(
        "pix2pix", build_pix2pix_generator, build_pix2pix_discriminator,
        "Isola et al.'s U-Net generator and PatchGAN on (input, output) pairs",
        config_type=TranslationModelConfig, trainable=False),
    "cyclegan": Arch(
        "cyclegan", build_cyclegan_generators, build_cyclegan_discriminators,
        "Zhu et al.'s two ResNet generators (both exported) and two PatchGANs",
        config_type=TranslationModelConfig, trainable=False),
}


def _arch(cfg: ModelConfig) -> Arch:
    if cfg.arch not in ARCHS:
        raise KeyError(f"unknown architecture '{cfg.arch}'; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[cfg.arch]


def build_generator(cfg: ModelConfig) -> nn.Module:
    return _arch(cfg).make_generator(cfg)


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    D = _arch(cfg).make_discriminator(cfg)
    return apply_spectral_norm(D) if getattr(cfg, "spectral_norm", False) else D
