"""Sound for timelines: an audio file's loudness and onsets, per video frame, driving ψ or a direction.

`load_audio` decodes WAV, MP3, FLAC (anything FFmpeg reads) through PyAV to mono samples;
`feature_curve` turns them into one value per frame in [0, 1] (loudness: RMS over the frame's
time; onsets: rises of the loudness in decibels), smoothed by a one-pole filter. An `AudioTrack` on
a timeline maps curves to targets with a gain each; export muxes the sound into the MP4.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

AUDIO_RATE = 22050                      # samples per second the analysis runs at
FEATURES = ("loudness", "onsets")
TARGETS = ("psi", "direction")          # ψ is scaled by 1 + gain * curve; a direction is added gain * curve times


@dataclass(frozen=True, eq=False)
class AudioMapping:
    feature: str = "loudness"           # which curve: loudness or onsets
    target: str = "psi"                 # what it drives: psi or direction
    gain: float = 0.5                   # how strongly: ψ x (1 + gain) at full curve; direction steps at full curve
    smoothing: float = 0.1              # seconds: the one-pole filter's time constant (0 = none)
    direction: np.ndarray | None = None  # [w_dim] the direction a "direction" mapping pushes along

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ValueError(f"audio feature {self.feature!r}: expected one of {', '.join(FEATURES)}")
        if self.target not in TARGETS:
            raise ValueError(f"audio target {self.target!r}: expected one of {', '.join(TARGETS)}")
        for name in ("gain", "smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"audio {name} {value!r}: expected a finite number")
        if self.smoothing < 0:
            raise ValueError(f"audio smoothing {self.smoothing}: expected seconds >= 0")
        if self.target == "direction":
            if self.direction is None:
                raise ValueError("an audio mapping to a direction needs the direction's vector")
            direction = np.asarray(self.direction, dtype=np.float32)
            if direction.ndim != 1 or not np.isfinite(direction).all():
                raise ValueError(f"an audio mapping's direction must be a finite [w_dim] vector, got {direction.shape}")
            object.__setattr__(self, "direction", direction)

    def to_dict(self) -> dict:
        return {"feature": self.feature, "target": self.target, "gain": self.gain, "smoothing": self.smoothing,
                "direction": None if self.direction is None else self.direction.tolist()}


@dataclass(frozen=True, eq=False)
class AudioTrack:
    path: str                                   # the sound file (relative paths: to the timeline file)
    mappings: tuple[AudioMapping, ...] = ()     # what the sound drives
    offset: float = 0.0                         # seconds into the file at which frame 0 starts

    def __post_init__(self):
        object.__setattr__(self, "mappings", tuple(self.mappings))
        if not isinstance(self.path, str) or not self.path:
            raise ValueError("an audio track needs a file path")
        if isinstance(self.offset, bool) or not isinstance(self.offset, (int, float)) or not self.offset >= 0:
            raise ValueError(f"audio offset {self.offset!r}: expected seconds >= 0")

    def to_dict(self) -> dict:
        return {"path": self.path, "offset": self.offset, "mappings": [m.to_dict() for m in self.mappings]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "AudioTrack":
        if not isinstance(d, Mapping) or set(d) - {"path", "offset", "mappings"}:
            raise ValueError("audio must be an object with path, offset and mappings")
        mappings = d.get("mappings", [])
        if not isinstance(mappings, list) or not all(isinstance(m, Mapping) for m in mappings):
            raise ValueError("audio mappings must be a list of objects")
        try:
            return cls(path=d.get("path", ""), offset=d.get("offset", 0.0),
                       mappings=tuple(AudioMapping(**m) for m in mappings))
        except TypeError as exc:
            raise ValueError(f"audio mapping: {exc}") from None


def load_audio(path, rate: int = AUDIO_RATE) -> np.ndarray:
    """A sound file -> mono float32 samples at `rate` in [-1, 1]. ValueError names what is wrong."""
    try:
        import av
    except ImportError:
        raise ValueError("sound needs PyAV (FFmpeg for Python): pip install av") from None
    if not Path(path).is_file():
        raise ValueError(f"no such sound file: {path}")
    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{Path(path).name} has no sound")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot read sound from {Path(path).name}: {exc}") from None
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def feature_curve(samples: np.ndarray,     # mono float32 at `rate`
                  rate: int,
                  fps: float,              # video frames per second
                  frames: int,             # how many frames
                  feature: str,            # "loudness" or "onsets"
                  smoothing: float = 0.0,  # seconds, one-pole low-pass time constant
                  offset: float = 0.0,     # seconds into the samples at which frame 0 starts
                  ) -> np.ndarray:
    """[frames] float in [0, 1]: the feature over each frame's time (frames past the sound's end: 0)."""
    hop = rate / fps
    starts = (offset * rate + np.arange(frames) * hop).astype(np.int64)
    width = max(int(round(hop)), 1)
    rms = np.zeros(frames)
    for i, s in enumerate(starts):
        window = samples[s:s + width]
        if len(window):
            rms[i] = float(np.sqrt(np.mean(window.astype(np.float64) ** 2)))
    if feature == "loudness":
        curve = rms
    elif feature == "onsets":
        db = 20 * np.log10(np.maximum(rms, 1e-5))
        curve = np.maximum(np.diff(db, prepend=db[:1]), 0.0)
    else:
        raise ValueError(f"audio feature {feature!r}: expected one of {', '.join(FEATURES)}")
    scale = np.percentile(curve, 95) if curve.any() else 0.0
    curve = np.clip(curve / scale, 0.0, 1.0) if scale > 0 else np.zeros(frames)
    if smoothing > 0:
        alpha = 1.0 - math.exp(-1.0 / (smoothing * fps))
        smoothed, level = np.empty(frames), 0.0
        for i, value in enumerate(curve):
            level += alpha * (value - level)
            smoothed[i] = level
        curve = smoothed
    return curve.astype(np.float32)
