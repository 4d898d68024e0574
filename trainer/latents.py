"""One meaning for every latent setting: seed -> z, class -> c, truncation, mixing, noise modes.

The CLI, the metrics, the studio, inversion and timelines all turn settings into latents here, so
the same settings draw the same pixels everywhere. Two kinds of latent state exist:
- "from settings": a seed (z = RandomState(seed).randn(z_dim), as in NVlabs' tools), a class, a
  truncation (ψ, cutoff, centre), a style mix and direction offsets;
- explicit: a W+ latent `ws [num_ws, w_dim]` (an inverted photo, a chosen mix, a keyframe) that is
  final. Truncation is applied to it only when the state asks for a ψ other than 1; a state made
  with `LatentState.explicit` starts at ψ 1, so it reproduces its latent exactly.

Models without a W space (DCGAN, 2-D points) truncate in Z, one way only: components of z beyond
the threshold are resampled (a truncated normal, as in BigGAN). ψ does not apply to them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

MAX_SEED = 2**32 - 1         # numpy's RandomState takes seeds from 0 to 2**32 - 1
DEFAULT_PSI = 0.7            # truncation of a seed's latent when nothing else is asked, studio and CLI alike
NOISE_MODES = ("const", "random", "none")
TRUNCATION_CENTERS = ("global", "class")   # w_avg, or the mean w of the state's class
CLASS_MEAN_SAMPLES = 2000    # z per class when estimating a class's mean w
CLASS_MEAN_SEED = 12345      # fixes those z, so a class centre is the same in every tool


# ---- seeds and z ----
def check_seed(seed) -> int:
    """A seed as int, or ValueError naming the allowed range."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed {seed!r} is not usable: seeds are whole numbers from 0 to {MAX_SEED}")
    return int(seed)


def parse_seeds(text: str, limit: int = 1_000_000) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> list of ints, each from 0 to MAX_SEED, at most `limit` of
    them (checked before a range is expanded). ValueError says what is wrong."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                if len(seeds) + hi - lo + 1 > limit:
                    raise OverflowError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"cannot read seeds {part!r}: use numbers from 0 to {MAX_SEED}, "
                             "ranges like 0-63 and commas") from None
        except OverflowError:
            raise ValueError(f"too many seeds in {text!r}: at most {limit}") from None
    if len(seeds) > limit:
        raise ValueError(f"too many seeds in {text!r}: at most {limit}")
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    if min(seeds) < 0 or max(seeds) > MAX_SEED:
        bad = min(seeds) if min(seeds) < 0 else max(seeds)
        raise ValueError(f"seed {bad} is out of range: seeds go from 0 to {MAX_SEED}")
    return seeds


def sample_z(seed: int,
             z_dim: int,
             threshold: float = 0.0,   # resample |z| components beyond this; <= 0 = no truncation
             count: int = 1,           # rows drawn from the one seed (2-D point models draw many)
             ) -> np.ndarray:
    """seed -> z float32 [count, z_dim] ~ N(0, I), optionally truncated by resampling. Row 0 with no
    threshold is NVlabs' z for the seed."""
    rng = np.random.RandomState(check_seed(seed))
    z = rng.randn(count, z_dim)
    if threshold > 0:
        outside = np.abs(z) > threshold
        while outside.any():
            z[outside] = rng.randn(int(outside.sum()))
            outside = np.abs(z) > threshold
    return z.astype(np.float32)


def seed_to_z(seed: int, z_dim: int, threshold: float = 0.0) -> np.ndarray:
    """seed -> z float32 [z_dim] (see sample_z)."""
    return sample_z(seed, z_dim, threshold)[0]


def resolve_class(seed: int, class_index: int | None, c_dim: int) -> int | None:
    """The class a state draws: None for unconditional models; the chosen class; or, when none
    is chosen, the seed modulo the class count (so a grid of seeds shows every class)."""
    if not c_dim:
        return None
    if class_index is None:
        return int(seed) % c_dim
    if not 0 <= int(class_index) < c_dim:
        raise ValueError(f"class {class_index} is out of range for a model with {c_dim} classes (0-{c_dim - 1})")
    return int(class_index)


# ---- W space ----
def truncate(ws: torch.Tensor,       # [N, num_ws, w_dim]
             center: torch.Tensor,   # [w_dim] or [N, w_dim]: the mean w to pull toward
             psi: float,             # 1 = unchanged, 0 = the center, negative = the opposite side
             cutoff: int | None,     # truncate layers [0, cutoff); None = every layer
             ) -> torch.Tensor:
    """The truncation trick in W: w' = lerp(center, w, psi) on the first `cutoff` layers. The one
    implementation: the generators' `mapping` calls it too."""
    if psi == 1:
        return ws
    center = center if center.ndim == 1 else center[:, None, :]  # broadcast over layers
    cutoff = ws.shape[1] if cutoff is None else cutoff
    out = ws.clone()
    out[:, :cutoff] = center.to(ws.dtype).lerp(ws[:, :cutoff], psi)
    return out


def stylegan3_transform(translate_x: float,   # image widths to move the picture right (1 / resolution = one pixel)
                        translate_y: float,   # image heights to move it down
                        rotate_deg: float,    # degrees to rotate it
                        ) -> np.ndarray:
    """The [3, 3] float64 matrix for a StyleGAN3's `G.synthesis.input.transform`, with NVlabs'
    meaning: the buffer holds the INVERSE of the image transform the user asks for, which NVlabs'
    tools build as [[cos a, sin a, x], [-sin a, cos a, y], [0, 0, 1]]. (0, 0, 0) gives the identity."""
    a = math.radians(rotate_deg)
    c, s = math.cos(a), math.sin(a)
    # inverse of [[R, t], [0, 1]] is [[R^T, -R^T t], [0, 1]] for the rotation R = [[c, s], [-s, c]]
    return np.array([[c, -s, -(c * translate_x - s * translate_y)],
                     [s, c, -(s * translate_x + c * translate_y)],
                     [0.0, 0.0, 1.0]])


def mix_layers(ws_base: torch.Tensor,   # [N, num_ws, w_dim] the unmixed latents
               ws_style: torch.Tensor,  # [N, num_ws, w_dim] the source of the mixed layers
               mask: Sequence[bool],    # per layer: True = take from ws_style; len num_ws
               ) -> torch.Tensor:
    """Style mixing in W+: the layers picked by `mask` come from ws_style, the rest from ws_base."""
    mask = torch.as_tensor(list(mask), dtype=torch.bool, device=ws_base.device)
    if mask.numel() != ws_base.shape[1]:
        raise ValueError(f"mixing mask has {mask.numel()} layers, the model has {ws_base.shape[1]}")
    return torch.where(mask[None, :, None], ws_style, ws_base)


def layer_groups(layer_resolutions: Sequence[int]) -> dict[str, tuple[bool, ...]]:
    """Masks for the coarse / middle / fine presets: the model's resolutions (4, 8, ...) split
    into thirds, as in the StyleGAN paper (coarse 4-8, middle 16-32, fine 64-1024 at 1024px)."""
    levels = sorted(set(layer_resolutions))
    thirds = [set(part.tolist()) for part in np.array_split(np.array(levels), 3)]
    names = ("coarse", "middle", "fine")
    return {name: tuple(r in group for r in layer_resolutions) for name, group in zip(names, thirds)}


def pca_directions(w: np.ndarray,       # [N, w_dim] mapped latents
                   num_components: int,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of W (GANSpace, Härkönen et al. 2020) -> (unit vectors [K, w_dim],
    standard deviations along them [K]). Signs are fixed so each vector's largest entry is positive."""
    w = np.asarray(w, dtype=np.float64)
    centered = w - w.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    k = min(num_components, vt.shape[0])
    vectors = vt[:k]
    signs = np.sign(vectors[np.arange(k), np.abs(vectors).argmax(axis=1)])
    vectors = vectors * signs[:, None]
    sigmas = s[:k] / np.sqrt(max(len(w) - 1, 1))
    return vectors.astype(np.float32), sigmas.astype(np.float32)


def direction_offset(directions: Mapping[str, np.ndarray],  # name -> [w_dim], one unit = one slider step
                     offsets: Mapping[str, float],          # name -> slider value
                     ) -> np.ndarray | None:
    """Sum of offset * direction over the active sliders -> [w_dim], or None when all are zero."""
    total = None
    for name, amount in offsets.items():
        if amount and name in directions:
            step = amount * np.asarray(directions[name], dtype=np.float32)
            total = step if total is None else total + step
    return total


# ---- the latent state ----
@dataclass(frozen=True, eq=False)
class LatentState:
    """Everything that names one latent: a workspace's view, a timeline keyframe, an inverted photo."""
    seed: int = 0                          # z = RandomState(seed).randn(z_dim)
    class_index: int | None = None         # conditional models; None = seed % c_dim
    psi: float | None = None               # None = DEFAULT_PSI for a seed, 1 (untouched) for explicit ws
    cutoff: int | None = None              # truncate ws layers [0, cutoff); None = all layers
    truncation_center: str = "global"      # "global" (w_avg) | "class" (mean w of the class)
    z_threshold: float = 0.0               # models without W: resample |z| beyond this; 0 = off
    noise_mode: str = "const"              # "const" | "random" | "none"
    mix_seed: int = 0                      # source of the layers mix_mask picks
    mix_mask: tuple[bool, ...] = ()        # per ws layer, True = from mix_seed; () = no mixing
    ws: np.ndarray | None = None           # [num_ws, w_dim] explicit W+, final (see the module docstring)
    w_offset: np.ndarray | None = None     # [w_dim] direction offsets, added after truncation
    offset_layers: tuple[int, int | None] = (0, None)  # ws layers [start, stop) the offset touches
    noise: Mapping[str, np.ndarray] | None = None  # fitted noise maps, layer -> [H, W] (an inverted photo);
                                           # drawn in "const" mode in place of the model's own maps

    def __post_init__(self):
        check_seed(self.seed)
        check_seed(self.mix_seed)
        if self.noise_mode not in NOISE_MODES:
            raise ValueError(f"noise mode {self.noise_mode!r}: expected one of {', '.join(NOISE_MODES)}")
        if self.truncation_center not in TRUNCATION_CENTERS:
            raise ValueError(f"truncation centre {self.truncation_center!r}: expected "
                             f"{' or '.join(TRUNCATION_CENTERS)}")
        if self.class_index is not None and (not _is_int(self.class_index) or self.class_index < 0):
            raise ValueError(f"class {self.class_index!r}: expected a class number or null")
        if self.psi is not None and not _is_finite_number(self.psi):
            raise ValueError(f"psi {self.psi!r} is not a finite number")
        if self.cutoff is not None and (not _is_int(self.cutoff) or self.cutoff < 0):
            raise ValueError(f"cutoff {self.cutoff!r}: expected a layer count or null")
        if not _is_finite_number(self.z_threshold) or self.z_threshold < 0:
            raise ValueError(f"z threshold {self.z_threshold!r}: expected a number >= 0")
        if not isinstance(self.mix_mask, (tuple, list)) or not all(isinstance(m, (bool, np.bool_)) for m in self.mix_mask):
            raise ValueError(f"mixing mask {self.mix_mask!r}: expected true/false per layer")
        layers = self.offset_layers
        if not (isinstance(layers, (tuple, list)) and len(layers) == 2 and _is_int(layers[0]) and layers[0] >= 0
                and (layers[1] is None or _is_int(layers[1]))):
            raise ValueError(f"offset layers {layers!r}: expected [start, stop or null]")
        object.__setattr__(self, "ws", _finite_array(self.ws, 2, "an explicit W+ latent [num_ws, w_dim]"))
        object.__setattr__(self, "w_offset", _finite_array(self.w_offset, 1, "a direction offset [w_dim]"))
        object.__setattr__(self, "mix_mask", tuple(bool(m) for m in self.mix_mask))
        if self.noise is not None:
            if not isinstance(self.noise, Mapping):
                raise ValueError(f"noise maps: expected an object of layer -> [H, W] map, got {type(self.noise).__name__}")
            object.__setattr__(self, "noise", {str(k): _finite_array(v, 2, f"noise map {k!r} [H, W]")
                                               for k, v in self.noise.items()} or None)
        object.__setattr__(self, "offset_layers", (int(layers[0]), None if layers[1] is None else int(layers[1])))

    @classmethod
    def explicit(cls, ws: np.ndarray, **settings) -> "LatentState":
        """A state for an explicit W+ latent, rendered exactly as it is (ψ 1 unless given)."""
        settings.setdefault("psi", 1.0)
        return cls(ws=ws, **settings)

    @property
    def effective_psi(self) -> float:
        if self.psi is not None:
            return float(self.psi)
        return 1.0 if self.ws is not None else DEFAULT_PSI

    def replace(self, **changes) -> "LatentState":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON values (arrays as nested lists)."""
        return {f.name: json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LatentState":
        """The inverse of to_dict; ValueError names an unknown or unusable field."""
        if not isinstance(d, Mapping):
            raise ValueError("a latent state must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"latent state has unknown field(s): {', '.join(unknown)}")
        return cls(**d)


def json_value(value):
    """A field's value as plain JSON: arrays and tuples become lists, dicts of arrays dicts of lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_finite_number(x) -> bool:
    return (_is_int(x) or isinstance(x, (float, np.floating))) and math.isfinite(x)


def _finite_array(value, ndim: int, what: str) -> np.ndarray | None:
    """None, or `value` as a finite float32 array of `ndim` dimensions; ValueError otherwise."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"expected {what} of numbers") from None
    if arr.ndim != ndim or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"expected {what}, finite, got shape {arr.shape}")
    return arr


def state_from_workspace(fields: Mapping, c_dim: int, num_ws: int, w_dim: int) -> LatentState:
    """A studio workspace's fields (its JSON file or its live values) -> the LatentState it shows on
    a model with these dimensions. Settings that do not fit the model are left out, as the studio
    does when a workspace made for another model is opened: a mixing mask of another length, a W+
    of another shape, an offset of another width."""
    get = fields.get
    mask = tuple(get("mix_layers") or ())
    base = get("base_ws")
    base = None if base is None else np.asarray(base, dtype=np.float32)
    if base is not None and base.shape != (num_ws, w_dim):
        base = None
    # fitted noise belongs to the photo's latent: without it (a new seed) the model's own maps apply
    noise = {str(k): np.asarray(v, dtype=np.float32) for k, v in (get("base_noise") or {}).items()}
    directions = {k: np.asarray(v, dtype=np.float32) for k, v in (get("directions") or {}).items()}
    offset = direction_offset(directions, get("direction_offsets") or {}) if num_ws else None
    if offset is not None and offset.shape != (w_dim,):
        offset = None
    class_index = get("class_index", 0)
    if c_dim and class_index is not None:
        class_index = min(int(class_index), c_dim - 1)
    layers = tuple(get("direction_layers") or (0, None))
    return LatentState(seed=int(get("seed", 0)), class_index=class_index if c_dim else None,
                       psi=float(get("psi", DEFAULT_PSI)), cutoff=get("cutoff"),
                       truncation_center=get("truncation_center", "global"),
                       z_threshold=float(get("z_threshold", 0.0)), noise_mode=get("noise_mode", "const"),
                       mix_seed=int(get("mix_seed", 0)), mix_mask=mask if len(mask) == num_ws else (),
                       ws=base, w_offset=offset, offset_layers=(int(layers[0]), layers[1]),
                       noise=noise if base is not None and noise else None)


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
        return torch.from_numpy(z).to(self.device)

    def labels(self, states: Sequence[LatentState]) -> torch.Tensor | None:
        """[N] int64 class labels, or None for unconditional models."""
        if not self.G.c_dim:
            return None
        return torch.tensor([resolve_class(s.seed, s.class_index, self.G.c_dim) for s in states],
                            dtype=torch.long, device=self.device)

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
                rows.append(torch.from_numpy(s.ws).to(self.device))
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
                w[:, start:stop] += torch.from_numpy(s.w_offset).to(w.device, w.dtype)
            out.append(w)
        return torch.cat(out)

    def ws(self, states: Sequence[LatentState]) -> torch.Tensor:
        """Final ws [N, num_ws, w_dim] ready for synthesis."""
        return self.finish(self.untruncated_ws(states), states)

    def images(self, states: Sequence[LatentState], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Images [N, C, H, W] in about [-1, 1] (2-D point models: [N, 2]). The states share one
        noise mode (the first's), since synthesis takes one."""
        G = self.G
        if not self.has_w:
            return G(self.z(states), self.labels(states))
        with noise_override(G, fitted_noise(G, states, dtype)):
            return G.synthesis(self.ws(states).to(dtype), noise_mode=states[0].noise_mode)


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
            per_image.append(torch.as_tensor(np.asarray(fitted, dtype=np.float32)).to(const.device) if fits else const.float())
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
