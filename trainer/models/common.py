"""Pieces shared by the architectures: label handling, conditional D heads, initialisation."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def as_onehot(c: torch.Tensor | None, c_dim: int, n: int, device) -> torch.Tensor | None:
    """Labels as int64 [N] or one-hot/soft float [N, c_dim] -> float [N, c_dim] (None if c_dim == 0)."""
    if c_dim == 0:
        return None
    if c is None:
        raise ValueError(f"this model is conditional on {c_dim} classes: pass c (labels or one-hot rows)")
    if c.ndim == 1:
        if c.dtype.is_floating_point:
            raise ValueError("c: pass int64 labels [N] or float rows [N, c_dim]")
        return F.one_hot(c.long(), c_dim).to(device=device, dtype=torch.float32)
    if c.shape != (n, c_dim):
        raise ValueError(f"c has shape {tuple(c.shape)}, expected ({n}, {c_dim})")
    return c.to(device=device, dtype=torch.float32)


def concat_label_maps(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Append one-hot labels to D's input: as constant maps for images, as features for points."""
    if x.ndim == 4:
        return torch.cat([x, c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)
    return torch.cat([x, c], dim=1)


class ConditionalHead(nn.Module):
    """D's last layer: features [N, F] -> (logits [N], class logits [N, c_dim] or None).

    projection: logit = <w, h> + <embed(c), h> (Miyato & Koyama, 2018)
    acgan:      logit = <w, h>, plus an auxiliary classifier over classes (Odena et al., 2017)
    concat:     logit = <w, h>; the labels were appended to the input instead
    """

    def __init__(self,
                 features: int,        # width of the feature vector h
                 c_dim: int,           # number of classes; 0 = unconditional
                 mode: str,            # "projection" | "acgan" | "concat"
                 linear=nn.Linear,     # layer constructor (equalised or plain)
                 ):
        super().__init__()
        self.c_dim, self.mode = c_dim, mode
        self.out = linear(features, 1)
        self.embed = linear(c_dim, features) if c_dim and mode == "projection" else None
        self.classifier = linear(features, c_dim) if c_dim and mode == "acgan" else None

    def forward(self, h: torch.Tensor, c: torch.Tensor | None):
        logits = self.out(h).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(c) * h).sum(dim=1) / h.shape[1] ** 0.5
        aux = self.classifier(h) if self.classifier is not None else None
        return logits, aux


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights as in Radford et al.; batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every conv and linear weight of a module, in place. Equalised-lr
    layers drop their run-time gain: on top of a unit spectral norm it would shrink every layer by
    1/sqrt(fan-in), and D's output would fade to a constant."""
    from torch.nn.utils.parametrizations import spectral_norm
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)) or (hasattr(m, "weight") and getattr(m, "equalized", False)):
            spectral_norm(m)
            if getattr(m, "equalized", False):
                m.weight_gain = 1.0
    return module


class MinibatchStd(nn.Module):
    """Appends the std of features across a group of samples: a cheap diversity signal for D."""

    def __init__(self, group_size: int):
        super().__init__()
        self.group_size = group_size

    def forward(self, x):
        """x: [N, C, H, W] feature maps or [N, F] feature vectors -> one more channel / feature."""
        if x.ndim == 2:
            return self.forward(x[:, :, None, None])[:, :, 0, 0]
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:  # a group size that divides the batch
            g -= 1
        y = x.reshape(g, -1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [N/G, C, H, W]
        y = y.mean(dim=[1, 2, 3])[:, None, None, None].repeat(g, 1, h, w)  # [N, 1, H, W]
        return torch.cat([x, y], dim=1)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. (2016): each sample gets features saying how close it is to the rest of
    the batch, so D can spot a batch of near-identical fakes (mode collapse)."""

    def __init__(self, in_features: int, kernels: int = 32, kernel_dim: int = 8):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.02)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = (h @ self.T).view(-1, self.kernels, self.kernel_dim)       # [N, K, D]
        l1 = (m[:, None] - m[None]).abs().sum(dim=3)                     # [N, N, K]
        o = torch.exp(-l1).sum(dim=1) - 1                                # exclude self (exp(0) = 1)
        return torch.cat([h, o], dim=1)
