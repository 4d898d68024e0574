"""Timelines: keyframed journeys through latent space, and the renderer that turns them into frames.

A timeline is a list of keyframes, each a full `LatentState` (a seed, a style mix, an explicit W+,
a class, ψ, direction offsets) plus its duration and easing to the next keyframe and per-layer
track settings. Frame k of a timeline is a pure function of the timeline and the model:
- keyframe i sits exactly on frame round(start_i * fps) and renders as the studio renders its state
  (the same code path, one image at a time, so the pixels are byte for byte the studio's);
- frames between keyframes are rendered in fixed aligned chunks of `CHUNK_FRAMES`, so frame k is
  computed in the same batch every time: scrubbing, playback, export and the headless CLI agree.

How a segment from keyframe A to B moves (piecewise interpolation):
- seeds (both keyframes "from settings", the same mixing mask): z moves on a great circle (slerp),
  the class one-hot is blended (the mapping embeds it linearly, so this blends class embeddings),
  the mix seed's z is slerped too;
- anything with an explicit W+ (or different mixing masks): the untruncated W+ moves linearly;
- truncation and direction offsets: the final latent is lerp(finish_A(w), finish_B(w), t), which
  animates ψ linearly, blends the truncation centres and slides the offsets;
- per-layer tracks let some ws layers move in part of the segment only (coarse first, fine later).
Catmull-Rom interpolation runs a cubic through the keyframes' untruncated W+ (as NVlabs'
gen_video.py does in W) and blends their truncation and offsets with the same weights.
Models without a W space interpolate z (slerp, or Catmull-Rom in Z) and blend the class.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .latents import MAX_SEED, LatentMapper, LatentState, parse_seeds, resolve_class, seed_to_z

TIMELINE_FORMAT = "ganstudio.timeline"
TIMELINE_VERSION = 1
EASINGS = ("linear", "ease-in-out", "cubic", "hold")
INTERPOLATIONS = ("piecewise", "catmull-rom")
TIMELINE_NOISE_MODES = ("const", "none")   # "random" would make frames differ on every render
CHUNK_FRAMES = 8          # in-between frames are always rendered in these aligned batches
MAX_FPS = 240
DEFAULT_FPS = 30.0


class TimelineError(ValueError):
    """A timeline that cannot be used (file, version, keyframe or model mismatch); the message says why."""


# ---- maths ----
def ease(name: str, t: np.ndarray | float) -> np.ndarray:
    """Easing curves on [0, 1] -> [0, 1]: each maps 0 to exactly 0, 1 to exactly 1, and never
    decreases. "hold" stays on the first keyframe until the segment ends, then cuts."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if name == "linear":
        return t
    if name == "ease-in-out":       # smoothstep: velocity zero at both keyframes
        return t * t * (3.0 - 2.0 * t)
    if name == "cubic":             # cubic ease-in-out: a slower start and stop than smoothstep
        return np.where(t < 0.5, 4.0 * t ** 3, 1.0 - (2.0 - 2.0 * t) ** 3 / 2.0)
    if name == "hold":
        return np.where(t < 1.0, 0.0, 1.0)
    raise ValueError(f"easing {name!r}: expected one of {', '.join(EASINGS)}")


def slerp(a: torch.Tensor,   # [N, D] start points
          b: torch.Tensor,   # [N, D] end points
          t: torch.Tensor,   # [N] fractions, 0 = a, 1 = b (exactly)
          ) -> torch.Tensor:
    """Spherical interpolation: the direction moves on the great circle from a to b at constant
    angular speed, the length moves linearly. Unit vectors stay unit vectors. At t = 0 and t = 1 the
    result is a and b bit for bit; nearly parallel vectors fall back to a linear blend."""
    t = t.to(a.dtype)[:, None]
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.acos((ua * ub).sum(dim=1, keepdim=True).clamp(-1.0, 1.0))
    sin_omega = torch.sin(omega)
    parallel = sin_omega.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / safe
    direction = torch.where(parallel, ua.lerp(ub, t), direction)
    out = direction * na.lerp(nb, t)
    out = torch.where(t == 0, a, out)
    return torch.where(t == 1, b, out)


def catmull_rom_weights(t: np.ndarray) -> np.ndarray:
    """Uniform Catmull-Rom weights [..., 4] for the points (p0, p1, p2, p3) at fractions t of the
    way from p1 to p2: (0, 1, 0, 0) at t = 0 and (0, 0, 1, 0) at t = 1, exactly; they sum to 1."""
    t = np.asarray(t, dtype=np.float64)
    t2, t3 = t * t, t * t * t
    return np.stack([0.5 * (-t3 + 2 * t2 - t),
                     0.5 * (3 * t3 - 5 * t2 + 2),
                     0.5 * (-3 * t3 + 4 * t2 + t),
                     0.5 * (t3 - t2)], axis=-1)


# ---- the timeline ----
@dataclass(frozen=True)
class LayerTrack:
    """Within a segment, ws layers [start, stop) move only during fractions [begin, end] of it:
    e.g. coarse layers over [0, 0.5] and fine layers over [0.5, 1] change shape before texture."""
    start: int                 # first ws layer of the track
    stop: int | None           # one past its last layer; None = to the last layer
    begin: float = 0.0         # fraction of the segment at which these layers leave the keyframe
    end: float = 1.0           # fraction at which they arrive at the next one (begin <= end <= 1)

    def __post_init__(self):
        if not (isinstance(self.start, int) and self.start >= 0):
            raise TimelineError(f"layer track start {self.start!r}: expected a layer index >= 0")
        if self.stop is not None and not (isinstance(self.stop, int) and self.stop > self.start):
            raise TimelineError(f"layer track stop {self.stop!r}: expected null or a layer after {self.start}")
        if not (0.0 <= self.begin <= self.end <= 1.0):
            raise TimelineError(f"layer track [{self.begin}, {self.end}]: expected 0 <= begin <= end <= 1")

    def to_dict(self) -> dict:
        return {"start": self.start, "stop": self.stop, "begin": self.begin, "end": self.end}


@dataclass(frozen=True, eq=False)
class Keyframe:
    state: LatentState                     # the image at this keyframe, as the studio renders it
    duration: float = 2.0                  # seconds from this keyframe to the next (> 0)
    easing: str = "ease-in-out"            # how the segment to the next keyframe speeds up and slows down
    tracks: tuple[LayerTrack, ...] = ()    # per-layer timing inside that segment; () = all layers together
    z: np.ndarray | None = None            # [z_dim] explicit z instead of the seed's (paths through Z)
    label: str = ""                        # the artist's name for it

    def __post_init__(self):
        if isinstance(self.duration, bool) or not isinstance(self.duration, (int, float)) \
                or not math.isfinite(self.duration) or self.duration <= 0:
            raise TimelineError(f"keyframe duration {self.duration!r}: expected a number of seconds above 0")
        object.__setattr__(self, "duration", float(self.duration))
        if self.easing not in EASINGS:
            raise TimelineError(f"easing {self.easing!r}: expected one of {', '.join(EASINGS)}")
        object.__setattr__(self, "tracks", tuple(self.tracks))
        if self.z is not None:
            z = np.asarray(self.z, dtype=np.float32)
            if z.ndim != 1 or not np.isfinite(z).all():
                raise TimelineError(f"a keyframe's z must be a finite [z_dim] vector, got shape {z.shape}")
            object.__setattr__(self, "z", z)

    def replace(self, **changes) -> "Keyframe":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {"state": self.state.to_dict(), "duration": self.duration, "easing": self.easing,
                "tracks": [t.to_dict() for t in self.tracks],
                "z": None if self.z is None else self.z.tolist(), "label": self.label}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Keyframe":
        if not isinstance(d, Mapping):
            raise TimelineError("a keyframe must be a JSON object")
        unknown = sorted(set(d) - {"state", "duration", "easing", "tracks", "z", "label"})
        if unknown:
            raise TimelineError(f"keyframe has unknown field(s): {', '.join(unknown)}")
        try:
            state = LatentState.from_dict(d.get("state", {}))
            tracks = tuple(LayerTrack(**t) for t in d.get("tracks", []))
        except (TypeError, ValueError) as exc:
            raise TimelineError(str(exc)) from None
        return cls(state=state, duration=d.get("duration", 2.0), easing=d.get("easing", "ease-in-out"),
                   tracks=tracks, z=d.get("z"), label=str(d.get("label", "")))


@dataclass(frozen=True, eq=False)
class Timeline:
    keyframes: tuple[Keyframe, ...] = ()
    fps: float = DEFAULT_FPS               # frames per second of playback and export
    loop: bool = False                     # the last keyframe travels back to the first
    interpolation: str = "piecewise"       # "piecewise" (per-segment easing) or "catmull-rom" (cubic through keys)
    noise_mode: str = "const"              # per-pixel noise for every frame: "const" or "none" (fixed per timeline)
    checkpoint: str = ""                   # the checkpoint the keyframes were made on
    checkpoint_sha256: str = ""            # its sha256 ("" = unknown)
    model: Mapping = field(default_factory=dict)  # z_dim, c_dim, num_ws, w_dim, img_resolution it was made for

    def __post_init__(self):
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 0 < self.fps <= MAX_FPS:
            raise TimelineError(f"fps {self.fps!r}: expected a number above 0 and at most {MAX_FPS}")
        object.__setattr__(self, "fps", float(self.fps))
        if self.interpolation not in INTERPOLATIONS:
            raise TimelineError(f"interpolation {self.interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
        if self.noise_mode not in TIMELINE_NOISE_MODES:
            raise TimelineError(f"noise mode {self.noise_mode!r}: a timeline's noise is fixed, "
                                f"expected {' or '.join(TIMELINE_NOISE_MODES)}")
        object.__setattr__(self, "model", dict(self.model))
        # every keyframe renders with the timeline's noise, so its own render is its frame
        keys = tuple(k if k.state.noise_mode == self.noise_mode else k.replace(state=k.state.replace(
            noise_mode=self.noise_mode)) for k in self.keyframes)
        object.__setattr__(self, "keyframes", keys)
        starts = self.keyframe_frames()
        for i in range(len(keys) - (0 if self.loop else 1)):
            if starts[i + 1] <= starts[i]:
                raise TimelineError(f"keyframe {i + 1} lasts {keys[i].duration:g} s, less than one frame at "
                                    f"{self.fps:g} fps")

    def replace(self, **changes) -> "Timeline":
        return replace(self, **changes)

    # ---- time ----
    def keyframe_frames(self) -> list[int]:
        """The frame each keyframe sits on, plus one entry past the last: where the loop closes
        (looping) or the frame after the last keyframe's own (not looping: unused)."""
        starts, t = [], 0.0
        for k in self.keyframes:
            starts.append(int(round(t * self.fps)))
            t += k.duration
        starts.append(int(round(t * self.fps)))
        return starts

    @property
    def frame_count(self) -> int:
        if not self.keyframes:
            return 0
        starts = self.keyframe_frames()
        return starts[-1] if self.loop else starts[-2] + 1

    @property
    def seconds(self) -> float:
        return self.frame_count / self.fps

    def locate(self, frame: int) -> tuple[int, float]:
        """Frame index -> (segment = index of the keyframe it leaves, fraction 0-1 of the way to the
        next). Frames on a keyframe give fraction exactly 0."""
        if not 0 <= frame < self.frame_count:
            raise IndexError(f"frame {frame} is outside the timeline (0-{self.frame_count - 1})")
        starts = self.keyframe_frames()
        segment = int(np.searchsorted(starts[:len(self.keyframes)], frame, side="right")) - 1
        if segment == len(self.keyframes) - 1 and not self.loop:
            return segment, 0.0
        return segment, (frame - starts[segment]) / (starts[segment + 1] - starts[segment])

    # ---- files ----
    def to_dict(self) -> dict:
        return {"format": TIMELINE_FORMAT, "version": TIMELINE_VERSION, "checkpoint": self.checkpoint,
                "checkpoint_sha256": self.checkpoint_sha256, "model": dict(self.model), "fps": self.fps,
                "loop": self.loop, "interpolation": self.interpolation, "noise_mode": self.noise_mode,
                "keyframes": [k.to_dict() for k in self.keyframes]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Timeline":
        """The inverse of to_dict; TimelineError for another format, an unknown or newer version, an
        unknown field or an unusable value."""
        if not isinstance(d, Mapping) or d.get("format") != TIMELINE_FORMAT:
            raise TimelineError(f"not a GAN Studio timeline (missing \"format\": \"{TIMELINE_FORMAT}\")")
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise TimelineError(f"timeline version {version!r} is not a version number")
        if version > TIMELINE_VERSION:
            raise TimelineError(f"timeline version {version} is newer than this GAN Studio reads "
                                f"(up to {TIMELINE_VERSION}): update GAN Studio to open it")
        known = {"format", "version", "checkpoint", "checkpoint_sha256", "model", "fps", "loop",
                 "interpolation", "noise_mode", "keyframes"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TimelineError(f"timeline has unknown field(s): {', '.join(unknown)}")
        keyframes = d.get("keyframes", [])
        if not isinstance(keyframes, list):
            raise TimelineError("timeline keyframes must be a list")
        model = d.get("model", {})
        if not isinstance(model, Mapping) or not all(isinstance(v, int) for v in model.values()):
            raise TimelineError("timeline model must be an object of whole numbers (z_dim, c_dim, num_ws ...)")
        loop = d.get("loop", False)
        if not isinstance(loop, bool):
            raise TimelineError(f"timeline loop {loop!r}: expected true or false")
        return cls(keyframes=tuple(Keyframe.from_dict(k) for k in keyframes), fps=d.get("fps", DEFAULT_FPS),
                   loop=loop, interpolation=d.get("interpolation", "piecewise"),
                   noise_mode=d.get("noise_mode", "const"), checkpoint=str(d.get("checkpoint", "")),
                   checkpoint_sha256=str(d.get("checkpoint_sha256", "")), model=model)

    def save(self, path) -> None:
        from .files import atomic_write
        text = json.dumps(self.to_dict(), indent=1)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path) -> "Timeline":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TimelineError(f"cannot read timeline {path}: {exc}") from None
        return cls.from_dict(d)

    def with_seed_offset(self, offset: int) -> "Timeline":
        """The same journey from other seeds (a grid video's cells): every seed and mix seed + offset."""
        keys = tuple(k.replace(state=k.state.replace(seed=(k.state.seed + offset) % (MAX_SEED + 1),
                                                     mix_seed=(k.state.mix_seed + offset) % (MAX_SEED + 1)))
                     for k in self.keyframes)
        return self.replace(keyframes=keys)


# ---- models and checkpoints ----
def model_signature(G) -> dict:
    """What a timeline needs to match in a model: {z_dim, c_dim, num_ws, w_dim, img_resolution}."""
    return {"z_dim": int(G.z_dim), "c_dim": int(G.c_dim), "num_ws": int(getattr(G, "num_ws", 0)),
            "w_dim": int(getattr(G, "w_dim", 0)), "img_resolution": int(G.img_resolution)}


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_timeline_for_model(timeline: Timeline, G) -> None:
    """TimelineError when the timeline was made for another model (z_dim, classes, num_ws, w_dim) or a
    keyframe does not fit this one (W+ or offset shape, mixing mask length, class, z length)."""
    sig = model_signature(G)
    if G.img_resolution == 0:
        raise TimelineError("timelines need an image model; this one draws 2-D points")
    for name, value in timeline.model.items():
        if name in sig and sig[name] != value:
            raise TimelineError(f"the timeline was made for a model with {name} = {value}; this checkpoint has "
                                f"{name} = {sig[name]}: open the timeline's own checkpoint")
    for i, k in enumerate(timeline.keyframes, start=1):
        s = k.state
        if s.ws is not None and s.ws.shape != (sig["num_ws"], sig["w_dim"]):
            raise TimelineError(f"keyframe {i}: its W+ latent has shape {s.ws.shape}, the model needs "
                                f"({sig['num_ws']}, {sig['w_dim']})")
        if s.w_offset is not None and s.w_offset.shape != (sig["w_dim"],):
            raise TimelineError(f"keyframe {i}: its direction offset has shape {s.w_offset.shape}, the model "
                                f"needs ({sig['w_dim']},)")
        if s.mix_mask and len(s.mix_mask) != sig["num_ws"]:
            raise TimelineError(f"keyframe {i}: its mixing mask has {len(s.mix_mask)} layers, the model "
                                f"{sig['num_ws']}")
        if k.z is not None and k.z.shape != (sig["z_dim"],):
            raise TimelineError(f"keyframe {i}: its z has {k.z.shape[0]} numbers, the model needs {sig['z_dim']}")
        if s.class_index is not None and sig["c_dim"] and not 0 <= s.class_index < sig["c_dim"]:
            raise TimelineError(f"keyframe {i}: class {s.class_index} is out of range (0-{sig['c_dim'] - 1})")


# ---- rendering ----
class TimelineRenderer:
    """Frames of one timeline on one generator: final latents per frame, synthesized in batches.

    Runs wherever the generator lives (the studio's worker thread, a script, the CLI); returns
    uint8 host arrays only."""

    def __init__(self,
                 G: torch.nn.Module,                  # a generator with the project's API
                 timeline: Timeline,                  # checked against G here
                 mapper: LatentMapper | None = None,  # the studio's mapper (shares class centres); None = new
                 dtype: torch.dtype = torch.float32,  # synthesis precision (the studio's half mode: float16)
                 ):
        check_timeline_for_model(timeline, G)
        if not timeline.keyframes:
            raise TimelineError("the timeline has no keyframes")
        self.G, self.timeline, self.dtype = G, timeline, dtype
        self.mapper = mapper if mapper is not None else LatentMapper(G)
        self.device = self.mapper.device
        self.has_w = self.mapper.has_w
        self.keys = timeline.keyframes
        self.key_frames = timeline.keyframe_frames()[:len(self.keys)]
        self._key_of_frame = {f: i for i, f in enumerate(self.key_frames)}
        self._untruncated: dict[int, torch.Tensor] = {}

    @property
    def frame_count(self) -> int:
        return self.timeline.frame_count

    @property
    def chunk_count(self) -> int:
        return -(-self.frame_count // CHUNK_FRAMES)

    # ---- public ----
    @torch.inference_mode()
    def render_chunk(self, chunk: int) -> np.ndarray:
        """uint8 [n, H, W, 3]: frames [chunk * CHUNK_FRAMES, ...) up to CHUNK_FRAMES of them."""
        frames = list(range(chunk * CHUNK_FRAMES, min((chunk + 1) * CHUNK_FRAMES, self.frame_count)))
        if not frames:
            raise IndexError(f"chunk {chunk} is outside the timeline ({self.chunk_count} chunks)")
        between = [f for f in frames if f not in self._key_of_frame]
        out: dict[int, np.ndarray] = {}
        if between:
            images = self._images_between(between)
            out.update(zip(between, images))
        for f in frames:
            if f in self._key_of_frame:
                out[f] = self._keyframe_image(self._key_of_frame[f])
        return np.stack([out[f] for f in frames])

    def render_frames(self, frames: Sequence[int]) -> np.ndarray:
        """uint8 [len(frames), H, W, 3] for any frame indices (their chunks are rendered)."""
        chunks: dict[int, np.ndarray] = {}
        out = []
        for f in frames:
            if not 0 <= f < self.frame_count:
                raise IndexError(f"frame {f} is outside the timeline (0-{self.frame_count - 1})")
            c = f // CHUNK_FRAMES
            if c not in chunks:
                chunks[c] = self.render_chunk(c)
            out.append(chunks[c][f - c * CHUNK_FRAMES])
        return np.stack(out)

    def keyframe_image(self, index: int) -> np.ndarray:
        """uint8 [H, W, 3] keyframe `index` as the studio renders its state."""
        with torch.inference_mode():
            return self._keyframe_image(index)

    @torch.inference_mode()
    def frame_latents(self, frames: Sequence[int]) -> torch.Tensor:
        """Final latents of frames as one batch: ws [N, num_ws, w_dim] (W models) or z-and-class
        inputs are not returned for Z models (use render_frames). For benchmarks and tools."""
        if not self.has_w:
            raise ValueError("this model has no W space")
        return self._final_ws(list(frames))

    def synthesize(self, ws: torch.Tensor) -> np.ndarray:
        """Final ws [N, num_ws, w_dim] -> uint8 [N, H, W, 3], as every frame is made."""
        from .images import to_uint8
        with torch.inference_mode():
            return to_uint8(self.G.synthesis(ws.to(self.dtype), noise_mode=self.timeline.noise_mode))

    # ---- keyframes ----
    def _key_z(self, i: int) -> torch.Tensor:
        k = self.keys[i]
        if k.z is not None:
            return torch.from_numpy(k.z).to(self.device)
        return self.mapper.z([k.state])[0]

    def _key_onehot(self, i: int) -> torch.Tensor | None:
        if not self.G.c_dim:
            return None
        s = self.keys[i].state
        onehot = torch.zeros(self.G.c_dim, device=self.device)
        onehot[resolve_class(s.seed, s.class_index, self.G.c_dim)] = 1.0
        return onehot

    def _keyframe_image(self, i: int) -> np.ndarray:
        from .images import to_uint8
        k = self.keys[i]
        if k.z is None:   # exactly the studio's path for this state
            return to_uint8(self.mapper.images([k.state], self.dtype))[0]
        if not self.has_w:
            return to_uint8(self.G(self._key_z(i)[None], self._labels([i])))[0]
        w = self.G.mapping(self._key_z(i)[None], self._labels([i]))
        return self.synthesize(self.mapper.finish(w, [k.state]))[0]

    def _labels(self, keys: Sequence[int]) -> torch.Tensor | None:
        if not self.G.c_dim:
            return None
        return torch.stack([self._key_onehot(i) for i in keys])

    def _key_untruncated(self, i: int) -> torch.Tensor:
        """[num_ws, w_dim] keyframe i's untruncated W+ (cached: keyframes are few)."""
        if i not in self._untruncated:
            k = self.keys[i]
            if k.z is not None:
                self._untruncated[i] = self.G.mapping(self._key_z(i)[None], self._labels([i]))[0]
            else:
                self._untruncated[i] = self.mapper.untruncated_ws([k.state])[0]
        return self._untruncated[i]

    def _slerp_ready(self, a: int, b: int) -> bool:
        """Both keyframes are seeds (or explicit z) with the same mixing mask: travel through Z."""
        sa, sb = self.keys[a].state, self.keys[b].state
        return sa.ws is None and sb.ws is None and sa.mix_mask == sb.mix_mask

    # ---- in-between frames ----
    def _segments(self, frames: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        located = [self.timeline.locate(f) for f in frames]
        return np.array([s for s, _ in located]), np.array([t for _, t in located], dtype=np.float64)

    def _neighbours(self, segment: int) -> tuple[int, int, int, int]:
        n, loop = len(self.keys), self.timeline.loop
        if loop:
            return (segment - 1) % n, segment, (segment + 1) % n, (segment + 2) % n
        clamp = lambda i: min(max(i, 0), n - 1)
        return clamp(segment - 1), segment, clamp(segment + 1), clamp(segment + 2)

    def _layer_progress(self, segment: int, t: np.ndarray, layers: int) -> np.ndarray:
        """[N, layers] eased progress of each ws layer through the segment (per-layer tracks)."""
        key = self.keys[segment]
        begin, end = np.zeros(max(layers, 1)), np.ones(max(layers, 1))
        for track in key.tracks:
            begin[track.start:track.stop] = track.begin
            end[track.start:track.stop] = track.end
        span = end - begin
        local = np.where(span[None] > 0, (t[:, None] - begin[None]) / np.where(span > 0, span, 1)[None],
                         (t[:, None] >= end[None]).astype(np.float64))
        return ease(key.easing, np.clip(local, 0.0, 1.0))

    def _images_between(self, frames: list[int]) -> np.ndarray:
        from .images import to_uint8
        if self.has_w:
            return self.synthesize(self._final_ws(frames))
        z, c = self._z_inputs(frames)
        return to_uint8(self.G(z, c))

    def _z_inputs(self, frames: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Models without W: z [N, z_dim] and soft class rows [N, c_dim] per frame."""
        segments, ts = self._segments(frames)
        zs, cs = [], []
        for f, segment, t in zip(frames, segments, ts):
            u = float(self._layer_progress(int(segment), np.array([t]), 1)[0, 0])
            p0, p1, p2, p3 = self._neighbours(int(segment))
            if self.timeline.interpolation == "catmull-rom":
                weights = torch.tensor(catmull_rom_weights(u), dtype=torch.float32, device=self.device)
                zs.append(sum(w * self._key_z(i) for w, i in zip(weights, (p0, p1, p2, p3))))
                if self.G.c_dim:
                    cs.append(sum(w * self._key_onehot(i) for w, i in zip(weights, (p0, p1, p2, p3))))
            else:
                weight = torch.tensor([u], device=self.device)
                zs.append(slerp(self._key_z(p1)[None], self._key_z(p2)[None], weight)[0])
                if self.G.c_dim:
                    cs.append(self._key_onehot(p1).lerp(self._key_onehot(p2), float(u)))
        return torch.stack(zs), (torch.stack(cs) if cs else None)

    def _final_ws(self, frames: list[int]) -> torch.Tensor:
        """[N, num_ws, w_dim] the final (truncated, offset) ws of each frame."""
        segments, ts = self._segments(frames)
        out = torch.empty(len(frames), self.G.num_ws, self.G.w_dim, device=self.device)
        for segment in np.unique(segments):
            rows = np.flatnonzero(segments == segment)
            u = self._layer_progress(int(segment), ts[rows], self.G.num_ws)        # [n, L]
            if self.timeline.interpolation == "catmull-rom":
                out[torch.from_numpy(rows)] = self._catmull_rom(int(segment), u)
            else:
                out[torch.from_numpy(rows)] = self._piecewise(int(segment), u)
        return out

    def _piecewise(self, segment: int, u: np.ndarray) -> torch.Tensor:
        _, a, b, _ = self._neighbours(segment)
        weight = torch.from_numpy(u).float().to(self.device)[..., None]           # [n, L, 1]
        if self._slerp_ready(a, b):
            w = self._through_z(a, b, u)
        else:
            w = self._key_untruncated(a)[None].lerp(self._key_untruncated(b)[None], weight)
        n = len(u)
        final_a = self.mapper.finish(w, [self.keys[a].state] * n)
        final_b = self.mapper.finish(w, [self.keys[b].state] * n)
        return final_a.lerp(final_b, weight)

    def _through_z(self, a: int, b: int, u: np.ndarray) -> torch.Tensor:
        """[n, L, w_dim] untruncated ws along the great circle from keyframe a's z to b's: each
        distinct progress value is mapped once, and each layer takes the one it is at."""
        values, index = np.unique(u, return_inverse=True)
        index = index.reshape(u.shape)
        t = torch.from_numpy(values).float().to(self.device)
        za, zb = self._key_z(a), self._key_z(b)
        z = slerp(za.expand(len(values), -1), zb.expand(len(values), -1), t)
        c = None
        if self.G.c_dim:
            c = self._key_onehot(a)[None].lerp(self._key_onehot(b)[None], t[:, None])
        mapped = self.G.mapping(z, c)                                                # [m, L, W]
        sa, sb = self.keys[a].state, self.keys[b].state
        if any(sa.mix_mask):   # the style source travels from a's mix seed to b's, with the same class blend
            zs = slerp(self.mapper.z([LatentState(seed=sa.mix_seed)]).expand(len(values), -1),
                       self.mapper.z([LatentState(seed=sb.mix_seed)]).expand(len(values), -1), t)
            style = self.G.mapping(zs, c)
            mask = torch.tensor(sa.mix_mask, device=self.device)
            mapped = torch.where(mask[None, :, None], style, mapped)
        layers = torch.arange(self.G.num_ws, device=self.device)
        return mapped[torch.from_numpy(index).to(self.device), layers[None, :]]     # [n, L, W]

    def _catmull_rom(self, segment: int, u: np.ndarray) -> torch.Tensor:
        keys = self._neighbours(segment)
        weights = torch.from_numpy(catmull_rom_weights(u)).float().to(self.device)   # [n, L, 4]
        points = torch.stack([self._key_untruncated(i) for i in keys])               # [4, L, W]
        w = torch.einsum("nlk,klw->nlw", weights, points)
        n = len(u)
        finals = [self.mapper.finish(w, [self.keys[i].state] * n) for i in keys]
        return sum(weights[..., k:k + 1] * finals[k] for k in range(4))


# ---- presets ----
def _timeline(keyframes, fps, loop, G=None, interpolation="piecewise", checkpoint="", sha="") -> Timeline:
    return Timeline(keyframes=tuple(keyframes), fps=fps, loop=loop, interpolation=interpolation,
                    checkpoint=checkpoint, checkpoint_sha256=sha, model=model_signature(G) if G is not None else {})


def seed_walk(seeds: Sequence[int] | str,
              seconds_per_key: float = 2.0,      # travel time between seeds
              fps: float = DEFAULT_FPS,
              base: LatentState = LatentState(),  # class, truncation, noise ... every keyframe shares
              easing: str = "ease-in-out",
              loop: bool = True,
              G=None, **file_fields) -> Timeline:
    """N seeds visited in turn (slerp in Z), looped back to the first."""
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else list(seeds)
    keys = [Keyframe(base.replace(seed=s), seconds_per_key, easing) for s in seeds]
    return _timeline(keys, fps, loop and len(keys) > 1, G, **file_fields)


def style_morph(seeds: Sequence[int],
                coarse_layers: int,                # ws layers [0, coarse_layers) move in the first half
                seconds_per_key: float = 3.0,
                fps: float = DEFAULT_FPS,
                base: LatentState = LatentState(),
                loop: bool = True,
                G=None, **file_fields) -> Timeline:
    """A seed walk whose coarse layers (shape) move in the first half of each segment and the
    fine layers (texture) in the second half."""
    tracks = (LayerTrack(0, coarse_layers, 0.0, 0.5), LayerTrack(coarse_layers, None, 0.5, 1.0))
    keys = [Keyframe(base.replace(seed=s), seconds_per_key, "ease-in-out", tracks) for s in seeds]
    return _timeline(keys, fps, loop, G, **file_fields)


def truncation_sweep(seed: int = 0,
                     psi_from: float = 0.0,
                     psi_to: float = 1.2,
                     seconds: float = 4.0,
                     fps: float = DEFAULT_FPS,
                     base: LatentState = LatentState(),
                     loop: bool = True,
                     G=None, **file_fields) -> Timeline:
    """One seed with ψ going from psi_from to psi_to (and back, looped)."""
    if G is not None and not getattr(G, "num_ws", 0):
        raise TimelineError("a truncation sweep needs a model with a W space (ψ does not apply in Z)")
    keys = [Keyframe(base.replace(seed=seed, psi=psi_from), seconds, "ease-in-out"),
            Keyframe(base.replace(seed=seed, psi=psi_to), seconds, "ease-in-out")]
    return _timeline(keys, fps, loop, G, **file_fields)


def direction_sweep(direction: np.ndarray,      # [w_dim] one step of the direction (e.g. one sigma)
                    amount: float = 3.0,         # steps to each side
                    seed: int = 0,
                    seconds: float = 2.0,
                    fps: float = DEFAULT_FPS,
                    base: LatentState = LatentState(),
                    G=None, **file_fields) -> Timeline:
    """One seed pushed along a direction to -amount, back through 0 to +amount, looped."""
    direction = np.asarray(direction, dtype=np.float32)
    keys = [Keyframe(base.replace(seed=seed, w_offset=-amount * direction), seconds, "ease-in-out"),
            Keyframe(base.replace(seed=seed, w_offset=amount * direction), seconds, "ease-in-out")]
    return _timeline(keys, fps, True, G, **file_fields)


def class_tour(num_classes: int,
               seed: int = 0,
               seconds_per_key: float = 1.5,
               fps: float = DEFAULT_FPS,
               base: LatentState = LatentState(),
               classes: Sequence[int] | None = None,   # None = every class in order
               G=None, **file_fields) -> Timeline:
    """One seed through every class (class embeddings blended), looped."""
    if num_classes < 2:
        raise TimelineError("a class tour needs a conditional model with at least two classes")
    order = list(range(num_classes)) if classes is None else list(classes)
    keys = [Keyframe(base.replace(seed=seed, class_index=k), seconds_per_key, "ease-in-out") for k in order]
    return _timeline(keys, fps, True, G, **file_fields)


def noise_loop(z_dim: int,
               seed: int = 0,              # fixes the path
               keys: int = 8,              # keyframes along the loop
               seconds: float = 8.0,       # one turn
               harmonics: int = 2,         # 1 = a great circle; more = a wandering (but closed) path
               fps: float = DEFAULT_FPS,
               base: LatentState = LatentState(),
               G=None, **file_fields) -> Timeline:
    """A smooth closed path through Z (Autolume's noise loops): a random periodic curve with a few
    harmonics, scaled to the typical length of z, sampled at `keys` points and joined by a looped
    Catmull-Rom spline."""
    rng = np.random.RandomState(seed)
    coefficients = rng.randn(harmonics, 2, z_dim) / np.sqrt(np.arange(1, harmonics + 1))[:, None, None]
    angles = 2 * np.pi * np.arange(keys) / keys
    z = sum(coefficients[h, 0] * np.cos((h + 1) * angles)[:, None] + coefficients[h, 1] * np.sin(
        (h + 1) * angles)[:, None] for h in range(harmonics))
    z = z / np.linalg.norm(z, axis=1, keepdims=True) * np.sqrt(z_dim)
    frames = [Keyframe(base.replace(seed=seed), seconds / keys, "linear", z=row.astype(np.float32),
                       label=f"loop {i + 1}/{keys}") for i, row in enumerate(z)]
    return _timeline(frames, fps, True, G, interpolation="catmull-rom", **file_fields)


PRESETS = ("seed-walk", "truncation-sweep", "direction-sweep", "class-tour", "noise-loop", "style-morph")
