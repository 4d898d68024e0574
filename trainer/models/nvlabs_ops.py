"""The operations NVlabs' StyleGAN2 is made of, in plain PyTorch: bias + activation with gain,
the [1, 3, 3, 1] FIR filter (upfirdn2d) for up- and downsampling, modulated convolution run
fused or shared, and the discriminator's minibatch standard deviation. The modules in
stylegan2_nvlabs.py are built from these."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LRELU_GAIN = math.sqrt(2.0)
# How modulated convolutions run (the same maths each way; benchmarks/generator_speed.py times them):
# "fastest" picks per layer; "nvlabs" always runs NVlabs' inference path (per-sample weights, one
# grouped convolution, stride-2 transposed convolution for upsampling); "shared" always scales
# activations around one shared convolution (NVlabs' training path).
EXECUTION = "fastest"
# From this input resolution, upsampling layers on CPU run as four ordinary convolutions, one per
# output phase, interleaved, instead of one stride-2 transposed convolution: the same 9 taps, but
# oneDNN's ordinary convolutions run near peak where its transposed ones do not (256 px paper256
# widths, batch 1, one thread: fp32 199 against 235 ms, bf16 114 against 144 ms; every layer gains).
POLYPHASE_FROM_RESOLUTION = 4
# Output phase (0 even, 1 odd) and tap of the 2-tap polyphase window -> index in the 3-tap kernel.
_PHASE_TAPS = {(0, 0): 2, (0, 1): 0, (1, 1): 1}


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def bias_act(x: torch.Tensor,
             bias: torch.Tensor | None,    # [C], added along dim 1
             lrelu: bool,                  # leaky ReLU (slope 0.2) with gain sqrt(2), else linear
             gain: float = 1.0,            # extra output gain (residual branches use sqrt(0.5))
             clamp: float = 0.0,           # conv_clamp: outputs clamped to +-clamp * gain; 0 = off
             ) -> torch.Tensor:
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    total_gain = gain * LRELU_GAIN if lrelu else gain
    if lrelu:
        x = F.leaky_relu(x, 0.2)
    if total_gain != 1:
        x = x * total_gain
    if clamp:
        x = x.clamp(-clamp * gain, clamp * gain)
    return x


def filter_2d(taps: list[float]) -> torch.Tensor:
    """1-D taps -> the normalised 2-D filter NVlabs stores as `resample_filter` ([K, K], sum 1)."""
    t = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def fir(x: torch.Tensor,                      # [N, C, H, W]
        f: torch.Tensor,                      # [k, k] filter as NVlabs stores it (resample_filter)
        pad: tuple[int, int, int, int],       # zero padding (left, right, top, bottom) before filtering
        gain: float = 1.0,                    # overall gain of the 2-D filter
        down: int = 1,                        # keep every down-th output pixel
        bias: torch.Tensor | None = None,     # [C] added to the output (by the convolution itself)
        ) -> torch.Tensor:
    """NVlabs' upfirdn2d without upsampling, as one depthwise convolution: pad, convolve with f
    (a true convolution, so f is flipped for conv2d's correlation), subsample."""
    c, x = x.shape[1], conv_ready(x)
    bias = None if bias is None else bias.to(x.dtype)
    weight = (f.flip([0, 1]) * gain).to(x.dtype)[None, None].expand(c, 1, -1, -1)
    left, right, top, bottom = pad
    if left == right and top == bottom and left >= 0 and top >= 0:
        return F.conv2d(x, weight, bias, stride=down, padding=(top, left), groups=c)
    return F.conv2d(F.pad(x, [left, right, top, bottom]), weight, bias, stride=down, groups=c)


def upsample_fir(x: torch.Tensor,             # [N, C, H, W]
                 f: torch.Tensor,             # [k, k] filter as NVlabs stores it
                 ) -> torch.Tensor:
    """NVlabs' upsample2d (insert zeros, pad, FIR with gain 4) as one depthwise stride-2 transposed
    convolution -> [N, C, 2H, 2W]."""
    n, c, h, w = x.shape
    k = f.shape[-1]
    left = (k + 1) // 2               # upsample2d's padding before the filter: (k + 1) // 2, (k - 2) // 2
    start = k - 1 - left              # where the transposed convolution's output lines up with it
    weight = (f * 4).to(x.dtype)[None, None].expand(c, 1, -1, -1)
    if start == left - 1:             # symmetric crop (every even k, the [1, 3, 3, 1] filter included)
        return F.conv_transpose2d(x, weight, stride=2, padding=start, groups=c)
    y = F.conv_transpose2d(x, weight, stride=2, groups=c)
    return y[:, :, start:start + 2 * h, start:start + 2 * w]


def skip_image(img: torch.Tensor | None,     # [N, C, H/2, W/2] image so far, or None (the first block)
               y: torch.Tensor,                # [N, C, H, W] this block's toRGB
               f: torch.Tensor,                # [k, k] FIR (resample_filter)
               ) -> torch.Tensor:
    """The skip generator's image: img upsampled through the FIR, plus y. Rendering on CPU it stays
    fp32 outside autocast, as NVlabs keeps it (3 maps gain nothing from bf16: 3x slower there)."""
    if rendering_on_cpu(y):
        with torch.autocast("cpu", enabled=False):
            return y.float() if img is None else upsample_fir(img, f).add_(y.float())
    return y if img is None else upsample_fir(img, f) + y.to(img.dtype)


class RenderCache:
    """Base of what a layer keeps between renders: a copy or a pickle of the model starts with it
    empty (its keys name this model's storage, and oneDNN's kernels cannot be copied)."""

    @staticmethod
    def stored_key(weight: torch.Tensor) -> tuple:
        """Names the stored weight and its contents: an in-place edit (a blend) bumps the version."""
        return weight.data_ptr(), 0 if weight.is_inference() else weight._version

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


class ScaledWeight(RenderCache):
    """weight * gain, kept while the stored weight is unchanged, already in the precision autocast
    would cast it to (the same values, without a multiply and a cast per render)."""

    def __init__(self):
        self._key, self._value = None, None

    def __call__(self, weight: torch.Tensor, gain: float, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        key = (*self.stored_key(weight), dtype)
        if key != self._key:
            self._key, self._value = key, (weight.detach().to(x.dtype) * gain).to(dtype)
        return self._value


class PreparedWeight(RenderCache):
    """What a modulated convolution needs from its weight alone: the squared norms per output and
    input channel (for demodulation) and, for upsampling layers, the [I, O, k, k] layout of the
    transposed convolution and the polyphase kernel. Kept between calls while the weight is
    unchanged and no gradient must flow into it (renders, inversion); recomputed otherwise."""

    KEEP = 2   # entries kept: fp32 and bf16 renders taking turns (a probe, a benchmark) do not recompute

    def __init__(self):
        self._entries: dict = {}   # key -> (values, packed)
        self.packed: dict = {}     # the current entry's oneDNN copies of its kernels, by kernel and input shape

    def __call__(self, weight: torch.Tensor, up: bool, dtype: torch.dtype):
        """weight as stored -> (weight in `dtype`, squares [O, I], transposed [I, O, k, k] or None,
        phase_kernels or None), all in `dtype` (the squares in fp32 where cached on CPU)."""
        if weight.requires_grad and torch.is_grad_enabled():
            return self._compute(weight, up, dtype)
        # keyed on the stored weight (a blend writes it in place), never on a converted copy
        key = (*self.stored_key(weight), dtype, weight.device, up, torch.is_inference_mode_enabled())
        if key not in self._entries:   # on CPU kept channels-last: scaling them by the styles then runs ~10x faster
            while len(self._entries) >= self.KEEP:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = self._compute(weight.detach(), up, dtype, cpu=weight.device.type == "cpu"), {}
        values, self.packed = self._entries[key]
        return values

    @staticmethod
    def _compute(weight: torch.Tensor, up: bool, dtype: torch.dtype, cpu: bool = False):
        weight = weight.to(dtype)
        squares = weight.float().square().sum(dim=[2, 3])
        if cpu:
            weight = weight.contiguous(memory_format=torch.channels_last)
        else:
            squares = squares.to(dtype)
        if not up:
            return weight, squares, None, None
        return (weight, squares, weight.transpose(0, 1).contiguous(),
                phase_kernels(weight) if weight.shape[-1] == 3 else None)


def phase_kernels(weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """[O, I, 3, 3] kernel of a stride-2 transposed convolution -> the ordinary-convolution kernels
    of its output phases (even, even), (even, odd), (odd, even), (odd, odd): [O, I, 2, 2],
    [O, I, 2, 1], [O, I, 1, 2], [O, I, 1, 1] (an odd phase reads one input tap, an even one two)."""
    k, fmt = polyphase_kernel(weight), _memory_format(weight)   # kept channels-last for a channels-last model
    return tuple(t.contiguous(memory_format=fmt) for t in (k[:, 0], k[:, 1, :, :, 1:], k[:, 2, :, 1:, :], k[:, 3, :, 1:, 1:]))


def polyphase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] kernel of a stride-2 transposed convolution -> [O, 4, I, 2, 2]: for each output
    phase (row parity, column parity) the 2x2 ordinary-convolution kernel over inputs (a-1, a)
    that produces outputs 2a + phase. pixel_shuffle(2) interleaves the phases afterwards."""
    o, i = weight.shape[:2]
    kernel = weight.new_zeros([o, 2, 2, i, 2, 2])
    for (py, ty), ky in _PHASE_TAPS.items():
        for (px, tx), kx in _PHASE_TAPS.items():
            kernel[:, py, px, :, ty, tx] = weight[:, :, ky, kx]
    return kernel.reshape(o, 4, i, 2, 2)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format


def conv_ready(x: torch.Tensor) -> torch.Tensor:
    """x with the strides a convolution recognises as channels-last, without copying. Elementwise
    ops give a channels-last batch of one a stride over the batch that is not C*H*W (any value is
    valid for a dimension of size 1); PyTorch then takes it for channels-first, and copies it into
    that layout for every convolution (~15x the time of a 1x1 convolution at 256 px)."""
    if x.ndim == 4 and x.shape[0] == 1 and _memory_format(x) == torch.channels_last:
        c, h, w = x.shape[1:]
        if x.stride(0) != c * h * w:
            return x.as_strided(x.shape, (c * h * w, 1, w * c, c))
    return x


def phase_output(x: torch.Tensor, o: int, h: int, w: int, pad: tuple[int, int],
                 memory_format: torch.memory_format) -> torch.Tensor:
    """Where the phase convolutions write: the FIR's input, zero-padded by `pad` (before, after)
    around the transposed convolution's [2h + 1, 2w + 1] (no separate pad is made), channels-last
    where the caller can (oneDNN's depthwise FIR runs 4-20x faster so than channels-first, fp32 and
    bf16). Only the padding is zeroed: the phases fill the rest."""
    before, after = pad
    out = torch.empty([x.shape[0], o, before + 2 * h + 1 + after, before + 2 * w + 1 + after], dtype=x.dtype,
                      device=x.device, memory_format=memory_format)
    for view in (out[:, :, :before], out[:, :, out.shape[2] - after:], out[:, :, :, :before],
                 out[:, :, :, out.shape[3] - after:]):
        view.zero_()
    return out


def rendering_on_cpu(x: torch.Tensor) -> bool:
    """Inference on CPU, not traced for export: where the faster layouts below are taken (they change
    results only by float rounding; training and exported graphs keep NVlabs' order of operations)."""
    return x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.jit.is_tracing()


def conv1x1_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [N, I, H, W] (either memory format) times weight [N, O, I] -> [N, O, H, W], as one
    matmul over x's own layout (no copy of x)."""
    n, i, h, w = x.shape
    if _memory_format(x) != torch.channels_last:
        return torch.matmul(weight, x.reshape(n, i, h * w)).reshape(n, -1, h, w)
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, i).transpose(1, 2)   # [N, I, H*W], strided
    if n == 1:   # a 2-D product reads the strided operand as it is; bmm would copy it first
        return torch.mm(weight[0], pixels[0]).reshape(1, -1, h, w)
    return torch.matmul(weight, pixels).reshape(n, -1, h, w)


def static_conv2d(x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],
                  prepared: PreparedWeight | None) -> torch.Tensor:
    """F.conv2d where the weight is kept between renders: oneDNN's reordered copy of it is kept too
    (F.conv2d reorders the kernel on every call: ~0.6 ms of a 512x512 3x3 kernel's ~1-3 ms at
    4-16 px). The same result up to float rounding (bit for bit in the bf16 256 px model); plain
    F.conv2d where that op is missing."""
    if prepared is None or not hasattr(torch.ops.mkldnn, "_reorder_convolution_weight") or x.dtype != weight.dtype:
        return F.conv2d(x, weight, padding=padding)
    x = conv_ready(x.contiguous(memory_format=torch.channels_last))
    key, padding = (weight.data_ptr(), tuple(x.shape), padding), list(padding)
    if key not in prepared.packed:
        try:
            prepared.packed[key] = torch.ops.mkldnn._reorder_convolution_weight(weight, padding, [1, 1], [1, 1], 1,
                                                                                 list(x.shape))
        except RuntimeError:   # a precision this CPU's oneDNN cannot prepare (fp16 without AVX512-FP16)
            prepared.packed[key] = None
    if prepared.packed[key] is None:
        return F.conv2d(x, weight, padding=padding)
    return torch.ops.mkldnn._convolution_pointwise(x, prepared.packed[key], None, padding, [1, 1], [1, 1], 1,
                                                   "none", [], "")


def modulated_conv(x: torch.Tensor,                # [N, I, H, W]
                   weight: torch.Tensor,           # [O, I, k, k]
                   styles: torch.Tensor,           # [N, I]
                   demodulate: bool,               # rescale each output map to unit expected variance
                   up_filter: torch.Tensor | None = None,  # [k, k] FIR: upsample x2 (transposed conv + FIR)
                   out_gain: float = 1.0,          # multiplies the output (folded into the scaling)
                   prepared: PreparedWeight | None = None,  # cache of weight-only terms
                   bias: torch.Tensor | None = None,  # [O] added to the output, inside the last convolution where it can
                   ) -> torch.Tensor:
    """Modulated convolution -> [N, O, H', W'] (H' = 2H with up_filter, else H).

    Runs either fused (weights scaled per sample, one grouped convolution: NVlabs' inference
    path) or by scaling the activations around one shared convolution (NVlabs' training path);
    the same product, so the cheaper one is taken: scale whichever is smaller, the per-sample
    weights (O*I*k*k) or the activations going in and out (I*H*W + O*H'*W'), except that
    upsampling layers share their convolution for batches > 1."""
    n, i = styles.shape
    o, _, kh, kw = weight.shape
    if x.shape[:2] != (n, i):
        raise ValueError(f"modulated conv: input {tuple(x.shape)} does not match styles {tuple(styles.shape)}")
    up = up_filter is not None
    rendering = rendering_on_cpu(x)
    if rendering and torch.is_autocast_enabled("cpu"):   # what autocast would do, made explicit (static_conv2d)
        x = x.to(torch.get_autocast_dtype("cpu"))
    weight, squares, weight_t, phases = (prepared or PreparedWeight())(weight, up, x.dtype)
    # styles and demodulation in x's precision, or in fp32 when rendering (the weights scaled, then rounded once)
    styles = styles.float() if rendering else styles.to(x.dtype)
    with torch.autocast("cpu", enabled=False) if rendering else contextlib.nullcontext():
        if demodulate:  # 1 / ||w * s|| per sample and output map, without forming [N, O, I, k, k]
            out_scale = (styles.square() @ squares.to(styles.dtype).t() + 1e-8).rsqrt() * out_gain    # [N, O]
        else:
            out_scale = styles.new_full([n, o], out_gain)
    weight_scale = lambda: (out_scale[:, :, None] * styles[:, None, :]).to(weight.dtype)   # [N, O, I]
    h, w = x.shape[2:]
    if rendering and kh == kw == 1 and not up:   # toRGB: oneDNN's 1x1 convolution to 3 maps runs ~5x slower than a matmul
        return conv1x1_matmul(x, weight.reshape(o, i)[None] * weight_scale())
    styles, out_scale = styles.to(x.dtype), out_scale.to(x.dtype)   # where they scale activations
    out_pixels = (2 * h) * (2 * w) if up else h * w
    if EXECUTION == "nvlabs":
        fused = True
    elif EXECUTION == "shared":
        fused = False
    else:   # measured on CPU: grouped transposed convolutions lose to one shared one for batches > 1
        fused = o * i * kh * kw < i * h * w + o * out_pixels and (n == 1 or not up)
    polyphase = (up and phases is not None and EXECUTION != "nvlabs" and x.device.type == "cpu"
                 and h >= POLYPHASE_FROM_RESOLUTION and not torch.jit.is_tracing())   # ONNX: no slice writes
    if up:   # the FIR's padding around the transposed convolution's output
        k = up_filter.shape[-1]
        fir_pad = (kh // 2 + (k + 1) // 2 - (kh - 1), kh // 2 + (k - 2) // 2 - (kh - 2))
    if polyphase:   # one ordinary convolution per output phase (9 taps in all), written interleaved
        if fused:   # one image, kernels smaller than its activations: styles and demodulation scale the kernels
            scale = weight_scale()[0, :, :, None, None]
            kernels, xs = [kernel * scale for kernel in phases], conv_ready(x)
        else:
            kernels, xs = phases, conv_ready(x * styles[:, :, None, None])
        layout = torch.channels_last if rendering else _memory_format(x)
        x, start = phase_output(x, o, h, w, fir_pad, layout), fir_pad[0]
        for (py, px), kernel in zip(((0, 0), (0, 1), (1, 0), (1, 1)), kernels):
            z = static_conv2d(xs, kernel, (1 - py, 1 - px), prepared) if rendering and not fused \
                else F.conv2d(xs, kernel, padding=(1 - py, 1 - px))
            if not fused:
                z = z * out_scale[:, :, None, None] if torch.is_grad_enabled() \
                    else z.mul_(out_scale[:, :, None, None])   # in place only where autograd keeps nothing
            x[:, :, start + py:start + 2 * h + 1:2, start + px:start + 2 * w + 1:2] = z
        fir_pad = (0, 0)   # written inside its padding already
    elif fused:
        x = conv_ready(x.reshape(1, n * i, h, w))
        if up:      # [N, I, O, k, k] -> groups of [I, O, k, k]
            wn = weight_t[None] * weight_scale().transpose(1, 2)[..., None, None]
            x = F.conv_transpose2d(x, wn.reshape(n * i, o, kh, kw), stride=2, groups=n)
        else:       # [N, O, I, k, k] -> groups of [O, I, k, k]
            wn = weight[None] * weight_scale()[..., None, None]
            x = F.conv2d(x, wn.reshape(n * o, i, kh, kw), None if bias is None else bias.to(x.dtype).repeat(n),
                         padding=kh // 2, groups=n)
            bias = None
        x = x.reshape(n, o, *x.shape[2:])
    else:
        x = conv_ready(x * styles[:, :, None, None])
        if up:
            x = F.conv_transpose2d(x, weight_t, stride=2)
        else:
            x = static_conv2d(x, weight, (kh // 2, kw // 2), prepared) if rendering \
                else F.conv2d(x, weight, padding=kh // 2)
        x = x * out_scale[:, :, None, None]
    if bias is not None and not up:
        x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if up:          # [N, O, 2H + kh - 2] -> FIR -> [N, O, 2H]
        x = fir(x, up_filter, (fir_pad[0], fir_pad[1], fir_pad[0], fir_pad[1]), gain=4.0, bias=bias)
    return x


class MinibatchStdLayer(nn.Module):
    def __init__(self,
                 group_size: int,            # samples per group; 0 = the whole batch
                 num_channels: int = 1,      # feature channels appended
                 ):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # [N, C, H, W] -> [N, C + F, H, W]
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size else n
        if n % g:
            raise ValueError(f"minibatch-std: batch {n} is not a multiple of the group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)           # group members are samples i, i + N/G, ...
        y = (y - y.mean(dim=0)).square().mean(dim=0)    # [n, F, c, H, W] variance over the group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])       # [n, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)   # [N, F, H, W]
        return torch.cat([x, y], dim=1)
