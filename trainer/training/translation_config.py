"""Typed configuration of an image-to-image run (Pix2Pix, CycleGAN), saved as plain JSON.

A translation run's config.json carries `"kind": "translation"`, which is how the CLI and a
resume tell it from a latent GAN's run. The fields follow the published papers and the
reference implementation (Isola et al. 2017; Zhu et al. 2017); every field has a help text the
CLI shows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from trainer.config import ConfigError, _Config, _opt, merge

RUN_KIND = "translation"
TRANSLATION_ARCHS = ("pix2pix", "cyclegan")
DIRECTIONS = ("AtoB", "BtoA")


@dataclass
class TranslationDataConfig(_Config):
    source: str = _opt("edges2fashion", "edges2fashion, sneakers2boots, a folder or a .zip (see the README for "
                                        "the paired and unpaired layouts)")
    resolution: int = _opt(32, "training resolution in pixels (images are resized and centre-cropped)", low=8)
    channels: int = _opt(0, "channels of both domains: 1 grey, 3 RGB, 0 decides from the data", choices=(0, 1, 3))
    split: str = _opt("train", "which part to train on (built-ins: the Fashion-MNIST split; folders: train/ "
                               "or trainA/ trainB/)", choices=("train", "test"))
    xflip: bool = _opt(False, "mirror random pairs (both images of a pair together)")
    max_images: int = _opt(0, "use at most this many images per domain (0: all)", low=0)


@dataclass
class TranslationModelConfig(_Config):
    arch: str = _opt("pix2pix", "pix2pix (paired, U-Net) or cyclegan (unpaired, two ResNet generators)",
                     choices=TRANSLATION_ARCHS)
    direction: str = _opt("AtoB", "AtoB translates domain A into B; BtoA the reverse", choices=DIRECTIONS)
    in_channels: int = _opt(1, "channels of the input domain (set from the data)", low=1)
    out_channels: int = _opt(1, "channels of the output domain (set from the data)", low=1)
    img_resolution: int = _opt(32, "image side in pixels (set from the data)", low=8)
    g_width: int = _opt(64, "generator feature maps at full resolution (the papers' ngf); doubles per halving "
                            "up to 8x", low=1)
    d_width: int = _opt(64, "discriminator feature maps in its first layer (ndf)", low=1)
    norm: str = _opt("batch", "normalisation in G and D", choices=("batch", "instance"))
    dropout: float = _opt(0.5, "dropout in the U-Net's inner decoder layers, the paper's noise (pix2pix)",
                          low=0, high=0.9)
    patch: int = _opt(0, "PatchGAN receptive field in pixels: 70, 34 or 16; 0 picks by resolution "
                         "(70 from 128 px, 34 at 64 px, 16 below)", choices=(0, 16, 34, 70))
    resnet_blocks: int = _opt(0, "residual blocks per CycleGAN generator (0: 9 from 256 px, else 6)", low=0)

    @property
    def d_layers(self) -> int:
        """Strided layers of the PatchGAN for the chosen receptive field."""
        patch = self.patch or (70 if self.img_resolution >= 128 else 34 if self.img_resolution >= 64 else 16)
        return {16: 1, 34: 2, 70: 3}[patch]

    @property
    def blocks(self) -> int:
        return self.resnet_blocks or (9 if self.img_resolution >= 256 else 6)


@dataclass
class TranslationTrainConfig(_Config):
    loss: str = _opt("nonsat", "adversarial loss: nonsat (the pix2pix paper's cross-entropy) or lsgan "
                               "(CycleGAN's least squares)", choices=("nonsat", "lsgan"))
    kimg: float = _opt(20.0, "train until this many thousand input images have been translated", above=0)
    batch: int = _opt(16, "images per batch (the papers use 1; larger is faster on a CPU)", low=1)
    g_lr: float = _opt(2e-4, "G learning rate", above=0)
    d_lr: float = _opt(2e-4, "D learning rate", above=0)
    beta1: float = _opt(0.5, "Adam beta1", low=0, high=1)
    beta2: float = _opt(0.999, "Adam beta2", low=0, high=1)
    constant_kimg: float = _opt(0.0, "kimg at the full learning rate before the linear decay starts (0 with "
                                     "--decay-kimg 0: half the run, as the reference's 100 + 100 epochs)", low=0)
    decay_kimg: float = _opt(0.0, "kimg over which the learning rates fall linearly to zero", low=0)
    l1_weight: float = _opt(100.0, "lambda of the L1 term against the target (pix2pix)", low=0)
    cycle_weight: float = _opt(10.0, "lambda of each cycle-consistency term (cyclegan)", low=0)
    identity_weight: float = _opt(0.5, "identity loss weight as a fraction of --cycle-weight (cyclegan; 0 off)",
                                  low=0)
    pool_size: int = _opt(50, "history of generated images the discriminators also see (cyclegan; 0 off)", low=0)
    seed: int = _opt(0, "random seed", low=0, high=2**32 - 1)
    device: str = _opt("auto", "cpu, cuda, mps or auto")
    threads: int = _opt(0, "CPU threads for torch (0: torch's default)", low=0)
    log_every: int = _opt(20, "write scalars every this many G steps", low=1)
    sample_kimg: float = _opt(2.0, "write a sample strip every this many kimg", low=0)
    snapshot_kimg: float = _opt(5.0, "write a checkpoint and resume state every this many kimg", low=0)
    metrics: str = _opt("l1,psnr,ssim,cycle", "translation metrics on held-out images at the end: comma list of "
                                              "l1, psnr, ssim, fid, cycle")
    metrics_images: int = _opt(500, "held-out images the metrics use", low=2)
    grid_size: int = _opt(8, "sample strips show this many inputs", low=1)
    explode_threshold: float = _opt(1e6, "stop the run if a loss grows past this magnitude", above=0)


@dataclass
class TranslationRunConfig(_Config):
    kind: str = _opt(RUN_KIND, "what this run trains", choices=(RUN_KIND,))
    preset: str = _opt("", "the preset the run started from")
    data: TranslationDataConfig = field(default_factory=TranslationDataConfig)
    model: TranslationModelConfig = field(default_factory=TranslationModelConfig)
    train: TranslationTrainConfig = field(default_factory=TranslationTrainConfig)

    def validate(self) -> None:
        super().validate()
        if self.model.arch == "pix2pix" and self.data.source == "sneakers2boots":
            raise ConfigError("sneakers2boots is unpaired: train it with --preset cyclegan")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TranslationRunConfig":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from None
        return cls.from_dict(values)


TRANSLATION_PRESETS: dict[str, dict] = {
    # Isola et al.: U-Net, 70x70 PatchGAN on (input, output), cross-entropy + 100 L1, Adam 2e-4 (0.5, 0.999).
    "pix2pix": {"data": {"source": "edges2fashion"},
                "model": {"arch": "pix2pix", "norm": "batch", "dropout": 0.5},
                "train": {"loss": "nonsat", "l1_weight": 100.0, "identity_weight": 0.0, "pool_size": 0}},
    # Zhu et al.: ResNet generators, instance norm, LSGAN, cycle 10, identity 0.5, a pool of 50.
    "cyclegan": {"data": {"source": "sneakers2boots"},
                 "model": {"arch": "cyclegan", "norm": "instance", "dropout": 0.0},
                 "train": {"loss": "lsgan", "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50,
                           "batch": 1}},
}


def preset_config(name: str, **sections) -> TranslationRunConfig:
    """A preset, with per-section overrides ({"train": {"kimg": 1}}), as a validated config."""
    if name not in TRANSLATION_PRESETS:
        raise ConfigError(f"unknown translation preset '{name}' (known: {', '.join(TRANSLATION_PRESETS)})")
    d = merge(TranslationRunConfig().to_dict(), TRANSLATION_PRESETS[name])
    d["preset"] = name
    for section, values in sections.items():
        d = merge(d, {section: values})
    return TranslationRunConfig.from_dict(d)


def is_translation_config(values) -> bool:
    """A config dict (config.json) -> whether it describes an image-to-image run."""
    return isinstance(values, dict) and values.get("kind") == RUN_KIND
