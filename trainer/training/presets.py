"""Named starting points for each system in the seeds, latent GANs and image-to-image models
alike. A preset is a partial RunConfig dict naming its task; command-line options override it
field by field."""
from __future__ import annotations

from trainer.config import ConfigError, RunConfig, merge

_DCGAN = {"arch": "dcgan", "z_dim": 100, "width": 64, "max_width": 512}
_STYLEGAN2_TRAIN = {"loss": "nonsat", "optimizer": "adam", "g_lr": 0.0025, "d_lr": 0.0025, "beta1": 0.0,
                    "beta2": 0.99, "batch": 32, "r1_gamma": 0.1, "r1_every": 16, "pl_weight": 2.0,
                    "pl_every": 4, "style_mixing": 0.9, "ema_kimg": 10.0, "ema_rampup": 0.05}
# The exact StyleGAN2 at CPU widths: NVlabs' channel_base 2048 gives 64 feature maps at 32 px,
# doubling per halving up to 256 (the widths the compact preset had at 32 px).
_STYLEGAN2_MODEL = {"arch": "stylegan2", "z_dim": 128, "w_dim": 128, "channel_base": 2048, "channel_max": 256,
                    "mapping_layers": 8, "mbstd_group": 4}
# NVlabs' stylegan3 train.py: mapping depth 2, G lr 0.0025, D lr 0.002, no path length or style
# mixing, G's EMA half-life batch x 10 / 32 kimg; R1 gamma and the -R blur follow the resolution
# and batch (_derived). Widths for this CPU: channel_base 512 and channel_max 32 give 32 maps in
# the first layers falling to 16 at 32 px (NVlabs: 32768 and 512); a training step at 32 px,
# batch 32, one thread takes about 8 s at these widths and 40 s at twice them.
_STYLEGAN3_MODEL = {"z_dim": 128, "w_dim": 128, "channel_base": 512, "channel_max": 32, "mapping_layers": 2,
                    "mbstd_group": 4}
_STYLEGAN3_TRAIN = {"loss": "nonsat", "optimizer": "adam", "g_lr": 0.0025, "d_lr": 0.002, "beta1": 0.0,
                    "beta2": 0.99, "batch": 32, "r1_every": 16, "pl_weight": 0.0, "style_mixing": 0.0,
                    "ema_kimg": 10.0, "ema_rampup": 0.05}
# NVlabs' stylegan2-ada-pytorch train.py --cfg table (ref_gpus and kimg aside): feature maps
# (fmaps x 32768 = channel_base, cap 512), mapping depth, mbstd group, batch, lr, R1 gamma, EMA, ramp-up.
NVLABS_CFG_TABLE = {
    "stylegan2": dict(fmaps=1, map=8, mbstd=4, mb=32, lrate=0.002, gamma=10, ema=10, ramp=None),
    "paper256": dict(fmaps=0.5, map=8, mbstd=8, mb=64, lrate=0.0025, gamma=1, ema=20, ramp=None),
    "paper512": dict(fmaps=1, map=8, mbstd=8, mb=64, lrate=0.0025, gamma=0.5, ema=20, ramp=None),
    "paper1024": dict(fmaps=2, map=8, mbstd=4, mb=32, lrate=0.002, gamma=2, ema=10, ramp=None),
}
# ProGAN (Karras et al. 2018) as the paper trains it: WGAN-GP with one critic step, lambda 10, the
# drift term 0.001, Adam 1e-3 betas (0, 0.99), mbstd group 4, an EMA of G. For this CPU at 32 px:
# widths channel_base 2048 / channel_max 256 (64 maps at 32 px, as the stylegan2 preset), and
# 3 kimg stable + 3 kimg fade per level instead of the paper's 600k + 600k images, so a run
# shows 4x4 to 32x32 and is fully grown at 18 kimg (3 levels x 6 kimg), stable from then on: a
# 40-minute run on a shared thread (6-30 img/s by level) then spends about half its time at 32 px.
# Labels (--conditional) go to an auxiliary classifier in D, as the paper's CIFAR-10 run.
_PROGAN = {"model": {"arch": "progan", "z_dim": 128, "channel_base": 2048, "channel_max": 256, "mbstd_group": 4,
                     "cond_d": "acgan"},
           "train": {"loss": "wgan-gp", "gp_weight": 10.0, "drift_weight": 0.001, "n_critic": 1, "g_lr": 1e-3,
                     "d_lr": 1e-3, "beta1": 0.0, "beta2": 0.99, "batch": 32, "ema_kimg": 10.0, "ema_rampup": 0.05,
                     "grow_kimg": 3.0, "fade_kimg": 3.0, "sample_kimg": 2.0, "snapshot_kimg": 5.0}}
# StyleGAN (Karras et al. 2019) as the paper trains FFHQ: non-saturating loss with R1 on the reals,
# Adam 1e-3 betas (0, 0.99) (its rate below 128 px), style mixing 0.9, G's EMA half-life 10 kimg,
# 8 mapping layers, ProGAN's D (mbstd group 4), progressive growing. For this CPU at 32 px: the
# stylegan2 preset's widths (channel_base 2048 / max 256, z = w = 128) and batch 32, so the two
# compare architecture for architecture; R1 gamma 10, the paper's (measured at 36 kimg: with the
# stylegan2 preset's 0.1, or 1, ProGAN's D wins and G narrows onto tops, class KL 1.9-3.7 against
# 0.32 at 10; docs/stylegan1.md), lazy every 16 D steps as the stylegan2 preset; growing from
# 8x8 as NVlabs' train.py (lod_initial_resolution 8) with the progan preset's 3 + 3 kimg per level
# (the paper: 600k + 600k images), fully grown at 12 kimg (measured: centred garments at 20 kimg
# where growing from 4x4 drew framed boxes; docs/stylegan1.md). Display truncation is the studio's
# (psi 0.7; the paper's cutoff 8 is every layer at 32 px).
_STYLEGAN1 = {"model": {"arch": "stylegan1", "z_dim": 128, "w_dim": 128, "channel_base": 2048, "channel_max": 256,
                        "mapping_layers": 8, "mbstd_group": 4},
              "train": {"loss": "nonsat", "optimizer": "adam", "g_lr": 1e-3, "d_lr": 1e-3, "beta1": 0.0,
                        "beta2": 0.99, "batch": 32, "r1_gamma": 10.0, "r1_every": 16, "style_mixing": 0.9,
                        "ema_kimg": 10.0, "ema_rampup": 0.05, "grow_kimg": 3.0, "fade_kimg": 3.0, "grow_start": 8,
                        "sample_kimg": 2.0, "snapshot_kimg": 5.0}}
_TOY_MODEL = {"arch": "mlp", "z_dim": 16, "hidden": 256, "depth": 3}
# Measured on grid25 (benchmarks/collapse.py): batch 256, lr 1e-3 and an EMA of G sharpen the
# modes (high-quality share 0.02 at batch 64, lr 1e-4, no EMA, 100 kimg).
_TOY_TRAIN = {"batch": 256, "g_lr": 1e-3, "d_lr": 1e-3, "beta1": 0.5, "beta2": 0.999, "ema_kimg": 10.0,
              "sample_kimg": 200.0, "snapshot_kimg": 1000.0, "grid_size": 32}

# BigGAN (Brock et al. 2019) on class labels: hinge loss, Adam betas (0, 0.999), 2 D steps per G step,
# orthogonal regularisation 1e-4, an EMA of G. The paper's rates are G 5e-5, D 2e-4; this keeps their
# 1:4 ratio at SAGAN's 1e-4 / 4e-4, since a CPU run has a few thousand G steps, not the paper's 100k+.
# Widths for this CPU: 32 maps at 32 px doubling to 128 at 8x8 and below (BigGAN's CIFAR model: 256
# throughout), z of 120 split in 4 chunks of 30; one G step (two D steps) at batch 32 takes ~1.5 s on a thread.
_BIGGAN = {"data": {"conditional": True},
           "model": {"arch": "biggan", "z_dim": 120, "width": 32, "max_width": 128},
           "train": {"loss": "hinge", "optimizer": "adam", "g_lr": 1e-4, "d_lr": 4e-4, "beta1": 0.0, "beta2": 0.999,
                     "n_critic": 2, "ortho_reg": 1e-4, "batch": 32, "ema_kimg": 2.0, "ema_rampup": 0.05,
                     "sample_kimg": 5.0, "snapshot_kimg": 5.0}}

_GAN_PRESETS: dict[str, dict] = {
    # Radford et al.: Adam 2e-4, beta1 0.5, batch norm, non-saturating G loss.
    "dcgan": {"model": _DCGAN, "train": {"loss": "nonsat", "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.5,
                                         "beta2": 0.999, "batch": 64, "ema_kimg": 1.0}},
    # Arjovsky et al.: RMSprop 5e-5, 5 critic steps, weights clipped to 0.01.
    "wgan": {"model": _DCGAN, "train": {"loss": "wgan", "optimizer": "rmsprop", "g_lr": 5e-5, "d_lr": 5e-5,
                                        "n_critic": 5, "clip": 0.01, "batch": 64, "ema_kimg": 1.0}},
    # Gulrajani et al.: Adam 1e-4 betas (0, 0.9), 5 critic steps, lambda 10, no batch norm in the critic.
    "wgan-gp": {"model": {**_DCGAN, "d_norm": "layer"},
                "train": {"loss": "wgan-gp", "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.0, "beta2": 0.9,
                          "n_critic": 5, "gp_weight": 10.0, "batch": 64, "ema_kimg": 1.0}},
    # Mao et al.: least squares, Adam 2e-4 beta1 0.5.
    "lsgan": {"model": _DCGAN, "train": {"loss": "lsgan", "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.5,
                                         "beta2": 0.999, "batch": 64, "ema_kimg": 1.0}},
    # Miyato et al.: spectral norm on D, hinge loss; two time-scale learning rates.
    "sngan-hinge": {"model": {**_DCGAN, "spectral_norm": True, "d_norm": "none"},
                    "train": {"loss": "hinge", "g_lr": 1e-4, "d_lr": 4e-4, "beta1": 0.0, "beta2": 0.9,
                              "batch": 64, "ema_kimg": 1.0}},
    # Mirza & Osindero: labels into G and D (here appended to D's input).
    "cgan": {"data": {"conditional": True}, "model": {**_DCGAN, "cond_d": "concat"},
             "train": {"loss": "nonsat", "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.5, "beta2": 0.999,
                       "batch": 64, "ema_kimg": 1.0}},
    # Odena et al.: D also classifies the image.
    "acgan": {"data": {"conditional": True}, "model": {**_DCGAN, "cond_d": "acgan"},
              "train": {"loss": "nonsat", "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.5, "beta2": 0.999,
                        "batch": 64, "ema_kimg": 1.0}},
    # Karras et al. (2020), settings of the small-resolution configs: R1, path length, mixing, EMA.
    "stylegan2": {"model": _STYLEGAN2_MODEL, "train": _STYLEGAN2_TRAIN},
    "stylegan2-cond": {"data": {"conditional": True}, "model": {**_STYLEGAN2_MODEL, "cond_d": "projection"},
                       "train": _STYLEGAN2_TRAIN},
    # Karras et al. (2021), alias-free: -T translation equivariant, -R also rotation (radial filters,
    # 1x1 convolutions, doubled widths, D's inputs blurred at first).
    "stylegan3-t": {"model": {**_STYLEGAN3_MODEL, "arch": "stylegan3-t"}, "train": _STYLEGAN3_TRAIN},
    "stylegan3-r": {"model": {**_STYLEGAN3_MODEL, "arch": "stylegan3-r"},
                    "train": {**_STYLEGAN3_TRAIN, "blur_sigma": 10.0}},
    "progan": _PROGAN,
    "stylegan1": _STYLEGAN1,
    "biggan": _BIGGAN,
    # 2-D mixtures (ring8, grid25) for studying mode collapse.
    "toy-gan": {"data": {"source": "ring8"}, "model": _TOY_MODEL, "train": {**_TOY_TRAIN, "loss": "nonsat"}},
    "toy-minimax": {"data": {"source": "ring8"}, "model": _TOY_MODEL, "train": {**_TOY_TRAIN, "loss": "minimax"}},
    "toy-lsgan": {"data": {"source": "ring8"}, "model": _TOY_MODEL, "train": {**_TOY_TRAIN, "loss": "lsgan"}},
    "toy-wgan-gp": {"data": {"source": "ring8"}, "model": _TOY_MODEL,
                    "train": {**_TOY_TRAIN, "loss": "wgan-gp", "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.0,
                              "beta2": 0.9, "n_critic": 5}},
    "toy-hinge-sn": {"data": {"source": "ring8"}, "model": {**_TOY_MODEL, "spectral_norm": True},
                     "train": {**_TOY_TRAIN, "loss": "hinge", "beta1": 0.0, "beta2": 0.9}},
}

_TRANSLATION_PRESETS: dict[str, dict] = {
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

PRESETS: dict[str, dict] = {**{name: {"task": "gan", **p} for name, p in _GAN_PRESETS.items()},
                            **{name: {"task": "translation", **p} for name, p in _TRANSLATION_PRESETS.items()}}


def preset_task(name: str) -> str:
    """The task a preset trains: "gan" or "translation"."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]["task"]


def nvlabs_cfg(name: str) -> dict:
    """NVlabs' --cfg `name` as {section: {field: value}}."""
    if name not in NVLABS_CFG_TABLE:
        raise ConfigError(f"--cfg {name}: choose one of {', '.join(NVLABS_CFG_TABLE)}")
    spec = NVLABS_CFG_TABLE[name]
    return {"model": {"channel_base": int(spec["fmaps"] * 32768), "channel_max": 512, "mapping_layers": spec["map"],
                      "mbstd_group": spec["mbstd"]},
            "train": {"batch": spec["mb"], "g_lr": spec["lrate"], "d_lr": spec["lrate"], "r1_gamma": spec["gamma"],
                      "r1_every": 16, "ema_kimg": spec["ema"], "ema_rampup": spec["ramp"] or 0.0, "pl_weight": 2.0,
                      "pl_every": 4, "style_mixing": 0.9, "beta1": 0.0, "beta2": 0.99}}


def _derived(values: dict, given: dict) -> dict:
    """StyleGAN3's settings that follow the resolution and batch, where not given: R1 gamma as in
    NVlabs' examples (2 at 256 px, 8 at 512, 32 at 1024: 2 x (resolution / 256)^2), the -R blur's
    fade of batch x 200 / 32 kimg."""
    model, train = values["model"], values["train"]
    if not model.get("arch", "").startswith("stylegan3"):
        return values
    train = dict(train)
    if "r1_gamma" not in given.get("train", {}):
        train["r1_gamma"] = 2.0 * (values["data"]["resolution"] / 256) ** 2
    if train.get("blur_sigma") and "blur_fade_kimg" not in given.get("train", {}):
        train["blur_fade_kimg"] = train["batch"] * 200 / 32
    return {**values, "train": train}


def preset_config(name: str, **sections) -> RunConfig:
    """A preset, with per-section overrides ({"train": {"kimg": 1}}), as a validated config. A
    model `cfg` (NVlabs' config name) applies its table between the preset and the overrides."""
    values = merge(RunConfig(task=preset_task(name)).to_dict(), PRESETS[name])
    values["preset"] = name
    cfg_name = sections.get("model", {}).get("cfg") or values["model"].get("cfg")
    if cfg_name:
        arch = sections.get("model", {}).get("arch", values["model"].get("arch"))
        if arch != "stylegan2":
            raise ConfigError(f"--cfg {cfg_name} is NVlabs' StyleGAN2 configuration; this run trains {arch}")
        values = merge(values, nvlabs_cfg(cfg_name))
    for section, overrides in sections.items():
        values = merge(values, {section: overrides})
    return RunConfig.from_dict(_derived(values, sections))
