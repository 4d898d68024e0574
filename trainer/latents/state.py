"""The latent state: everything that names one latent (a workspace's view, a timeline keyframe, an
inverted photo), validated, with its JSON form and the conversion from a studio workspace's fields."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from trainer.latents.space import check_seed, direction_offset, stylegan3_transform

DEFAULT_PSI = 0.7            # truncation of a seed's latent when nothing else is asked, studio and CLI alike
NOISE_MODES = ("const", "random", "none")
TRUNCATION_CENTERS = ("global", "class")   # w_avg, or the mean w of the state's class
MAX_TRANSLATE = 10.0         # StyleGAN3 translation limit, image widths (the input is an endless pattern)
MAX_ROTATE_DEG = 3600.0      # rotation limit: ten turns, so a film's keyframes can spin several times


def default_truncation_center(c_dim: int, has_w: bool) -> str:
    """Where ψ pulls a seed's latent when nothing else is asked, studio and CLI alike: a conditional
    model's class centre (w_avg lies between the classes, so pulling toward it blurs them), else w_avg."""
    return "class" if c_dim and has_w else "global"


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
    translate_x: float = 0.0               # StyleGAN3 input transform: image widths to move the picture right
    translate_y: float = 0.0               # image heights to move it down
    rotate_deg: float = 0.0                # degrees to turn it counterclockwise; models without the transform keep
                                           # the three settings and ignore them

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
        for name, limit, unit in (("translate_x", MAX_TRANSLATE, "image widths"),
                                  ("translate_y", MAX_TRANSLATE, "image heights"),
                                  ("rotate_deg", MAX_ROTATE_DEG, "degrees")):
            value = getattr(self, name)
            if not _is_finite_number(value) or abs(value) > limit:
                raise ValueError(f"{name} {value!r}: expected a finite number of {unit} from {-limit:g} to {limit:g}")
            object.__setattr__(self, name, float(value))
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
    def transform(self) -> np.ndarray:
        """[3, 3] the StyleGAN3 input transform these settings ask for (NVlabs' meaning: the inverse of
        the image transform); the identity at the defaults."""
        return stylegan3_transform(self.translate_x, self.translate_y, self.rotate_deg)

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
                       noise=noise if base is not None and noise else None,
                       translate_x=float(get("translate_x", 0.0)), translate_y=float(get("translate_y", 0.0)),
                       rotate_deg=float(get("rotate_deg", 0.0)))
