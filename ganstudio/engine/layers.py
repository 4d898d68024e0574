"""The layer view (Qt-free): any synthesis layer's feature maps and their 2-D Fourier spectrum,
drawn on the render worker from the same request as the image, so they follow every slider.

The worker's renderer keeps one `LayerCapture`: a forward hook on the chosen layer, registered
when the choice changes (not per frame) and let go when the view closes. After a single-image
render it turns the captured feature maps (still on the device) into two uint8 RGB pictures,
the channels (a grid of all of them, or one) and the power spectrum, and only those numpy
arrays cross to the GUI (`RenderResult.layer`). The controller side (`LayerViewControl`) lists
a model's layers on the worker and says which layer the next requests ask for.

Layers are the synthesis modules that carry feature maps: the convolution layers and ToRGB of
each StyleGAN2 block (exact `stylegan2`: `b16.conv0`; the compact model: `blocks.2.conv0`), and
StyleGAN3's input and its layers (`input`, `L3_52_512`, ..., the last one ToRGB)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

LAYER_CLASSES = {"SynthesisInput": "input", "SynthesisLayer": "conv", "ToRGBLayer": "torgb"}
LAYER_JOB = "layers"
GRID_GAP = 1                # pixels between the channels of the grid
GRID_GAP_GREY = 0.35        # 0-1: the gap between cells, distinct from a channel's black and white
MAX_GRID_SIDE = 2048        # px: larger grids are drawn with each map averaged down by a whole factor
SPECTRUM_RANGE_DB = 40.0    # the spectrum shows mean power -40 dB (black) to +40 dB (white)
KAISER_BETA = 8.0           # the window taken before the transform (NVlabs' visualizer uses 8), so the
                            # edges of a map do not smear into every frequency
# the spectrum's colour map: black, purple, red, yellow, white (an "inferno"-like ramp)
SPECTRUM_COLOURS = np.array([[0, 0, 0], [60, 15, 110], [190, 50, 70], [250, 160, 20], [255, 255, 230]], np.float32)


@dataclass(frozen=True)
class LayerInfo:
    """One synthesis layer of the open model (plain values for the widgets)."""
    name: str                # the module under G.synthesis ("b16.conv0", "blocks.2.torgb", "L3_52_512")
    kind: str                # "input", "conv" or "torgb"
    channels: int            # feature maps it outputs
    height: int              # pixels of each map (StyleGAN3: its margin included)
    width: int

    @property
    def label(self) -> str:
        return f"{self.name}  ({self.channels} × {self.height}×{self.width})"


@dataclass(frozen=True)
class LayerChoice:
    """What a render request asks the layer view to draw."""
    name: str                # LayerInfo.name
    channel: int | None = None   # one channel (clamped to the layer's), or None: all of them as a grid


@dataclass(frozen=True, eq=False)
class LayerView:
    """The layer's pictures for one rendered image (numpy only; crosses threads)."""
    name: str
    channel: int | None       # as chosen (clamped), None for the grid
    channels: int             # of the layer
    features: np.ndarray | None = None   # uint8 [H, W, 3]: the channels, each normalised to black-white
    spectrum: np.ndarray | None = None   # uint8 [h, w, 3]: log power, zero frequency at (h // 2, w // 2)
    columns: int = 1          # grid columns (cells are `cell` pixels apart, gaps included)
    cell: int = 0
    value_range: tuple[float, float] = (0.0, 0.0)   # raw values of what is shown, before normalising
    error: str = ""           # the layer could not be drawn (the image still was)


# ---- which layers a model has ----
def candidate_modules(G) -> dict[str, torch.nn.Module]:
    """name -> module of every synthesis module that outputs feature maps (registration order)."""
    synthesis = getattr(G, "synthesis", None)
    if synthesis is None or not getattr(G, "num_ws", 0):
        return {}
    return {name: m for name, m in synthesis.named_modules() if type(m).__name__ in LAYER_CLASSES}


@torch.inference_mode()
def list_layers(G) -> tuple[LayerInfo, ...]:
    """The open model's layers in the order a forward pass runs them, with their output shapes
    (one synthesis pass at w_avg finds them); () for models without synthesis layers."""
    modules = candidate_modules(G)
    if not modules:
        return ()
    found: list[LayerInfo] = []
    handles = [m.register_forward_hook(_shape_recorder(name, m, found)) for name, m in modules.items()]
    try:
        dtype = next(G.synthesis.parameters()).dtype
        ws = G.mapping.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1).to(dtype)
        G.synthesis(ws, noise_mode="const")
    finally:
        for handle in handles:
            handle.remove()
    return tuple(found)


def _shape_recorder(name: str, module, found: list) -> Callable:
    def record(_module, _inputs, output) -> None:
        _, c, h, w = output.shape   # [NCHW]
        kind = "torgb" if getattr(module, "is_torgb", False) else LAYER_CLASSES[type(module).__name__]   # StyleGAN3's last
        found.append(LayerInfo(name, kind, int(c), int(h), int(w)))
    return record


# ---- capture on the worker ----
class LayerCapture:
    """One forward hook on the chosen layer, kept across frames until the choice changes."""

    def __init__(self):
        self.hooks_registered = 0     # how many times a hook was put on a layer (tests, benchmark)
        self.armed = False            # keep the next output (only single-image renders)
        self._module = None
        self._handle = None
        self._output: torch.Tensor | None = None

    def render_with(self, G, choice: LayerChoice | None, render: Callable[[], dict]) -> dict:
        """Run `render` (a single-image render -> result fields) with the chosen layer captured;
        adds "layer": LayerView to the fields. No choice: the hook is let go, nothing added."""
        if choice is None:
            self.release()
            return render()
        try:
            self._hook(G, choice.name)
        except (AttributeError, KeyError):
            return {**render(), "layer": LayerView(choice.name, choice.channel, 0,
                                                   error=f"the open model has no layer {choice.name}")}
        self.armed, self._output = True, None
        try:
            fields = render()
        finally:
            self.armed = False
        output, self._output = self._output, None
        if output is None:
            return {**fields, "layer": LayerView(choice.name, choice.channel, 0, error="the layer did not run")}
        return {**fields, "layer": draw_layer(choice, output[0])}

    def _hook(self, G, name: str) -> None:
        module = G.synthesis.get_submodule(name)   # AttributeError for a name this model lacks
        if type(module).__name__ not in LAYER_CLASSES:
            raise KeyError(name)
        if module is not self._module:   # a new choice, or the same name in a newly opened model
            self.release()
            self._handle = module.register_forward_hook(self._keep)
            self._module = module
            self.hooks_registered += 1

    def _keep(self, _module, _inputs, output) -> None:
        if self.armed:
            self._output = output   # stays on the device; drawn after the render

    def release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = self._module = None


# ---- drawing (torch, on the render device) ----
def draw_layer(choice: LayerChoice, maps: torch.Tensor) -> LayerView:
    """maps [C, H, W] (one image's feature maps) -> the LayerView the choice asks for."""
    maps = maps.float()
    channels = maps.shape[0]
    channel = None if choice.channel is None else min(max(int(choice.channel), 0), channels - 1)
    shown = maps if channel is None else maps[channel:channel + 1]
    grid, columns, cell = channel_grid(normalise_channels(shown))
    return LayerView(choice.name, channel, channels, features=grey_rgb(grid), spectrum=spectrum_rgb(shown),
                     columns=columns, cell=cell, value_range=(float(shown.min()), float(shown.max())))


def normalise_channels(maps: torch.Tensor) -> torch.Tensor:
    """[C, H, W] -> [C, H, W] in 0-1, each channel from its own minimum to maximum (a flat one is 0.5)."""
    lo = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - lo
    return torch.where(span > 0, (maps - lo) / span.clamp_min(1e-12), torch.full_like(maps, 0.5))


def channel_grid(maps: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """[C, H, W] in 0-1 -> ([rows * cell - gap, columns * cell - gap] grid, columns, cell): the
    channels left to right, top to bottom, in a near-square grid; one channel is returned as is."""
    c, h, w = maps.shape
    if c == 1:
        return maps[0], 1, h
    columns = math.ceil(math.sqrt(c))
    rows = math.ceil(c / columns)
    factor = max(1, math.ceil(columns * (max(h, w) + GRID_GAP) / MAX_GRID_SIDE))
    if factor > 1:
        maps = F.avg_pool2d(maps[None], factor, ceil_mode=True)[0]
        h, w = maps.shape[1:]
    padded = F.pad(maps, (0, GRID_GAP, 0, GRID_GAP), value=GRID_GAP_GREY)
    padded = torch.cat([padded, padded.new_full((rows * columns - c, h + GRID_GAP, w + GRID_GAP), GRID_GAP_GREY)])
    grid = padded.reshape(rows, columns, h + GRID_GAP, w + GRID_GAP).permute(0, 2, 1, 3)
    grid = grid.reshape(rows * (h + GRID_GAP), columns * (w + GRID_GAP))
    return grid[:-GRID_GAP, :-GRID_GAP], columns, h + GRID_GAP


def power_spectrum_db(maps: torch.Tensor, beta: float = KAISER_BETA) -> torch.Tensor:
    """[C, H, W] -> [H, W] power in dB relative to its mean, summed over the channels, each with
    its mean removed and a Kaiser window applied; zero frequency at (H // 2, W // 2), a cosine of
    k cycles across the width peaks at columns W // 2 +- k."""
    c, h, w = maps.shape
    signal = maps.float() - maps.float().mean(dim=(1, 2), keepdim=True)
    window = torch.kaiser_window(h, periodic=False, beta=beta, device=maps.device)[:, None] * \
        torch.kaiser_window(w, periodic=False, beta=beta, device=maps.device)[None, :]
    power = torch.fft.fft2(signal * window).abs().square().sum(dim=0)
    power = torch.fft.fftshift(power)
    return 10 * torch.log10(power / power.mean().clamp_min(1e-30) + 1e-12)


def grey_rgb(image: torch.Tensor) -> np.ndarray:
    """[H, W] in 0-1 -> uint8 [H, W, 3] on the host."""
    grey = (image * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return grey[..., None].expand(-1, -1, 3).contiguous().cpu().numpy()


def spectrum_rgb(maps: torch.Tensor) -> np.ndarray:
    """[C, H, W] -> uint8 [H, W, 3]: the power spectrum through the colour map."""
    db = power_spectrum_db(maps)
    t = ((db / SPECTRUM_RANGE_DB + 1) / 2).clamp(0, 1) * (len(SPECTRUM_COLOURS) - 1)
    stops = torch.from_numpy(SPECTRUM_COLOURS).to(maps.device)
    low = t.floor().long().clamp(max=len(SPECTRUM_COLOURS) - 2)
    frac = (t - low)[..., None]
    rgb = stops[low] * (1 - frac) + stops[low + 1] * frac
    return (rgb + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


# ---- the picture a user exports ----
def layer_view_image(view: LayerView, gap: int = 8) -> np.ndarray:
    """uint8 [H, W, 3]: the channels, a black gap, the spectrum scaled up by a whole factor to
    about the channels' height (nearest neighbour)."""
    if view.features is None or view.spectrum is None:
        raise ValueError(view.error or "no layer drawn yet")
    features, spectrum = view.features, view.spectrum
    factor = max(1, features.shape[0] // spectrum.shape[0])
    spectrum = spectrum.repeat(factor, axis=0).repeat(factor, axis=1)
    height = max(features.shape[0], spectrum.shape[0])

    def padded(image: np.ndarray) -> np.ndarray:
        return np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0)))

    return np.concatenate([padded(features), np.zeros((height, gap, 3), np.uint8), padded(spectrum)], axis=1)


def export_layer_view(path, view: LayerView) -> None:
    """Save the layer view as PNG (ValueError before one was drawn)."""
    from trainer.images import save_png
    save_png(path, layer_view_image(view))


# ---- the controller's side ----
class LayerViewControl:
    """Which layer the next render requests ask for, and the open model's layer list (listed on
    the worker once per model)."""

    def __init__(self, controller):
        self.controller = controller
        self.layers: tuple[LayerInfo, ...] = ()
        self.listed_generation = -1
        self.choice: LayerChoice | None = None
        self._choice_generation = -1

    def list_layers(self, on_listed: Callable[[tuple[LayerInfo, ...]], None]) -> None:
        """The open model's layers, to `on_listed` (at once when listed for this model already)."""
        info = self.controller.info
        if info is None:
            return on_listed(())
        if self.listed_generation == info.generation:
            return on_listed(self.layers)
        generation = info.generation

        def listed(layers) -> None:
            if self.controller.info is not None and self.controller.info.generation == generation:
                self.layers, self.listed_generation = tuple(layers), generation
                on_listed(self.layers)

        self.controller.run_job(LAYER_JOB, lambda renderer, progress, preview: list_layers(renderer.G),
                                listed, message="listing the model's layers")

    def choose(self, choice: LayerChoice | None) -> None:
        """Draw this layer with every image from now on (None: stop), and render now."""
        info = self.controller.info
        self.choice, self._choice_generation = choice, (info.generation if info is not None else -1)
        if choice is not None:
            self.controller.request_render()

    def request_choice(self) -> LayerChoice | None:
        """The choice for a request to the open model (None once another model is open)."""
        info = self.controller.info
        return self.choice if info is not None and info.generation == self._choice_generation else None
