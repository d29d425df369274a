"""Offscreen PNG rendering with the same plot classes the window shows.

Used by the CLI (``graft report``, ``graft validate``) and by tests. Works without a display:
when no ``QApplication`` exists one is created on the ``offscreen`` platform (unless
``QT_QPA_PLATFORM`` says otherwise). Call these functions from the thread that owns the
QApplication (the main thread); they take plain numbers, never tensors.

API (every function writes ``path`` and returns it as a ``Path``):

- ``render_histogram_png(hist, path, title="")``
- ``render_heatmap_png(matrix, path, title="")``
- ``render_spectrum_png(singular_values, path, title="")``
- ``render_table_heatmap_png(values_2d, row_labels, col_labels, path, title="")``
- ``render_curves_png(curves, path, title="")``
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SIZE = (720, 440)


def ensure_app():
    """The running QApplication, or a new offscreen one (for the CLI and tests)."""
    from app.qt import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QtWidgets.QApplication(["graft-render"])
    return app


def _save(widget, path: str | Path, size: tuple[int, int] = SIZE) -> Path:
    from app.qt import QtCore

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    widget.setAttribute(QtCore.Qt.WA_DontShowOnScreen, True)
    widget.resize(*size)
    widget.show()  # layouts settle only for a shown widget; WA_DontShowOnScreen keeps it invisible
    app = ensure_app()
    app.sendPostedEvents()
    if hasattr(widget, "redraw"):
        widget.redraw()
    pixmap = widget.grab()
    widget.hide()
    widget.deleteLater()
    if not pixmap.save(str(path), "PNG"):
        raise OSError(f"cannot write {path}; check that the folder is writable")
    return path


def render_histogram_png(hist, path: str | Path, title: str = "") -> Path:
    """Histograms on shared bins (+ fitted densities) as a PNG.

    Args:
        hist: anything ``app.plots.histogram.coerce_histogram`` accepts: ``np.histogram``'s
            ``(counts, edges)``, or an object/mapping with ``edges`` and ``source``/``target``
            counts (or ``series``: label → counts), optional ``fits``/``source_fit``/``target_fit``.
        path: the PNG file to write.
        title: drawn above the plot.
    """
    ensure_app()
    from app.plots.histogram import HistogramPlot

    plot = HistogramPlot(title=title, light=True, grid=True)
    plot.show_histogram(hist)
    return _save(plot, path)


def render_heatmap_png(matrix, path: str | Path, title: str = "") -> Path:
    """A matrix (shape (rows, cols)), e.g. a correlation map, with a CET-D1 colour bar centred on 0."""
    ensure_app()
    from app.plots.heatmap import HeatmapPlot

    data = np.asarray(matrix, dtype=float)
    plot = HeatmapPlot(title=title, light=True)
    plot.show_matrix(data)
    rows, cols = data.shape[-2] if data.ndim == 2 else 1, data.shape[-1]
    width = 560 if cols <= rows else 720
    return _save(plot, path, (width, 480))


def render_spectrum_png(singular_values, path: str | Path, title: str = "") -> Path:
    """Singular values (one array, or label → array) by rank on a log scale."""
    ensure_app()
    from app.plots.spectrum import SpectrumPlot

    plot = SpectrumPlot(title=title, light=True, grid=True)
    plot.show_spectrum(singular_values)
    return _save(plot, path)


def _format(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-2 or magnitude >= 1e4):
        return f"{value:.1e}"
    return f"{value:.3g}"


def render_table_heatmap_png(
    values_2d,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """A table (e.g. layer × metric) as a heat map, each column coloured on its own scale.

    Columns hold different metrics with different units, so each is min–max normalised for
    colour; the cells show the real numbers when the table is small enough to read.
    """
    ensure_app()
    from app.plots.heatmap import SEQUENTIAL, HeatmapPlot

    data = np.asarray(values_2d, dtype=float)
    if data.ndim != 2 or data.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"values of shape {data.shape} do not match {len(row_labels)} rows × {len(col_labels)} columns"
        )
    finite = np.where(np.isfinite(data), data, np.nan)
    with warnings.catch_warnings():  # an all-NaN column (a metric no tensor has) stays blank
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanmin(finite, axis=0) if data.size else np.zeros(0)
        high = np.nanmax(finite, axis=0) if data.size else np.zeros(0)
    low = np.nan_to_num(low)
    span = np.where(np.nan_to_num(high - low) > 0, np.nan_to_num(high - low), 1.0)
    normalised = (data - low) / span
    plot = HeatmapPlot(title=title, light=True)
    plot.show_matrix(
        normalised,
        levels=(0.0, 1.0),
        colormap=SEQUENTIAL,
        row_labels=list(row_labels),
        col_labels=list(col_labels),
        cell_text=[[_format(v) for v in row] for row in data],
    )
    plot.colour_bar.hide()  # per-column scales: one bar would mislead
    width = int(min(1400, max(560, 110 * len(col_labels) + 160)))
    height = int(min(1400, max(360, 26 * len(row_labels) + 120)))
    return _save(plot, path, (width, height))


def render_curves_png(
    curves: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
    title: str = "",
    *,
    marks: Mapping[str, float] | None = None,
) -> Path:
    """Curves ``label → [(step, value), ...]`` (e.g. transferred vs baseline loss) as a PNG.

    Args:
        marks: optional ``label → step`` drawn as vertical lines (e.g. "reached baseline").
    """
    ensure_app()
    from app.plots.curves import CurvesPlot

    plot = CurvesPlot(title=title, light=True, grid=True)
    plot.set_curves(curves)
    for label, step in (marks or {}).items():
        plot.mark_step(step, label)
    return _save(plot, path)
