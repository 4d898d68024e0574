"""The monitor's plots: one pyqtgraph layout of small plots, each showing a group of logged
quantities for every open run, against step, kimg or time, with smoothing, confidence bands,
alert markers and a hover read-out."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor

from ..engine.plot_layout import PLOTS, plot_for
from ..engine.runlog import EmaSmoother, MinMaxEnvelope, RunLog, Series, peak_decimate
from .image_view import configure_pyqtgraph
from .plot_items import CompactAxis, PlotGrid, legend_below, set_title, short_name


X_LABELS = {"step": "step", "kimg": "kimg", "time": "time (s)"}

RUN_COLOURS = ("#4e9af1", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7")
SERIES_COLOURS = ("#4e9af1", "#f28e2b", "#59a14f", "#e15759")
SERIES_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
ALERT_COLOUR = "#ff5050"
# A curve shows at most about 2 * DISPLAY_BINS points: min and max per bin beyond that. The
# plots are well under 1,000 pixels wide, so nothing visible is lost, and a redraw costs the
# same for a million-point log as for a short one.
DISPLAY_BINS = 512
# Schedules, not noisy measurements: smoothing them only adds rounding noise to a flat line.
UNSMOOTHED_PREFIXES = ("lr/", "progress/")


@dataclass
class _Curve:
    """What one series of one run has on one plot."""
    raw: pg.PlotDataItem
    smooth: pg.PlotDataItem
    smoother: EmaSmoother
    plot_key: str
    series_name: str
    band: tuple | None = None          # (low item, high item, FillBetweenItem) for metrics
    drawn: tuple = ()                  # (length, generation, x axis, weight) last drawn
    is_smoothed: bool = False          # drawn smoothed, with the raw curve faint behind it
    is_metric: bool = False            # drawn as dots joined by lines; no NaN dots
    x: np.ndarray = field(default_factory=lambda: np.empty(0))        # the whole series, as drawn:
    y: np.ndarray = field(default_factory=lambda: np.empty(0))        # smoothed when smoothing is on
    y_raw: np.ndarray = field(default_factory=lambda: np.empty(0))
    envelopes: tuple = field(default_factory=lambda: (MinMaxEnvelope(DISPLAY_BINS), MinMaxEnvelope(DISPLAY_BINS)))


@dataclass
class _RunCurves:
    run: RunLog
    colour: str
    curves: dict[str, _Curve] = field(default_factory=dict)   # key "s:name" or "m:name"
    markers: list = field(default_factory=list)               # alert lines on the plots
    marker_alerts: tuple = ()
    visible: bool = True


class MonitorPlots(pg.GraphicsLayoutWidget):
    """Every open run's series on a grid of plots. `set_runs` order gives the colours."""

    readout_changed = Signal(str)

    def __init__(self, parent=None):
        configure_pyqtgraph()
        super().__init__(parent)
        self.x_axis = "step"
        self.smoothing = 0.6
        self._runs: list[_RunCurves] = []
        self.plots: dict[str, pg.PlotItem] = {}
        self._legends: dict[str, pg.LegendItem] = {}
        self.grid = PlotGrid(self.ci)   # places the plots that have data, as many columns as fit
        for spec in PLOTS:
            plot = pg.PlotItem(axisItems={"bottom": CompactAxis("bottom"), "left": CompactAxis("left")})
            set_title(plot, spec.title)
            # No grid: pyqtgraph's grid lines cost ten times the rest of a repaint here (measured
            # 100 ms against 9 ms for the 9 plots offscreen); the hover read-out gives values.
            plot.setLabel("bottom", X_LABELS[self.x_axis])
            self._legends[spec.key] = legend_below(plot)
            crosshair = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#888888", width=1))
            crosshair.setVisible(False)
            crosshair.setZValue(50)
            plot.addItem(crosshair, ignoreBounds=True)
            plot.crosshair = crosshair
            plot.vb.sigXRangeChanged.connect(lambda _vb, _range, key=spec.key: self._on_x_range_changed(key))
            self.plots[spec.key] = plot
        self._zoomed_redisplay: set[str] = set()
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._arrange()

    def shown_plots(self) -> list[str]:
        """Keys of the plots on screen, in order: those some open run has data for."""
        return list(self.grid.shown)

    def _arrange(self) -> None:
        """Show the plots that have data (the losses plot, empty, while none has), in as many
        columns as the width gives room for; the widget grows tall enough (the monitor scrolls)."""
        fed = {c.plot_key for e in self._runs for c in e.curves.values()}
        keys = [spec.key for spec in PLOTS if spec.key in fed] or ["losses"]
        titles = {spec.key: spec.title for spec in PLOTS}
        height = self.grid.arrange({key: self.plots[key] for key in keys}, titles, self._legends, self.width())
        if height != self.minimumHeight():
            self.setMinimumHeight(height)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if hasattr(self, "grid"):   # pyqtgraph resizes once inside its own constructor
            self._arrange()

    # ---- runs -------------------------------------------------------------------------------------
    def add_run(self, run: RunLog) -> str:
        """Start drawing `run`; -> its colour."""
        used = {r.colour for r in self._runs}
        colour = next((c for c in RUN_COLOURS if c not in used), RUN_COLOURS[len(self._runs) % len(RUN_COLOURS)])
        self._runs.append(_RunCurves(run, colour))
        self._restyle()
        return colour

    def remove_run(self, run: RunLog) -> None:
        for entry in [r for r in self._runs if r.run is run]:
            for key, curve in entry.curves.items():
                self._drop_curve(key, curve)
            self._clear_markers(entry)
            self._runs.remove(entry)
        self._restyle()

    def set_run_visible(self, run: RunLog, visible: bool) -> None:
        for entry in self._runs:
            if entry.run is run:
                entry.visible = visible
                for curve in entry.curves.values():
                    self._show_curve(curve, visible)
                for _, marker in entry.markers:
                    marker.setVisible(visible)

    # ---- options ----------------------------------------------------------------------------------
    def set_x_axis(self, axis: str) -> None:
        if axis not in X_LABELS or axis == self.x_axis:
            return
        self.x_axis = axis
        for plot in self.plots.values():
            plot.setLabel("bottom", X_LABELS[axis])
        self.refresh(force=True)
        for plot in self.plots.values():
            plot.enableAutoRange()

    def set_smoothing(self, weight: float) -> None:
        weight = min(max(float(weight), 0.0), 0.999)
        if weight == self.smoothing:
            return
        self.smoothing = weight
        for entry in self._runs:
            for curve in entry.curves.values():
                curve.smoother = EmaSmoother(weight)
        self.refresh(force=True)

    # ---- drawing ----------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> int:
        """Bring every curve up to date with its run; -> curves redrawn."""
        redrawn = 0
        for entry in self._runs:
            for name, series in entry.run.scalars.items():
                if name.startswith("collapse/") and name.split("/", 1)[1] in entry.run.metrics:
                    continue   # trainer.metrics logs its collapse figures as metric lines too
                redrawn += self._update_curve(entry, "s:" + name, series, plot_for(name, False), force)
            for name, series in entry.run.metrics.items():
                redrawn += self._update_curve(entry, "m:" + name, series, plot_for(name, True), force)
            self._update_markers(entry, force)
        if redrawn:
            self._frame_flat_plots()
            self._update_legends()
        self._arrange()
        return redrawn

    def _update_legends(self) -> None:
        if len(self._runs) <= 1:
            return
        for key, legend in self._legends.items():
            runs = [e for e in self._runs if any(c.plot_key == key for c in e.curves.values())]
            names = sorted({c.series_name for e in runs for c in e.curves.values() if c.plot_key == key},
                           key=lambda n: _series_index(runs, key, n))
            wanted = (tuple(id(e) for e in runs), tuple(names))
            if getattr(legend, "wanted", None) == wanted:
                continue
            legend = self._fresh_legend(key)
            legend.wanted = wanted
            # the series first (line styles, short names), then the runs (colours; also in the run list)
            if len(names) > 1:
                for name in names:
                    style = SERIES_STYLES[_series_index(runs, key, name) % len(SERIES_STYLES)]
                    legend.addItem(pg.PlotDataItem(pen=pg.mkPen("#b0b0b0", width=1, style=style)), name)
            for entry in runs:
                legend.addItem(pg.PlotDataItem(pen=pg.mkPen(entry.colour, width=2)), short_name(entry.run.name, 13))

    def _frame_flat_plots(self) -> None:
        """pyqtgraph frames a constant curve (a fixed learning rate) as value -/+ 0.5, which
        draws 0.0025 on top of the 0 tick; frame it as value -/+ 50% instead."""
        for key, plot in self.plots.items():
            ys = [item.getOriginalDataset()[1] for entry in self._runs if entry.visible
                  for c in entry.curves.values() if c.plot_key == key for item in (c.smooth,)]
            ys = [y[np.isfinite(y)] for y in ys if y is not None and len(y)]
            ys = [y for y in ys if len(y)]
            flat = bool(ys)
            if flat:
                lo, hi = min(float(y.min()) for y in ys), max(float(y.max()) for y in ys)
                flat = hi - lo <= 1e-9 * max(abs(hi), abs(lo)) and hi != 0
            if flat:
                plot.vb.setYRange(lo - 0.5 * abs(lo), hi + 0.5 * abs(hi), padding=0)
                plot.flat_framed = True
            elif getattr(plot, "flat_framed", False):
                plot.flat_framed = False
                plot.vb.enableAutoRange(axis="y")

    def _update_curve(self, entry: _RunCurves, key: str, series: Series, plot_key: str, force: bool) -> int:
        curve = entry.curves.get(key)
        if curve is None:
            curve = entry.curves[key] = self._new_curve(entry, key, plot_key)
            force = True
        state = (len(series), series.generation, self.x_axis, self.smoothing)
        if not force and curve.drawn == state:
            return 0
        curve.drawn = state
        x, y = series.column(self.x_axis), series.column("value")
        if self.x_axis != "step" and not np.isfinite(x).all():
            x = _fill_axis(series.column("step"), x)
        # metrics are drawn as dots, each a measurement with its own band: smoothing would move
        # a dot to a value never measured (and outside its band)
        smooth = self.smoothing > 0 and not curve.is_metric and not curve.series_name.startswith(UNSMOOTHED_PREFIXES)
        smoothed = curve.smoother.update(y, series.generation) if smooth else y
        curve.x, curve.y, curve.y_raw, curve.is_smoothed = x, smoothed, y, smooth
        self._display(curve, (series.generation, self.x_axis, self.smoothing))
        curve.raw.setVisible(smooth and entry.visible)
        if "low" in series.columns:
            low, high = series.column("low"), series.column("high")
            has_band = np.isfinite(low).any()
            if has_band and curve.band is None:
                curve.band = self._new_band(entry, key, plot_key)
            if curve.band is not None:
                curve.band[0].setData(x, np.where(np.isfinite(low), low, y))
                curve.band[1].setData(x, np.where(np.isfinite(high), high, y))
        return 1

    def _display(self, curve: _Curve, key) -> None:
        """Hand pyqtgraph what is visible: the envelope of the whole curve while the plot follows
        the data, or the points in view (decimated if there are many) once the user zoomed."""
        vb = self.plots[curve.plot_key].vb
        layers = [(curve.smooth, curve.y, curve.envelopes[0])]
        if curve.is_smoothed:
            layers.append((curve.raw, curve.y_raw, curve.envelopes[1]))
        for item, y, envelope in layers:
            if vb.autoRangeEnabled()[0] or len(y) <= 2 * DISPLAY_BINS:
                xs, ys = envelope.update(curve.x, y, key)
            else:
                x0, x1 = vb.viewRange()[0]
                i0 = max(int(np.searchsorted(curve.x, x0)) - 1, 0)
                i1 = min(int(np.searchsorted(curve.x, x1)) + 1, len(y))
                xs, ys = peak_decimate(curve.x[i0:i1], y[i0:i1], DISPLAY_BINS)
            if item is curve.smooth and curve.is_metric and len(ys) < 4 * DISPLAY_BINS:
                finite = np.isfinite(ys)   # metrics are dots: a NaN (a failed evaluation) has none
                xs, ys = xs[finite], ys[finite]
            if item is curve.smooth and not curve.is_metric:   # a line of one point draws nothing: a dot
                lone = np.isfinite(ys).sum() == 1
                if lone != getattr(item, "lone_dot", False):
                    item.lone_dot = lone
                    item.setSymbol("o" if lone else None)
                    item.setSymbolSize(5)
                    item.setSymbolBrush(pg.mkPen(item.opts["pen"]).color() if lone else None)
            item.setData(xs, ys)

    def _on_x_range_changed(self, plot_key: str) -> None:
        """Zooming or panning shows the points in view; going back to auto-range, the envelope."""
        if plot_key in self._zoomed_redisplay:
            return
        self._zoomed_redisplay.add(plot_key)
        QTimer.singleShot(0, lambda: self._redisplay(plot_key))

    def _redisplay(self, plot_key: str) -> None:
        self._zoomed_redisplay.discard(plot_key)
        for entry in self._runs:
            for curve in entry.curves.values():
                if curve.plot_key == plot_key and len(curve.x) > 2 * DISPLAY_BINS:
                    self._display(curve, curve.drawn[1:])

    def _new_curve(self, entry: _RunCurves, key: str, plot_key: str) -> _Curve:
        plot = self.plots[plot_key]
        name = key[2:]
        index = sum(1 for k in entry.curves if plot_for(k[2:], k[0] == "m") == plot_key)
        pen = self._pen(entry, index)
        is_metric = key[0] == "m"
        # One run: each curve is named in the legend. Several: _update_legends() names the runs
        # (by colour) and the series (by line style) once each.
        smooth = pg.PlotDataItem(pen=pen, name=name if len(self._runs) <= 1 else None, connect="finite",
                                 symbol="o" if is_metric else None, symbolSize=5, symbolPen=None,
                                 symbolBrush=pen.color())
        faint = QColor(pen.color())
        faint.setAlpha(60)
        raw = pg.PlotDataItem(pen=pg.mkPen(faint, width=1), connect="finite")
        for item in (raw, smooth):
            plot.addItem(item)   # no clipToView/autoDownsample: _display() hands over few points
        legend = self._legends[plot_key]
        legend.removeItem(raw)   # only the smoothed curve is named in the legend
        curve = _Curve(raw, smooth, EmaSmoother(self.smoothing), plot_key, name)
        curve.is_metric = is_metric
        self._show_curve(curve, entry.visible)
        return curve

    def _new_band(self, entry: _RunCurves, key: str, plot_key: str):
        plot = self.plots[plot_key]
        low, high = pg.PlotDataItem(pen=None), pg.PlotDataItem(pen=None)
        colour = QColor(entry.curves[key].smooth.opts["pen"].color())
        colour.setAlpha(50)
        fill = pg.FillBetweenItem(low, high, brush=pg.mkBrush(colour))
        for item in (low, high, fill):
            plot.addItem(item)
        self._legends[plot_key].removeItem(low)
        self._legends[plot_key].removeItem(high)
        return low, high, fill

    def _pen(self, entry: _RunCurves, index: int):
        # Width 1: wider pens take Qt's slow path (measured 3x the paint time for 18 curves).
        if len(self._runs) <= 1:   # one run: colour tells the series apart
            return pg.mkPen(SERIES_COLOURS[index % len(SERIES_COLOURS)], width=1)
        return pg.mkPen(entry.colour, width=1, style=SERIES_STYLES[index % len(SERIES_STYLES)])

    def _label(self, entry: _RunCurves, name: str) -> str:
        return name if len(self._runs) <= 1 else f"{name} · {short_name(entry.run.name)}"

    def _fresh_legend(self, plot_key: str) -> pg.LegendItem:
        """An empty legend in place of the old one (LegendItem.clear() leaves a multi-column
        layout's cells behind, so new entries were drawn over old ones)."""
        plot, old = self.plots[plot_key], self._legends[plot_key]
        plot.layout.removeItem(old.strip)
        if old.strip.scene() is not None:
            old.strip.scene().removeItem(old.strip)
        self._legends[plot_key] = legend_below(plot)
        self.grid.forget_legends()
        return self._legends[plot_key]

    def legend_labels(self, plot_key: str) -> list[str]:
        return [label.text for _, label in self._legends[plot_key].items]

    def _restyle(self) -> None:
        """Colours and legend labels depend on how many runs are open: rebuild the curves."""
        for key in self._legends:
            self._fresh_legend(key)
        for entry in self._runs:
            for key, curve in entry.curves.items():
                self._drop_curve(key, curve)
            entry.curves.clear()
            self._clear_markers(entry)
        self.refresh(force=True)

    def _drop_curve(self, key: str, curve: _Curve) -> None:
        plot = self.plots[curve.plot_key]
        items = [curve.raw, curve.smooth, *(curve.band or ())]
        for item in items:
            plot.removeItem(item)
            self._legends[curve.plot_key].removeItem(item)

    @staticmethod
    def _show_curve(curve: _Curve, visible: bool) -> None:
        curve.smooth.setVisible(visible)
        curve.raw.setVisible(visible and curve.is_smoothed)
        for item in curve.band or ():
            item.setVisible(visible)

    # ---- alerts -----------------------------------------------------------------------------------
    def _update_markers(self, entry: _RunCurves, force: bool) -> None:
        alerts = tuple(a for a in entry.run.alerts if a.step >= 0)
        if not force and alerts == entry.marker_alerts:
            return
        self._clear_markers(entry)
        entry.marker_alerts = alerts
        shown = sum(len(e.markers) for e in self._runs)   # stagger labels across runs too
        for i, alert in enumerate(alerts, start=shown):
            if alert.series:
                plot_key = plot_for(alert.series, alert.series in entry.run.metrics)
            else:
                plot_key = "losses"
            x = self._x_of_step(entry.run, alert.step)
            line = pg.InfiniteLine(pos=x, angle=90, movable=False,
                                   pen=pg.mkPen(ALERT_COLOUR, width=1, style=Qt.PenStyle.DashLine),
                                   label=alert.short, labelOpts={"position": 0.92 - 0.1 * (i % 4), "color": ALERT_COLOUR,
                                                                 "fill": (32, 33, 36, 200)})
            line.setToolTip(alert.message)
            line.alert = alert
            line.setVisible(entry.visible)
            self.plots[plot_key].addItem(line, ignoreBounds=True)
            entry.markers.append((plot_key, line))

    def _clear_markers(self, entry: _RunCurves) -> None:
        for plot_key, line in entry.markers:
            self.plots[plot_key].removeItem(line)
        entry.markers = []
        entry.marker_alerts = ()

    def alert_markers(self) -> list[tuple[str, str, str]]:
        """(plot key, run name, alert kind) for every alert marker drawn."""
        return [(k, e.run.name, line.alert.kind) for e in self._runs for k, line in e.markers]

    def _x_of_step(self, run: RunLog, step: int) -> float:
        if self.x_axis == "step":
            return float(step)
        for series in run.scalars.values():
            steps, xs = series.column("step"), series.column(self.x_axis)
            ok = np.isfinite(xs)
            if ok.sum() >= 1:
                return float(np.interp(step, steps[ok], xs[ok]))
        return float(step)

    # ---- reading the plots ------------------------------------------------------------------------
    def curve_data(self, run: RunLog, name: str, metric: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as drawn (smoothed when smoothing is on) for one series of one run."""
        for entry in self._runs:
            if entry.run is run:
                curve = entry.curves.get(("m:" if metric else "s:") + name)
                if curve is not None:
                    return curve.x, curve.y
        return np.empty(0), np.empty(0)

    def readout_at(self, plot_key: str, x: float) -> str:
        """What the hover read-out says at `x` on one plot: each curve's value at the nearest point."""
        parts = []
        for entry in self._runs:
            if not entry.visible:
                continue
            for key, curve in sorted(entry.curves.items()):
                if curve.plot_key != plot_key:
                    continue
                xs, ys = curve.x, curve.y
                if not len(xs):
                    continue
                i = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1)) if len(xs) > 1 else 0
                if len(xs) > 1 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
                    i -= 1
                series = (entry.run.metrics if key[0] == "m" else entry.run.scalars).get(curve.series_name)
                step = int(series.column("step")[i]) if series is not None and i < len(series) else int(xs[i])
                label = self._label(entry, curve.series_name)
                parts.append(f"{label} = {_fmt(ys[i])}")
                where = f"step {step}" + ("" if self.x_axis == "step" else f", {X_LABELS[self.x_axis]} {_fmt(xs[i])}")
        return (where + ":  " + "   ".join(parts)) if parts else ""

    def _on_mouse_moved(self, pos) -> None:
        text = ""
        for key in self.grid.shown:
            plot = self.plots[key]
            inside = plot.sceneBoundingRect().contains(pos) and plot.vb.sceneBoundingRect().contains(pos)
            plot.crosshair.setVisible(inside)
            if inside:
                x = plot.vb.mapSceneToView(pos).x()
                plot.crosshair.setPos(x)
                text = self.readout_at(key, x)
        self.readout_changed.emit(text)

    # ---- export -----------------------------------------------------------------------------------
    def export_png(self, path: str, plot_key: str | None = None) -> None:
        """One plot (by key) or the whole grid as a PNG file."""
        if plot_key is None:
            if not self.grab().save(str(path)):
                raise OSError(f"could not write {path}")
            return
        import pyqtgraph.exporters
        exporter = pyqtgraph.exporters.ImageExporter(self.plots[plot_key])
        exporter.parameters()["width"] = 900
        exporter.export(str(path))


def _series_index(runs: list, plot_key: str, name: str) -> int:
    """The position a series has among its run's curves on a plot: it picks the line style."""
    for entry in runs:
        keys = [c.series_name for c in entry.curves.values() if c.plot_key == plot_key]
        if name in keys:
            return keys.index(name)
    return 0


def _fill_axis(steps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """kimg or time with gaps (lines that lacked them) filled by interpolation over step."""
    ok = np.isfinite(x)
    if not ok.any():
        return steps.astype(np.float64)
    return np.interp(steps, steps[ok], x[ok])


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"
