"""Latent states -> tensors and images on one generator: the mapper (z, labels, final ws), the
per-image noise maps of inverted photos, and the StyleGAN3 input transform, set for each render."""
from __future__ import annotations

import contextlib
from typing import Mapping, Sequence

import numpy as np
import torch

from trainer.latents.space import mix_layers, resolve_class, seed_to_z, to_device, truncate
from trainer.latents.state import LatentState

CLASS_MEAN_SAMPLES = 2000    # z per class when estimating a class's mean w
CLASS_MEAN_SEED = 12345      # fixes those z, so a class centre is the same in every tool


# ---- settings -> tensors, for one generator ----
class LatentMapper:
    """Turns LatentStates into z, labels, final ws and images for one generator on one device.

    Class centres are estimated once per mapper (CLASS_MEAN_SAMPLES z per class, fixed seed), so
    every tool that truncates toward a class uses the same centre."""

    def __init__(self,
                 G: torch.nn.Module,                     # a generator with the project's API
                 device: str | torch.device | None = None,  # None = where G's parameters are
                 class_means: torch.Tensor | None = None,   # [c_dim, w_dim] known centres, or None to estimate
                 ):
        self.G = G
        self.device = torch.device(device) if device is not None else next(G.parameters()).device
        self.has_w = bool(getattr(G, "num_ws", 0))
        self._class_means = class_means

    # z and c
    def z(self, states: Sequence[LatentState]) -> torch.Tensor:
        """[N, z_dim] float32. Models without W use each state's z_threshold; W models never do."""
        threshold = (lambda s: 0.0) if self.has_w else (lambda s: s.z_threshold)
        z = np.stack([seed_to_z(s.seed, self.G.z_dim, threshold(s)) for s in states])
        return to_device(z, self.device)

    def labels(self, states: Sequence[LatentState]) -> torch.Tensor | None:
        """[N] int64 class labels, or None for unconditional models."""
        if not self.G.c_dim:
            return None
        return to_device(np.array([resolve_class(s.seed, s.class_index, self.G.c_dim) for s in states], np.int64),
                         self.device)

    # W
    def class_means(self, progress=None) -> torch.Tensor:
        """[c_dim, w_dim] the mean untruncated w of each class (estimated on first use)."""
        if self._class_means is None:
            self._class_means = estimate_class_means(self.G, self.device, progress)
        return self._class_means

    def mapped(self, seeds: Sequence[int], class_indices: Sequence[int | None]) -> torch.Tensor:
        """Untruncated ws [N, num_ws, w_dim] for seeds and their classes."""
        states = [LatentState(seed=s, class_index=k) for s, k in zip(seeds, class_indices)]
        return self.G.mapping(self.z(states), self.labels(states))

    def center(self, state: LatentState) -> torch.Tensor:
        """[w_dim] the point this state's truncation pulls toward."""
        if state.truncation_center == "class" and self.G.c_dim:
            return self.class_means()[resolve_class(state.seed, state.class_index, self.G.c_dim)]
        return self.G.w_avg

    def untruncated_ws(self, states: Sequence[LatentState]) -> torch.Tensor:
        """[N, num_ws, w_dim]: each state's explicit W+, or its seed's mapped w, with its style mix."""
        if not self.has_w:
            raise ValueError("this model has no W space: it works in Z")
        G = self.G
        need_mapping = [s for s in states if s.ws is None]
        mapped = iter(G.mapping(self.z(need_mapping), self.labels(need_mapping))) if need_mapping else iter(())
        rows = []
        for s in states:
            if s.ws is not None:
                if s.ws.shape != (G.num_ws, G.w_dim):
                    raise ValueError(f"W+ latent has shape {s.ws.shape}, the model needs ({G.num_ws}, {G.w_dim})")
                rows.append(to_device(s.ws, self.device))
            else:
                rows.append(next(mapped))
        ws = torch.stack(rows)
        mixing = [i for i, s in enumerate(states) if any(s.mix_mask)]
        if mixing:
            sub = [states[i] for i in mixing]
            # the style source draws the base's class, so a mix changes style, not label
            style = self.mapped([s.mix_seed for s in sub], [resolve_class(s.seed, s.class_index, G.c_dim) for s in sub])
            for row, (i, s) in enumerate(zip(mixing, sub)):
                ws[i:i + 1] = mix_layers(ws[i:i + 1], style[row:row + 1], s.mix_mask)
        return ws

    def finish(self, ws: torch.Tensor, states: Sequence[LatentState]) -> torch.Tensor:
        """Truncation toward each state's centre, then its direction offsets -> final ws."""
        out = []
        for i, s in enumerate(states):
            w = truncate(ws[i:i + 1], self.center(s), s.effective_psi, s.cutoff)
            if s.w_offset is not None:
                if s.w_offset.shape != (self.G.w_dim,):
                    raise ValueError(f"direction offset has shape {s.w_offset.shape}, the model needs ({self.G.w_dim},)")
                start, stop = s.offset_layers
                w = w.clone()
                w[:, start:stop] += to_device(s.w_offset, w.device).to(w.dtype)
            out.append(w)
        return torch.cat(out)

    def ws(self, states: Sequence[LatentState]) -> torch.Tensor:
        """Final ws [N, num_ws, w_dim] ready for synthesis."""
        return self.finish(self.untruncated_ws(states), states)

    def images(self, states: Sequence[LatentState], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Images [N, C, H, W] in about [-1, 1] (2-D point models: [N, 2]). The states share one
        noise mode (the first's), since synthesis takes one; each keeps its own input transform."""
        G = self.G
        if not self.has_w:
            return G(self.z(states), self.labels(states))
        with noise_override(G, fitted_noise(G, states, dtype)):
            return synthesize(G, self.ws(states).to(dtype), states[0].noise_mode, [s.transform for s in states])


# ---- the StyleGAN3 input transform ----
def has_input_transform(G) -> bool:
    """Whether G's synthesis starts from a transformable input (StyleGAN3's `synthesis.input.transform`)."""
    return isinstance(getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None), torch.Tensor)


@contextlib.contextmanager
def input_transform(G, matrix: np.ndarray | None):
    """Synthesis under the [3, 3] input transform `matrix` (LatentState.transform): written into
    `G.synthesis.input.transform` in place while the block runs, then the model's own put back, so
    one render's transform never leaks into the next. No-op for models without the input or None."""
    if matrix is None or not has_input_transform(G):
        yield
        return
    buffer = G.synthesis.input.transform
    saved = buffer.clone()
    try:
        buffer.copy_(to_device(np.asarray(matrix, dtype=np.float64), buffer.device))
        yield
    finally:
        buffer.copy_(saved)


def synthesize(G,
               ws: torch.Tensor,                              # [N, num_ws, w_dim] final latents
               noise_mode: str = "const",
               transforms: Sequence[np.ndarray] | None = None,  # per image [3, 3] (LatentState.transform); None = the model's
               ) -> torch.Tensor:
    """G.synthesis with a per-image input transform -> images [N, C, H, W]. The model holds one
    transform at a time, so images that differ in it are drawn in groups, each in its own call."""
    if transforms is None or not has_input_transform(G):
        return G.synthesis(ws, noise_mode=noise_mode)
    if len(transforms) != ws.shape[0]:
        raise ValueError(f"{len(transforms)} input transforms for {ws.shape[0]} latents")
    groups: dict[bytes, list[int]] = {}
    for i, matrix in enumerate(transforms):
        groups.setdefault(np.asarray(matrix, dtype=np.float64).tobytes(), []).append(i)
    if len(groups) == 1:
        with input_transform(G, transforms[0]):
            return G.synthesis(ws, noise_mode=noise_mode)
    out = None
    for rows in groups.values():
        with input_transform(G, transforms[rows[0]]):
            images = G.synthesis(ws[rows], noise_mode=noise_mode)
        out = images.new_empty((ws.shape[0], *images.shape[1:])) if out is None else out
        out[rows] = images
    return out


# ---- noise maps ----
def noise_layers(G) -> dict[str, torch.nn.Module]:
    """The synthesis layers with a constant noise map, by module name."""
    return {name: m for name, m in G.synthesis.named_modules() if isinstance(getattr(m, "noise_const", None), torch.Tensor)}


@contextlib.contextmanager
def noise_override(G, maps: Mapping[str, torch.Tensor] | None):
    """Synthesis with per-image noise: each layer's constant map is swapped for `maps[name]`
    [N, 1, H, W] while the block runs ("const" noise mode broadcasts it over channels), then put
    back. The model's API takes one noise mode, not noise tensors, hence the swap."""
    if not maps:
        yield
        return
    layers = noise_layers(G)
    saved = {name: layers[name].noise_const for name in maps}
    try:
        for name, tensor in maps.items():
            layers[name].noise_const = tensor
        yield
    finally:
        for name, tensor in saved.items():
            layers[name].noise_const = tensor


def fitted_noise(G, states: Sequence[LatentState], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor] | None:
    """Noise maps [N, 1, H, W] for a batch in which some states carry fitted maps (inverted
    photos): theirs where they have a map of the layer's shape, the model's own elsewhere. None
    when no state carries any, or the batch is not drawn in "const" mode (random or no noise is
    what the user asked for then)."""
    if not states or states[0].noise_mode != "const" or not any(s.noise for s in states):
        return None
    maps = {}
    for name, layer in noise_layers(G).items():
        const = layer.noise_const
        per_image = []
        for s in states:
            fitted = (s.noise or {}).get(name)
            fits = fitted is not None and tuple(np.shape(fitted)) == tuple(const.shape)
            per_image.append(to_device(np.asarray(fitted, dtype=np.float32), const.device) if fits else const.float())
        maps[name] = torch.stack(per_image)[:, None].to(dtype)
    return maps


@torch.inference_mode()
def estimate_class_means(G, device, progress=None) -> torch.Tensor:
    """[c_dim, w_dim] mean untruncated w per class over CLASS_MEAN_SAMPLES fixed z each."""
    rng = np.random.RandomState(CLASS_MEAN_SEED)
    means = []
    for k in range(G.c_dim):
        z = torch.from_numpy(rng.randn(CLASS_MEAN_SAMPLES, G.z_dim).astype(np.float32)).to(device)
        c = torch.full((CLASS_MEAN_SAMPLES,), k, dtype=torch.long, device=device)
        means.append(G.mapping(z, c)[:, 0].float().mean(dim=0))
        if progress is not None:
            progress((k + 1) / G.c_dim, f"mean w of class {k + 1}/{G.c_dim}")
    return torch.stack(means)
