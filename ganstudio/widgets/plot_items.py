"""Small pyqtgraph pieces the monitor's plots are made of: compact tick labels, a legend strip
under each plot, titles that may be cut, short run names."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QSizePolicy

TITLE_SIZE = "9pt"
MIN_PLOT_WIDTH = 205     # px per column: an axis, a few x ticks and a title of ~30 characters
MIN_PLOT_HEIGHT = 165    # px of title, view and x axis without the legend: 7-pt y ticks stay apart
LEGEND_ENTRY_WIDTH = 125  # px per legend column: a line sample and a name like "classes/Pullover"


class CompactAxis(pg.AxisItem):
    """Tick labels that fit a small plot: thousands as "2k", small fractions in scientific form
    ("2.5e-3"), 7-pt text. Plain labels ran together ("0 100020003000") on the narrow plots."""

    def __init__(self, orientation: str):
        super().__init__(orientation)
        self.setStyle(tickFont=_tick_font(), tickTextOffset=3)
        if orientation in ("bottom", "top"):
            self.setTickDensity(0.6)   # fewer x ticks: labels of narrow plots ran together

    def tickStrings(self, values, scale, spacing):
        return [_compact_number(v * scale, spacing * scale) for v in values]


def _tick_font():
    from PySide6.QtGui import QFont
    font = QFont()
    font.setPointSize(7)
    return font


def _compact_number(value: float, spacing: float) -> str:
    """A tick label: 2000 -> "2k", 0.0025 -> "2.5e-3", 0.25 -> "0.25"; `spacing` sets the digits."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 and spacing >= 100:
        return f"{value / 1000:.{max(0, -math.floor(math.log10(spacing / 1000)))}f}k"
    if magnitude < 0.01:
        return f"{value:.2g}".replace("e-0", "e-")
    decimals = max(0, -math.floor(math.log10(spacing))) if spacing > 0 else 0
    return f"{value:.{decimals}f}"


class _BelowLegend(pg.LegendItem):
    """A legend at its natural size inside a strip that takes the plot's width and clips: too many
    entries are cut at the edge instead of squeezed over each other or widening the grid."""

    def __init__(self, strip: pg.GraphicsWidget):
        super().__init__(labelTextSize="7pt", colCount=2, verSpacing=-4, horSpacing=4)
        self.strip = strip
        self.setParentItem(strip)

    def updateSize(self):
        super().updateSize()
        height = self.height() if self.items else 0
        self.strip.setMinimumHeight(height)
        self.strip.setMaximumHeight(height)


def legend_below(plot: pg.PlotItem) -> pg.LegendItem:
    """A legend in the plot's own layout, under the x axis, entries side by side: inside the view
    it covered most of a small plot once two runs were overlaid, and hid points under it."""
    strip = pg.GraphicsWidget()
    strip.setFlag(strip.GraphicsItemFlag.ItemClipsChildrenToShape, True)
    strip.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    strip.setMinimumWidth(1)
    plot.layout.addItem(strip, 4, 1)
    legend = _BelowLegend(strip)
    legend.updateSize()
    plot.legend = legend   # pyqtgraph names curves added with `name=` here, as addLegend would
    return legend


def set_title(plot: pg.PlotItem, title: str, colour: str | None = None, tooltip: str = "") -> None:
    label = plot.titleLabel
    label.setToolTip(tooltip)
    if not getattr(label, "may_shrink", False):
        # A title holds its plot at the text's width (pyqtgraph re-asserts that on every
        # resize); in a narrow window it is better cut than pushing the grid past the edge.
        fixed_update_min = label.updateMin

        def update_min():
            fixed_update_min()
            label.setMinimumWidth(1)
            height = label._sizeHint[Qt.SizeHint.PreferredSize][1]
            label._sizeHint[Qt.SizeHint.PreferredSize] = (1, height)   # nor ask for its width
        label.updateMin = update_min
        label.setFlag(label.GraphicsItemFlag.ItemClipsChildrenToShape, True)   # cut, not drawn over its neighbour
        label.may_shrink = True
    plot.setTitle(title, size=TITLE_SIZE, color=colour)


class PlotGrid:
    """Places plots in a pyqtgraph layout row by row, in as few rows as the width has room for,
    filled evenly (a plot without data is not placed at all); a title too long for its column ends in "…" and
    the legends get as many columns as fit. Returns the height the grid needs."""

    def __init__(self, layout: pg.GraphicsLayout):
        self.layout = layout
        self.shown: tuple[str, ...] = ()
        self._placed: tuple = ()    # what was last arranged: keys, columns, row heights, column width
        self._items: dict = {}      # key -> plot, those in the layout

    @property
    def rows(self) -> list[tuple[str, ...]]:
        """The keys of the plots placed in each row, top to bottom."""
        keys, columns = self._placed[:2] if self._placed else ((), 1)
        return [keys[i:i + columns] for i in range(0, len(keys), columns)]

    def forget_legends(self) -> None:
        self._placed = ()

    def arrange(self, plots: dict, titles: dict, legends: dict, width: int) -> int:
        keys = tuple(plots)
        fit = max(1, min(len(keys), width // MIN_PLOT_WIDTH))
        rows = max(1, -(-len(keys) // fit))
        columns = max(1, -(-len(keys) // rows))   # rows as even as they go: 10 plots where 8 fit are 5 + 5, not 8 + 2
        column_width = width // columns
        for key in keys:
            legend = legends[key]
            fitting = max(1, min(len(legend.items), column_width // LEGEND_ENTRY_WIDTH))
            if legend.items and legend.columnCount != fitting:
                legend.setColumnCount(fitting)
        rows = [keys[i:i + columns] for i in range(0, len(keys), columns)]
        heights = [MIN_PLOT_HEIGHT + max(legends[k].strip.maximumHeight() for k in row) for row in rows]
        placed = (keys, columns, tuple(heights), column_width)
        if placed != self._placed:
            if placed[:2] != self._placed[:2]:
                for plot in self._items.values():
                    self.layout.removeItem(plot)
                for i, key in enumerate(keys):
                    self.layout.addItem(plots[key], row=i // columns, col=i % columns)
                self._items = dict(plots)
            for i, key in enumerate(keys):
                plots[key].setMinimumHeight(heights[i // columns])
                set_title(plots[key], elided(titles[key], column_width - 50), tooltip=titles[key])
            self.shown, self._placed = keys, placed
        return sum(heights) + 6 * len(rows)


def elided(text: str, width: int) -> str:
    """`text` cut to `width` pixels of the plots' title font, ending in "…" when cut."""
    from PySide6.QtGui import QFont, QFontMetrics
    font = QFont()
    font.setPointSizeF(float(TITLE_SIZE.rstrip("pt")))
    return QFontMetrics(font).elidedText(text, Qt.TextElideMode.ElideRight, max(width, 20))


def short_name(name: str, limit: int = 24) -> str:
    """A run's name cut to fit a legend."""
    return name if len(name) <= limit else name[:limit - 1] + "…"


def colour_swatch(colour: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


def read_rgb(path: Path):
    """A sample grid PNG as uint8 [H, W, 3], or None when it cannot be read (yet)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except (OSError, ValueError):
        return None
