"""Adversarial losses on D's raw logits, and the penalties that keep D smooth.

Each loss maps (logits on real, logits on fake) to D's loss and logits on fake to G's loss:
  minimax  D: -log D(x) - log(1 - D(G(z)))        G: log(1 - D(G(z)))  (saturating; Goodfellow)
  nonsat   D: as minimax                           G: -log D(G(z))
  lsgan    D: (D(x) - 1)^2/2 + D(G(z))^2/2         G: (D(G(z)) - 1)^2/2  (Mao et al.)
  hinge    D: relu(1 - D(x)) + relu(1 + D(G(z)))   G: -D(G(z))           (Miyato et al.)
  wgan     D: D(G(z)) - D(x)                       G: -D(G(z))           (Arjovsky et al.)
  wgan-gp  as wgan, plus lambda (||grad D(x_hat)|| - 1)^2 (Gulrajani et al.)
`real_label` < 1 gives one-sided label smoothing for the logistic and least-squares losses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("minimax", "nonsat", "lsgan", "hinge", "wgan", "wgan-gp")
CRITIC_LOSSES = ("wgan", "wgan-gp")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    if kind in ("minimax", "nonsat"):
        if real_label == 1.0:
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
                + F.softplus(fake).mean())
    if kind == "lsgan":
        return 0.5 * ((real - real_label).square().mean() + fake.square().mean())
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind in CRITIC_LOSSES:
        return fake.mean() - real.mean()
    raise ValueError(f"unknown loss '{kind}'")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "minimax":
        return -F.softplus(fake).mean()  # = mean log(1 - sigmoid(fake))
    if kind == "nonsat":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1).square().mean()
    if kind in ("hinge", "wgan", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"unknown loss '{kind}'")


def d_readout(kind: str, logits: torch.Tensor) -> float:
    """What the monitor plots as D(real)/D(fake): a probability for logistic losses, else the raw score."""
    if kind in ("minimax", "nonsat"):
        return torch.sigmoid(logits).mean().item()
    return logits.mean().item()


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, c) -> torch.Tensor:
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake."""
    shape = [real.shape[0]] + [1] * (real.ndim - 1)
    alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    logits, _ = D(x_hat, c)
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def r1_penalty(D, real: torch.Tensor, c, augment=None) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): squared gradient norm of D on real data."""
    real = real.detach().requires_grad_(True)
    logits, _ = D(augment(real) if augment else real, c)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.flatten(1).square().sum(dim=1).mean()


def orthogonal_penalty(G: torch.nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularisation: sum over G's weight matrices W (conv kernels as
    [out, in*k*k]) of ||W W^T * (1 - I)||_F^2, only the off-diagonal terms, so filters are pushed
    apart without fixing their norms. Spectral-normed layers are penalised on their raw weight,
    as BigGAN-PyTorch does; modules named in G's `ortho_skip` (BigGAN: the shared embedding) are left out."""
    skip = getattr(G, "ortho_skip", ())
    total = None
    for name, p in G.named_parameters():
        if p.ndim < 2 or any(name.startswith(s) for s in skip):
            continue
        w = p.flatten(1)
        gram = w @ w.t()
        term = (gram - torch.diag_embed(torch.diagonal(gram))).square().sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros([])
