"""Live control: OSC messages and MIDI knobs onto the same workspace the sliders change.

Qt-free. A message is plain data, `(address, args)`: `("/ganstudio/psi", (0.5,))`. `LiveControl.apply_all`
checks each one against the settings the open model has (`targets()`), writes the workspace inside
one `controller.held()` (a batch of messages asks for one render; the worker's newest-request-wins
slot does the rest), and counts what it refused: an unknown address, a wrong type, NaN, a value out
of range never reach the workspace. What is not a workspace field (timeline transport, screenshots)
goes to `actions`, which the window fills; presets go to an engine.presets.PresetPlayer. Going out, `frame_shown` sends `/ganstudio/frame` and
saves the screenshots asked for; `timeline_looped` sends a pulse when a playing timeline loops.
The address table is in ../shared/DESIGN.md and docs/live.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from trainer.film.presets import PRESETS as TIMELINE_PRESETS
from trainer.latents import MAX_ROTATE_DEG, MAX_SEED, MAX_TRANSLATE

from .presets import MAX_FADE_S, PresetError
from .workspace import MAX_OFFSET, NUMBER_RANGES

ROOT = "/ganstudio/"
FRAME_ADDRESS = ROOT + "frame"          # out: frame number (counts from 1), render milliseconds
LOOP_ADDRESS = ROOT + "loop_end"        # out: loops completed since playback started
MALFORMED = ""                          # the address the server gives a packet it could not parse
ERRORS_KEPT = 20                        # recent refusals kept for the status line's tooltip

# kinds of value: a number in [low, high], a whole number, on/off, a bare trigger, a file path,
# a preset's name or its number from 1
NUMBER, WHOLE, SWITCH, TRIGGER, TEXT, PRESET = "number", "whole", "switch", "trigger", "text", "preset"


@dataclass(frozen=True)
class Target:
    """One live setting: what an OSC address or a MIDI control drives."""
    name: str                     # the address after /ganstudio/: "psi", "direction/PC1", "mix/3"
    kind: str                     # NUMBER, WHOLE, SWITCH, TRIGGER or TEXT
    low: float = 0.0              # the values a message may carry (NUMBER, WHOLE)
    high: float = 1.0
    knob: tuple[float, float] = (0.0, 1.0)   # the range a MIDI knob sweeps unless its mapping says otherwise


class BadMessage(ValueError):
    """A message that was refused; the text says why."""


@dataclass
class LiveActions:
    """What messages ask of the window beyond the workspace (each may stay None: then refused)."""
    timeline_play: Callable[[bool], None] | None = None
    timeline_position: Callable[[float], None] | None = None   # 0-1 of the timeline's length
    timeline_make: Callable[[str], None] | None = None         # keyframes from a trainer.film.presets name
    has_timeline: Callable[[], bool] = lambda: False
    send: Callable[[str, tuple], None] | None = None            # OSC out: (address, args)
    save_image: Callable[[str, object], None] | None = None     # (path, uint8 [H, W, 3])


def direction_address(name: str) -> str:
    """A direction's name as an OSC address part: OSC addresses hold no spaces ("to tee" -> "to_tee")."""
    return "direction/" + name.replace(" ", "_")


def preset_address(name: str) -> str:
    """A preset's name as an OSC address part ("slow drift" -> "preset/slow_drift")."""
    return "preset/" + name.replace(" ", "_")


@dataclass
class LiveControl:
    workspace: object                                   # engine.workspace.Workspace
    controller: object                                  # engine.controller.RenderController (info, held())
    actions: LiveActions = field(default_factory=LiveActions)
    presets: object = None                              # engine.presets.PresetPlayer (None: no presets)
    received: int = 0                                   # messages seen
    applied: int = 0                                    # messages that changed or set something
    refused: int = 0                                    # bad messages (never applied)
    frames_sent: int = 0
    loops: int = 0                                      # loop-end pulses sent
    errors: list[str] = field(default_factory=list)     # the newest ERRORS_KEPT refusals, newest last
    pending_screenshots: list[tuple[str, int]] = field(default_factory=list)   # (path, first request id it takes)

    # ---- the address table ----
    def targets(self) -> dict[str, Target]:
        """The settings the open model has, by address part. Without a model: the ones every model has."""
        info = self.controller.info
        psi_low, psi_high = NUMBER_RANGES["psi"]
        found = [Target("seed", WHOLE, 0, MAX_SEED, (0, 127)),
                 Target("psi", NUMBER, psi_low, psi_high, (0.0, 1.0)),
                 Target("timeline/play", SWITCH), Target("timeline/position", NUMBER, 0.0, 1.0),
                 Target("timeline/make", TEXT),
                 Target("screenshot", TEXT)]
        if info is not None and info.c_dim:
            found.append(Target("class", WHOLE, 0, info.c_dim - 1, (0, info.c_dim - 1)))
        if info is not None and info.has_w:
            found.append(Target("cutoff", WHOLE, 0, info.num_ws, (0, info.num_ws)))
            found += [Target(f"mix/{k}", SWITCH) for k in range(info.num_ws)]
            found += [Target(direction_address(name), NUMBER, -MAX_OFFSET, MAX_OFFSET, (-5.0, 5.0))
                      for name in self.workspace.directions]
        if info is not None and info.transformable:
            found += [Target("translate_x", NUMBER, -MAX_TRANSLATE, MAX_TRANSLATE, (-0.5, 0.5)),
                      Target("translate_y", NUMBER, -MAX_TRANSLATE, MAX_TRANSLATE, (-0.5, 0.5)),
                      Target("rotate_deg", NUMBER, -MAX_ROTATE_DEG, MAX_ROTATE_DEG, (-180.0, 180.0))]
        if self.presets is not None:
            names = self.presets.names
            found += [Target("preset_fade", NUMBER, 0.0, MAX_FADE_S, (0.0, 10.0)), Target("preset_save", TEXT)]
            if names:
                found.append(Target("preset", PRESET, 1, len(names), (1, len(names))))
                found += [Target(preset_address(name), TRIGGER) for name in names]
        return {t.name: t for t in found}

    # ---- in ----
    def apply_all(self, messages) -> int:
        """Apply `(address, args)` messages in order, all in one render. Returns how many were refused."""
        refused = self.refused
        with self.controller.held():
            for address, args in messages:
                self.apply(address, args)
        return self.refused - refused

    def apply(self, address: str, args: tuple) -> bool:
        """One message; a bad one is counted and remembered (never raised). True if applied."""
        self.received += 1
        try:
            if address == MALFORMED:
                raise BadMessage("a packet that is not OSC")
            if not isinstance(address, str) or not address.startswith(ROOT):
                raise BadMessage(f"{address}: unknown address (GAN Studio's start with {ROOT})")
            target = self.targets().get(address[len(ROOT):])
            if target is None:
                raise BadMessage(f"{address}: unknown address for the open model")
            self.set(target, self._value(address, target, tuple(args)))
        except BadMessage as exc:
            self.refuse(str(exc))
            return False
        self.applied += 1
        return True

    def apply_value(self, name: str, value: float) -> bool:
        """Set the target named `name` ("psi", "mix/3") to a number, as a message carrying it would
        (MIDI goes this way: a whole-number target takes the nearest whole number). True if applied."""
        target = self.targets().get(name)
        if target is not None and target.kind in (WHOLE, PRESET) and math.isfinite(value):
            value = round(value)
        if target is not None and target.kind == TRIGGER and value == 0:
            return False                   # a key's release: a preset switches on the press only
        return self.apply(ROOT + name, (value,))

    def current(self, name: str) -> float:
        """The value a target has now, as a number (a relative encoder starts from it)."""
        ws = self.workspace
        if name.startswith("mix/"):
            k = int(name[4:])
            return float(k < len(ws.mix_layers) and ws.mix_layers[k])
        if name.startswith("direction/"):
            return next((float(ws.direction_offsets.get(k, 0.0)) for k in ws.directions
                         if direction_address(k) == name), 0.0)
        if self.presets is not None and name in ("preset", "preset_fade"):
            names = self.presets.names
            return float(self.presets.fade_seconds if name == "preset_fade" else
                         names.index(self.presets.current) + 1 if self.presets.current in names else 1)
        value = {"seed": ws.seed, "class": ws.class_index, "psi": ws.psi, "cutoff": ws.cutoff or 0,
                 "translate_x": ws.translate_x, "translate_y": ws.translate_y, "rotate_deg": ws.rotate_deg}.get(name)
        return float(value) if value is not None else 0.0

    def refuse(self, reason: str) -> None:
        self.refused += 1
        self.errors.append(reason)
        del self.errors[:-ERRORS_KEPT]

    @staticmethod
    def _value(address: str, target: Target, args: tuple):
        """The one argument a message carries, checked against its target."""
        if target.kind == TRIGGER or (target.kind == SWITCH and not args):
            return True
        if len(args) != 1:
            raise BadMessage(f"{address}: expected one value, got {len(args)}")
        value = args[0]
        if target.kind == TEXT:
            if not isinstance(value, str) or not value:
                raise BadMessage(f"{address}: expected a path (a string), got {value!r}")
            return value
        if target.kind == PRESET and isinstance(value, str):
            return value                   # a name: looked up when it is set
        if isinstance(value, bool):        # OSC's T and F
            value = int(value)
        if not isinstance(value, (int, float)):
            raise BadMessage(f"{address}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise BadMessage(f"{address}: {value} is not a number the studio can show")
        if target.kind == SWITCH:
            return value >= 0.5
        if target.kind in (WHOLE, PRESET):
            if value != int(value):        # controllers often send floats: 5.0 is 5, 5.5 is a mistake
                raise BadMessage(f"{address}: expected a whole number, got {value}")
            value = int(value)
        if not target.low <= value <= target.high:
            raise BadMessage(f"{address}: {value} is out of range ({target.low:g} to {target.high:g})")
        return value

    def set(self, target: Target, value) -> None:
        """Write a checked value where the slider for `target` writes it (BadMessage if it cannot be done now)."""
        ws, name = self.workspace, target.name
        if name == "seed":
            if ws.seed != value or ws.base_ws is not None:
                ws.base_ws = None          # as the seed box: a new seed means that seed's latent
                ws.seed = value
        elif name == "class":
            ws.class_index = value
        elif name == "psi":
            ws.psi = float(value)
        elif name == "cutoff":
            ws.cutoff = value or None      # 0 = every layer, as the Truncation panel's box
        elif name in ("translate_x", "translate_y", "rotate_deg"):
            setattr(ws, name, float(value))
        elif name.startswith("mix/"):
            mask = list(ws.mix_layers) or [False] * self.controller.info.num_ws
            mask[int(name[4:])] = bool(value)
            ws.mix_layers = tuple(mask)
        elif name.startswith("direction/"):
            direction = next(k for k in ws.directions if direction_address(k) == name)
            offsets = dict(ws.direction_offsets)
            if value:
                offsets[direction] = float(value)
            else:
                offsets.pop(direction, None)   # as the Directions panel: zero means no entry
            ws.direction_offsets = offsets
        elif name == "screenshot":
            # rendered now even when nothing changed; an older render still in flight does not count
            # (during a preset's crossfade: its next frame)
            if self.presets is None or not self.presets.fading:
                self.controller.request_render()
            self.pending_screenshots.append((value, self.controller.requested_id))
        elif name.startswith("timeline/"):
            self._timeline(name, value)
        elif name == "preset_fade":
            self.presets.fade_seconds = float(value)
        elif name.startswith("preset"):
            key = value if name in ("preset", "preset_save") else \
                next(n for n in self.presets.names if preset_address(n) == name)
            try:
                self.presets.save(key) if name == "preset_save" else self.presets.select(key)
            except PresetError as exc:
                raise BadMessage(f"{ROOT}{name}: {exc}") from None
        else:   # a target the table lists but nothing sets: a programming error, said as a refusal
            raise BadMessage(f"{ROOT}{name}: not settable")

    def _timeline(self, name: str, value) -> None:
        if name == "timeline/make":
            if value not in TIMELINE_PRESETS or self.actions.timeline_make is None:
                raise BadMessage(f"{ROOT}{name}: {value!r} is not a timeline preset ({', '.join(TIMELINE_PRESETS)})")
            self.actions.timeline_make(value)
            return
        play, position = self.actions.timeline_play, self.actions.timeline_position
        if play is None or position is None or not self.actions.has_timeline():
            raise BadMessage(f"{ROOT}{name}: no timeline to play (add keyframes in the Timeline panel)")
        if name == "timeline/play":
            play(bool(value))
        else:
            position(float(value))

    # ---- out ----
    def frame_shown(self, image, milliseconds: float, request_id: int | None = None) -> None:
        """An image reached the screen (uint8 [H, W, 3]; request_id None: a timeline frame): save the
        screenshots waiting for it, send /ganstudio/frame."""
        self.frames_sent += 1
        due = [p for p, first in self.pending_screenshots if request_id is None or request_id >= first]
        self.pending_screenshots = [(p, first) for p, first in self.pending_screenshots
                                    if not (request_id is None or request_id >= first)]
        for path in due:
            try:
                self.actions.save_image(path, image)
            except (OSError, ValueError) as exc:   # a bad path: said in the status line, the studio goes on
                self.refuse(f"{ROOT}screenshot {path}: {exc}")
        if self.actions.send is not None:
            self.actions.send(FRAME_ADDRESS, (self.frames_sent, float(milliseconds)))

    def timeline_looped(self, loops: int) -> None:
        """A playing timeline started over (`loops` times since Play): the loop-end pulse."""
        self.loops += 1
        if self.actions.send is not None:
            self.actions.send(LOOP_ADDRESS, (int(loops),))

    def status(self) -> str:
        """The status line: counts, and the newest refusal."""
        text = f"OSC/MIDI: {self.applied} applied, {self.refused} refused"
        return text + (f" · last refused: {self.errors[-1]}" if self.errors else "")
