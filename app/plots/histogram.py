"""Source vs target histograms on shared bins, with fitted density curves on top."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from app.plots._pg import QtCore, pg
from app.plots.style import (
    SeriesItems,
    add_legend,
    add_save_actions,
    apply_theme,
    series_colour,
    series_rows,
    set_title,
)

#: fitted families as people write them (the legend names the one drawn).
FIT_NAMES = {"gaussian": "Gaussian", "laplace": "Laplace", "student-t": "Student-t"}


def fit_label(label: str) -> str:
    """``"source student-t"`` → ``"source: Student-t fit"``."""
    side, _, family = label.partition(" ")
    return f"{side}: {FIT_NAMES.get(family, family)} fit" if family else f"{label} fit"


@dataclass
class HistogramData:
    """What the plot draws: shared bin edges, counts per series, optional density curves.

    Attributes:
        edges: bin edges, shape (B + 1,).
        series: label → counts, each shape (B,).
        fits: label → (x, pdf) of a fitted density, drawn as a line.
    """

    edges: np.ndarray
    series: dict[str, np.ndarray]
    fits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    densities: bool = False  # ``series`` already holds densities (core's HistogramPair does)


def _get(obj, name: str, default=None):
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_curve(fit) -> tuple[np.ndarray, np.ndarray] | None:
    if fit is None:
        return None
    if isinstance(fit, tuple | list) and len(fit) == 2:
        return np.asarray(fit[0], float), np.asarray(fit[1], float)
    x = _get(fit, "x")
    y = next((v for v in (_get(fit, k) for k in ("pdf", "y", "density")) if v is not None), None)
    if x is None or y is None:
        return None
    return np.asarray(x, float), np.asarray(y, float)


def coerce_histogram(hist) -> HistogramData:
    """Accept the shapes histograms arrive in and return a :class:`HistogramData`.

    Accepted: a ``HistogramData``; ``np.histogram``'s ``(counts, edges)``; or any mapping or
    object with ``edges`` and either ``counts``, ``series`` (label → counts) or
    ``source``/``target`` counts, plus optional ``fits`` (label → curve) or
    ``source_fit``/``target_fit``. A curve is ``(x, pdf)`` or has ``x`` and ``pdf``/``y``.
    """
    if isinstance(hist, HistogramData):
        return hist
    if isinstance(hist, tuple) and len(hist) == 2:
        counts, edges = hist
        return HistogramData(np.asarray(edges, float), {"values": np.asarray(counts, float)})
    edges = _get(hist, "edges")
    if edges is None:
        raise TypeError(f"cannot draw a histogram from {type(hist).__name__}: it has no 'edges'")
    series: dict[str, np.ndarray] = {}
    if _get(hist, "source_density") is not None and _get(hist, "target_density") is not None:
        # core.stats.HistogramPair: densities over all entries, so clipped tails are not inflated
        series = {"source": np.asarray(hist.source_density, float), "target": np.asarray(hist.target_density, float)}
        if not np.any(np.asarray(_get(hist, "source"), float)):
            series.pop("source")
        fits = {
            str(k): c
            for k, c in ((k, _as_curve(v)) for k, v in dict(_get(hist, "fits") or {}).items())
            if c is not None
        }
        return HistogramData(np.asarray(edges, float), series, fits, densities=True)
    given = _get(hist, "series")
    if given:
        series.update({str(k): np.asarray(v, float) for k, v in dict(given).items()})
    for key in ("source", "target", "counts"):
        value = _get(hist, key)
        if value is not None and not isinstance(value, str):
            series[key if key != "counts" else "values"] = np.asarray(value, float)
    fits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label, fit in dict(_get(hist, "fits") or {}).items():
        curve = _as_curve(fit)
        if curve is not None:
            fits[str(label)] = curve
    for key in ("source", "target"):
        curve = _as_curve(_get(hist, f"{key}_fit"))
        if curve is not None:
            fits[key] = curve
    return HistogramData(np.asarray(edges, float), series, fits)


def to_density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts → probability density, so series of different sizes and fitted pdfs compare."""
    total = float(np.sum(counts))
    widths = np.diff(edges)
    if total <= 0:
        return np.zeros_like(counts, dtype=float)
    return counts / (total * np.where(widths > 0, widths, 1.0))


class HistogramPlot(pg.PlotWidget):
    """Step histograms (``stepMode="center"``) of several series on shared bins, as densities."""

    def __init__(self, parent=None, *, title: str = "", light: bool | None = None, grid: bool = False) -> None:
        super().__init__(parent)
        apply_theme(self, light=light)
        if grid:  # off on screen: pyqtgraph's grid lines cost ~15 ms per repaint (measured)
            self.plotItem.showGrid(x=True, y=True, alpha=0.15)
        self.plotItem.setLabel("left", "density")
        self.plotItem.setLabel("bottom", "value")
        self._legend = add_legend(self.plotItem, light)
        self._series = SeriesItems(self.plotItem, self._legend)
        self.setMinimumSize(160, 120)
        set_title(self.plotItem, title)
        self.log_density = False
        add_save_actions(self, lambda: series_rows(self._series))

    def set_log_density(self, on: bool) -> None:
        """Density on a log axis (to see the tails) or a linear one."""
        self.log_density = bool(on)
        self.plotItem.setLogMode(x=False, y=self.log_density)
        self.plotItem.setLabel("left", "density (log)" if self.log_density else "density")
        self.plotItem.enableAutoRange()

    def show_histogram(self, hist, *, title: str | None = None) -> None:
        """Draw ``hist`` (anything :func:`coerce_histogram` accepts), replacing what was shown."""
        data = coerce_histogram(hist)
        series: dict[str, tuple] = {}
        for i, (label, counts) in enumerate(data.series.items()):
            colour = pg.mkColor(series_colour(label, i))
            fill = pg.mkColor(colour)
            fill.setAlpha(60)
            values = counts if data.densities else to_density(counts, data.edges)
            if self.log_density:  # a log axis cannot show empty bins: leave them out of the outline
                values = np.where(values > 0, values, np.nan)
            series[label] = (
                data.edges,
                values,
                {"stepMode": "center", "fillLevel": 0, "brush": fill, "pen": pg.mkPen(colour, width=1.5)},
            )
        for i, (label, (x, y)) in enumerate(data.fits.items()):
            # Darker than its histogram, thicker and dashed, so the fit reads apart from the bars it fits.
            colour = pg.mkColor(series_colour(label, i)).darker(170)
            pen = pg.mkPen(colour, width=2.5, style=QtCore.Qt.CustomDashLine)
            pen.setDashPattern([4, 3])
            if self.log_density:
                y = np.where(np.asarray(y) > 0, y, np.nan)
            series[fit_label(label)] = (x, y, {"pen": pen})
        self._series.show(series)
        if title is not None:
            set_title(self.plotItem, title)
        self.plotItem.enableAutoRange()

    def clear_data(self) -> None:
        self._series.clear()
