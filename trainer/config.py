"""Typed configuration for a training run, saved to and read from plain JSON.

Every field carries a help text in its metadata: the CLI builds its options from these, so
`ganstudio-train --help` documents every field without a second list to keep in sync.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, get_type_hints


def _opt(default, help: str, choices=None, low=None, high=None, above=None):
    """A config field: its help text, and what values it takes (choices, or a range: low and high
    inclusive, above exclusive). Numbers must also be finite."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    for key, bound in (("low", low), ("high", high), ("above", above)):
        if bound is not None:
            meta[key] = bound
    return field(default=default, metadata=meta)


# Ceilings on sizes: far above any model trained here, low enough that a typo (--resolution 100000)
# is a message, not an attempt to allocate. The size of the whole model is checked before training
# (trainer.checkpoint.check_trainable_size).
MAX_RESOLUTION = 8192
MAX_LATENT = 16384          # z, w and point dimensions
MAX_WIDTH = 65536           # feature maps, hidden units
MAX_LAYERS = 256
MAX_CLASSES = 100_000
MAX_BATCH = 65536


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message meant for a person."""


class _Config:
    """Shared to_dict/from_dict for the config dataclasses: unknown keys are refused."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        if not isinstance(values, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(values).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)}")
        hints = get_type_hints(cls)
        kwargs = {}
        for name, value in values.items():
            sub = hints[name]
            if isinstance(sub, type) and issubclass(sub, _Config):
                value = sub.from_dict(value)
            else:
                value = _coerce(cls.__name__, name, sub, value)
            kwargs[name] = value
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise ConfigError(
                    f"{type(self).__name__}.{f.name} = {value!r}; choose one of {', '.join(map(str, choices))}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _check_range(f, value)
            if isinstance(value, _Config):
                value.validate()


def _check_range(f, value) -> None:
    """Raise ConfigError, phrased as the command-line option, for a number out of its field's range."""
    meta, flag = f.metadata, "--" + f.name.replace("_", "-")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag} {value}: expected a finite number")
    if "low" in meta and value < meta["low"]:
        raise ConfigError(f"{flag} {value}: must be at least {meta['low']}")
    if "high" in meta and value > meta["high"]:
        raise ConfigError(f"{flag} {value}: must be at most {meta['high']}")
    if "above" in meta and value <= meta["above"]:
        raise ConfigError(f"{flag} {value}: must be greater than {meta['above']}")


def _coerce(owner: str, name: str, hint, value):
    """Check a JSON value against a field's type; ints are accepted where floats are."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{owner}.{name}: expected {hint.__name__}, got {value!r}")
        return value
    if getattr(hint, "__origin__", None) is list or hint is list:
        if not isinstance(value, list):
            raise ConfigError(f"{owner}.{name}: expected a list, got {value!r}")
        return list(value)
    return value


@dataclass
class DataConfig(_Config):
    source: str = _opt("digits", "dataset: fashion-mnist, digits, ring8, grid25, an image folder or a .zip of images")
    resolution: int = _opt(32, "training resolution in pixels (images are resized and centre-cropped to it; 2-D point data ignore it)", low=0,
                           high=MAX_RESOLUTION)
    channels: int = _opt(0, "image channels: 1 grey, 3 RGB, 0 decides from the data", choices=(0, 1, 3))
    split: str = _opt("train", "which part of a built-in dataset to use", choices=("train", "test", "all"))
    conditional: bool = _opt(False, "train on class labels (sub-folder names for folders)")
    xflip: bool = _opt(False, "add mirrored copies of the real images (x-flip augmentation)")
    max_images: int = _opt(0, "use at most this many images (0: all)", low=0)


# Latent-GAN architectures (trainer.models registry): the StyleGAN family exact to NVlabs, and
# `stylegan2-compact`, the older look-alike StyleGAN2 kept so its checkpoints and runs keep opening.
# Also the rest of the seeds' family: ProGAN (grows from 4x4), StyleGAN v1 and BigGAN.
GAN_ARCHS = ("mlp", "dcgan", "stylegan2", "stylegan3-t", "stylegan3-r", "stylegan2-compact", "progan", "stylegan1",
             "biggan")
EXACT_STYLEGAN_ARCHS = ("stylegan2", "stylegan3-t", "stylegan3-r")
# NVlabs' stylegan2-ada-pytorch configuration table (train.py --cfg); trainer.training.presets applies it
NVLABS_CFGS = ("", "stylegan2", "paper256", "paper512", "paper1024")


@dataclass
class ModelConfig(_Config):
    arch: str = _opt("stylegan2", "architecture, by short name from the registry", choices=GAN_ARCHS)
    cfg: str = _opt("", "NVlabs' configuration for stylegan2 (stylegan2, paper256, paper512, paper1024): its "
                        "channel_base, map, mbstd group, batch, learning rate, R1 gamma and EMA over the preset; "
                        "options given beside it still win", choices=NVLABS_CFGS)
    z_dim: int = _opt(128, "latent z dimensions", low=1, high=MAX_LATENT)
    w_dim: int = _opt(128, "intermediate latent w dimensions (stylegan2, stylegan3)", low=1)
    c_dim: int = _opt(0, "number of classes, 0 for unconditional (set from the data when --conditional)", low=0,
                      high=MAX_CLASSES)
    img_resolution: int = _opt(32, "output resolution (set from the data)", low=0, high=MAX_RESOLUTION)
    img_channels: int = _opt(1, "output channels, or point dimensions for mlp (set from the data)", low=1, high=MAX_LATENT)
    channel_base: int = _opt(32768, "NVlabs' channel_base (stylegan2, stylegan3): stylegan2 has "
                                    "min(channel_base / r, channel_max) feature maps at resolution r", low=1)
    channel_max: int = _opt(512, "NVlabs' channel_max: cap on feature maps (stylegan2, stylegan3)", low=1)
    width: int = _opt(64, "feature maps at the output resolution (dcgan, stylegan2-compact); doubles per halving", low=1)
    max_width: int = _opt(256, "cap on feature maps at low resolutions (dcgan, stylegan2-compact)", low=1)
    hidden: int = _opt(256, "hidden units per layer (mlp)", low=1, high=MAX_WIDTH)
    depth: int = _opt(3, "hidden layers (mlp)", low=1, high=MAX_LAYERS)
    mapping_layers: int = _opt(8, "layers in the mapping network z -> w (NVlabs' map; stylegan2, stylegan3)", low=1)
    magnitude_ema_beta: float = _opt(0.0, "stylegan3: decay per step of each layer's input magnitude EMA (0: "
                                          "NVlabs' 0.5 ** (batch / 20000), set from --batch)", low=0, high=1)
    cond_g: str = _opt("embed", "how labels enter G: embed (learned embedding; into mapping for stylegan2) or concat (one-hot)",
                       choices=("embed", "concat"))
    cond_d: str = _opt("projection", "how labels enter D: projection head, auxiliary classifier (acgan), or input "
                                     "concat (stylegan2/3: projection, NVlabs' mapped-label D)",
                       choices=("projection", "acgan", "concat"))
    d_norm: str = _opt("batch", "normalisation inside D (dcgan): batch, layer or none", choices=("batch", "layer", "none"))
    spectral_norm: bool = _opt(False, "spectral normalisation on every D layer")
    minibatch_discrimination: bool = _opt(False, "Salimans' minibatch discrimination features in D (every family)")
    mbstd: bool = _opt(False, "minibatch standard deviation in D for dcgan and mlp (the StyleGAN Ds always have it)")
    mbstd_group: int = _opt(4, "minibatch standard deviation group size in D (0 turns it off)", low=0)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """A config written before issue 23 named the compact StyleGAN2 `stylegan2` and had no
        channel_base: it still describes the compact model (old runs and checkpoints keep opening)."""
        if isinstance(values, dict) and values.get("arch") == "stylegan2" and "channel_base" not in values:
            values = {**values, "arch": "stylegan2-compact"}
        return super().from_dict(values)


@dataclass
class LoopConfig(_Config):
    """The train settings the run loop itself reads, the same for every task. Each task's train
    section adds its own, and `kimg`, `batch`, `sample_kimg`, `snapshot_kimg`, `metrics` and
    `grid_size` with defaults of its own."""
    seed: int = _opt(0, "random seed", low=0, high=2**32 - 1)
    device: str = _opt("auto", "cpu, cuda, mps or auto")
    threads: int = _opt(0, "CPU threads for torch (0: automatic, 1 on 2 cores, else half the free cores)", low=0,
                        high=4096)
    log_every: int = _opt(20, "write scalars every this many G steps", low=1)
    metrics_kimg: float = _opt(0.0, "compute --metrics every this many kimg (0: only at the end)", low=0)
    explode_threshold: float = _opt(1e6, "stop the run if a loss grows past this magnitude", above=0)
    precision: str = _opt("fp32", "mixed precision: fp32 (off), bf16 or fp16 autocast (fp16 with a gradient scaler), "
                                  "auto (bf16 where the device has it, else fp16 on GPUs, fp32 on CPUs)",
                          choices=("fp32", "auto", "bf16", "fp16"))
    channels_last: bool = _opt(False, "keep images and convolution weights in channels-last memory order")
    compile: bool = _opt(False, "torch.compile the forward passes of G and D's main steps "
                                "(regularisation steps stay eager: they differentiate twice)")


@dataclass
class TrainConfig(LoopConfig):
    loss: str = _opt("nonsat", "adversarial loss",
                     choices=("minimax", "nonsat", "lsgan", "hinge", "wgan", "wgan-gp"))
    kimg: float = _opt(100.0, "train until this many thousand real images have been shown to D", above=0)
    batch: int = _opt(64, "images per batch", low=1, high=MAX_BATCH)
    optimizer: str = _opt("adam", "optimiser for G and D", choices=("adam", "rmsprop"))
    g_lr: float = _opt(2e-4, "G learning rate", above=0)
    d_lr: float = _opt(2e-4, "D learning rate (differs from g_lr for TTUR)", above=0)
    beta1: float = _opt(0.5, "Adam beta1", low=0, high=1)
    beta2: float = _opt(0.999, "Adam beta2", low=0, high=1)
    n_critic: int = _opt(1, "D steps per G step", low=1)
    clip: float = _opt(0.01, "weight clipping bound for the wgan loss", above=0)
    gp_weight: float = _opt(10.0, "gradient penalty weight for wgan-gp", low=0)
    r1_gamma: float = _opt(0.0, "R1 penalty weight on real images (0 off)", low=0)
    r1_every: int = _opt(16, "apply R1 every this many D steps (lazy regularisation)", low=1)
    pl_weight: float = _opt(0.0, "path-length regularisation weight (stylegan2; 0 off)", low=0)
    pl_every: int = _opt(4, "apply path-length regularisation every this many G steps", low=1)
    style_mixing: float = _opt(0.0, "probability of style-mixing regularisation (style-based models)", low=0, high=1)
    blur_sigma: float = _opt(0.0, "blur D's input images by this sigma in pixels at the start (stylegan3-r: 10)",
                             low=0)
    blur_fade_kimg: float = _opt(0.0, "kimg over which that blur fades linearly to none (0: no blur; "
                                      "stylegan3-r: batch x 200 / 32)", low=0)
    drift_weight: float = _opt(0.0, "ProGAN's drift penalty epsilon: epsilon x D(real)^2 keeps a critic's outputs "
                                    "near zero (the paper: 0.001 with wgan-gp; 0 off)", low=0)
    grow_kimg: float = _opt(0.0, "progressive growing (progan, stylegan1): kimg each resolution trains stable, "
                                 "from 4x4 up (NVlabs' lod_training_kimg; 0 with --fade-kimg 0: no growing)", low=0)
    fade_kimg: float = _opt(0.0, "progressive growing: kimg over which each new resolution fades in "
                                 "(NVlabs' lod_transition_kimg)", low=0)
    grow_start: int = _opt(4, "progressive growing: the resolution it starts from, a power of two (NVlabs' "
                              "lod_initial_resolution; the stylegan1 preset: 8)", low=4, high=MAX_RESOLUTION)
    real_label: float = _opt(1.0, "target for real images in D's loss; 0.9 is one-sided label smoothing", low=0, high=1)
    acgan_weight: float = _opt(1.0, "weight of the auxiliary classification loss (cond_d=acgan)", low=0)
    pack: int = _opt(1, "PacGAN: samples D judges together (1: off); the batch must divide by it", low=1, high=16)
    feature_matching: float = _opt(0.0, "weight of feature matching in G's loss (0: off)", low=0)
    historical_averaging: float = _opt(0.0, "weight of the historical-averaging penalty on G and D (0: off)", low=0)
    mode_seeking: float = _opt(0.0, "weight of the mode-seeking (MSGAN) term in G's loss (0: off)", low=0)
    unrolled_steps: int = _opt(0, "unrolled GAN: look-ahead D steps G's loss sees (0: off)", low=0, high=20)
    unrolled_lr: float = _opt(1e-3, "step size of the unrolled look-ahead", above=0)
    ortho_reg: float = _opt(0.0, "weight of BigGAN's orthogonal regularisation of G's weights (off-diagonal "
                                 "Gram terms only; the biggan preset: 1e-4; 0 off)", low=0)
    ema_kimg: float = _opt(10.0, "half-life of the EMA of G in thousands of images (0: no EMA)", low=0)
    ema_rampup: float = _opt(0.05, "EMA half-life ramp-up as a fraction of images seen (0: off)", low=0)
    augment: str = _opt("", "augmentation of every image D sees: ada (adaptive discriminator augmentation, "
                            "Karras et al. 2020) or a DiffAugment policy, a comma list of color, translation, cutout")
    augment_p: float = _opt(0.0, "probability of each ADA augmentation; with --ada-target 0 it stays fixed, "
                                 "else it is where p starts", low=0, high=1)
    ada_target: float = _opt(0.6, "ADA: target for r_t, the mean sign of D's outputs on real images; p rises "
                                  "above it and falls below it (0: keep p fixed)", low=0, high=1)
    ada_kimg: float = _opt(0.0, "ADA: kimg over which p can move from 0 to 1 (0: NVlabs' 500, or 100 when "
                                "starting from --init)", low=0)
    ada_pipe: str = _opt("bgc", "ADA's augmentations: b (x-flip, 90-degree rotations, integer translation), "
                                "g (scaling, rotation, fractional translation), c (brightness, contrast, luma "
                                "flip, hue, saturation), as NVlabs' pipelines", choices=("b", "bg", "bgc", "g", "c"))
    init: str = _opt("", "start from a model's weights: a .safetensors checkpoint, an NVlabs .pkl or a run "
                         "directory; the architecture comes from it unless options say otherwise, and tensors "
                         "are copied by name where the shapes match")
    freeze_d: int = _opt(0, "keep D's first N layers from its input side at their starting weights (freeze-D): "
                            "resolution blocks of the StyleGAN Ds (NVlabs' --freezed 3N+1), conv/linear layers "
                            "of dcgan and mlp", low=0, high=MAX_LAYERS)
    sample_kimg: float = _opt(10.0, "write a sample grid every this many kimg", low=0)
    snapshot_kimg: float = _opt(20.0, "write a checkpoint and resume state every this many kimg", low=0)
    metrics: str = _opt("", "metrics to compute during training, comma list (see `ganstudio-train metrics --help`)")
    grid_size: int = _opt(8, "sample grid is grid_size x grid_size", low=1, high=32)
    batch_gpu: int = _opt(0, "images per process per forward pass (0: batch / processes); the batch is done in "
                             "batch / (batch_gpu x processes) rounds, so batch statistics (batch norm, minibatch std) "
                             "see the same groups however many processes share the work", low=0)


# ---- image-to-image (Pix2Pix, CycleGAN): fields after the papers (Isola et al. 2017; Zhu et al. 2017)
TRANSLATION_ARCHS = ("pix2pix", "cyclegan")
DIRECTIONS = ("AtoB", "BtoA")


@dataclass
class TranslationDataConfig(_Config):
    source: str = _opt("edges2fashion", "edges2fashion, sneakers2boots, a folder or a .zip (see the README for "
                                        "the paired and unpaired layouts)")
    resolution: int = _opt(32, "training resolution in pixels (images are resized and centre-cropped)", low=8,
                           high=MAX_RESOLUTION)
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
    img_resolution: int = _opt(32, "image side in pixels (set from the data)", low=8, high=MAX_RESOLUTION)
    g_width: int = _opt(64, "generator feature maps at full resolution (the papers' ngf); doubles per halving "
                            "up to 8x", low=1, high=MAX_WIDTH)
    d_width: int = _opt(64, "discriminator feature maps in its first layer (ndf)", low=1, high=MAX_WIDTH)
    norm: str = _opt("batch", "normalisation in G and D", choices=("batch", "instance"))
    dropout: float = _opt(0.5, "dropout in the U-Net's inner decoder layers, the paper's noise (pix2pix)",
                          low=0, high=0.9)
    patch: int = _opt(0, "PatchGAN receptive field in pixels: 70, 34 or 16; 0 picks by resolution "
                         "(70 from 128 px, 34 at 64 px, 16 below)", choices=(0, 16, 34, 70))
    resnet_blocks: int = _opt(0, "residual blocks per CycleGAN generator (0: 9 from 256 px, else 6)", low=0,
                              high=MAX_LAYERS)

    @property
    def d_layers(self) -> int:
        """Strided layers of the PatchGAN for the chosen receptive field."""
        patch = self.patch or (70 if self.img_resolution >= 128 else 34 if self.img_resolution >= 64 else 16)
        return {16: 1, 34: 2, 70: 3}[patch]

    @property
    def blocks(self) -> int:
        return self.resnet_blocks or (9 if self.img_resolution >= 256 else 6)


@dataclass
class TranslationTrainConfig(LoopConfig):
    loss: str = _opt("nonsat", "adversarial loss: nonsat (the pix2pix paper's cross-entropy) or lsgan "
                               "(CycleGAN's least squares)", choices=("nonsat", "lsgan"))
    kimg: float = _opt(20.0, "train until this many thousand input images have been translated", above=0)
    batch: int = _opt(16, "images per batch (the papers use 1; larger is faster on a CPU)", low=1, high=MAX_BATCH)
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
    sample_kimg: float = _opt(2.0, "write a sample strip every this many kimg", low=0)
    snapshot_kimg: float = _opt(5.0, "write a checkpoint and resume state every this many kimg", low=0)
    metrics: str = _opt("l1,psnr,ssim,cycle", "translation metrics on held-out images: comma list of l1, psnr, "
                                              "ssim, fid, cycle")
    metrics_images: int = _opt(500, "held-out images the metrics use", low=2)
    grid_size: int = _opt(8, "sample strips show this many inputs", low=1, high=64)


# What each task's run is made of: its data, model and train sections
TASK_SECTIONS = {"gan": (DataConfig, ModelConfig, TrainConfig),
                 "translation": (TranslationDataConfig, TranslationModelConfig, TranslationTrainConfig)}
SECTION_NAMES = ("data", "model", "train")


@dataclass
class RunConfig(_Config):
    task: str = _opt("gan", "what the run trains: gan (a latent GAN) or translation (Pix2Pix, CycleGAN)",
                     choices=tuple(TASK_SECTIONS))
    preset: str = _opt("", "the preset the run started from")
    # The sections' classes follow the task (TASK_SECTIONS); None: the task's defaults
    data: DataConfig | TranslationDataConfig = None
    model: ModelConfig | TranslationModelConfig = None
    train: TrainConfig | TranslationTrainConfig = None

    def __post_init__(self):
        for name, section in zip(SECTION_NAMES, TASK_SECTIONS.get(self.task, ())):
            if getattr(self, name) is None:
                setattr(self, name, section())

    def validate(self) -> None:
        super().validate()
        for name, section in zip(SECTION_NAMES, TASK_SECTIONS[self.task]):
            if type(getattr(self, name)) is not section:
                raise ConfigError(f"RunConfig.{name} is a {type(getattr(self, name)).__name__}; a {self.task} run "
                                  f"needs a {section.__name__}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Sections are read with the classes of the task; a file without `task` is a GAN run's,
        and one with the older `"kind": "translation"` an image-to-image run's."""
        if not isinstance(values, dict):
            raise ConfigError(f"RunConfig: expected a JSON object, got {type(values).__name__}")
        values = dict(values)
        if values.get("kind") == "translation" and values.get("task", "translation") == "translation":
            values["task"] = values.pop("kind")
        task = values.get("task", "gan")
        if not isinstance(task, str) or task not in TASK_SECTIONS:
            raise ConfigError(f"RunConfig.task = {task!r}; choose one of {', '.join(TASK_SECTIONS)}")
        for name, section in zip(SECTION_NAMES, TASK_SECTIONS[task]):
            if name in values:
                values[name] = section.from_dict(values[name])
        return super().from_dict(values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        from trainer.files import parse_json
        try:
            values = parse_json(text, "config")
        except ValueError as exc:   # not JSON, or nested past what a config needs
            raise ConfigError(str(exc)) from None
        return cls.from_dict(values)


def is_translation_config(values) -> bool:
    """A config dict (config.json) -> whether it describes an image-to-image run (either spelling)."""
    return isinstance(values, dict) and "translation" in (values.get("task"), values.get("kind"))


def config_changes(before: _Config, after: _Config) -> list[str]:
    """What differs between two configs of one type, as "section.field old -> new" lines (sorted)."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[prefix + key] = value
        return out
    old, new = flat(before.to_dict()), flat(after.to_dict())
    return [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def merge(base: dict, overrides: dict) -> dict:
    """Nested dict update that returns a new dict."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
