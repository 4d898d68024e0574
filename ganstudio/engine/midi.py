"""MIDI in: a learnable table from knobs, keys and wheels to the live settings of engine.live.

Qt-free and backend-free: `MidiMapper.feed` takes mido Message objects (from a port's callback, or a
test), so the table works and is tested without a MIDI system. "Learn": `learn("psi")`, then the next
control that moves is mapped to psi with the setting's knob range. Each mapping has a range, a curve
(linear, or exponential for fine control near `low`) and may be a relative encoder (values 1-63 turn
up, 65-127 down, two's complement: the common "relative 2" mode). The table is plain dicts in the
workspace field `midi_mappings`, so it is saved with the workspace file.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

KINDS = ("cc", "note", "pitchwheel")
CURVES = ("linear", "exponential")
EXPONENT = 4.0                  # the exponential curve: (2^(k x) - 1) / (2^k - 1); 1/15 of the range at half turn
ENCODER_STEP = 1 / 128          # a relative encoder moves this much of its range per tick, by default


class MidiMappingError(ValueError):
    """A mapping that cannot be used; the text names the key."""


@dataclass(frozen=True)
class MidiMapping:
    target: str                 # the live setting: "psi", "direction/PC1", "mix/3" (engine.live's address parts)
    kind: str                   # "cc" (a knob or fader), "note" (a key or pad), "pitchwheel"
    channel: int                # 0-15
    control: int = 0            # CC or note number, 0-127 (pitchwheel: 0)
    low: float = 0.0            # the value at the knob's bottom
    high: float = 1.0           # ... and at its top (high < low turns the knob around)
    curve: str = "linear"       # "linear" | "exponential"
    relative: bool = False      # an endless encoder sending steps, not positions (cc only)
    step: float = ENCODER_STEP  # a relative encoder's move per tick, as a fraction of the range

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> "MidiMapping":
        if not isinstance(d, dict):
            raise MidiMappingError(f"a MIDI mapping is an object, got {d!r}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise MidiMappingError(f"MIDI mapping has unknown key(s): {', '.join(unknown)}")
        try:
            mapping = cls(**d)
        except TypeError as exc:
            raise MidiMappingError(f"MIDI mapping: {exc}") from None
        mapping.check()
        return mapping

    def check(self) -> None:
        def need(ok, key, what):
            if not ok:
                raise MidiMappingError(f"MIDI mapping {key!r} = {getattr(self, key)!r}: expected {what}")

        def whole(x, top):
            return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= top

        def number(x):
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

        need(isinstance(self.target, str) and self.target, "target", "a setting such as \"psi\"")
        need(self.kind in KINDS, "kind", " or ".join(KINDS))
        need(whole(self.channel, 15), "channel", "0 to 15")
        need(whole(self.control, 127), "control", "0 to 127")
        need(number(self.low), "low", "a finite number")
        need(number(self.high), "high", "a finite number")
        need(self.curve in CURVES, "curve", " or ".join(CURVES))
        need(isinstance(self.relative, bool) and (not self.relative or self.kind == "cc"), "relative",
             "true (a cc encoder) or false")
        need(number(self.step) and 0 < self.step <= 1, "step", "a fraction of the range from 0 to 1")

    def matches(self, message) -> bool:
        if getattr(message, "channel", None) != self.channel:
            return False
        if self.kind == "cc":
            return message.type == "control_change" and message.control == self.control
        if self.kind == "note":
            return message.type in ("note_on", "note_off") and message.note == self.control
        return message.type == "pitchwheel"

    def shape(self, x: float) -> float:
        """A knob position 0-1 -> the setting's value."""
        x = min(max(x, 0.0), 1.0)
        if self.curve == "exponential":
            x = (2 ** (EXPONENT * x) - 1) / (2 ** EXPONENT - 1)
        return self.low + (self.high - self.low) * x

    def position(self, value: float) -> float:
        """The inverse of shape: where a value sits on the knob (a relative encoder starts there)."""
        x = 0.0 if self.high == self.low else min(max((value - self.low) / (self.high - self.low), 0.0), 1.0)
        if self.curve == "exponential":
            x = math.log2(1 + x * (2 ** EXPONENT - 1)) / EXPONENT
        return x


def message_position(message) -> float | None:
    """How far a message's control is turned, 0-1 (None: not a control message)."""
    if message.type == "control_change":
        return message.value / 127
    if message.type == "note_on":
        return message.velocity / 127     # note_on with velocity 0 is a note off
    if message.type == "note_off":
        return 0.0
    if message.type == "pitchwheel":
        return (message.pitch + 8192) / 16383
    return None


def encoder_ticks(value: int) -> int:
    """A relative encoder's CC value -> ticks: 1-63 up, 65-127 down (two's complement), 0 and 64 none."""
    return value if value < 64 else value - 128


def mappings_from_json(value) -> tuple[dict, ...]:
    """The workspace field's JSON (a list of mapping objects) -> a tuple of checked plain dicts."""
    if not isinstance(value, (list, tuple)):
        raise MidiMappingError("midi_mappings: expected a list of mappings")
    return tuple(MidiMapping.from_dict(d).to_dict() for d in value)


class MidiMapper:
    """Feeds MIDI messages to a LiveControl through the workspace's table; learns new mappings."""

    def __init__(self, live):       # engine.live.LiveControl
        self.live = live
        self.learning: str | None = None   # the target the next moving control gets
        self._encoder_at: dict[tuple, float] = {}   # a relative encoder's position 0-1, by mapping
        self.received = 0

    @property
    def mappings(self) -> list[MidiMapping]:
        return [MidiMapping(**d) for d in self.live.workspace.midi_mappings]

    def set_mappings(self, mappings) -> None:
        self.live.workspace.midi_mappings = tuple(m.to_dict() for m in mappings)
        self._encoder_at.clear()

    def learn(self, target: str | None) -> None:
        """The next control moved drives `target` (None: stop learning). KeyError for a target the open
        model does not have."""
        if target is not None and target not in self.live.targets():
            raise KeyError(f"no live setting {target!r} for the open model")
        self.learning = target

    def feed(self, message) -> MidiMapping | None:
        """One mido Message. While learning, a control message becomes a mapping (returned); otherwise
        each mapping it matches sets its target."""
        self.received += 1
        if message_position(message) is None:
            return None                          # clock, sysex ...: nothing to map
        if self.learning is not None:
            return self._learn_from(message)
        for mapping in self.mappings:
            if mapping.matches(message):
                self._drive(mapping, message)
        return None

    def _learn_from(self, message) -> MidiMapping:
        target = self.live.targets().get(self.learning)
        low, high = target.knob if target is not None else (0.0, 1.0)
        kind = {"control_change": "cc", "pitchwheel": "pitchwheel"}.get(message.type, "note")
        control = {"cc": getattr(message, "control", 0), "note": getattr(message, "note", 0)}.get(kind, 0)
        mapping = MidiMapping(self.learning, kind, message.channel, control, float(low), float(high))
        # one control drives one setting, and a learnt setting forgets its old control
        kept = [m for m in self.mappings if m.target != mapping.target and not m.matches(message)]
        self.set_mappings(kept + [mapping])
        self.learning = None
        return mapping

    def _drive(self, mapping: MidiMapping, message) -> None:
        if mapping.relative:
            key = (mapping.kind, mapping.channel, mapping.control, mapping.target)
            at = self._encoder_at.get(key)
            if at is None:
                at = mapping.position(self.live.current(mapping.target))
            at = min(max(at + encoder_ticks(message.value) * mapping.step, 0.0), 1.0)
            self._encoder_at[key] = at
            value = mapping.shape(at)
        else:
            value = mapping.shape(message_position(message))
        self.live.apply_value(mapping.target, value)


def midi_input_names() -> tuple[list[str], str]:
    """(input port names, "") or ([], why there are none): no mido, no backend, no ALSA sequencer."""
    try:
        import mido
        return list(mido.get_input_names()), ""
    except ImportError as exc:
        return [], f"MIDI needs mido and python-rtmidi ({exc.name} is not installed)"
    except Exception as exc:   # rtmidi raises its own SystemError when the system has no MIDI (no /dev/snd/seq)
        return [], f"no MIDI system here ({str(exc).strip() or type(exc).__name__})"
