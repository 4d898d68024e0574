"""NVlabs' own StyleGAN code beside ours, for the speed benchmarks (generator_speed.py,
train_speed.py). NVlabs' code is not a package: point at a checkout of its stylegan3 repository,

  git clone https://github.com/NVlabs/stylegan3 /somewhere/stylegan3
  python benchmarks/generator_speed.py --nvlabs /somewhere/stylegan3     (or NVLABS_STYLEGAN3=...)

Without a GPU NVlabs' ops take their reference PyTorch path (upfirdn2d, bias_act and
filtered_lrelu 'ref'); that is what runs here. Its networks are built with the same widths as
ours and given our weights (the state-dict names are NVlabs' on both sides), and `max_diff`
checks that both compute the same function before anything is timed. The training phases are
NVlabs' StyleGAN2Loss (training/loss.py) driven the way its training_loop.py drives them:
Gmain and Dmain every step, Greg every G_reg_interval and Dreg every D_reg_interval steps with
the gain and the Adam settings scaled by the interval, then the G_ema update."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ENV = "NVLABS_STYLEGAN3"
CLONE = "git clone https://github.com/NVlabs/stylegan3"


def locate(path: str | None = None) -> tuple[Path | None, str]:
    """(the checkout, '') from --nvlabs or $NVLABS_STYLEGAN3, or (None, why the NVlabs rows are skipped)."""
    given = path or os.environ.get(ENV)
    if not given:
        return None, f"no NVlabs checkout given (--nvlabs DIR or {ENV}=DIR; get one with `{CLONE}`)"
    root = Path(given).expanduser()
    for needed in ("training/networks_stylegan2.py", "training/networks_stylegan3.py", "training/loss.py",
                   "torch_utils/ops/filtered_lrelu.py", "dnnlib/__init__.py"):
        if not (root / needed).is_file():
            return None, f"{root} is not a checkout of NVlabs' stylegan3 repository (no {needed}; `{CLONE}`)"
    return root, ""


def load(root: Path) -> SimpleNamespace:
    """Import NVlabs' modules from the checkout (its dnnlib, torch_utils and training packages)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import training.loss as loss
    import training.networks_stylegan2 as sg2
    import training.networks_stylegan3 as sg3
    from torch_utils import custom_ops
    custom_ops.verbosity = "none"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except OSError:
        commit = ""
    return SimpleNamespace(root=root, sg2=sg2, sg3=sg3, loss=loss, commit=commit or "not a git checkout")


def _clamp(value: float):
    return value or None        # ours: 0 = off; NVlabs: None


def stylegan2_generator(nv, G) -> torch.nn.Module:
    """NVlabs' StyleGAN2 Generator (stylegan3 repository) with the config and weights of our `stylegan2` G."""
    c = G.cfg
    mapping = dict(num_layers=c.mapping_layers, layer_features=c.layer_features, lr_multiplier=c.mapping_lr_multiplier,
                   w_avg_beta=c.w_avg_beta, **({"embed_features": c.embed_features} if c.c_dim else {}))
    theirs = nv.sg2.Generator(c.z_dim, c.c_dim, c.w_dim, c.img_resolution, c.img_channels, mapping_kwargs=mapping,
                              channel_base=c.channel_base, channel_max=c.channel_max, num_fp16_res=0,
                              conv_clamp=_clamp(c.conv_clamp), use_noise=c.use_noise,
                              resample_filter=list(c.resample_filter))
    return _with_weights(theirs, G)


def stylegan3_generator(nv, G) -> torch.nn.Module:
    """NVlabs' StyleGAN3 Generator with the config and weights of our `stylegan3-t` / `stylegan3-r` G."""
    c = G.cfg
    theirs = nv.sg3.Generator(
        c.z_dim, c.c_dim, c.w_dim, c.img_resolution, c.img_channels,
        mapping_kwargs=dict(num_layers=c.mapping_layers, lr_multiplier=c.mapping_lr_multiplier, w_avg_beta=c.w_avg_beta),
        channel_base=c.channel_base, channel_max=c.channel_max, num_layers=c.num_layers, num_critical=c.num_critical,
        first_cutoff=c.first_cutoff, first_stopband=c.first_stopband, last_stopband_rel=c.last_stopband_rel,
        margin_size=c.margin_size, output_scale=c.output_scale, num_fp16_res=0, conv_kernel=c.conv_kernel,
        filter_size=c.filter_size, lrelu_upsampling=c.lrelu_upsampling, use_radial_filters=c.radial_filters,
        conv_clamp=_clamp(c.conv_clamp), magnitude_ema_beta=c.magnitude_ema_beta)
    return _with_weights(theirs, G)


def generator(nv, G) -> torch.nn.Module:
    return stylegan3_generator(nv, G) if hasattr(G.synthesis, "input") else stylegan2_generator(nv, G)


def discriminator(nv, D) -> torch.nn.Module:
    """NVlabs' StyleGAN2 Discriminator (resnet) with the config and weights of our NVlabs-exact D."""
    c = D.cfg
    theirs = nv.sg2.Discriminator(
        c.c_dim, c.img_resolution, c.img_channels, channel_base=c.channel_base, channel_max=c.channel_max,
        num_fp16_res=0, conv_clamp=_clamp(c.conv_clamp), cmap_dim=c.cmap_dim or None,
        block_kwargs=dict(resample_filter=list(c.resample_filter)),
        mapping_kwargs=dict(num_layers=c.mapping_layers, lr_multiplier=c.mapping_lr_multiplier),
        epilogue_kwargs=dict(mbstd_group_size=c.mbstd_group_size or None, mbstd_num_channels=c.mbstd_num_channels))
    return _with_weights(theirs, D)


def _with_weights(theirs: torch.nn.Module, ours: torch.nn.Module) -> torch.nn.Module:
    theirs.load_state_dict(ours.state_dict(), strict=True)   # NVlabs' names on both sides
    return theirs.train(ours.training).requires_grad_(False)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def check_generators(ours, theirs, batch: int = 2, tolerance: float = 1e-4) -> float:
    """Both generators draw the same images from the same z (inference, constant noise), or ValueError."""
    z = torch.randn(batch, ours.z_dim, generator=torch.Generator().manual_seed(0))
    c = torch.zeros(batch, ours.c_dim)
    with torch.inference_mode():
        diff = max_diff(ours(z, c if ours.c_dim else None, noise_mode="const"), theirs(z, c, noise_mode="const"))
    if not diff <= tolerance:
        raise ValueError(f"our generator and NVlabs' differ by {diff:.3g} (> {tolerance}): not the same function")
    return diff


class NVlabsTraining:
    """NVlabs' training iteration (training_loop.py's phase loop) on NVlabs' networks and loss:
    `step()` runs Gmain, Greg (every g_reg_interval), Dmain, Dreg (every d_reg_interval) on one
    batch and updates G_ema. Weights start as our Trainer's; reals are a fixed batch."""

    def __init__(self, nv, task, real: torch.Tensor):
        m, t = task.cfg.model, task.cfg.train
        self.G = generator(nv, task.G).train()
        self.D = discriminator(nv, task.D).train()
        self.G_ema = copy.deepcopy(self.G).eval()
        self.batch, self.z_dim, self.c_dim = t.batch, m.z_dim, m.c_dim
        self.ema_kimg, self.ema_rampup = t.ema_kimg, t.ema_rampup
        blur = dict(blur_init_sigma=t.blur_sigma, blur_fade_kimg=t.blur_fade_kimg) if t.blur_sigma else {}
        self.loss = nv.loss.StyleGAN2Loss(torch.device("cpu"), self.G, self.D, r1_gamma=t.r1_gamma,
                                          style_mixing_prob=t.style_mixing, pl_weight=t.pl_weight, **blur)
        self.phases = []
        for name, module, lr, interval in (("G", self.G, t.g_lr, t.pl_every if t.pl_weight else None),
                                           ("D", self.D, t.d_lr, t.r1_every if t.r1_gamma else None)):
            ratio = interval / (interval + 1) if interval else 1
            opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=(t.beta1 ** ratio, t.beta2 ** ratio),
                                   eps=1e-8)
            self.phases.append(SimpleNamespace(name=name + ("main" if interval else "both"), module=module, opt=opt,
                                               interval=1))
            if interval:
                self.phases.append(SimpleNamespace(name=name + "reg", module=module, opt=opt, interval=interval))
        self.real = real
        self.c = torch.zeros(self.batch, self.c_dim)
        self.batch_idx, self.nimg = 0, 0

    def step(self) -> None:
        gen_z = torch.randn(len(self.phases), self.batch, self.z_dim)
        for phase, z in zip(self.phases, gen_z):
            if self.batch_idx % phase.interval:
                continue
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            self.loss.accumulate_gradients(phase=phase.name, real_img=self.real, real_c=self.c, gen_z=z, gen_c=self.c,
                                           gain=phase.interval, cur_nimg=self.nimg)
            phase.module.requires_grad_(False)
            params = [p for p in phase.module.parameters() if p.grad is not None]
            if params:
                flat = torch.cat([p.grad.flatten() for p in params])
                torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
                for p, g in zip(params, flat.split([p.numel() for p in params])):
                    p.grad = g.reshape(p.shape)
            phase.opt.step()
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup:
            ema_nimg = min(ema_nimg, self.nimg * self.ema_rampup)
        beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.nimg += self.batch
        self.batch_idx += 1


def real_batch(batch: int, channels: int, resolution: int) -> torch.Tensor:
    """A fixed batch in NVlabs' [-1, 1] range (what the images are does not change the time)."""
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.uniform(-1, 1, [batch, channels, resolution, resolution]).astype(np.float32))
