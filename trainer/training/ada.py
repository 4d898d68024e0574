"""Adaptive discriminator augmentation (Karras et al., 2020, "Training Generative Adversarial
Networks with Limited Data"): every image D sees, real or fake, goes through a pipeline of
augmentations, each applied to each image with probability p; p follows how much D overfits.

The pipeline (the paper's appendix B, written here from its description):
  b  pixel blitting: x-flip, 90-degree rotations, integer translation (up to 1/8 of the size,
     reflected at the edges). Exact: every output pixel is one input pixel.
  g  general geometric: isotropic scaling (log2 std 0.2), arbitrary rotation (uniform, before and
     after the anisotropic scaling), anisotropic scaling (log2 std 0.2), fractional translation
     (std 1/8 of the size). Composed into one affine matrix per image and resampled once:
     reflection padding, 2x upsampling with a low-pass filter, bilinear sampling on the 2x grid,
     low-pass and 2x downsampling. Sampling a band-limited 2x grid bilinearly leaves little of
     the interpolation's spectral images, and the low-pass before decimation removes what a
     zoom-out pushes above the output's Nyquist frequency, so edges and fine texture do not
     alias (a zoom-out of a near-Nyquist pattern fades to grey instead of turning into a coarse
     false pattern: tested).
  c  colour: brightness (std 0.2), contrast (log2 std 0.5), luma flip, hue rotation (uniform),
     saturation (log2 std 1), composed into one 4x4 matrix per image on RGB; a grey image is
     treated as RGB with equal channels and the channels' mean taken after (so brightness,
     contrast and luma flip act, while hue and saturation leave it as it is).
Every op is linear in the image, so gradients reach G through it (and R1's double backward).
Random draws come from torch's generator, which the training step seeds per micro-batch;
every draw is made whatever p is, so p changes nothing but the outcome of the comparisons.

The adaptive p: D's outputs on real images are summed by sign; every ADA_INTERVAL D steps their
mean r_t is compared with the target (0.6) and p moves by sign(r_t - target) x the images shown
since / (ada_kimg x 1000), kept in [0, 1].
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from trainer.training.distributed import Ranks, average_

PIPES = {"b": ("xflip", "rotate90", "xint"),
         "g": ("scale", "rotate", "aniso", "xfrac"),
         "c": ("brightness", "contrast", "lumaflip", "hue", "saturation")}
ADA_INTERVAL = 4          # D steps between adjustments of p (NVlabs' ada_interval)
SIGN_LOSSES = ("minimax", "nonsat", "hinge")   # losses whose real logits are positive when D says "real"

# The paper's strengths (multipliers of the unit distributions)
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0


def pipe_ops(pipe: str) -> tuple[str, ...]:
    """The ops of a pipe name (b, bg, bgc, g, c)."""
    return tuple(op for letter in pipe for op in PIPES[letter])


def lowpass_taps(length: int = 16, beta: float = 4.0) -> torch.Tensor:
    """A Kaiser-windowed sinc on the 2x grid, cut off at the 1x grid's Nyquist frequency (a
    quarter of the 2x grid's sampling rate), even length so the 2x samples fall at +-1/4 pixel.
    Unit DC gain. -> [length] float32"""
    t = np.arange(length) - (length - 1) / 2
    taps = np.sinc(t / 2) * np.kaiser(length, beta)
    return torch.tensor(taps / taps.sum(), dtype=torch.float32)


TAPS = lowpass_taps()


def _separable(x, taps, transpose: bool):
    """Filter [NCHW] along both axes with `taps`: stride-2 zero-insertion upsampling
    (transpose=True, gain 2 per axis) or low-pass then stride-2 decimation."""
    c = x.shape[1]
    conv = F.conv_transpose2d if transpose else F.conv2d
    k = taps.to(x.dtype) * (2 if transpose else 1)
    x = conv(x, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, 2), groups=c)
    return conv(x, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(2, 1), groups=c)


def resample(x: torch.Tensor, matrix: torch.Tensor, filtered: bool = True) -> torch.Tensor:
    """Resample each image by an affine map. x: [N, C, H, W]; matrix: [N, 3, 3] taking an output
    pixel's coordinates to the input's, both in pixels from the image centre (y down, x right).
    filtered=False samples bilinearly on the 1x grid (no anti-aliasing: kept for the tests that
    show what the filter does). -> [N, C, H, W]"""
    n, c, h, w = x.shape
    matrix = matrix.to(device=x.device, dtype=torch.float32)
    if not filtered:
        oy, ox = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32) - (h - 1) / 2,
                                torch.arange(w, device=x.device, dtype=torch.float32) - (w - 1) / 2, indexing="ij")
        src = _apply(matrix, ox, oy)                                              # [N, H, W, 2] centred
        grid = src / torch.tensor([w / 2, h / 2], device=x.device)               # align_corners=False
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
    taps = TAPS.to(x.device)
    length = taps.numel()
    half = (length - 1) / 2                  # the filters' centre, in 2x samples
    # The input area the output reads (the output's corners mapped back, plus the filters' reach),
    # so that every sample falls where the upsampled image is complete
    corners = torch.tensor([[-1, -1], [1, -1], [-1, 1], [1, 1]], device=x.device, dtype=torch.float32)
    reach = corners * torch.tensor([(w - 1) / 2 + half / 2 + 1, (h - 1) / 2 + half / 2 + 1], device=x.device)
    extent = _apply(matrix, reach[:, 0], reach[:, 1]).abs().amax(dim=(0, 1))    # [2] (x, y)
    pad_x = max(math.ceil(float(extent[0]) - (w - 1) / 2 + length / 2), 0)
    pad_y = max(math.ceil(float(extent[1]) - (h - 1) / 2 + length / 2), 0)
    rows = _reflect(torch.arange(-pad_y, h + pad_y, device=x.device), h)
    cols = _reflect(torch.arange(-pad_x, w + pad_x, device=x.device), w)
    up = _separable(x[:, :, rows][:, :, :, cols], taps, transpose=True)   # reflected to any width, 2x
    # 2x output grid: sample q stands at output pixel (q - half) / 2, so decimating after the
    # low-pass lands on pixel centres 0 .. size-1
    oy = (torch.arange(2 * (h - 1) + length, device=x.device, dtype=torch.float32) - half) / 2 - (h - 1) / 2
    ox = (torch.arange(2 * (w - 1) + length, device=x.device, dtype=torch.float32) - half) / 2 - (w - 1) / 2
    oy, ox = torch.meshgrid(oy, ox, indexing="ij")
    src = _apply(matrix, ox, oy)                                                  # [N, 2H', 2W', 2] centred
    # input pixel u (padded) sits at 2u + half on the upsampled grid; normalise for align_corners=True
    centre = torch.tensor([(w - 1) / 2 + pad_x, (h - 1) / 2 + pad_y], device=x.device)
    size = torch.tensor([up.shape[3] - 1, up.shape[2] - 1], device=x.device, dtype=torch.float32)
    grid = (2 * (src + centre) + half) / size * 2 - 1
    z = F.grid_sample(up, grid.to(up.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return _separable(z, taps, transpose=False)


def _apply(matrix, ox, oy):
    """matrix [N, 3, 3] on points (ox, oy) of any shape S -> [N, *S, 2] as (x, y)."""
    points = torch.stack([ox, oy, torch.ones_like(ox)], dim=-1)                  # [*S, 3]
    return torch.einsum("nij,...j->n...i", matrix[:, :2], points)


# ---- the random matrices ---------------------------------------------------------------------
def _chance(n, p, device):
    """1.0 where an op applies to image i (probability p), else 0.0. -> [N]"""
    return (torch.rand(n, device=device) < p).float()


def _scale2(sx, sy):
    m = torch.eye(3, device=sx.device).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate2(theta):
    m = torch.eye(3, device=theta.device).repeat(theta.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = theta.cos(), -theta.sin(), theta.sin(), theta.cos()
    return m


def _translate2(tx, ty):
    m = torch.eye(3, device=tx.device).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def blit_matrices(n: int, size: int, p: float, ops, device) -> torch.Tensor:
    """x-flip, 90-degree rotation and integer translation as integer maps from output to input
    pixel (centred coordinates). -> [N, 3, 3]"""
    m = torch.eye(3, device=device).repeat(n, 1, 1)
    if "xflip" in ops:
        flip = torch.randint(2, [n], device=device) * _chance(n, p, device)
        m = m @ _scale2(1 - 2 * flip, torch.ones(n, device=device))
    if "rotate90" in ops:
        quarter = torch.randint(4, [n], device=device) * _chance(n, p, device)
        m = m @ _rotate2(quarter * (math.pi / 2)).round()
    if "xint" in ops:
        t = (torch.rand(n, 2, device=device) * 2 - 1) * XINT_MAX * _chance(n, p, device)[:, None]
        m = m @ _translate2((t[:, 0] * size).round(), (t[:, 1] * size).round())
    return m


def geometric_matrices(n: int, size: int, p: float, ops, device) -> torch.Tensor:
    """Scaling, rotation, anisotropic scaling, fractional translation, composed. -> [N, 3, 3]"""
    m = torch.eye(3, device=device).repeat(n, 1, 1)
    p_rotate = 1 - math.sqrt(1 - min(p, 1.0))   # two chances of rotating: p overall
    if "scale" in ops:
        s = torch.exp2(torch.randn(n, device=device) * SCALE_STD * _chance(n, p, device))
        m = m @ _scale2(s, s)
    if "rotate" in ops:
        m = m @ _rotate2((torch.rand(n, device=device) * 2 - 1) * math.pi * ROTATE_MAX * _chance(n, p_rotate, device))
    if "aniso" in ops:
        s = torch.exp2(torch.randn(n, device=device) * ANISO_STD * _chance(n, p, device))
        m = m @ _scale2(s, 1 / s)
    if "rotate" in ops:
        m = m @ _rotate2((torch.rand(n, device=device) * 2 - 1) * math.pi * ROTATE_MAX * _chance(n, p_rotate, device))
    if "xfrac" in ops:
        t = torch.randn(n, 2, device=device) * XFRAC_STD * _chance(n, p, device)[:, None]
        m = m @ _translate2(t[:, 0] * size, t[:, 1] * size)
    return m


def colour_matrices(n: int, p: float, ops, device) -> torch.Tensor:
    """Brightness, contrast, luma flip, hue, saturation on [-1, 1] RGB, composed. -> [N, 4, 4]"""
    eye = torch.eye(4, device=device)
    luma = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)   # the grey axis
    along = torch.outer(luma, luma)
    m = eye.repeat(n, 1, 1)
    if "brightness" in ops:
        b = torch.randn(n, device=device) * BRIGHTNESS_STD * _chance(n, p, device)
        shift = eye.repeat(n, 1, 1)
        shift[:, :3, 3] = b[:, None]
        m = shift @ m
    if "contrast" in ops:
        c = torch.exp2(torch.randn(n, device=device) * CONTRAST_STD * _chance(n, p, device))
        m = torch.diag_embed(torch.stack([c, c, c, torch.ones_like(c)], dim=1)) @ m
    if "lumaflip" in ops:
        flip = torch.randint(2, [n], device=device) * _chance(n, p, device)
        m = (eye - 2 * along * flip[:, None, None]) @ m
    if "hue" in ops:
        theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * HUE_MAX * _chance(n, p, device)
        cross = torch.tensor([[0, -1, 1, 0], [1, 0, -1, 0], [-1, 1, 0, 0], [0, 0, 0, 0]],
                             device=device, dtype=torch.float32) / math.sqrt(3)   # v x (.) for the grey axis v
        cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
        rotation = along + cos * (eye - along) + sin * cross       # Rodrigues' formula about the grey axis
        rotation[:, 3, 3] = 1
        m = rotation @ m
    if "saturation" in ops:
        s = torch.exp2(torch.randn(n, device=device) * SATURATION_STD * _chance(n, p, device))
        m = (along + (eye - along) * s[:, None, None]) @ m
        m[:, 3] = eye[3]
    return m


def _apply_colour(x, m):
    """m [N, 4, 4] on x [N, C, H, W] for C = 3 (RGB) or 1 (grey as equal RGB, mean after)."""
    m = m.to(x.dtype)
    if x.shape[1] == 3:
        return torch.einsum("nij,njhw->nihw", m[:, :3, :3], x) + m[:, :3, 3, None, None]
    gain = m[:, :3, :3].sum(dim=2).mean(dim=1)     # grey in, mean of the three channels out
    return x * gain[:, None, None, None] + m[:, :3, 3].mean(dim=1)[:, None, None, None]


def augment(x: torch.Tensor, p: float, ops) -> torch.Tensor:
    """x: [N, C, H, W] (square, [-1, 1]) -> the same shape, each op of `ops` applied to each
    image with probability p. Differentiable w.r.t. x."""
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"ADA's rotations need square images; got {h}x{w}")
    device = x.device
    blit = [op for op in ops if op in PIPES["b"]]
    if blit:
        x = _blit(x, blit_matrices(n, w, p, blit, device))
    geometric = [op for op in ops if op in PIPES["g"]]
    if geometric:
        m = geometric_matrices(n, w, p, geometric, device)
        moved = ((m - torch.eye(3, device=device)).abs().amax(dim=(1, 2)) > 0).nonzero()[:, 0]
        if moved.numel():   # resample only the images an op touched (the others stay bit-exact)
            x = x.index_put((moved,), resample(x[moved], m[moved]))
    colour = [op for op in ops if op in PIPES["c"]]
    if colour and c in (1, 3):
        x = _apply_colour(x, colour_matrices(n, p, colour, device))
    return x


def _blit(x, matrix):
    """Each output pixel copied from the input pixel the integer map names (reflected at the edges)."""
    n, c, h, w = x.shape
    oy, ox = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32) - (h - 1) / 2,
                            torch.arange(w, device=x.device, dtype=torch.float32) - (w - 1) / 2, indexing="ij")
    src = _apply(matrix, ox, oy)                                      # [N, H, W, 2] centred
    sx = _reflect((src[..., 0] + (w - 1) / 2).round().long(), w)
    sy = _reflect((src[..., 1] + (h - 1) / 2).round().long(), h)
    index = (sy * w + sx).reshape(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


def _reflect(i, size):
    """Indices reflected into 0 .. size-1 without repeating the edge (as F.pad's reflect)."""
    if size == 1:
        return torch.zeros_like(i)
    period = 2 * (size - 1)
    i = i.remainder(period)
    return torch.where(i >= size, period - i, i)


class AdaptiveAugment:
    """The pipe with its probability p, adjusted toward `target` from the signs of D's outputs on
    real images (target 0: p stays at its start)."""

    def __init__(self,
                 pipe: str,            # b, bg, bgc, g or c
                 p: float,             # the starting probability, 0-1
                 target: float,        # r_t's target (0: p fixed)
                 kimg: float,          # kimg of images over which p can go from 0 to 1
                 batch: int,           # the global batch (images per D step)
                 ranks: Ranks,         # the processes whose signs count together
                 device: torch.device):
        self.ops, self.p, self.target, self.kimg, self.batch, self.ranks = pipe_ops(pipe), float(p), target, kimg, batch, ranks
        self.signs = torch.zeros(2, dtype=torch.float64, device=device)   # (sum of signs, count) since the last adjustment
        self._step_signs = [0.0, 0]                                       # this step's, for the ada/rt scalar

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.p, self.ops) if x.ndim == 4 else x

    def observe(self, real_logits: torch.Tensor) -> None:
        """Count the signs of D's outputs on (augmented) real images."""
        signs = real_logits.detach().sign()
        self.signs += torch.stack([signs.sum().double(), torch.tensor(signs.numel(), dtype=torch.float64,
                                                                      device=signs.device)])
        self._step_signs[0] += float(signs.sum())
        self._step_signs[1] += signs.numel()

    def after_d_step(self, d_steps: int) -> None:
        """Every ADA_INTERVAL D steps: r_t over the interval (all processes) moves p toward the target."""
        if self.target <= 0 or d_steps % ADA_INTERVAL:
            return
        totals = self.signs.clone()
        average_(self.ranks, [totals])      # the mean sum and count over processes: their ratio is global
        if totals[1] > 0:
            r_t = float(totals[0] / totals[1])
            step = np.sign(r_t - self.target) * self.batch * ADA_INTERVAL / (self.kimg * 1000)
            self.p = float(min(max(self.p + step, 0.0), 1.0))
        self.signs.zero_()

    def scalars(self) -> dict[str, float]:
        """ada/p after this step and ada/rt, the mean sign of D(real) during it; resets the latter."""
        total, count = self._step_signs
        self._step_signs = [0.0, 0]
        return {"ada/p": self.p, **({"ada/rt": total / count} if count else {})}

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": self.signs.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])
        self.signs.copy_(state["signs"])
