"""Timelines in one step: a seed walk, a style morph, a truncation sweep, a direction sweep, a class
tour and a smooth noise loop (a closed path through Z, like Autolume's noise loops)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from trainer.latents import LatentState, parse_seeds
from trainer.film.timeline import DEFAULT_FPS, Keyframe, LayerTrack, Timeline, TimelineError, model_signature


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
