"""BigGAN (Brock et al., 2019) at small resolutions, after the authors' BigGAN-PyTorch.

G: z split into chunks, one to the first linear layer and one per up-block; each block's
conditional batch norms take that chunk concatenated with a class embedding shared by every
block (hierarchical latents, shared embedding). Residual up-blocks, self-attention (SAGAN's
non-local block) at one resolution, orthogonal init, spectral norm on every layer but the
shared embedding. D: residual down-blocks, the same self-attention, global sum pooling, and a
projection head for the class (Miyato & Koyama, 2018), spectral norm throughout.

No W space: the studio works in Z, truncating by resampling (trainer.latents.sample_z). In eval
mode G's batch norms use their running statistics, copied from G into the EMA generator after
every step (trainer.training.gan_steps)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from trainer.models.common import as_onehot

ARCH_NAME = "biggan"
ORTHO_SKIP = ("shared.",)   # BigGAN leaves the shared class embedding out of the orthogonal regularisation


def feature_maps(resolution: int, img_resolution: int, width: int, max_width: int) -> int:
    """Channels at a resolution: `width` at the output, doubling per halving up to `max_width`."""
    return min(width * img_resolution // resolution, max_width)


def _check(img_resolution: int, attention_resolution: int) -> None:
    if img_resolution < 8 or img_resolution & (img_resolution - 1):
        raise ValueError(f"biggan needs a power-of-two resolution of at least 8, got {img_resolution}")
    if attention_resolution and not 4 <= attention_resolution <= img_resolution:
        raise ValueError(f"attention at {attention_resolution} px: choose a block resolution from 8 to {img_resolution}")


def _orthogonal_init_and_spectral_norm(module: nn.Module, skip: tuple[str, ...] = ()) -> None:
    """BigGAN's init (orthogonal weights, zero biases) and spectral norm on every conv and linear
    layer whose name does not start with one of `skip`."""
    for name, m in list(module.named_modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not any((name + ".").startswith(s) for s in skip):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            spectral_norm(m, eps=1e-6)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose per-channel gain (1 + a linear map) and bias come from a conditioning vector."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: [NCHW], y: [N, cond_dim] -> [NCHW]"""
        return self.norm(x) * (1 + self.gain(y))[:, :, None, None] + self.bias(y)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN's non-local block as BigGAN uses it: keys and values max-pooled 2x, a learned gate from 0."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1, bias=False)
        self.key = nn.Conv2d(channels, inner, 1, bias=False)
        self.value = nn.Conv2d(channels, max(channels // 2, 1), 1, bias=False)
        self.out = nn.Conv2d(max(channels // 2, 1), channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        query = self.query(x).flatten(2)                          # [N, C/8, HW]
        key = F.max_pool2d(self.key(x), 2).flatten(2)             # [N, C/8, HW/4]
        value = F.max_pool2d(self.value(x), 2).flatten(2)         # [N, C/2, HW/4]
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)   # [N, HW, HW/4]
        o = (value @ attention.transpose(1, 2)).reshape(n, -1, h, w)      # [N, C/2, H, W]
        return x + self.gamma * self.out(o)


class UpBlock(nn.Module):
    """BN-ReLU-up-conv-BN-ReLU-conv with conditional batch norms, plus a 1x1 skip: [N, in, r/2, r/2] -> [N, out, r, r]."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.norm1 = ConditionalBatchNorm(in_channels, cond_dim)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = ConditionalBatchNorm(out_channels, cond_dim)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.norm2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class DownBlock(nn.Module):
    """ReLU-conv-ReLU-conv then 2x average pooling, plus a 1x1 skip; the first block skips the
    leading ReLU (its input is the image) and pools before its skip conv, as BigGAN's D."""

    def __init__(self, in_channels: int, out_channels: int, first: bool, downsample: bool):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels or downsample else None

    def _pool(self, x):
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._pool(self.conv2(F.relu(self.conv1(x if self.first else F.relu(x)))))
        if self.skip is not None:
            x = self.skip(self._pool(x)) if self.first else self._pool(self.skip(x))
        return h + x


def z_chunk_sizes(z_dim: int, chunks: int) -> list[int]:
    """BigGAN's hierarchical latent: z split as evenly as it goes into `chunks` pieces."""
    if z_dim < chunks:
        raise ValueError(f"biggan splits z into {chunks} chunks at this resolution: z_dim must be at least {chunks}")
    return [z_dim // chunks + (1 if i < z_dim % chunks else 0) for i in range(chunks)]


class BigGANGenerator(nn.Module):
    num_ws = 0  # no W space: the studio works in Z (truncation by resampling)

    def __init__(self,
                 z_dim: int,            # latent dimensions, split into one chunk per block plus one for the input
                 c_dim: int,            # classes; 0 = unconditional (the blocks see only their z chunk)
                 img_resolution: int,   # output size, a power of two >= 8
                 img_channels: int,     # 1 grey or 3 RGB
                 width: int = 32,       # feature maps at the output resolution, doubling per halving
                 max_width: int = 128,  # cap on feature maps at low resolutions
                 shared_dim: int = 0,   # dimensions of the shared class embedding; 0 = z_dim (BigGAN-PyTorch)
                 attention_resolution: int | None = None,  # self-attention after the block at this size;
                                                           # None = half the output (BigGAN: 64 at 128 px); 0 = off
                 ):
        super().__init__()
        attention_resolution = img_resolution // 2 if attention_resolution is None else attention_resolution
        _check(img_resolution, attention_resolution)
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.ortho_skip = ORTHO_SKIP
        ch = lambda r: feature_maps(r, img_resolution, width, max_width)
        resolutions = [2 ** k for k in range(3, img_resolution.bit_length())]   # 8 .. img_resolution
        self.z_chunks = z_chunk_sizes(z_dim, len(resolutions) + 1)
        shared_dim = (shared_dim or z_dim) if c_dim else 0
        self.shared = nn.Linear(c_dim, shared_dim, bias=False) if c_dim else None   # one-hot or soft labels in
        self.linear = nn.Linear(self.z_chunks[0], ch(4) * 16)
        self.blocks = nn.ModuleList(UpBlock(ch(r // 2), ch(r), shared_dim + chunk, r)
                                    for r, chunk in zip(resolutions, self.z_chunks[1:]))
        self.attention_resolution = attention_resolution
        self.attention = SelfAttention(ch(attention_resolution)) if attention_resolution else None
        self.out_norm = nn.BatchNorm2d(ch(img_resolution))
        self.out_conv = nn.Conv2d(ch(img_resolution), img_channels, 3, padding=1)
        _orthogonal_init_and_spectral_norm(self, skip=ORTHO_SKIP)

    def block_inputs(self, z: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z [N, z_dim], labels -> (the first layer's chunk [N, z0], each block's [shared(c), chunk])."""
        onehot = as_onehot(c, self.c_dim, z.shape[0], z.device)
        first, *rest = z.split(self.z_chunks, dim=1)
        if onehot is None:
            return first, rest
        shared = self.shared(onehot)                                   # [N, shared_dim]
        return first, [torch.cat([shared, chunk], dim=1) for chunk in rest]

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0, **_unused):
        """z: [N, z_dim] -> images [NCHW] in [-1, 1]. No W space, so no ψ: truncate z itself
        (trainer.latents.sample_z resamples components beyond a threshold)."""
        if truncation_psi != 1:
            raise ValueError(f"{type(self).__name__} has no W space, so truncation psi does not apply; "
                             "truncate z instead (a truncated normal: --z-threshold in the CLI)")
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}, expected (N, {self.z_dim})")
        first, conditions = self.block_inputs(z, c)
        x = self.linear(first).reshape(z.shape[0], -1, 4, 4)          # [N, ch(4), 4, 4]
        for block, y in zip(self.blocks, conditions):
            x = block(x, y)
            assert x.shape[2] == block.resolution                       # [NCHW]
            if block.resolution == self.attention_resolution:
                x = self.attention(x)
        img = torch.tanh(self.out_conv(F.relu(self.out_norm(x))))
        assert img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution)  # [NCHW]
        return img


class BigGANDiscriminator(nn.Module):
    def __init__(self,
                 c_dim: int,            # classes; 0 = unconditional (no projection term)
                 img_resolution: int,   # input size, a power of two >= 8
                 img_channels: int,     # 1 grey or 3 RGB
                 width: int = 32,       # feature maps after the first block, doubling per halving
                 max_width: int = 128,  # cap on feature maps at low resolutions
                 attention_resolution: int | None = None,  # self-attention after the block at this size;
                                                           # None = half the input; 0 = off
                 ):
        super().__init__()
        attention_resolution = img_resolution // 2 if attention_resolution is None else attention_resolution
        _check(img_resolution, attention_resolution)
        self.c_dim, self.img_resolution = c_dim, img_resolution
        ch = lambda r: feature_maps(r, img_resolution, width, max_width)
        # Down to 4x4, then one block more at 4x4 (BigGAN's last D block does not downsample).
        outputs = [img_resolution // 2 ** k for k in range(1, img_resolution.bit_length() - 2)] + [4]
        blocks, in_ch, res = [], img_channels, img_resolution
        for k, out_res in enumerate(outputs):
            blocks.append(DownBlock(in_ch, ch(out_res), first=k == 0, downsample=out_res < res))
            in_ch, res = ch(out_res), out_res
        self.blocks = nn.ModuleList(blocks)
        self.block_resolutions = outputs
        self.attention_resolution = attention_resolution
        self.attention = SelfAttention(ch(attention_resolution)) if attention_resolution else None
        self.out = nn.Linear(in_ch, 1)
        self.embed = nn.Linear(c_dim, in_ch, bias=False) if c_dim else None   # the projection's class embedding
        _orthogonal_init_and_spectral_norm(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None):
        """img: [NCHW] in [-1, 1] -> (logits [N], None: no auxiliary classifier)"""
        onehot = as_onehot(c, self.c_dim, img.shape[0], img.device)
        h = img
        attended = False
        for block, res in zip(self.blocks, self.block_resolutions):
            h = block(h)
            assert h.shape[2] == res                                     # [NCHW]
            if res == self.attention_resolution and not attended:
                h, attended = self.attention(h), True
        h = F.relu(h).sum(dim=[2, 3])                                    # [N, C] global sum pooling
        logits = self.out(h).squeeze(1)
        if onehot is not None:
            logits = logits + (self.embed(onehot) * h).sum(dim=1)
        return logits, None
