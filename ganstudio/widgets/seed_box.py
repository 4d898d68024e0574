"""A spin box for seeds over their whole range (0 to 2**32 - 1): QSpinBox stops at 2**31 - 1."""
from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox

from trainer.latents import MAX_SEED


class SeedBox(QDoubleSpinBox):
    """A QDoubleSpinBox with no decimals: a double holds every seed exactly. value() is an int."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDecimals(0)
        self.setRange(0, MAX_SEED)
        self.setSingleStep(1)

    def value(self) -> int:  # noqa: D102 (same meaning, int type)
        return int(round(super().value()))
