"""The renderer: owns one generator on one device and turns render requests into uint8 images.

Everything here runs on the worker thread in the app (or directly in scripts and tests). Requests
and results are frozen dataclasses of plain values and numpy arrays, so they can cross threads;
tensors never leave this module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from trainer.device import pick_device
from trainer.images import make_grid, to_uint8, to_uint8_nchw
from trainer.latents import (LatentMapper, LatentState, fitted_noise, input_transform, mix_layers, noise_override,
                             sample_z)
from trainer.models.blend import BlendSpec

from .cuda_graphs import GraphedSynthesis, graphs_wanted
from .frame_timing import FrameTiming, StageClock
from .layers import LayerCapture, LayerChoice, LayerView
from .model_info import ModelInfo, latent_model_info, translation_model_info
from .render_settings import PROBE_SEEDS, Tuning, machine_key, probing_enabled, tunable

POINT_SAMPLES = 2000        # points drawn per render for 2-D point models
GRID_GAP_GREY = 96          # the lines between grid cells, visible against black backgrounds
GRID_CORNER_GREY = 48       # the empty top-left cell of the mixing grid

Progress = Callable[[float, str], None]  # (fraction 0-1, message); may raise Cancelled


class Cancelled(Exception):
    """Raised by a progress callback when the user cancels a long job."""


def _no_progress(fraction: float, message: str) -> None:
    pass


GRID_PHOTO_PLACES = ("", "row", "column")   # where an inverted photo joins the mixing grid ("" = not at all)


@dataclass(frozen=True, eq=False)
class MixingGrid:
    """What to render besides the latent itself: a style-mixing grid of row x column seeds, with
    an inverted photo's W+ as an extra first row or first column."""
    row_seeds: tuple[int, ...]            # rows keep their unmixed layers
    col_seeds: tuple[int, ...]            # columns give the layers the latent's mix_mask picks
    photo_ws: np.ndarray | None = None    # [num_ws, w_dim] the inverted photo's W+; None = no photo
    photo_as: str = ""                    # "row" | "column": where the photo goes; "" = not shown
    photo_noise: Mapping[str, np.ndarray] | None = None  # the noise maps fitted with photo_ws (layer -> [H, W])

    @property
    def rows(self) -> tuple[int | None, ...]:
        """The grid's row sources top to bottom: a seed, or None for the photo."""
        return ((None,) if self.shows_photo("row") else ()) + tuple(self.row_seeds)

    @property
    def cols(self) -> tuple[int | None, ...]:
        """The grid's column sources left to right: a seed, or None for the photo."""
        return ((None,) if self.shows_photo("column") else ()) + tuple(self.col_seeds)

    def shows_photo(self, place: str) -> bool:
        return self.photo_ws is not None and self.photo_as == place


@dataclass(frozen=True)
class RenderRequest:
    """A latent and what to draw of it: one image, a mixing grid, or a batch of frames."""
    request_id: int                       # increases; a result older than the one shown is dropped
    generation: int                       # ModelInfo.generation it was built for
    latent: LatentState = LatentState()   # the image (and the grid's truncation, class and mask)
    grid: MixingGrid | None = None        # render the mixing grid instead of one image
    frames: tuple[LatentState, ...] = ()  # render these as a batch instead (timelines)
    blend: BlendSpec | None = None        # draw the open model blended with its partner so; None = as opened
    layer: LayerChoice | None = None      # also draw this synthesis layer (single images; engine.layers)

    @property
    def is_grid(self) -> bool:
        return self.grid is not None and bool(self.grid.rows and self.grid.cols)


@dataclass(frozen=True)
class RenderResult:
    request_id: int
    image: np.ndarray | None = None       # uint8 [H, W, 3]
    milliseconds: float = 0.0             # worker time from request to host array
    z: np.ndarray | None = None           # [z_dim] (single image)
    ws: np.ndarray | None = None          # [num_ws, w_dim] as rendered (truncated, offsets added)
    mixed_ws: np.ndarray | None = None    # [num_ws, w_dim] untruncated W+ after mixing
    cell_ws: np.ndarray | None = None     # grid: [rows, cols, num_ws, w_dim] untruncated mixes
    cell_size: int = 0                    # grid: pixels per cell including the 1-pixel gap
    frames: np.ndarray | None = None      # frames: uint8 [N, H, W, 3]
    error: str = ""
    is_grid: bool = False
    layer: LayerView | None = None        # the chosen layer's channels and spectrum
    settings: str = ""                    # the render settings it was drawn with, once measured
    timing: FrameTiming | None = None     # single images: where the milliseconds went (engine.frame_timing)


class Renderer:
    def __init__(self,
                 device: str = "auto",    # "auto" picks cuda, then mps, then cpu
                 half: bool = False,      # float16 synthesis on GPU devices (ignored on cpu)
                 compile: bool = False,   # torch.compile synthesis (CUDA graphs on GPUs): the first render
                                          # of each batch shape waits for the compiler, later ones run faster
                 ):
        self.device = pick_device(device)
        self.half = half and self.device != "cpu"
        self.tuning = Tuning(compile, self.device)   # precision, format, threads, compiled (engine.render_settings)
        self.G: torch.nn.Module | None = None
        self.mapper: LatentMapper | None = None   # the one path from latent settings to tensors
        self.info: ModelInfo | None = None
        self.generation = 0
        self.partner = None   # a trainer.models.blend.LiveBlend of the open model with a second one (engine.blending)
        self._grid_headers: tuple = (None, None)   # (what they depend on, uint8 [C + R, H, W, 3])
        self.layer_capture = LayerCapture()   # the layer view's hook, kept while its choice stays
        self._loop_parts()

    # ---- loading ----
    def load(self, path, progress: Progress = _no_progress) -> ModelInfo:
        """Open a checkpoint (file or run directory). The previous model stays in use until the
        new one is ready, so a failed or cancelled load changes nothing. Raises CheckpointError."""
        from trainer import load_generator
        from trainer.files import file_sha256
        progress(0.05, f"reading {path}")
        G = load_generator(path, device="cpu")
        sha256 = file_sha256(G.checkpoint_info["path"])
        if getattr(G, "translates", False):   # Pix2Pix / CycleGAN: no latent to map or render
            return self._load_translation(G.to(self.device), sha256, progress)
        progress(0.3, "preparing the model")
        mapper = LatentMapper(G, "cpu")
        if G.c_dim and G.num_ws:   # class centres now, so the first render with them does not stall
            mapper.class_means(lambda f, msg: progress(0.3 + 0.6 * f, msg))
        G = G.to(self.device)
        if self.half and G.num_ws:
            G.synthesis.half()
        mapper = self._mapper_on_device(G, mapper)
        info = latent_model_info(G, sha256, self.generation + 1)
        self.G, self.mapper, self.info, self.generation, self.partner = G, mapper, info, info.generation, None
        self.tuning.reset()
        progress(0.95, "first render")
        self.render(RenderRequest(request_id=0, generation=self.generation))  # warm-up
        progress(1.0, "ready")
        return info

    def _load_translation(self, G, sha256: str, progress: Progress) -> ModelInfo:
        info = translation_model_info(G, sha256, self.generation + 1)
        self.G, self.mapper, self.info, self.generation, self.partner = G, None, info, info.generation, None
        progress(1.0, "ready")
        return info

    def _mapper_on_device(self, G, mapper: LatentMapper) -> LatentMapper:
        means = mapper._class_means
        return LatentMapper(G, self.device, None if means is None else means.to(self.device))

    @property
    def class_means(self) -> torch.Tensor | None:
        """[c_dim, w_dim] the class centres of the open conditional model, else None."""
        if self.mapper is None or not (self.G.c_dim and self.G.num_ws):
            return None
        return self.mapper.class_means()

    def set_device(self, device: str, half: bool) -> None:
        device = pick_device(device)
        self.device, self.half = device, half and device != "cpu"
        self.tuning = Tuning(self.tuning.force_compile, device)
        self._loop_parts()
        if self.G is not None:
            self.G = self.G.float().to(device)
            if self.half and self.G.num_ws:
                self.G.synthesis.half()
            if self.mapper is not None:   # image-to-image models have none
                self.mapper = self._mapper_on_device(self.G, self.mapper)
            if self.partner is not None:
                self.partner.to(device)

    def timeline_renderer(self, timeline):
        """A trainer.film.render.TimelineRenderer of `timeline` on the open model, at the render
        precision; TimelineError when the timeline does not fit the model."""
        from trainer.film.render import TimelineRenderer
        return TimelineRenderer(self.G, timeline, self.mapper, torch.float16 if self.half else torch.float32)

    def _loop_parts(self) -> None:
        """The live loop's per-device parts: its stage clock, and CUDA graphs where CUDA exists."""
        self.clock = StageClock(self.device)
        self.graphs = GraphedSynthesis() if graphs_wanted(self.device) else None

    def _synthesize(self, ws: torch.Tensor, noise_mode: str, noise: dict | None = None,
                    transform: np.ndarray | None = None) -> np.ndarray:
        """Final ws [N, num_ws, w_dim] -> uint8 [N, H, W, 3], all under one StyleGAN3 input transform."""
        return to_uint8(self._images(ws, noise_mode, noise, transform))

    def _images(self, ws: torch.Tensor, noise_mode: str, noise: dict | None = None,
                transform: np.ndarray | None = None, graph: bool = False) -> torch.Tensor:
        """Final ws -> images [N, C, H, W] on the device; `graph`: the live image, replayed from a
        CUDA graph once its shape has settled (engine.cuda_graphs)."""
        with input_transform(self.G, transform):
            dtype = torch.float16 if self.half else torch.float32
            if noise:   # an inverted photo's fitted noise maps: swapped in for this call, so eager
                with noise_override(self.G, {k: v.to(self.device, dtype) for k, v in noise.items()}):
                    return self.G.synthesis(ws.to(dtype), noise_mode=noise_mode)
            armed = self.layer_capture.armed   # hooks run eager and in fp32
            synthesis = self.tuning.synthesis(self.G, armed)
            with self.tuning.autocast(armed):
                if graph and self.graphs is not None and not armed and synthesis is self.G.synthesis \
                        and noise_mode != "random":
                    key = (id(synthesis), self.generation, self.device, self.half, self.tuning.settings,
                           tuple(ws.shape), dtype, noise_mode)
                    images = self.graphs.run(synthesis, ws.to(dtype), noise_mode, key)
                    if images is not None:
                        return images
                if synthesis is not self.G.synthesis:
                    try:
                        return synthesis(ws.to(dtype), noise_mode=noise_mode)
                    except Exception:  # noqa: BLE001 - a compiler that fails here: render eager from now on
                        self.tuning.broken(self.G)
                return self.G.synthesis(ws.to(dtype), noise_mode=noise_mode)

    def tune(self, progress: Progress = _no_progress) -> tuple[str, bool]:
        """Switch to the fastest render settings measured for the open model on this CPU or GPU (read from
        the cache, or measured now: engine.render_settings) -> (what they are for the status bar,
        or "" when not measured; whether images now differ from fp32)."""
        if tunable(self.device, self.half) and self.G is not None and self.G.num_ws and probing_enabled():
            with torch.inference_mode():
                ws = [self.mapper.finish(self.mapper.untruncated_ws([s]), [s]) for s in map(LatentState, range(PROBE_SEEDS))]
            key = f"{machine_key(self.device)} | {self.info.sha256 or self.info.path} | {self.device}"   # per machine, model
            self.tuning.tune(self.G, ws, key, progress)
        settings = self.tuning.settings
        return settings.describe(self.device) if settings.measured else "", settings.bf16 or settings.fp16

    # ---- rendering ----
    def render(self, req: RenderRequest) -> RenderResult:
        """Request -> result; errors come back as text in the result, never raised."""
        start = time.perf_counter()
        clock, timing = self.clock, None
        clock.start()
        try:
            if self.G is None:
                raise RuntimeError("no model is open")
            if req.generation != self.generation:
                raise RuntimeError("request was built for a model that is no longer open")
            if self.mapper is None:
                raise RuntimeError("this image-to-image model draws from pictures, not latents: use the Translate panel")
            if req.blend is not None and self.partner is None:
                raise RuntimeError("no second model is open to blend with")
            if self.partner is not None:   # the weights of the blend asked for, written in place
                self.partner.apply(self.G, req.blend)
            if self.tuning.trial_ready:     # a compiled synthesis finished in the background: timed now
                self.tuning.try_compiled(self.G)
            with torch.inference_mode():
                if req.frames:
                    fields = self._render_frames(req.frames)
                elif req.is_grid:
                    fields = self._render_grid(req)
                else:
                    fields = self.layer_capture.render_with(self.G, req.layer,
                                                            lambda: self._render_one(req.latent, clock))
                    timing = clock.timing()
        except Exception as exc:  # shown in the status bar; the window stays usable
            return RenderResult(request_id=req.request_id, error=f"{type(exc).__name__}: {exc}",
                                is_grid=req.is_grid)
        ms = (time.perf_counter() - start) * 1000
        settings = self.tuning.settings.describe(self.device) if self.tuning.settings.measured else ""
        return RenderResult(request_id=req.request_id, milliseconds=ms, is_grid=req.is_grid, settings=settings,
                            timing=timing, **fields)

    def _render_one(self, state: LatentState, clock: StageClock) -> dict:
        """One image, its stages marked on `clock`: one host copy at the end, of the image and the
        latents the panels show."""
        G, mapper = self.G, self.mapper
        if G.img_resolution == 0:
            return self._render_points(state)
        z = mapper.z([state])
        clock.mark("request")
        if not G.num_ws:
            image, z_host = clock.to_host(uint8_nhwc(G(z, mapper.labels([state]))), z[0])
            return {"image": image[0], "z": z_host}
        mixed = mapper.untruncated_ws([state])
        final = mapper.finish(mixed, [state])
        clock.mark("mapping")
        images = self._images(final, state.noise_mode, fitted_noise(G, [state]), state.transform, graph=True)
        clock.mark("synthesis")
        image, z_host, ws, mixed_ws = clock.to_host(uint8_nhwc(images), z[0], final[0].float(), mixed[0])
        return {"image": image[0], "z": z_host, "ws": ws, "mixed_ws": mixed_ws}

    def _render_frames(self, states: tuple[LatentState, ...]) -> dict:
        """A batch of frames -> uint8 [N, H, W, 3] (the states share the first's noise mode)."""
        if self.G.img_resolution == 0:
            raise ValueError("frames need an image model")
        dtype = torch.float16 if self.half else torch.float32
        frames = to_uint8(self.mapper.images(list(states), dtype))
        return {"image": frames[-1], "frames": frames}

    def _render_grid(self, req: RenderRequest) -> dict:
        """(rows + 1) x (cols + 1) mosaic: the top row shows the column sources, the left column the
        row sources, and cell (r, c) the row source with the masked layers of the column source.
        A source is a seed, or the inverted photo's W+ (MixingGrid.photo_ws). Every image takes the
        latent's class, truncation, offsets and StyleGAN3 transform."""
        G, mapper, latent = self.G, self.mapper, req.latent
        if not G.num_ws:
            raise ValueError("style mixing needs a model with a W space")
        rows, cols = list(req.grid.rows), list(req.grid.cols)
        R, C, L, W = len(rows), len(cols), G.num_ws, G.w_dim
        photo = req.grid.photo_ws
        if photo is not None and photo.shape != (L, W):
            raise ValueError(f"the inverted photo's W+ has shape {photo.shape}, the model needs ({L}, {W})")

        photo_noise = dict(req.grid.photo_noise or {}) or None

        def source(seed: int | None) -> LatentState:   # None: the photo, drawn from its explicit W+ and noise
            return latent.replace(mix_mask=(), ws=photo, noise=photo_noise) if seed is None else \
                latent.replace(seed=seed, mix_mask=(), ws=None, noise=None)

        seed_states = [source(s) for s in cols + rows]
        mapped = mapper.untruncated_ws(seed_states)                    # [C + R, L, W]
        ws_cols, ws_rows = mapped[:C], mapped[C:]
        mask = latent.mix_mask if len(latent.mix_mask) == L else (False,) * L
        cells = mix_layers(ws_rows[:, None].expand(R, C, L, W).reshape(R * C, L, W),
                           ws_cols[None].expand(R, C, L, W).reshape(R * C, L, W), mask)
        # a cell with the photo on either side draws with the photo's noise, as it does once clicked
        cell_states = [source(r).replace(noise=photo_noise if None in (r, c) else None) for r in rows for c in cols]
        # The header images (the seeds unmixed) do not depend on the mask: while only the mask
        # changes, they are reused rather than synthesised again.
        header_key = self._grid_header_key(latent, rows, cols, photo, photo_noise)
        if header_key is not None and self._grid_headers[0] == header_key:
            headers = self._grid_headers[1]
            cell_images = self._synthesize(mapper.finish(cells, cell_states), latent.noise_mode,
                                           fitted_noise(G, cell_states), latent.transform)
            images = np.concatenate([headers, cell_images])
        else:
            everything = torch.cat([mapped, cells])
            images = self._synthesize(mapper.finish(everything, seed_states + cell_states), latent.noise_mode,
                                      fitted_noise(G, seed_states + cell_states), latent.transform)
            self._grid_headers = (header_key, images[:C + R])
        corner = np.full_like(images[0], GRID_CORNER_GREY)
        tiles = [corner, *images[:C]]
        for r in range(R):
            tiles += [images[C + r], *images[C + R + r * C:C + R + (r + 1) * C]]
        image = make_grid(np.stack(tiles), C + 1, pad=1, pad_value=GRID_GAP_GREY)
        return {"image": image, "cell_ws": cells.reshape(R, C, L, W).cpu().numpy(),
                "cell_size": G.img_resolution + 1}

    def _grid_header_key(self, latent: LatentState, rows, cols, photo: np.ndarray | None = None,
                         photo_noise: dict | None = None):
        """What the grid's header images depend on (None: never reuse, e.g. random noise)."""
        if latent.noise_mode == "random":
            return None
        offset = None if latent.w_offset is None else latent.w_offset.tobytes()
        photo = None if photo is None or None not in (*rows, *cols) else \
            (photo.tobytes(), tuple((k, v.tobytes()) for k, v in sorted((photo_noise or {}).items())))
        blend = None if self.partner is None else (id(self.partner), self.partner.spec)
        return (self.generation, blend, self.device, self.half, tuple(rows), tuple(cols), latent.class_index,
                latent.effective_psi, latent.cutoff, latent.truncation_center, latent.noise_mode, offset,
                latent.offset_layers, photo, latent.transform.tobytes())

    def _render_points(self, state: LatentState) -> dict:
        """2-D point models: a scatter of POINT_SAMPLES points drawn from the seed, with the one
        Z truncation (resampling beyond the threshold)."""
        from trainer.images import scatter_image
        z = sample_z(state.seed, self.G.z_dim, state.z_threshold, count=POINT_SAMPLES)
        labels = self.mapper.labels([state] * POINT_SAMPLES)
        points = self.G(torch.from_numpy(z).to(self.device), labels).cpu().numpy()
        return {"image": scatter_image(points, size=256), "z": z[0]}

    def compute_directions(self, num_samples: int = 5000, num_components: int = 8, progress: Progress = _no_progress,
                           seed: int = 0, cache: bool = True) -> dict[str, np.ndarray]:
        """The open model's latent directions (engine.directions), cached per checkpoint."""
        from .directions import compute_directions
        return compute_directions(self.G, self.device, self.class_means, self.info.class_names if self.info else (),
                                  self.info.sha256 if self.info else "", num_samples, num_components, progress, seed, cache)


def uint8_nhwc(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, 3] on the same device (grey as RGB), ready for one copy."""
    x = to_uint8_nchw(images)
    return (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).permute(0, 2, 3, 1).contiguous()
