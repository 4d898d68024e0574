"""What goes into an exported graph: one module per kind of model, whose positional inputs are
the graph's inputs, plus the few swaps that make a generator traceable with a dynamic batch.

- LatentGraph: z [N, z_dim] (and c [N, c_dim] one-hot), psi [P] (P = 1 or N) -> images, or with
  `ws` input the final W+ latents [N, num_ws, w_dim] -> images. Truncation is the studio's
  (trainer.latents.truncate: lerp(centre, w, psi) on layers [0, cutoff)); the centre is w_avg, or
  the class centre the studio estimates (LatentMapper.class_means) selected by c.
- ZGraph: DCGAN / MLP, z (and c) -> images; they have no W space, so no psi.
- TranslationGraph: Pix2Pix / CycleGAN, image [N, C_in, R, R] in [-1, 1] -> translated image.

StyleGAN2 per-layer noise is either the model's stored maps (baked into the file as constants)
or one input per layer `noise_<layer>` [M, 1, r, r] (M = 1 or N), swapped in for the stored map
by trainer.latents.noise_override. StyleGAN3's input transform [3, 3] can be an input
`transform` (NVlabs' meaning: the inverse of the image transform; one matrix for the batch).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.latents import has_input_transform, noise_layers, noise_override


def noise_input_name(layer: str) -> str:
    """The graph input of a synthesis layer's noise map: `b8.conv0` -> `noise_b8_conv0`."""
    return "noise_" + layer.replace(".", "_")


class LatentGraph(nn.Module):
    def __init__(self,
                 G: nn.Module,                      # a style-based generator (num_ws > 0)
                 space: str = "z",                  # "z": z (and c) and psi in; "ws": final W+ in
                 noise_inputs: bool = False,        # per-layer noise maps as inputs (else the stored maps)
                 transform_input: bool = False,     # StyleGAN3: the input transform as an input
                 class_centers: torch.Tensor | None = None,  # [c_dim, w_dim]: truncate toward c's centre; None = w_avg
                 cutoff: int | None = None,         # truncate layers [0, cutoff); None = all
                 ):
        super().__init__()
        self.G, self.space, self.cutoff = G, space, cutoff
        self.noise_names = list(noise_layers(G)) if noise_inputs else []   # from the lowest resolution up
        self.transform_input = transform_input and has_input_transform(G)
        self.register_buffer("class_centers", class_centers if class_centers is not None else None)

    def input_names(self) -> list[str]:
        names = ["ws"] if self.space == "ws" else ["z"] + (["c"] if self.G.c_dim else []) + ["psi"]
        return names + (["transform"] if self.transform_input else []) + [noise_input_name(n) for n in self.noise_names]

    def example_inputs(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Inputs of the right shapes for tracing (`batch` rows)."""
        G = self.G
        if self.space == "ws":
            inputs = [torch.randn(batch, G.num_ws, G.w_dim)]
        else:
            inputs = [torch.randn(batch, G.z_dim)]
            if G.c_dim:
                inputs.append(torch.eye(G.c_dim)[torch.arange(batch) % G.c_dim])
            inputs.append(torch.full([1], 0.7))
        if self.transform_input:
            inputs.append(torch.eye(3))
        layers = noise_layers(G)
        inputs += [torch.randn(batch, 1, *layers[n].noise_const.shape[-2:]) for n in self.noise_names]
        return tuple(inputs)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {"ws": {0: "batch"}} if self.space == "ws" else {"z": {0: "batch"}, "psi": {0: "psi_batch"}}
        if self.G.c_dim and self.space == "z":
            axes["c"] = {0: "batch"}
        axes.update({noise_input_name(n): {0: f"{noise_input_name(n)}_batch"} for n in self.noise_names})
        return axes

    def truncated(self, z: torch.Tensor, c: torch.Tensor | None, psi: torch.Tensor) -> torch.Tensor:
        """Mapped and truncated ws [N, num_ws, w_dim]; psi [P] per image (P = N) or for all (P = 1)."""
        ws = self.G.mapping(z, c)
        center = self.G.w_avg if self.class_centers is None else c @ self.class_centers   # [w_dim] or [N, w_dim]
        center = center.reshape(-1, 1, ws.shape[2])
        cutoff = ws.shape[1] if self.cutoff is None else self.cutoff
        head = center + psi.reshape(-1, 1, 1) * (ws[:, :cutoff] - center)   # lerp(center, w, psi)
        return head if cutoff == ws.shape[1] else torch.cat([head, ws[:, cutoff:]], dim=1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        inputs = list(inputs)
        if self.space == "ws":
            ws = inputs.pop(0)
        else:
            z = inputs.pop(0)
            c = inputs.pop(0) if self.G.c_dim else None
            ws = self.truncated(z, c, inputs.pop(0))
        transform = inputs.pop(0) if self.transform_input else None
        with noise_override(self.G, dict(zip(self.noise_names, inputs))), _swapped_transform(self.G, transform):
            return self.G.synthesis(ws, noise_mode="const")


class ZGraph(nn.Module):
    """DCGAN / MLP: z [N, z_dim] (and c [N, c_dim] one-hot) -> images [N, C, H, W] (MLP: points [N, 2])."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def input_names(self) -> list[str]:
        return ["z"] + (["c"] if self.G.c_dim else [])

    def example_inputs(self, batch: int) -> tuple[torch.Tensor, ...]:
        z = torch.randn(batch, self.G.z_dim)
        return (z, torch.eye(self.G.c_dim)[torch.arange(batch) % self.G.c_dim]) if self.G.c_dim else (z,)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch"} for name in self.input_names()}

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z, c)


class TranslationGraph(nn.Module):
    """Pix2Pix / CycleGAN in one direction: image [N, C_in, R, R] in [-1, 1] -> [N, C_out, R, R]."""

    def __init__(self, G: nn.Module, direction: str):
        super().__init__()
        self.G, self.direction = G, direction

    def input_names(self) -> list[str]:
        return ["image"]

    def example_inputs(self, batch: int) -> tuple[torch.Tensor, ...]:
        from trainer.translation import input_channels
        r = self.G.img_resolution
        return (torch.rand(batch, input_channels(self.G, self.direction), r, r) * 2 - 1,)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"image": {0: "batch"}}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.G.translate(image, self.direction)


@contextlib.contextmanager
def _swapped_transform(G, transform: torch.Tensor | None):
    """StyleGAN3's stored input transform replaced by the graph's input while synthesis runs (the
    tensor itself, where trainer.latents.input_transform copies values into the buffer: a trace
    must see the input flow in)."""
    if transform is None:
        yield
        return
    layer = G.synthesis.input
    saved = layer.transform
    try:
        layer.transform = transform
        yield
    finally:
        layer.transform = saved


# ---- making the generators traceable with a dynamic batch ----
def _shared_modulated_conv2d(x, weight, styles, demodulate, input_gain):
    """StyleGAN3's modulated convolution (trainer.models.stylegan3_ops.modulated_conv2d) computed by
    scaling the activations around one shared convolution: the same product (to float rounding),
    but no convolution whose group count is the batch size, which ONNX would fix at the traced batch."""
    n, i = styles.shape
    w = weight.to(x.dtype)
    s = styles.to(x.dtype)
    if demodulate:   # the same pre-normalisation, so the same numbers reach the demodulation
        w = w * w.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    x = x * (s * input_gain.to(x.dtype).expand(n, i))[:, :, None, None]
    x = F.conv2d(x, w, padding=w.shape[-1] - 1)
    if demodulate:   # 1 / ||w * s|| per sample and output map, without forming [N, O, I, k, k]
        x = x * ((s.square() @ w.square().sum(dim=[2, 3]).t()) + 1e-8).rsqrt()[:, :, None, None]
    return x


def _outside_trace(fn, *args, **kwargs):
    """fn(*args) evaluated with tracing off: the result enters the graph as a constant."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        return fn(*args, **kwargs)
    finally:
        torch._C._set_tracing_state(state)


class _TraceableFunctional:
    """torch.nn.functional as the StyleGAN op modules see it while tracing. Their FIR filters are
    depthwise convolutions whose kernel is the filter expanded over `x.shape[1]` channels; traced,
    that size is a graph value, and ONNX needs a convolution's kernel shape fixed. The kernel
    depends on no input, so it is evaluated once and stored as a constant, as is StyleGAN3's
    sampling grid (affine_grid has no ONNX op before opset 20)."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def _fixed_kernel(conv):
        def call(x, weight, *args, **kwargs):
            groups = kwargs.get("groups", args[4] if len(args) > 4 else 1)
            if weight.shape[1] == 1 and groups == x.shape[1]:   # a depthwise FIR kernel
                weight = _outside_trace(torch.Tensor.clone, weight)
            return conv(x, weight, *args, **kwargs)
        return call

    conv2d = staticmethod(_fixed_kernel(F.conv2d))
    conv_transpose2d = staticmethod(_fixed_kernel(F.conv_transpose2d))

    @staticmethod
    def affine_grid(*args, **kwargs):
        return _outside_trace(F.affine_grid, *args, **kwargs)


@contextlib.contextmanager
def traceable():
    """While the block runs: StyleGAN2 modulated convolutions always take their shared-convolution
    path (the fused one groups by batch size), StyleGAN3's likewise, and the FIR kernels and
    StyleGAN3's sampling grid enter the graph as constants. The same sums up to float rounding
    (the tests hold onnxruntime within 1e-3 of the normal path; ~1e-5 measured). The model files
    are not edited: their module globals are swapped and restored afterwards, so this is not
    thread-safe: export on the thread that renders (the studio's worker does)."""
    from trainer.models import nvlabs_ops, stylegan3, stylegan3_ops
    saved = nvlabs_ops.EXECUTION, stylegan3.modulated_conv2d, [m.F for m in (nvlabs_ops, stylegan3, stylegan3_ops)]
    nvlabs_ops.EXECUTION = "shared"
    stylegan3.modulated_conv2d = _shared_modulated_conv2d
    for module in (nvlabs_ops, stylegan3, stylegan3_ops):
        module.F = _TraceableFunctional()
    try:
        yield
    finally:
        nvlabs_ops.EXECUTION, stylegan3.modulated_conv2d, functional = saved
        for module, f in zip((nvlabs_ops, stylegan3, stylegan3_ops), functional):
            module.F = f


__all__ = ["LatentGraph", "TranslationGraph", "ZGraph", "noise_input_name", "traceable"]
