"""Change notification without Qt, in napari's manner: a model owns a group of emitters, one
per field, and views connect callbacks to the ones they show."""
from __future__ import annotations

from typing import Any, Callable


class Emitter:
    """A list of callbacks called with one value. A callback that disconnects itself is safe."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[[Any], None]] = []
        self._blocked = 0

    def connect(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[Any], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: Any = None) -> None:
        if self._blocked:
            return
        for callback in list(self._callbacks):
            callback(value)

    def __len__(self) -> int:
        return len(self._callbacks)


class EmitterGroup:
    """Emitters by name (`group.seed`, `group["seed"]`) plus `changed`, which fires with the
    field name after any field's own emitter."""

    def __init__(self, names):
        self._emitters = {name: Emitter(name) for name in names}
        self.changed = Emitter("changed")

    def __getattr__(self, name: str) -> Emitter:
        try:
            return self.__dict__["_emitters"][name]
        except KeyError:
            raise AttributeError(f"no event named {name!r}") from None

    def __getitem__(self, name: str) -> Emitter:
        return self._emitters[name]

    def __iter__(self):
        return iter(self._emitters)
