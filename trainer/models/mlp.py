"""Fully connected G and D for 2-D point data (ring8, grid25)."""
from __future__ import annotations

import torch
import torch.nn as nn

from trainer.models.common import ConditionalHead, MinibatchDiscrimination, MinibatchStd, as_onehot, concat_label_maps


class MLPGenerator(nn.Module):
    num_ws = 0  # no W space: the studio works in Z

    def __init__(self,
                 z_dim: int,           # latent dimensions
                 c_dim: int,           # classes; 0 = unconditional
                 out_dim: int,         # point dimensions (2 for the toy mixtures)
                 hidden: int,          # units per hidden layer
                 depth: int,           # hidden layers
                 cond_g: str = "embed",  # "embed" (learned) or "concat" (one-hot)
                 ):
        super().__init__()
        self.z_dim, self.c_dim, self.out_dim = z_dim, c_dim, out_dim
        self.img_resolution, self.img_channels = 0, out_dim
        self.embed = nn.Linear(c_dim, z_dim, bias=False) if c_dim and cond_g == "embed" else None
        c_in = 0 if not c_dim else (z_dim if self.embed is not None else c_dim)
        layers, width = [], z_dim + c_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0, **_unused):
        """z: [N, z_dim] -> points [N, out_dim]. Without a W space there is no ψ: truncate z itself
        (trainer.latents.sample_z resamples components beyond a threshold)."""
        if truncation_psi != 1:
            raise ValueError(f"{type(self).__name__} has no W space, so truncation psi does not apply; "
                             "truncate z instead (a truncated normal: --z-threshold in the CLI)")
        onehot = as_onehot(c, self.c_dim, z.shape[0], z.device)
        x = z
        if onehot is not None:
            x = torch.cat([x, self.embed(onehot) if self.embed is not None else onehot], dim=1)
        return self.net(x)


class MLPDiscriminator(nn.Module):
    def __init__(self,
                 in_dim: int,          # point dimensions
                 c_dim: int,           # classes; 0 = unconditional
                 hidden: int,          # units per hidden layer
                 depth: int,           # hidden layers
                 cond_d: str = "projection",  # "projection" | "acgan" | "concat"
                 minibatch_discrimination: bool = False,  # add Salimans' minibatch features before the head
                 mbstd_group: int = 0,  # minibatch standard deviation group size; 0 = off
                 ):
        super().__init__()
        self.c_dim, self.cond_d = c_dim, cond_d
        width = in_dim + (c_dim if c_dim and cond_d == "concat" else 0)
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.net = nn.Sequential(*layers)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else None
        features = hidden + (1 if mbstd_group else 0)
        self.minibatch = MinibatchDiscrimination(features) if minibatch_discrimination else None
        head_in = features + (self.minibatch.kernels if self.minibatch is not None else 0)
        self.head = ConditionalHead(head_in, c_dim, cond_d)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None):
        onehot = as_onehot(c, self.c_dim, x.shape[0], x.device)
        if onehot is not None and self.cond_d == "concat":
            x = concat_label_maps(x, onehot)
        h = self.net(x)  # [N, hidden]
        if self.mbstd is not None:
            h = self.mbstd(h)
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.head(h, onehot)
