"""Registry of architectures by short name. A checkpoint names its `arch`; the loader looks it
up here and builds the class from the validated config, never from a class path on disk.

The StyleGAN family is exact to NVlabs: `stylegan2`, `stylegan3-t`, `stylegan3-r` are the classes
imported pickles open in and the ones the presets train (their checkpoints store the NVlabs-style
generator config). `stylegan2-compact` is the older look-alike StyleGAN2, kept so its checkpoints
keep opening; ARCH_ALIASES maps names earlier versions wrote to today's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from trainer.config import ModelConfig, TranslationModelConfig
from trainer.models.biggan import ARCH_NAME as BIGGAN, BigGANDiscriminator, BigGANGenerator
from trainer.models.common import apply_spectral_norm
from trainer.models.cyclegan import build_cyclegan_discriminators, build_cyclegan_generators
from trainer.models.dcgan import DCGANDiscriminator, DCGANGenerator
from trainer.models.mlp import MLPDiscriminator, MLPGenerator
from trainer.models.pix2pix import build_pix2pix_discriminator, build_pix2pix_generator
from trainer.models.progan import ProGANDiscriminator, ProGANGenerator
from trainer.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from trainer.models.stylegan2_nvlabs import (ARCH_NAME as STYLEGAN2, NVlabsDiscriminator, NVlabsDiscriminatorConfig,
                                             NVlabsGenerator, NVlabsGeneratorConfig)
from trainer.models.stylegan3 import (ARCH_R as STYLEGAN3_R, ARCH_T as STYLEGAN3_T, StyleGAN3Generator,
                                      StyleGAN3GeneratorConfig)
from trainer.models.stylegan_family import TrainingDiscriminator, stylegan2_configs, stylegan3_configs
from trainer.models.stylegan1 import (ARCH_NAME as STYLEGAN1, StyleGAN1Generator, StyleGAN1GeneratorConfig,
                                       stylegan1_configs)

STYLEGAN2_COMPACT = "stylegan2-compact"
# Names earlier versions wrote into checkpoints: NVlabs StyleGAN2 imports were `stylegan2-nvlabs`.
# (A checkpoint whose arch is `stylegan2` with the compact model's config is told apart by that
# config: ModelConfig.from_dict.)
ARCH_ALIASES = {"stylegan2-nvlabs": STYLEGAN2}


@dataclass(frozen=True)
class Arch:
    name: str
    make_generator: Callable[[ModelConfig], nn.Module]
    make_discriminator: Callable[[ModelConfig], nn.Module]
    description: str
    config_type: type = ModelConfig             # the config class its checkpoints store
    discriminator_config_type: type | None = None  # set when exports may carry D with its own config
    trainable: bool = True                      # offered by the trainer's presets and docs
    # archs whose G stores a config of its own: a run's ModelConfig -> (G config, D config or None when
    # make_discriminator builds D from the ModelConfig)
    configs_from_model: Callable[[ModelConfig], tuple] | None = None


def _exact(name: str, make_generator, description: str, config_type: type, configs_from_model) -> Arch:
    return Arch(name, make_generator, NVlabsDiscriminator, description, config_type=config_type,
                discriminator_config_type=NVlabsDiscriminatorConfig, configs_from_model=configs_from_model)


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
    "progan": Arch(
        "progan",
        lambda m: ProGANGenerator(m.z_dim, m.c_dim, m.img_resolution, m.img_channels, m.channel_base, m.channel_max,
                                  m.cond_g),
        lambda m: ProGANDiscriminator(m.c_dim, m.img_resolution, m.img_channels, m.channel_base, m.channel_max,
                                      m.mbstd_group, m.cond_d, m.minibatch_discrimination),
        "Karras et al.'s progressive GAN (grows from 4x4 with --grow-kimg and --fade-kimg; pixel norm, "
        "equalised lr, minibatch std)"),
    STYLEGAN2: _exact(STYLEGAN2, NVlabsGenerator,
                      "StyleGAN2 exactly as NVlabs' stylegan2-ada-pytorch computes it (FIR resampling, fused "
                      "modulated convolutions, resnet D)", NVlabsGeneratorConfig, stylegan2_configs),
    # StyleGAN3: one config type for both; -R means radially symmetric downsampling filters (the
    # config's arch field). D is NVlabs' StyleGAN2 discriminator, as in NVlabs' StyleGAN3 snapshots.
    **{name: _exact(name, StyleGAN3Generator, description, StyleGAN3GeneratorConfig, stylegan3_configs)
       for name, description in (
           (STYLEGAN3_T, "StyleGAN3-T (alias-free, translation equivariant), exactly as NVlabs"),
           (STYLEGAN3_R, "StyleGAN3-R (alias-free, rotation equivariant: radial filters), exactly as NVlabs"))},
    # StyleGAN v1: its generator stores a config of its own; D is ProGAN's, built from the run's config.
    STYLEGAN1: Arch(
        STYLEGAN1, StyleGAN1Generator,
        lambda m: ProGANDiscriminator(m.c_dim, m.img_resolution, m.img_channels, m.channel_base, m.channel_max,
                                      m.mbstd_group, m.cond_d, m.minibatch_discrimination),
        "Karras et al.'s StyleGAN (2019): mapping network, AdaIN in every layer, constant input, per-layer noise, "
        "style mixing; grows progressively (--grow-kimg, --fade-kimg) against ProGAN's D",
        config_type=StyleGAN1GeneratorConfig, configs_from_model=stylegan1_configs),
    STYLEGAN2_COMPACT: Arch(
        STYLEGAN2_COMPACT,
        lambda m: StyleGAN2Generator(m.z_dim, m.c_dim, m.w_dim, m.img_resolution, m.img_channels, m.width,
                                     m.max_width, m.mapping_layers),
        lambda m: StyleGAN2Discriminator(m.c_dim, m.img_resolution, m.img_channels, m.width, m.max_width,
                                         m.mbstd_group, m.cond_d, m.minibatch_discrimination),
        "the older compact look-alike StyleGAN2 (bilinear resampling); opens its checkpoints, no preset trains it",
        trainable=False),
    BIGGAN: Arch(
        BIGGAN,
        lambda m: BigGANGenerator(m.z_dim, m.c_dim, m.img_resolution, m.img_channels, m.width, m.max_width),
        lambda m: BigGANDiscriminator(m.c_dim, m.img_resolution, m.img_channels, m.width, m.max_width),
        "Brock et al.'s BigGAN: shared class embedding, hierarchical z into conditional batch norm, "
        "self-attention, spectral norm in G and D, projection D"),
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


def _arch(cfg) -> Arch:
    if cfg.arch not in ARCHS:
        raise KeyError(f"unknown architecture '{cfg.arch}'; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[cfg.arch]


def generator_config(cfg):
    """The config a generator is built from and its checkpoint stores: a run's ModelConfig, or for
    the NVlabs-exact archs their own generator config made from it."""
    arch = _arch(cfg)
    if isinstance(cfg, ModelConfig) and arch.configs_from_model is not None:
        return arch.configs_from_model(cfg)[0]
    return cfg


def build_generator(cfg) -> nn.Module:
    """A run's ModelConfig, or a checkpoint's config of the arch's config type -> G."""
    return _arch(cfg).make_generator(generator_config(cfg))


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    """A run's ModelConfig -> D as the GAN task calls it: D(img, c) -> (logits [N], class logits or None)."""
    arch = _arch(cfg)
    d_config = arch.configs_from_model(cfg)[1] if arch.configs_from_model is not None else None
    if d_config is not None:   # NVlabs' D, with a config of its own (stylegan1's D is built from cfg)
        D = TrainingDiscriminator(d_config, cfg.minibatch_discrimination)
    else:
        D = arch.make_discriminator(cfg)
    return apply_spectral_norm(D) if getattr(cfg, "spectral_norm", False) else D
