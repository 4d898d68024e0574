"""Remedies for mode collapse, each a training option (TrainConfig) and each logged:

- packing (PacGAN, Lin et al. 2018): D judges `pack` samples at once, concatenated along channels
  (images) or features (points), so a generator that repeats itself is easy to tell apart;
- feature matching (Salimans et al. 2016): G also matches the mean of D's last hidden features on
  real data (the input of D's head);
- historical averaging (Salimans et al. 2016): a penalty on each network's distance from the
  running mean of its own parameters;
- mode seeking (MSGAN, Mao et al. 2019): G is rewarded for images that differ as much as their
  latents do (the inverse of the image-distance / latent-distance ratio);
- unrolled GAN (Metz et al. 2017): G's loss is taken against D as it will be `unrolled_steps`
  plain gradient steps ahead; the look-ahead runs on a functional copy of D's parameters, so D's
  own weights and optimiser are untouched.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.func import functional_call

from trainer.training import losses

EPS = 1e-5


class PackedDiscriminator(nn.Module):
    """D over packs of `pack` samples: [N, C, H, W] -> [N / pack, C * pack, H, W] (points likewise)."""

    def __init__(self,
                 inner: nn.Module,   # a discriminator built for pack times the channels
                 pack: int,          # samples per decision, >= 2
                 ):
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None):
        n = x.shape[0]
        if n % self.pack:
            raise ValueError(f"a batch of {n} cannot be packed by {self.pack}")
        packed = x.reshape(n // self.pack, self.pack * x.shape[1], *x.shape[2:])   # [N/m, C*m, ...]
        return self.inner(packed, None if c is None else c[::self.pack])

    @property
    def head(self) -> nn.Module:
        return self.inner.head


def head_features(D: nn.Module, x: torch.Tensor, c) -> torch.Tensor:
    """D's last hidden features on x: the input of its head, [N, F] (packed Ds: one row per pack)."""
    captured = []
    hook = D.head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        D(x, c)
    finally:
        hook.remove()
    return captured[0]


def feature_matching_loss(D, real: torch.Tensor, fake: torch.Tensor, c_real, c_fake) -> torch.Tensor:
    """|| mean_f(real) - mean_f(fake) ||^2 over D's last hidden features (real ones held fixed)."""
    with torch.no_grad():
        target = head_features(D, real, c_real).mean(dim=0)
    return (head_features(D, fake, c_fake).mean(dim=0) - target).square().mean()


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN: 1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps), over the batch's two halves."""
    half = fake.shape[0] // 2
    if half == 0:
        return fake.new_zeros([])
    image_gap = (fake[:half] - fake[half:2 * half]).abs().mean()
    latent_gap = (z[:half] - z[half:2 * half]).abs().mean()
    return 1.0 / (image_gap / latent_gap + EPS)


class HistoricalAverage:
    """The running mean of a network's parameters and the penalty of straying from it."""

    def __init__(self, module: nn.Module):
        self.count = 0
        self.means = [p.detach().clone() for p in module.parameters()]

    def penalty(self, module: nn.Module) -> torch.Tensor:
        return sum((p - m).square().sum() for p, m in zip(module.parameters(), self.means))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.count += 1
        for p, m in zip(module.parameters(), self.means):
            m.lerp_(p.detach(), 1.0 / self.count)

    def state_dict(self) -> dict:
        return {"count": self.count, "means": [m.clone() for m in self.means]}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        for m, saved in zip(self.means, state["means"]):
            m.copy_(saved)


def unrolled_fake_logits(D: nn.Module,
                         kind: str,                # the adversarial loss
                         steps: int,               # look-ahead steps of plain gradient descent
                         lr: float,                # their step size
                         real: torch.Tensor, fake: torch.Tensor, c_real, c_fake,
                         ) -> torch.Tensor:
    """D(fake) as D will score it `steps` gradient steps from now. The steps are differentiated
    through (create_graph), so G's gradient sees how D would answer its move."""
    # copies that require grad: D itself is frozen during G's step, and its weights must not move
    params = {name: p.detach().requires_grad_(True) for name, p in D.named_parameters()}
    buffers = dict(D.named_buffers())
    for _ in range(steps):
        d_real, _ = functional_call(D, {**params, **buffers}, (real, c_real))
        d_fake, _ = functional_call(D, {**params, **buffers}, (fake, c_fake))
        loss = losses.d_loss(kind, d_real, d_fake)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
        params = {name: p if g is None else p - lr * g for (name, p), g in zip(params.items(), grads)}
    logits, _ = functional_call(D, {**params, **buffers}, (fake, c_fake))
    return logits


def build_packed(make_discriminator, model_cfg, pack: int) -> nn.Module:
    """A discriminator for `pack` samples at a time, from the registry's constructor."""
    import dataclasses
    inner = make_discriminator(dataclasses.replace(model_cfg, img_channels=model_cfg.img_channels * pack))
    return PackedDiscriminator(inner, pack)


def check_options(train_cfg, model_cfg) -> None:
    """Combinations the remedies cannot serve, refused before a run starts (ValueError)."""
    if train_cfg.pack > 1 and train_cfg.batch % train_cfg.pack:
        raise ValueError(f"--batch {train_cfg.batch} does not divide into packs of {train_cfg.pack}")
    if train_cfg.pack > 1 and model_cfg.c_dim:
        raise ValueError("--pack needs an unconditional model: a pack of samples has no single class")
    if train_cfg.unrolled_steps and train_cfg.loss == "wgan":
        raise ValueError("--unrolled-steps with --loss wgan would unroll past the weight clipping; use wgan-gp")


class Remedies:
    """The enabled remedies of one run: the extra terms of D's and G's losses, their statistics,
    and the state a resume needs (historical averages)."""

    def __init__(self, cfg, G: nn.Module, D: nn.Module):
        self.t = cfg.train
        self.history = (HistoricalAverage(G), HistoricalAverage(D)) if self.t.historical_averaging else None

    def d_penalty(self, D: nn.Module, stats: dict) -> torch.Tensor | float:
        if self.history is None:
            return 0.0
        penalty = self.history[1].penalty(D)
        stats["diversity/hist_D"] = penalty.item()
        return self.t.historical_averaging * penalty

    def g_terms(self, G, D, kind: str, z, fake, real, c_real, c_fake, stats: dict) -> torch.Tensor | float:
        """The remedies' part of G's loss (fake and real already augmented as D sees them)."""
        t, total = self.t, 0.0
        if t.feature_matching:
            fm = feature_matching_loss(D, real, fake, c_real, c_fake)
            stats["diversity/feature_matching"] = fm.item()
            total = total + t.feature_matching * fm
        if t.mode_seeking:
            ms = mode_seeking_loss(fake, z)
            stats["diversity/mode_seeking"] = ms.item()
            total = total + t.mode_seeking * ms
        if self.history is not None:
            penalty = self.history[0].penalty(G)
            stats["diversity/hist_G"] = penalty.item()
            total = total + t.historical_averaging * penalty
        return total

    def after_steps(self, G, D) -> None:
        if self.history is not None:
            self.history[0].update(G)
            self.history[1].update(D)

    def state_dict(self) -> dict:
        return {} if self.history is None else {"hist_G": self.history[0].state_dict(),
                                                 "hist_D": self.history[1].state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.history is not None and state:
            self.history[0].load_state_dict(state["hist_G"])
            self.history[1].load_state_dict(state["hist_D"])
