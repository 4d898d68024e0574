"""Presets: named snapshots of the live settings, switched at once or with a crossfade.

Qt-free. A preset keeps the workspace's latent settings (seed, class, ψ, cutoff, mixing, direction
offsets, the StyleGAN3 transform, a W+ latent if any). Switching with a crossfade time plays a
two-keyframe timeline from where the image is to the preset, so the frames in between are the
timeline's own interpolation (trainer.film: z on a great circle, W+ and truncation lerped): one
way to move through latent space, not a second one. The frames are rendered by
engine.timeline_frames (newest wish wins, aligned chunks); whoever owns a clock calls `tick()`
(the panel's QTimer, a test's fake clock) and frames whose time passed are skipped, never queued.
When the fade ends, the preset's values are written into the workspace in one render, so the end
state is the preset exactly. Switching in the middle of a fade starts the new one from the frame
on screen (its final W+, computed on the renderer's thread).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from trainer.film.render import CHUNK_FRAMES
from trainer.film.timeline import Keyframe, Timeline, ease
from trainer.latents import LatentState

from .from_workspace import latent_from_workspace
from .timeline_frames import TimelineFrames
from .workspace import LATENT_FIELDS, PRESET_FIELDS, Preset, PresetError, check_name

__all__ = ["PRESET_FIELDS", "Preset", "PresetError", "check_name", "PresetPlayer", "Fade", "fade_timeline"]

FADE_FPS = 30.0              # frames per second of a crossfade
FADE_EASING = "ease-in-out"  # slow out of the old preset, slow into the new one (the timeline's default)
DEFAULT_FADE_S = 1.0
MAX_FADE_S = 60.0
START_JOB = "preset fade"


def check_seconds(seconds) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_FADE_S:
        raise PresetError(f"crossfade {seconds!r}: expected 0 to {MAX_FADE_S:g} seconds")
    return float(seconds)


def fade_timeline(start: LatentState, end: LatentState, seconds: float) -> Timeline:
    """The crossfade as a timeline: `start` on frame 0, `end` on the last frame."""
    fixed = lambda s: s if s.noise_mode != "random" else s.replace(noise_mode="const")   # a film's noise is fixed
    return Timeline(keyframes=(Keyframe(fixed(start), duration=seconds, easing=FADE_EASING), Keyframe(fixed(end))),
                    fps=FADE_FPS)


@dataclass(frozen=True, eq=False)
class Fade:
    """One crossfade under way."""
    timeline: Timeline       # two keyframes: where it left from, the preset
    preset: Preset
    started: float           # the clock when it began

    @property
    def last_frame(self) -> int:
        return self.timeline.frame_count - 1

    def due(self, now: float) -> int:
        return min(int((now - self.started) * FADE_FPS), self.last_frame)


class PresetPlayer:
    def __init__(self,
                 workspace,                                 # engine.workspace.Workspace: presets live in its field
                 controller,                                # RenderController: the model, the renders, the jobs
                 show: Callable[[np.ndarray], None],        # a crossfade frame to put on screen (uint8 [H, W, 3])
                 clock: Callable[[], float] = time.perf_counter,
                 linger_s: float | None = None,             # TimelineFrames' linger (0 for inline controllers)
                 ):
        self.workspace, self.controller, self.show, self.clock = workspace, controller, show, clock
        options = {} if linger_s is None else {"linger_s": linger_s}
        self.frames = TimelineFrames(controller, self._on_chunk, self._on_frames_failed, **options)
        self.fade_seconds = DEFAULT_FADE_S
        self.fade: Fade | None = None
        self.on_screen: tuple[Fade, int] | None = None   # the crossfade frame on screen: (its fade, frame)
        self.current = ""                # the preset last switched to
        self.error = ""                  # why the last crossfade failed ("" = it did not)
        self._writing = False            # the end of a fade is writing the workspace (not an explorer edit)
        self._start_token = 0            # counts switches and edits: a start latent for an older one is dropped
        self.starting = False            # a mid-fade switch waits for its start latent
        workspace.events.changed.connect(self._on_workspace_changed)

    # ---- the list ----
    @property
    def presets(self) -> tuple[Preset, ...]:
        return self.workspace.presets

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.presets]

    def find(self, key: str | int) -> Preset:
        """A preset by name, or by number from 1 (the keys 1-9, OSC and MIDI's "preset" value)."""
        if isinstance(key, int):
            if not 1 <= key <= len(self.presets):
                raise PresetError(f"no preset {key}: there are {len(self.presets)}")
            return self.presets[key - 1]
        for p in self.presets:
            if p.name == key:
                return p
        raise PresetError(f"no preset named {key!r}")

    def save(self, name: str) -> Preset:
        """The current settings as preset `name` (replacing one of that name in its place)."""
        preset = Preset.capture(name, self.workspace)
        names = self.names
        kept = list(self.presets)
        if preset.name in names:
            kept[names.index(preset.name)] = preset
        else:
            kept.append(preset)
        self.workspace.presets = tuple(kept)
        self.current = preset.name
        return preset

    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        if new != old and new in self.names:
            raise PresetError(f"a preset named {new!r} exists")
        self.workspace.presets = tuple(Preset(new, p.values) if p.name == old else p for p in self.presets)
        if self.current == old:
            self.current = new

    def delete(self, name: str) -> None:
        self.find(name)
        self.workspace.presets = tuple(p for p in self.presets if p.name != name)

    # ---- switching ----
    def select(self, key: str | int, seconds: float | None = None) -> Preset:
        """Switch to a preset: at once (0 s) or crossfading over `seconds` (None: fade_seconds)."""
        preset = self.find(key)
        seconds = check_seconds(self.fade_seconds if seconds is None else seconds)
        info = self.controller.info
        self.current, self.error = preset.name, ""
        if not seconds or info is None or info.translates or not info.img_resolution:
            self.stop()
            self._write(preset)
            return preset
        if self.fading and self.on_screen is not None and self.on_screen[1] > 0:
            self._start_from_screen(preset, seconds)   # the fade under way is the start: its frame on screen
        else:
            start = self.fade.timeline.keyframes[0].state if self.fade is not None else self._workspace_state()
            self._begin(start, preset, seconds)
        return preset

    def tick(self) -> bool:
        """Show the crossfade frame due now; at the end, the preset itself. True while fading."""
        fade = self.fade
        if fade is None:
            return False
        due = fade.due(self.clock())
        if due >= fade.last_frame:
            self.fade = None
            self.frames.stop()
            self._write(fade.preset)
            return False
        if due != self.shown_frame:
            image = self.frames.frame(fade.timeline, due)
            if image is None:
                self.frames.want(fade.timeline, due // CHUNK_FRAMES)
                return True
            self.on_screen = (fade, due)
            self.show(image)
        chunk = due // CHUNK_FRAMES + 1     # the next chunk, so its frames are ready when their time comes
        if chunk * CHUNK_FRAMES < fade.last_frame and not self.frames.has_chunk(fade.timeline, chunk):
            self.frames.want(fade.timeline, chunk)
        return True

    def stop(self) -> None:
        """Leave the crossfade where it is (an explorer edit took over the image)."""
        self.fade = None
        self.starting = False
        self._start_token += 1
        self.frames.stop()

    @property
    def shown_frame(self) -> int:
        """The frame of the fade under way on screen (-1: none of its frames yet)."""
        return self.on_screen[1] if self.on_screen is not None and self.on_screen[0] is self.fade else -1

    @property
    def fading(self) -> bool:
        return self.fade is not None or self.starting

    # ---- parts ----
    def _workspace_state(self) -> LatentState:
        return latent_from_workspace(self.workspace, self.controller.info)

    def _preset_state(self, preset: Preset) -> LatentState:
        fields = {name: getattr(self.workspace, name) for name in LATENT_FIELDS}
        fields.update(preset.values)
        return latent_from_workspace(_Fields(fields), self.controller.info)

    def _begin(self, start: LatentState, preset: Preset, seconds: float) -> None:
        self.frames.stop()
        self.starting = False
        self.fade = Fade(fade_timeline(start, self._preset_state(preset), seconds), preset, self.clock())
        self.tick()

    def _start_from_screen(self, preset: Preset, seconds: float) -> None:
        """Start the new fade from the frame on screen, which stays while its final W+ is computed on
        the renderer's thread (models without W start from the nearer end of the fade under way)."""
        fade, frame = self.on_screen
        self.stop()
        a, b = (k.state for k in fade.timeline.keyframes)
        if not self.controller.info.has_w:
            self._begin(a if frame < fade.last_frame / 2 else b, preset, seconds)
            return
        u = float(ease(FADE_EASING, frame / fade.last_frame))
        transform = {k: getattr(a, k) + (getattr(b, k) - getattr(a, k)) * u
                     for k in ("translate_x", "translate_y", "rotate_deg")}   # as ws layer 0 moves (the timeline's)
        token = self._start_token

        def latent(renderer, progress, preview):
            return renderer.timeline_renderer(fade.timeline).frame_latents([frame])[0].float().cpu().numpy()

        def started(ws) -> None:
            if token == self._start_token:   # no edit or other switch came meanwhile
                self._begin(LatentState.explicit(ws, noise_mode=a.noise_mode, **transform), preset, seconds)

        self.starting = True
        self.controller.run_job(START_JOB, latent, started, self._on_frames_failed)

    def _write(self, preset: Preset) -> None:
        """The preset's values into the workspace: one render, exactly the preset."""
        self._writing = True
        self.on_screen = None
        try:
            with self.controller.held():
                for name, value in preset.values.items():
                    setattr(self.workspace, name, value)
        finally:
            self._writing = False

    def _on_chunk(self, timeline: Timeline, _chunk: int) -> None:
        if self.fade is not None and timeline is self.fade.timeline:
            self.tick()

    def _on_frames_failed(self, message: str) -> None:
        """A crossfade's frames failed or were cancelled: the preset is written at once (one render)."""
        self.error = message
        preset = self.workspace_target()
        self.stop()
        if preset is not None:
            self._write(preset)

    def workspace_target(self) -> Preset | None:
        """The preset a fade under way (or waiting to start) is going to."""
        if self.fade is not None:
            return self.fade.preset
        return self._find_current() if self.starting else None

    def _find_current(self) -> Preset | None:
        return next((p for p in self.presets if p.name == self.current), None)

    def _on_workspace_changed(self, name: str) -> None:
        if not self._writing and name in PRESET_FIELDS + ("checkpoint", "directions", "direction_layers"):
            self.stop()   # an explorer edit owns the image now
            self.on_screen = None


class _Fields:
    """Attribute access to a dict of workspace fields (latent_from_workspace reads attributes)."""

    def __init__(self, values: Mapping):
        self.__dict__.update(values)
