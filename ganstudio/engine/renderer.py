"""The renderer: owns one generator on one device and turns render requests into uint8 images.

Everything here runs on the worker thread in the app (or directly in scripts and tests). Requests
and results are frozen dataclasses of plain values and numpy arrays, so they can cross threads;
tensors never leave this module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .latents import mix_layers, pca_directions, seed_to_z, truncate, truncated_z

CLASS_MEAN_SAMPLES = 2000   # z per class when estimating a class's mean w
POINT_SAMPLES = 2000        # points drawn per render for 2-D point models
GRID_GAP_GREY = 96          # the lines between grid cells, visible against black backgrounds
GRID_CORNER_GREY = 48       # the empty top-left cell of the mixing grid

Progress = Callable[[float, str], None]  # (fraction 0-1, message); may raise Cancelled


class Cancelled(Exception):
    """Raised by a progress callback when the user cancels a long job."""


def _no_progress(fraction: float, message: str) -> None:
    pass


def available_devices() -> list[str]:
    """Devices this machine can render on, best first: cuda, mps, cpu."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def pick_device(requested: str = "auto") -> str:
    """"auto" -> the best available device; anything else is checked and returned."""
    devices = available_devices()
    if requested == "auto":
        return devices[0]
    if requested.split(":")[0] not in devices:
        raise ValueError(f"device {requested!r} is not available here (available: {', '.join(devices)})")
    return requested


@dataclass(frozen=True)
class ModelInfo:
    """What the widgets need to know about the open model (plain values only)."""
    path: str
    arch: str
    step: int
    kimg: float
    z_dim: int
    c_dim: int
    w_dim: int                  # 0 for models without W
    num_ws: int                 # 0 for models without W: the studio works in Z
    img_resolution: int         # 0 for 2-D point models
    img_channels: int
    class_names: tuple[str, ...]
    layer_resolutions: tuple[int, ...]   # output resolution each ws layer feeds
    dataset: str
    generation: int             # increases with each load; requests name the one they were built for

    @property
    def has_w(self) -> bool:
        return self.num_ws > 0

    @property
    def is_points(self) -> bool:
        return self.img_resolution == 0


@dataclass(frozen=True)
class RenderRequest:
    """One image (or, with row_seeds and col_seeds, a style-mixing grid) to render."""
    request_id: int                       # increases; a result older than the one shown is dropped
    generation: int                       # ModelInfo.generation it was built for
    seed: int = 0
    class_index: int | None = None        # None for unconditional models
    psi: float = 1.0
    cutoff: int | None = None
    truncation_center: str = "global"     # "global" | "class"
    noise_mode: str = "const"
    z_threshold: float = 0.0              # Z-only models: truncated-normal threshold; 0 = off
    mix_seed: int = 0
    mix_mask: tuple[bool, ...] = ()       # per ws layer, True = from mix_seed; () = no mixing
    base_ws: np.ndarray | None = None     # [num_ws, w_dim] explicit W+ instead of the seed's
    w_offset: np.ndarray | None = None    # [w_dim] added to ws layers offset_layers after truncation
    offset_layers: tuple[int, int | None] = (0, None)
    row_seeds: tuple[int, ...] = ()       # grid: rows keep their unmixed layers
    col_seeds: tuple[int, ...] = ()       # grid: columns give the masked layers

    @property
    def is_grid(self) -> bool:
        return bool(self.row_seeds and self.col_seeds)


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
    error: str = ""
    is_grid: bool = False


class Renderer:
    def __init__(self,
                 device: str = "auto",    # "auto" picks cuda, then mps, then cpu
                 half: bool = False,      # float16 synthesis on GPU devices (ignored on cpu)
                 ):
        self.device = pick_device(device)
        self.half = half and self.device != "cpu"
        self.G: torch.nn.Module | None = None
        self.info: ModelInfo | None = None
        self.class_means: torch.Tensor | None = None   # [c_dim, w_dim] mean w per class
        self.generation = 0

    # ---- loading ----
    def load(self, path, progress: Progress = _no_progress) -> ModelInfo:
        """Open a checkpoint (file or run directory). The previous model stays in use until the
        new one is ready, so a failed or cancelled load changes nothing. Raises CheckpointError."""
        from trainer import load_generator
        progress(0.05, f"reading {path}")
        G = load_generator(path, device="cpu")
        progress(0.3, "preparing the model")
        class_means = self._class_means(G, progress) if G.c_dim and G.num_ws else None
        G = G.to(self.device)
        if self.half and G.num_ws:
            G.synthesis.half()
        class_means = class_means.to(self.device) if class_means is not None else None
        ds = G.checkpoint_info.get("dataset", {})
        names = tuple(str(n) for n in ds.get("class_names", [])) if G.c_dim else ()
        if len(names) != G.c_dim:
            names = tuple(f"class {i}" for i in range(G.c_dim))
        info = ModelInfo(path=G.checkpoint_info["path"], arch=G.checkpoint_info["config"]["arch"],
                         step=G.checkpoint_info["step"], kimg=G.checkpoint_info["kimg"],
                         z_dim=G.z_dim, c_dim=G.c_dim, w_dim=getattr(G, "w_dim", 0), num_ws=G.num_ws,
                         img_resolution=G.img_resolution, img_channels=G.img_channels, class_names=names,
                         layer_resolutions=layer_resolutions(G), dataset=str(ds.get("name", "")),
                         generation=self.generation + 1)
        self.G, self.class_means, self.info, self.generation = G, class_means, info, info.generation
        progress(0.95, "first render")
        self.render(RenderRequest(request_id=0, generation=self.generation,
                                  class_index=0 if G.c_dim else None))  # warm-up
        progress(1.0, "ready")
        return info

    @torch.inference_mode()
    def _class_means(self, G, progress: Progress) -> torch.Tensor:
        rng = np.random.RandomState(12345)
        means = []
        for k in range(G.c_dim):
            z = torch.from_numpy(rng.randn(CLASS_MEAN_SAMPLES, G.z_dim).astype(np.float32))
            c = torch.full((CLASS_MEAN_SAMPLES,), k, dtype=torch.long)
            means.append(G.mapping(z, c)[:, 0].mean(dim=0))
            progress(0.3 + 0.6 * (k + 1) / G.c_dim, f"mean w of class {k + 1}/{G.c_dim}")
        return torch.stack(means)

    def set_device(self, device: str, half: bool) -> None:
        device = pick_device(device)
        self.device, self.half = device, half and device != "cpu"
        if self.G is not None:
            self.G = self.G.float().to(device)
            if self.half and self.G.num_ws:
                self.G.synthesis.half()
            if self.class_means is not None:
                self.class_means = self.class_means.to(device)

    # ---- latents ----
    def _labels(self, class_index: int | None, n: int) -> torch.Tensor | None:
        if not self.G.c_dim:
            return None
        k = 0 if class_index is None else int(class_index)
        if not 0 <= k < self.G.c_dim:
            raise ValueError(f"class {k} is out of range for a model with {self.G.c_dim} classes")
        return torch.full((n,), k, dtype=torch.long, device=self.device)

    def _z(self, seeds, threshold: float = 0.0) -> torch.Tensor:
        z = np.stack([truncated_z(s, self.G.z_dim, threshold) if threshold > 0 else seed_to_z(s, self.G.z_dim)
                      for s in seeds])
        return torch.from_numpy(z).to(self.device)

    def mapped(self, seeds, class_index: int | None) -> torch.Tensor:
        """Untruncated ws [N, num_ws, w_dim] float32 for a list of seeds."""
        return self.G.mapping(self._z(seeds), self._labels(class_index, len(seeds)))

    def _center(self, req: RenderRequest) -> torch.Tensor:
        if req.truncation_center == "class" and self.class_means is not None:
            return self.class_means[0 if req.class_index is None else req.class_index]
        return self.G.w_avg

    def _finish_ws(self, ws: torch.Tensor, req: RenderRequest) -> torch.Tensor:
        """Truncation toward the chosen center, then the direction offsets."""
        ws = truncate(ws, self._center(req), req.psi, req.cutoff)
        if req.w_offset is not None:
            start, stop = req.offset_layers
            ws = ws.clone()
            ws[:, start:stop] += torch.from_numpy(np.asarray(req.w_offset, dtype=np.float32)).to(ws.device)
        return ws

    def _to_uint8(self, img: torch.Tensor) -> np.ndarray:
        """[NCHW] in [-1, 1] -> uint8 [N, H, W, 3] on the host, converted on the device first."""
        x = (img.float() * 127.5 + 128).clamp_(0, 255).to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def _synthesize(self, ws: torch.Tensor, noise_mode: str) -> np.ndarray:
        dtype = torch.float16 if self.half else torch.float32
        return self._to_uint8(self.G.synthesis(ws.to(dtype), noise_mode=noise_mode))

    # ---- rendering ----
    def render(self, req: RenderRequest) -> RenderResult:
        """Request -> result; errors come back as text in the result, never raised."""
        start = time.perf_counter()
        try:
            if self.G is None:
                raise RuntimeError("no model is open")
            if req.generation != self.generation:
                raise RuntimeError("request was built for a model that is no longer open")
            with torch.inference_mode():
                fields = self._render_grid(req) if req.is_grid else self._render_one(req)
        except Exception as exc:  # shown in the status bar; the window stays usable
            return RenderResult(request_id=req.request_id, error=f"{type(exc).__name__}: {exc}",
                                is_grid=req.is_grid)
        ms = (time.perf_counter() - start) * 1000
        return RenderResult(request_id=req.request_id, milliseconds=ms, is_grid=req.is_grid, **fields)

    def _render_one(self, req: RenderRequest) -> dict:
        G = self.G
        if G.img_resolution == 0:
            return self._render_points(req)
        if not G.num_ws:
            z = self._z([req.seed], req.z_threshold)
            img = self._to_uint8(G(z, self._labels(req.class_index, 1)))
            return {"image": img[0], "z": z[0].cpu().numpy()}
        z = self._z([req.seed])
        if req.base_ws is not None:
            base = np.asarray(req.base_ws, dtype=np.float32)
            if base.shape != (G.num_ws, G.w_dim):
                raise ValueError(f"W+ latent has shape {base.shape}, the model needs ({G.num_ws}, {G.w_dim})")
            ws = torch.from_numpy(base).to(self.device)[None]
        else:
            ws = G.mapping(z, self._labels(req.class_index, 1))
        if any(req.mix_mask):
            ws = mix_layers(ws, self.mapped([req.mix_seed], req.class_index), req.mix_mask)
        final = self._finish_ws(ws, req)
        img = self._synthesize(final, req.noise_mode)
        return {"image": img[0], "z": z[0].cpu().numpy(), "ws": final[0].float().cpu().numpy(),
                "mixed_ws": ws[0].cpu().numpy()}

    def _render_grid(self, req: RenderRequest) -> dict:
        """(rows + 1) x (cols + 1) mosaic: the top row shows the column seeds, the left column the
        row seeds, and cell (r, c) the row seed with the masked layers of the column seed."""
        G = self.G
        if not G.num_ws:
            raise ValueError("style mixing needs a model with a W space")
        rows, cols = list(req.row_seeds), list(req.col_seeds)
        ws_rows = self.mapped(rows, req.class_index)    # [R, L, W]
        ws_cols = self.mapped(cols, req.class_index)    # [C, L, W]
        R, C, L, W = len(rows), len(cols), G.num_ws, G.w_dim
        mask = req.mix_mask if len(req.mix_mask) == L else (False,) * L
        cells = mix_layers(ws_rows[:, None].expand(R, C, L, W).reshape(R * C, L, W),
                           ws_cols[None].expand(R, C, L, W).reshape(R * C, L, W), mask)
        everything = torch.cat([ws_cols, ws_rows, cells])
        images = self._synthesize(self._finish_ws(everything, req), req.noise_mode)
        res, gap = G.img_resolution, 1
        cell = res + gap
        mosaic = np.full(((R + 1) * cell - gap, (C + 1) * cell - gap, 3), GRID_GAP_GREY, np.uint8)
        mosaic[:res, :res] = GRID_CORNER_GREY
        for c in range(C):
            mosaic[:res, (c + 1) * cell:(c + 1) * cell + res] = images[c]
        for r in range(R):
            top = (r + 1) * cell
            mosaic[top:top + res, :res] = images[C + r]
            for c in range(C):
                mosaic[top:top + res, (c + 1) * cell:(c + 1) * cell + res] = images[C + R + r * C + c]
        return {"image": mosaic, "cell_ws": cells.reshape(R, C, L, W).cpu().numpy(), "cell_size": cell}

    def _render_points(self, req: RenderRequest) -> dict:
        """2-D point models: a scatter of POINT_SAMPLES points drawn from the seed."""
        from trainer.images import scatter_image
        rng = np.random.RandomState(req.seed)
        z = rng.randn(POINT_SAMPLES, self.G.z_dim).astype(np.float32)
        if req.z_threshold > 0:
            z = np.clip(z, -req.z_threshold, req.z_threshold)  # points: clipping keeps it one pass
        points = self.G(torch.from_numpy(z).to(self.device),
                        self._labels(req.class_index, POINT_SAMPLES)).cpu().numpy()
        return {"image": scatter_image(points, size=256), "z": z[0]}

    # ---- directions ----
    @torch.inference_mode()
    def compute_directions(self,
                           num_samples: int = 5000,    # mapped latents for the PCA
                           num_components: int = 8,    # principal components kept
                           progress: Progress = _no_progress,
                           seed: int = 0,              # fixes the sampled z, so results repeat
                           ) -> dict[str, np.ndarray]:
        """GANSpace directions -> {"PC1": [w_dim], ...}, each one standard deviation long; for
        conditional models also {"to <class>": class mean w - mean of class means}."""
        G = self.G
        if G is None or not G.num_ws:
            raise ValueError("latent directions need a model with a W space")
        rng = np.random.RandomState(seed)
        chunks, chunk = [], 1000
        for start in range(0, num_samples, chunk):
            n = min(chunk, num_samples - start)
            z = torch.from_numpy(rng.randn(n, G.z_dim).astype(np.float32)).to(self.device)
            c = torch.from_numpy(rng.randint(0, G.c_dim, n)).to(self.device) if G.c_dim else None
            chunks.append(G.mapping(z, c)[:, 0].float().cpu().numpy())
            progress(0.9 * (start + n) / num_samples, f"mapped {start + n}/{num_samples} latents")
        vectors, sigmas = pca_directions(np.concatenate(chunks), num_components)
        directions = {f"PC{i + 1}": vectors[i] * sigmas[i] for i in range(len(vectors))}
        if self.class_means is not None:
            means = self.class_means.float().cpu().numpy()
            for name, mean in zip(self.info.class_names, means):
                directions[f"to {name}"] = (mean - means.mean(axis=0)).astype(np.float32)
        progress(1.0, "directions ready")
        return directions


def layer_resolutions(G) -> tuple[int, ...]:
    """For each ws layer, the resolution of the synthesis layer that reads it (4, 8, 8, 16, ...)."""
    if not getattr(G, "num_ws", 0):
        return ()
    out, index = [], 0
    for block in G.synthesis.blocks:
        for _ in range(block.num_conv):
            out.append(block.resolution)
            index += 1
    out += [G.synthesis.blocks[-1].resolution] * (G.num_ws - len(out))  # the last toRGB
    return tuple(out)


def request_from_workspace(ws, info: ModelInfo, request_id: int, grid: bool = False) -> RenderRequest:
    """Freeze the workspace into a request for the model `info` describes."""
    from .latents import direction_offset
    mask = tuple(ws.mix_layers) if len(ws.mix_layers) == info.num_ws else ()
    base = ws.base_ws if ws.base_ws is not None and ws.base_ws.shape == (info.num_ws, info.w_dim) else None
    offset = direction_offset(ws.directions, ws.direction_offsets) if info.has_w else None
    if offset is not None and offset.shape != (info.w_dim,):
        offset = None
    fields = dict(request_id=request_id, generation=info.generation, seed=ws.seed,
                  class_index=min(ws.class_index, info.c_dim - 1) if info.c_dim else None,
                  psi=ws.psi, cutoff=ws.cutoff, truncation_center=ws.truncation_center,
                  noise_mode=ws.noise_mode, z_threshold=ws.z_threshold, mix_seed=ws.mix_seed,
                  mix_mask=mask, base_ws=base, w_offset=offset, offset_layers=tuple(ws.direction_layers))
    if grid:
        fields.update(row_seeds=tuple(ws.grid_row_seeds), col_seeds=tuple(ws.grid_col_seeds),
                      base_ws=None)
    return RenderRequest(**fields)
