"""Timelines: keyframed journeys through latent space (the file format, timing and the maths).

A timeline is a list of keyframes, each a full `LatentState` (a seed, a style mix, an explicit W+,
a class, ψ, direction offsets) plus its duration and easing to the next keyframe and per-layer
track settings. Keyframe i sits exactly on frame round(start_i * fps). Rendering lives in
trainer.film.render, the one-step presets in trainer.film.presets.

How a segment from keyframe A to B moves (piecewise interpolation):
- seeds (both keyframes "from settings", the same mixing mask): z moves on a great circle (slerp),
  the class one-hot is blended (the mapping embeds it linearly, so this blends class embeddings),
  the mix seed's z is slerped too;
- anything with an explicit W+ (or different mixing masks): the untruncated W+ moves linearly;
- truncation and direction offsets: the final latent is lerp(finish_A(w), finish_B(w), t), which
  animates ψ linearly, blends the truncation centres and slides the offsets;
- per-layer tracks let some ws layers move in part of the segment only (coarse first, fine later);
- StyleGAN3's translate x / y and rotate (keyframe state fields) blend with ws layer 0's weights
  (the input reads it), so a film pans and spins; degrees are not wrapped (0 -> 720 turns twice).
Catmull-Rom interpolation runs a cubic through the keyframes' untruncated W+ (as NVlabs'
gen_video.py does in W) and blends their truncation and offsets with the same weights.
Models without a W space interpolate z (slerp, or Catmull-Rom in Z) and blend the class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import torch

from trainer.film.audio import AudioTrack
from trainer.latents import MAX_SEED, LatentState

TIMELINE_FORMAT = "ganstudio.timeline"
TIMELINE_VERSION = 1
EASINGS = ("linear", "ease-in-out", "cubic", "hold")
INTERPOLATIONS = ("piecewise", "catmull-rom")
TIMELINE_NOISE_MODES = ("const", "none")   # "random" would make frames differ on every render
MAX_FPS = 240
DEFAULT_FPS = 30.0
MAX_KEYFRAME_SECONDS = 3600.0   # one keyframe's segment lasts at most an hour
MAX_FRAMES = 1_000_000          # a film's length: 9 hours at 30 fps, 70 minutes at 240


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
                or not math.isfinite(self.duration) or not 0 < self.duration <= MAX_KEYFRAME_SECONDS:
            raise TimelineError(f"keyframe duration {self.duration!r}: expected a number of seconds above 0 "
                                f"and at most {MAX_KEYFRAME_SECONDS:g}")
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
    audio: AudioTrack | None = None        # a sound that drives ψ or a direction, muxed into MP4 exports

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
        if starts[-1] > MAX_FRAMES:
            raise TimelineError(f"the timeline lasts {starts[-1] / self.fps:,.0f} s, {starts[-1]:,} frames at "
                                f"{self.fps:g} fps: at most {MAX_FRAMES:,} frames")
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
                "keyframes": [k.to_dict() for k in self.keyframes],
                "audio": None if self.audio is None else self.audio.to_dict()}

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
                 "interpolation", "noise_mode", "keyframes", "audio"}
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
        try:
            audio = None if d.get("audio") is None else AudioTrack.from_dict(d["audio"])
        except ValueError as exc:
            raise TimelineError(str(exc)) from None
        return cls(keyframes=tuple(Keyframe.from_dict(k) for k in keyframes), fps=d.get("fps", DEFAULT_FPS), audio=audio,
                   loop=loop, interpolation=d.get("interpolation", "piecewise"),
                   noise_mode=d.get("noise_mode", "const"), checkpoint=str(d.get("checkpoint", "")),
                   checkpoint_sha256=str(d.get("checkpoint_sha256", "")), model=model)

    def save(self, path) -> None:
        from trainer.files import write_json
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "Timeline":
        from trainer.files import read_json
        try:
            d = read_json(path, "the file")
        except (OSError, ValueError) as exc:   # unreadable, not JSON, nested too deeply
            raise TimelineError(f"cannot read timeline {path}: {exc}") from None
        return cls.from_dict(d)

    def located(self, path) -> "Timeline":
        """This timeline as read from the file at `path`: relative checkpoint and sound paths in a
        file (written by hand, or moved with its files) are relative to the file's folder."""
        from trainer.files import beside
        line = self.replace(checkpoint=beside(path, self.checkpoint))
        return line if line.audio is None else line.replace(audio=replace(line.audio, path=beside(path, line.audio.path)))

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
    if timeline.audio is not None and timeline.audio.mappings:
        if not sig["num_ws"]:
            raise TimelineError("sound drives ψ or a direction in W: this model has no W space")
        for m in timeline.audio.mappings:
            if m.direction is not None and m.direction.shape != (sig["w_dim"],):
                raise TimelineError(f"the sound's direction has shape {m.direction.shape}, the model needs "
                                    f"({sig['w_dim']},)")
