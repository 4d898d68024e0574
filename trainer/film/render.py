"""Rendering a timeline: final latents per frame, synthesized in fixed aligned chunks.

Frame k of a timeline is a pure function of the timeline and the model:
- keyframe i sits exactly on its frame and renders as the studio renders its state (the same code
  path, one image at a time), so its pixels are byte for byte the studio's;
- frames between keyframes are rendered in aligned chunks of CHUNK_FRAMES, so frame k is computed
  in the same batch every time: scrubbing, playback, export and the headless CLI agree (a batch of
  another size could round a pixel differently).
How frames move between keyframes is described in trainer.film.timeline.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from trainer.latents import (LatentMapper, LatentState, fitted_noise, has_input_transform, noise_layers, noise_override,
                             resolve_class, stylegan3_transform, synthesize)
from trainer.film.timeline import Timeline, TimelineError, catmull_rom_weights, check_timeline_for_model, ease, slerp

CHUNK_FRAMES = 8          # in-between frames are always rendered in these aligned batches


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
        self._noise: dict[int, dict[str, torch.Tensor]] = {}   # keyframe -> its noise maps (see _key_noise)
        self._sound = self._sound_curves()    # [(mapping, curve [frames])], empty without sound

    def _sound_curves(self) -> list:
        audio = self.timeline.audio
        if audio is None or not audio.mappings:
            return []
        from trainer.film.audio import AUDIO_RATE, feature_curve, load_audio
        samples = load_audio(audio.path)
        return [(m, feature_curve(samples, AUDIO_RATE, self.timeline.fps, self.frame_count, m.feature, m.smoothing,
                                  audio.offset)) for m in audio.mappings]

    def _with_sound(self, ws: torch.Tensor, frames: Sequence[int]) -> torch.Tensor:
        """The sound's push on final ws [N, L, W]: ψ scaled by 1 + gain * curve (around w_avg), or a
        direction added gain * curve times."""
        for mapping, curve in self._sound:
            amount = torch.from_numpy(curve[list(frames)]).to(ws)[:, None, None] * mapping.gain
            if mapping.target == "psi":
                centre = self.G.w_avg.to(ws)
                pushed = centre + (ws - centre) * (1 + amount)
            else:
                pushed = ws + amount * torch.from_numpy(mapping.direction).to(ws)
            ws = torch.where(amount != 0, pushed, ws)   # silence leaves a frame exactly as it was
        return ws

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
        # with sound every frame is pushed by it, keyframes too, so none is the studio's plain render
        between = [f for f in frames if f not in self._key_of_frame or self._sound]
        out: dict[int, np.ndarray] = {}
        if between:
            images = self._images_between(between)
            out.update(zip(between, images))
        for f in frames:
            if f not in out:
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
        """Final ws [N, num_ws, w_dim] of the frames, computed as one batch (W models only; for
        benchmarks and tools: render_chunk is how frames are made)."""
        if not self.has_w:
            raise ValueError("this model has no W space")
        return self._with_sound(self._final_ws(list(frames)), list(frames))

    def synthesize(self, ws: torch.Tensor, noise: dict[str, torch.Tensor] | None = None,
                   transforms: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Final ws [N, num_ws, w_dim] (and per-frame noise maps [N, 1, H, W], when a keyframe
        carries fitted ones; per-frame StyleGAN3 input transforms [3, 3]) -> uint8 [N, H, W, 3], as
        every frame is made."""
        from trainer.images import to_uint8
        with torch.inference_mode(), noise_override(self.G, noise):
            return to_uint8(synthesize(self.G, ws.to(self.dtype), self.timeline.noise_mode, transforms))

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
        from trainer.images import to_uint8
        k = self.keys[i]
        if k.z is None:   # exactly the studio's path for this state
            return to_uint8(self.mapper.images([k.state], self.dtype))[0]
        if not self.has_w:
            return to_uint8(self.G(self._key_z(i)[None], self._labels([i])))[0]
        w = self.G.mapping(self._key_z(i)[None], self._labels([i]))
        return self.synthesize(self.mapper.finish(w, [k.state]), transforms=[k.state.transform])[0]

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
        from trainer.images import to_uint8
        if self.has_w:
            return self.synthesize(self._with_sound(self._final_ws(frames), frames), self._frame_noise(frames),
                                   self._frame_transforms(frames))
        z, c = self._z_inputs(frames)
        return to_uint8(self.G(z, c))

    def _key_noise(self, i: int) -> dict[str, torch.Tensor]:
        """Keyframe i's noise maps [1, 1, H, W]: its fitted ones (an inverted photo), else the model's."""
        if i not in self._noise:
            state = self.keys[i].state.replace(noise_mode="const")
            self._noise[i] = fitted_noise(self.G, [state], self.dtype) or \
                {name: layer.noise_const.to(self.dtype)[None, None] for name, layer in noise_layers(self.G).items()}
        return self._noise[i]

    def _frame_noise(self, frames: list[int]) -> dict[str, torch.Tensor] | None:
        """Per-frame noise maps [N, 1, H, W] when some keyframe carries fitted maps: each frame
        crossfades from its segment's first keyframe's maps to the next one's, at the segment's
        mean layer progress, so a photo's keyframe is drawn as the Invert panel drew it and the
        frames around it blend in. None otherwise (every frame uses the model's own maps)."""
        if self.timeline.noise_mode != "const" or not any(k.state.noise for k in self.keys):
            return None
        segments, ts = self._segments(frames)
        per_frame: dict[str, list[torch.Tensor]] = {}
        for segment, t in zip(segments, ts):
            _, a, b, _ = self._neighbours(int(segment))
            u = float(self._layer_progress(int(segment), np.array([t]), self.G.num_ws).mean())
            first, second = self._key_noise(a), self._key_noise(b)
            for name, map_a in first.items():
                per_frame.setdefault(name, []).append(torch.lerp(map_a, second[name], u))
        return {name: torch.cat(maps) for name, maps in per_frame.items()}

    def _frame_transforms(self, frames: list[int]) -> list[np.ndarray] | None:
        """Per frame the [3, 3] StyleGAN3 input transform: translate x / y and rotate blended between
        the keyframes with the weights ws layer 0 moves with (the input reads it), so a film pans and
        spins in step with its latent; degrees are not wrapped (0 -> 360 is one full turn). None for
        models without the transform."""
        if not has_input_transform(self.G):
            return None
        segments, ts = self._segments(frames)
        out = []
        for segment, t in zip(segments, ts):
            u = float(self._layer_progress(int(segment), np.array([t]), self.G.num_ws)[0, 0])
            keys = self._neighbours(int(segment))
            settings = [np.array([s.translate_x, s.translate_y, s.rotate_deg])
                        for s in (self.keys[i].state for i in keys)]
            if self.timeline.interpolation == "catmull-rom":
                blended = sum(w * v for w, v in zip(catmull_rom_weights(u), settings))
            else:
                blended = settings[1] + (settings[2] - settings[1]) * u
            out.append(stylegan3_transform(*blended))
        return out

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
