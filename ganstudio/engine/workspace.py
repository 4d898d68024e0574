"""The workspace: everything the artist has set, as plain values with change events.

Panels write fields (`workspace.psi = 0.5`); views and the render controller connect to
`workspace.events.<field>` or `workspace.events.changed`. A field emits only when its value
really changes. `to_dict`/`from_dict` give the JSON workspace file, which reopens exactly.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trainer.latents import (DEFAULT_PSI, MAX_ROTATE_DEG, MAX_SEED, MAX_TRANSLATE, NOISE_MODES, TRUNCATION_CENTERS,
                             json_value)
from trainer.film.timeline import Timeline, TimelineError

from .events import EmitterGroup
from .midi import MidiMappingError, mappings_from_json

WORKSPACE_FORMAT = "ganstudio.workspace"
WORKSPACE_VERSION = 1
# The fields that name the latent on screen: trainer.latents.state_from_workspace reads them, in the
# studio and in `ganstudio-train generate --workspace`, so both draw the same pixels.
LATENT_FIELDS = ("seed", "class_index", "noise_mode", "psi", "cutoff", "truncation_center", "z_threshold",
                 "mix_seed", "mix_layers", "base_ws", "base_noise", "directions", "direction_offsets",
                 "direction_layers", "translate_x", "translate_y", "rotate_deg")
# StyleGAN3's input transform settings: (field, limit, unit); older files without them draw the identity
TRANSFORM_FIELDS = (("translate_x", MAX_TRANSLATE, "image widths"), ("translate_y", MAX_TRANSLATE, "image heights"),
                    ("rotate_deg", MAX_ROTATE_DEG, "degrees"))

# Ranges of the numbers a workspace file may hold (the panels' own ranges, with room for scripts):
# a value read from a file is checked here, with a message naming the field and its range.
NUMBER_RANGES = {"psi": (-1.0, 2.0), "z_threshold": (0.0, 10.0)}
MAX_LAYERS = 64               # ws layers (NVlabs' 1024-pixel StyleGAN3 has 16)
MAX_GRID_SEEDS = 16           # rows or columns of the mixing grid
MAX_OFFSET = 100.0            # direction offsets, in sigmas
MAX_ARRAY_VALUES = 1 << 22    # a W+ latent or a noise map: 4M numbers (a 2048x2048 map)
MAX_LATENT_VALUE = 1e6        # no trained w or noise value is near this; larger ones are damage

# the fields a preset keeps (engine.presets): everything a live control moves (engine.live's targets)
PRESET_FIELDS = ("seed", "class_index", "psi", "cutoff", "truncation_center", "mix_seed", "mix_layers", "base_ws",
                 "direction_offsets", "translate_x", "translate_y", "rotate_deg")
MAX_PRESET_NAME = 64          # characters


class PresetError(ValueError):
    """A preset that cannot be used, or none by that name; the message says which."""


@dataclass(frozen=True, eq=False)
class Preset:
    name: str
    values: Mapping          # PRESET_FIELDS -> the workspace's values (tuples, float32 arrays, dicts)

    @classmethod
    def capture(cls, name: str, workspace) -> "Preset":
        return cls(check_name(name), {f: getattr(workspace, f) for f in PRESET_FIELDS})

    def to_dict(self) -> dict:
        return {"name": self.name, "values": {k: json_value(v) for k, v in self.values.items()}}


def check_name(name) -> str:
    """A preset's name, stripped; PresetError for an empty, too long or many-line one."""
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_PRESET_NAME or "\n" in text:
        raise PresetError(f"a preset name is 1 to {MAX_PRESET_NAME} characters on one line, got {name!r}")
    return text


class WorkspaceError(ValueError):
    """A workspace file or value that cannot be used; the message says which field and why."""


@dataclass(eq=False)
class Workspace:
    checkpoint: str = ""                      # path of the open checkpoint ("" = none)
    seed: int = 0                             # z = RandomState(seed).randn(z_dim)
    class_index: int = 0                      # label for conditional models (ignored otherwise)
    noise_mode: str = "const"                 # "const" | "random" | "none"
    psi: float = DEFAULT_PSI                  # truncation psi, -1 to 2; 1 = off
    cutoff: int | None = None                 # truncate ws layers below this; None = all layers
    truncation_center: str = "global"         # "global" (w_avg) or "class" (mean w of the class)
    z_threshold: float = 0.0                  # Z-only models: resample |z| beyond this; 0 = off
    mix_seed: int = 1                         # the second source for style mixing
    mix_layers: tuple[bool, ...] = ()         # per ws layer: True = take it from mix_seed
    grid_row_seeds: tuple[int, ...] = (0, 1, 2, 3)     # mixing grid: rows give the unmixed layers
    grid_col_seeds: tuple[int, ...] = (10, 11, 12, 13)  # columns give the mixed layers
    base_ws: np.ndarray | None = None         # [num_ws, w_dim] explicit W+ latent replacing the seed's
    base_noise: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> [H, W] noise fitted with
                                              # base_ws (an inverted photo); {} = the model's own maps
    directions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [w_dim], one sigma long
    direction_offsets: dict[str, float] = field(default_factory=dict)  # name -> offset in sigmas
    direction_layers: tuple[int, int | None] = (0, None)  # ws layers [start, stop) the offsets touch
    timeline: Timeline | None = None          # the Timeline panel's keyframes (the .timeline.json object)
    photo_path: str = ""                      # the photo being inverted ("" = none)
    photo_crop: tuple[int, int, int] | None = None  # its square (left, top, side) in pixels; None = centre
    inversion_path: str = ""                  # the inversion .npz whose latent base_ws came from ("" = none)
    tuned_checkpoint: str = ""                # a PTI-tuned checkpoint made for the photo ("" = none)
    photo_ws: np.ndarray | None = None        # [num_ws, w_dim] the inverted photo's W+ (kept while base_ws is edited)
    photo_noise: dict[str, np.ndarray] = field(default_factory=dict)  # the noise maps fitted with photo_ws
    grid_photo: str = ""                      # the photo in the mixing grid: "row" | "column" (first one); "" = not
    translate_x: float = 0.0                  # StyleGAN3: image widths to move the picture right (others ignore it)
    translate_y: float = 0.0                  # StyleGAN3: image heights to move it down
    rotate_deg: float = 0.0                   # StyleGAN3: degrees to turn it counterclockwise
    midi_mappings: tuple[dict, ...] = ()      # MIDI controls -> live settings (engine.midi.MidiMapping dicts)
    presets: tuple[Preset, ...] = ()          # named snapshots of the live settings (engine.presets)

    def __post_init__(self):
        object.__setattr__(self, "events", EmitterGroup([f.name for f in dataclasses.fields(self)]))

    def __setattr__(self, name: str, value: Any) -> None:
        events = self.__dict__.get("events")
        if events is None or name not in events._emitters:
            object.__setattr__(self, name, value)
            return
        old = getattr(self, name)
        object.__setattr__(self, name, value)
        if not same_value(old, value):
            events[name].emit(value)
            events.changed.emit(name)
        if name == "base_ws" and value is None and self.base_noise:
            self.base_noise = {}   # fitted noise belongs to the explicit latent: a seed draws with the model's own

    def update(self, **values: Any) -> None:
        """Set several fields; each emits its own event."""
        for name, value in values.items():
            if name not in self.events._emitters:
                raise WorkspaceError(f"workspace has no field {name!r}")
            setattr(self, name, value)

    def reset_latent_edits(self) -> None:
        """Forget the explicit W+ and direction offsets (a new seed starts fresh)."""
        self.base_ws = None
        self.base_noise = {}
        self.direction_offsets = {}

    def check_fits(self, c_dim: int, num_ws: int, w_dim: int) -> None:
        """Refuse, with a WorkspaceError naming the field, what a model of these sizes cannot draw:
        a class it does not have, an explicit W+ latent of another shape (they rendered something
        else without a word). A mixing mask of another length is left out, as for any new model."""
        if c_dim and not 0 <= self.class_index < c_dim:
            raise WorkspaceError(f"workspace field 'class_index' = {self.class_index}: this model has {c_dim} "
                                 f"classes (0 to {c_dim - 1})")
        for name in ("base_ws", "photo_ws"):
            value = getattr(self, name)
            if value is not None and value.shape != (num_ws, w_dim):
                wanted = f"shape [{num_ws}, {w_dim}]" if num_ws else "none (this model has no W space)"
                raise WorkspaceError(f"workspace field {name!r}: a W+ latent of shape {list(value.shape)}; "
                                     f"this model takes {wanted}")

    # ---- files ----
    def to_dict(self) -> dict:
        d = {"format": WORKSPACE_FORMAT, "version": WORKSPACE_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "presets":
                d[f.name] = [p.to_dict() for p in value]
            else:
                d[f.name] = value.to_dict() if isinstance(value, Timeline) else json_value(value)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Workspace":
        if not isinstance(d, dict) or d.get("format") != WORKSPACE_FORMAT:
            raise WorkspaceError("not a GAN Studio workspace (missing \"format\": \"ganstudio.workspace\")")
        if d.get("version") != WORKSPACE_VERSION:
            raise WorkspaceError(f"workspace version {d.get('version')!r}; this version reads {WORKSPACE_VERSION}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known - {"format", "version"})
        if unknown:
            raise WorkspaceError(f"workspace has unknown field(s): {', '.join(unknown)}")
        values = {name: d[name] for name in known if name in d}
        return cls(**_checked(values))

    def save(self, path) -> None:
        from trainer.files import write_json
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "Workspace":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WorkspaceError(f"cannot read workspace {Path(path).name}: {exc}") from None
        except RecursionError:   # json recurses once per level: 100,000 nested brackets overflowed the stack
            raise WorkspaceError(f"cannot read workspace {Path(path).name}: nested too deeply to be a workspace") \
                from None
        return cls.from_dict(d)

    def copy_from(self, other: "Workspace") -> None:
        """Take every field of `other`, emitting events for those that differ."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape \
            and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _checked(v: dict) -> dict:
    """Validate and convert JSON values to the field types; raise WorkspaceError naming the field."""
    def need(name, ok, what):
        if not ok:
            raise WorkspaceError(f"workspace field {name!r} = {v[name]!r}: expected {what}")

    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    def is_num(x):
        return (is_int(x) or isinstance(x, float)) and math.isfinite(x)

    out = dict(v)
    for name in ("seed", "class_index", "mix_seed"):
        if name in v:
            need(name, is_int(v[name]) and 0 <= v[name] <= MAX_SEED, f"an integer from 0 to {MAX_SEED}")
    for name in ("checkpoint", "photo_path", "inversion_path", "tuned_checkpoint"):
        if name in v:
            need(name, isinstance(v[name], str), "a path")
    if v.get("photo_crop") is not None:
        crop = v["photo_crop"]
        need("photo_crop", isinstance(crop, list) and len(crop) == 3 and all(is_int(x) and x >= 0 for x in crop)
             and crop[2] > 0, "null or [left, top, side] in pixels")
        out["photo_crop"] = tuple(crop)
    if "noise_mode" in v:
        need("noise_mode", v["noise_mode"] in NOISE_MODES, " or ".join(NOISE_MODES))
    if "truncation_center" in v:
        need("truncation_center", v["truncation_center"] in TRUNCATION_CENTERS, " or ".join(TRUNCATION_CENTERS))
    for name, (low, high) in NUMBER_RANGES.items():
        if name in v:
            need(name, is_num(v[name]) and low <= v[name] <= high, f"a number from {low:g} to {high:g}")
            out[name] = float(v[name])
    for name, limit, unit in TRANSFORM_FIELDS:
        if name in v:
            need(name, is_num(v[name]) and abs(v[name]) <= limit, f"a finite number of {unit} from {-limit:g} to {limit:g}")
            out[name] = float(v[name])
    if "cutoff" in v:
        need("cutoff", v["cutoff"] is None or (is_int(v["cutoff"]) and 0 <= v["cutoff"] <= MAX_LAYERS),
             f"null or a layer count up to {MAX_LAYERS}")
    if "mix_layers" in v:
        need("mix_layers", isinstance(v["mix_layers"], list) and len(v["mix_layers"]) <= MAX_LAYERS
             and all(isinstance(x, bool) for x in v["mix_layers"]), "a list of true/false per layer")
        out["mix_layers"] = tuple(v["mix_layers"])
    for name in ("grid_row_seeds", "grid_col_seeds"):
        if name in v:
            need(name, isinstance(v[name], list) and 1 <= len(v[name]) <= MAX_GRID_SEEDS
                 and all(is_int(x) and 0 <= x <= MAX_SEED for x in v[name]), f"a list of 1 to {MAX_GRID_SEEDS} seeds")
            out[name] = tuple(v[name])
    for name in ("base_ws", "photo_ws"):
        if v.get(name) is not None:
            out[name] = _array(v, name, 2)
    if out.get("base_ws") is not None and out.get("photo_ws") is not None \
            and out["base_ws"].shape != out["photo_ws"].shape:
        raise WorkspaceError(f"workspace fields 'base_ws' and 'photo_ws': W+ latents of different shapes "
                             f"({list(out['base_ws'].shape)} and {list(out['photo_ws'].shape)})")
    for name in ("base_noise", "photo_noise"):
        if name in v:
            need(name, isinstance(v[name], dict), "an object of layer -> 2-D noise map")
            out[name] = {str(k): _array({k: x}, k, 2) for k, x in v[name].items()}
    if "grid_photo" in v:
        need("grid_photo", v["grid_photo"] in ("", "row", "column"), '"", "row" or "column"')
    if "directions" in v:
        need("directions", isinstance(v["directions"], dict), "an object of name -> vector")
        out["directions"] = {str(k): _array({k: x}, k, 1) for k, x in v["directions"].items()}
    if "direction_offsets" in v:
        need("direction_offsets", isinstance(v["direction_offsets"], dict)
             and all(is_num(x) and abs(x) <= MAX_OFFSET for x in v["direction_offsets"].values()),
             f"an object of name -> number of sigmas from {-MAX_OFFSET:g} to {MAX_OFFSET:g}")
        out["direction_offsets"] = {str(k): float(x) for k, x in v["direction_offsets"].items()}
    if "direction_layers" in v:
        r = v["direction_layers"]
        need("direction_layers", isinstance(r, list) and len(r) == 2 and is_int(r[0]) and 0 <= r[0] <= MAX_LAYERS
             and (r[1] is None or (is_int(r[1]) and 0 <= r[1] <= MAX_LAYERS)), f"[start, stop or null], layers up to "
             f"{MAX_LAYERS}")
        out["direction_layers"] = (r[0], r[1])
    if "midi_mappings" in v:
        try:
            out["midi_mappings"] = mappings_from_json(v["midi_mappings"])
        except MidiMappingError as exc:
            raise WorkspaceError(f"workspace field 'midi_mappings': {exc}") from None
    if "presets" in v:
        out["presets"] = _presets(v["presets"])
    if v.get("timeline") is not None:
        try:
            out["timeline"] = Timeline.from_dict(v["timeline"])
        except TimelineError as exc:
            raise WorkspaceError(f"workspace field 'timeline': {exc}") from None
    return out


def _presets(value) -> tuple[Preset, ...]:
    """The presets field's JSON (a list of {name, values}) -> checked Presets; their values are checked
    as the workspace's own fields are."""
    def refuse(text):
        raise WorkspaceError(f"workspace field 'presets': {text}")

    if not isinstance(value, list):
        refuse("expected a list of {\"name\", \"values\"} objects")
    out = []
    for d in value:
        if not isinstance(d, dict) or set(d) != {"name", "values"} or not isinstance(d["values"], dict):
            refuse(f"expected {{\"name\", \"values\"}} objects, got {str(d)[:80]}")
        try:
            name = check_name(d["name"])
        except PresetError as exc:
            refuse(str(exc))
        if name in (p.name for p in out):
            refuse(f"two presets named {name!r}")
        unknown = sorted(set(d["values"]) - set(PRESET_FIELDS))
        if unknown:
            refuse(f"preset {name!r} has unknown setting(s): {', '.join(unknown)}")
        try:
            out.append(Preset(name, _checked(d["values"])))
        except WorkspaceError as exc:
            refuse(f"preset {name!r}: {exc}")
    return tuple(out)


def _array(v: dict, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(v[name], dtype=np.float64)   # float32 first would turn 1e300 into inf with a warning
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise WorkspaceError(f"workspace field {name!r}: expected a {ndim}-D array of numbers") from None
    if arr.ndim != ndim or not np.isfinite(arr).all():
        raise WorkspaceError(f"workspace field {name!r}: expected a finite {ndim}-D array, got shape {arr.shape}")
    if arr.size > MAX_ARRAY_VALUES or np.abs(arr).max(initial=0) > MAX_LATENT_VALUE:
        raise WorkspaceError(f"workspace field {name!r}: expected at most {MAX_ARRAY_VALUES} values of at most "
                             f"{MAX_LATENT_VALUE:g} in size, got shape {arr.shape}")
    return arr.astype(np.float32)
