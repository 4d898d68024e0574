"""The operations NVlabs' alias-free generator (StyleGAN3) is made of, in plain PyTorch, written
from Karras et al. 2021, "Alias-Free Generative Adversarial Networks" (Appendix F and C.3):

- `layer_schedule`: the per-layer cutoff, stopband, sampling rate, transition half-width, size
  and width (the geometric progression of Appendix F, critically sampled last layers, margin).
- `lowpass_filter`: Kaiser-windowed FIR design, separable (scipy.signal.firwin) or radially
  symmetric (a jinc windowed by the same Kaiser window), as NVlabs stores them in its pickles.
- `upfirdn2d` and `filtered_lrelu`: bias, upsampling through the FIR, leaky ReLU with gain and
  clamp, downsampling through the FIR: the sums of NVlabs' reference path (the one its CPU code
  runs), with the upsampling as strided transposed convolutions (`upsample_fir`), which skip the
  products with inserted zeros.
- `modulated_conv2d`: StyleGAN3's modulated convolution (weights and styles pre-normalised,
  demodulated, input gain from the magnitude EMA, 'full' padding of kernel - 1).
Every step is differentiable; nothing depends on the device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


@dataclass(frozen=True)
class LayerSpec:
    """What one synthesis layer (index i; i = 0 also describes the Fourier-feature input) is built
    from. Frequencies are in cycles per image at the layer's output."""
    cutoff: float          # f_c[i], the passband edge
    stopband: float        # f_t[i], the minimum stopband
    sampling_rate: int     # s[i], samples per image (before the margin)
    half_width: float      # f_h[i], half of the transition band: max(f_t, s / 2) - f_c
    size: int              # pixels per side, the margin included
    channels: int          # feature maps (the image's channels for the last, ToRGB layer)


def layer_schedule(img_resolution: int,     # output resolution, a power of two
                   img_channels: int,       # output channels (the ToRGB layer's width)
                   channel_base: int,       # widths are rint(min((channel_base / 2) / cutoff, channel_max))
                   channel_max: int,        # cap on feature maps
                   num_layers: int,         # synthesis layers before ToRGB (14)
                   num_critical: int,       # critically sampled layers at the end (2)
                   first_cutoff: float,     # f_c[0] (2)
                   first_stopband: float,   # f_t[0] (2 ** 2.1)
                   last_stopband_rel: float,  # f_t[N] / f_c[N] (2 ** 0.3)
                   margin_size: int,        # extra pixels around the image on each side (10)
                   ) -> list[LayerSpec]:
    """num_layers + 1 specs: layers 0 .. num_layers - 1 and the ToRGB layer. Computed in float64
    with numpy in the order that reproduces NVlabs' stored values bit for bit."""
    last_cutoff = img_resolution / 2                           # f_c[N]: Nyquist of the output
    last_stopband = last_cutoff * last_stopband_rel
    # both progressions reach their last value at layer N - num_critical and stay there
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution                                # the last two layers have no margin
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return [LayerSpec(cutoffs[i], stopbands[i], int(sampling_rates[i]), half_widths[i], int(sizes[i]),
                      int(channels[i])) for i in range(num_layers + 1)]


def lowpass_filter(numtaps: int,          # filter length; 1 = no filter
                   cutoff: float,         # passband edge, cycles per image
                   width: float,          # transition band width (2 * half_width)
                   fs: float,             # sampling rate the filter runs at
                   radial: bool = False,  # radially symmetric 2-D filter (config R) instead of 1-D taps
                   ) -> torch.Tensor | None:
    """Kaiser-windowed low-pass FIR -> [numtaps] (separable) or [numtaps, numtaps] (radial),
    float32, or None for numtaps == 1."""
    if numtaps < 1:
        raise ValueError(f"a filter needs at least one tap, got {numtaps}")
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    # The ideal radial low-pass is a jinc: J1(2 pi f_c r) / (pi r); window it by the outer product
    # of the Kaiser window the 1-D design would use for the same length and transition width.
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f *= np.outer(window, window)
    f /= np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


def layer_padding(in_size: int, out_size: int, conv_kernel: int, up: int, down: int, up_taps: int,
                  down_taps: int) -> list[int]:
    """Padding [left, right, top, bottom] of the upsampled signal so that out_size samples remain
    after the filters, with sample locations shifted to the symmetric interpretation (App. C.3)."""
    total = (out_size - 1) * down + 1                    # wanted size before downsampling
    total -= (in_size + conv_kernel - 1) * up            # the convolution's output, upsampled
    total += up_taps + down_taps - 2                     # what the two filters take away
    low = (total + up) // 2
    return [low, total - low, low, total - low]


def _fir(x: torch.Tensor, f: torch.Tensor, gain: float, down: int) -> torch.Tensor:
    """Convolve each channel with f (a true convolution: f flipped for conv2d) scaled so that the
    2-D filter has the given gain, keeping every down-th output. f: [K] separable or [K, K]."""
    c = x.shape[1]
    f = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
    # depthwise convolutions run 2.5-4x faster channels-last on CPU (same sums, same result)
    x = x.contiguous(memory_format=torch.channels_last)
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand(c, 1, -1, -1), stride=down, groups=c)
    x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, -1), stride=(1, down), groups=c)   # along W
    return F.conv2d(x, f[None, None, :, None].expand(c, 1, -1, 1), stride=(down, 1), groups=c)  # along H


def upfirdn2d(x: torch.Tensor,                   # [N, C, H, W]
              f: torch.Tensor | None,            # [K] or [K, K] FIR; None = identity
              up: int = 1,                       # insert up - 1 zeros after every sample
              down: int = 1,                     # keep every down-th sample after filtering
              padding: tuple | list = (0, 0, 0, 0),  # [left, right, top, bottom]; negative crops
              gain: float = 1.0,                 # gain of the 2-D filter (up ** 2 keeps the level)
              ) -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop), FIR filter, downsample -> [N, C, H', W']."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    if any(padding):
        x = F.pad(x, list(padding))
    if f is None:
        x = x[:, :, ::down, ::down] if down > 1 else x
        return x * gain if gain != 1 else x
    return _fir(x, f, gain, down)


def upsample_fir(x: torch.Tensor,      # [N, C, H, W]
                 f: torch.Tensor,      # [K] separable FIR
                 up: int,              # upsampling factor
                 padding: list[int],   # [left, right, top, bottom] of the upsampled signal; negative crops
                 gain: float,          # gain of the 2-D filter
                 ) -> torch.Tensor:
    """upfirdn2d(x, f, up, padding, gain) as two depthwise transposed convolutions of stride `up`
    (one per axis): the same sums without the (up - 1) / up zeros that zero insertion multiplies,
    3-7x faster on CPU. A transposed convolution is the full convolution of the zero-stuffed
    signal; the padded, filtered signal is a window of it starting at K - 1 - left."""
    n, c, h, w = x.shape
    k = f.shape[0]
    f = (f * gain ** 0.5).to(x.dtype)
    x = x.contiguous(memory_format=torch.channels_last)   # depthwise convolutions' fast layout on CPU
    x = F.conv_transpose2d(x, f[None, None, None, :].expand(c, 1, 1, -1), stride=(1, up), groups=c)   # along W
    x = F.conv_transpose2d(x, f[None, None, :, None].expand(c, 1, -1, 1), stride=(up, 1), groups=c)   # along H
    left, right, top, bottom = padding
    width, height = w * up + left + right - k + 1, h * up + top + bottom - k + 1
    sx, sy = k - 1 - left, k - 1 - top
    return F.pad(x, [-sx, sx + width - x.shape[3], -sy, sy + height - x.shape[2]])


def filtered_lrelu(x: torch.Tensor,                    # [N, C, H, W]
                   up_filter: torch.Tensor | None,     # FIR for upsampling ([K] or None)
                   down_filter: torch.Tensor | None,   # FIR for downsampling ([K], [K, K] or None)
                   bias: torch.Tensor,                 # [C]
                   up: int, down: int,                 # resampling factors
                   padding: list[int],                 # [left, right, top, bottom] at the upsampled rate
                   gain: float = LRELU_GAIN,           # applied after the nonlinearity
                   slope: float = LRELU_SLOPE,         # 1 = linear (ToRGB)
                   clamp: float = 0.0,                 # clamp to +-clamp after the gain; 0 = off
                   ) -> torch.Tensor:
    """The nonlinearity at a temporarily higher sampling rate: x + bias, upsampled through
    up_filter, leaky ReLU * gain (clamped), downsampled through down_filter -> [N, C, H', W']."""
    x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if up > 1 and up_filter is not None and up_filter.ndim == 1:
        x = upsample_fir(x, up_filter, up, padding, gain=up ** 2)
    else:
        x = upfirdn2d(x, up_filter, up=up, padding=padding, gain=up ** 2)
    # the largest tensor of the layer: modified in place unless autograd needs it
    inplace = not (torch.is_grad_enabled() and x.requires_grad)
    if slope != 1:
        x = F.leaky_relu_(x, slope) if inplace else F.leaky_relu(x, slope)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return upfirdn2d(x, down_filter, down=down)


def modulated_conv2d(x: torch.Tensor,           # [N, I, H, W]
                     weight: torch.Tensor,      # [O, I, k, k]
                     styles: torch.Tensor,      # [N, I]
                     demodulate: bool,          # normalise each output map (all layers but ToRGB)
                     input_gain: torch.Tensor,  # [] or [N, I]: 1 / sqrt(magnitude EMA) of the input
                     ) -> torch.Tensor:
    """StyleGAN3's modulated convolution with padding k - 1 -> [N, O, H + k - 1, W + k - 1]. Run
    as one grouped convolution over per-sample weights, as NVlabs does."""
    n, i = styles.shape
    o, _, kh, kw = weight.shape
    if x.shape[:2] != (n, i):
        raise ValueError(f"modulated conv: input {tuple(x.shape)} does not match styles {tuple(styles.shape)}")
    w = weight.to(x.dtype)
    s = styles.to(x.dtype)
    if demodulate:   # pre-normalise (numerics): both scales cancel in the demodulation below
        w = w * w.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s[:, None, :, None, None]                                   # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    w = w * input_gain.to(x.dtype).expand(n, i)[:, None, :, None, None]
    x = F.conv2d(x.reshape(1, n * i, *x.shape[2:]), w.reshape(n * o, i, kh, kw), padding=kh - 1, groups=n)
    return x.reshape(n, o, *x.shape[2:])
