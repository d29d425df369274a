"""Model overview: layer × metric heat maps of the source and of the materialised target, and
the mean-field diagnostics with what they suggest."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np

from app.panels.stale import ResultStamp
from app.plots import HeatmapPlot
from app.plots.heatmap import SEQUENTIAL
from app.qt import QtCore, QtWidgets

TARGET_METRICS = ("std ratio", "std", "mean", "excess kurtosis")


def layer_table(summaries) -> tuple[np.ndarray, list[str], list[str]]:
    """Rows = layers ("global" first), columns = metrics averaged over the layer's tensors."""
    rows: dict[str, list] = {}
    for s in summaries:
        key = "global" if s.layer is None else f"layer {s.layer}"
        ratio = s.std / s.source_std if s.source_std and s.source_std == s.source_std and s.source_std > 0 else math.nan
        rows.setdefault(key, []).append((ratio, s.std, s.mean, s.excess_kurtosis))
    labels = sorted(rows, key=lambda k: -1 if k == "global" else int(k.split()[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = (
            np.array([np.nanmean(np.array(rows[k], dtype=float), axis=0) for k in labels])
            if labels
            else np.zeros((0, 4))
        )
    return values, labels, list(TARGET_METRICS)


def _by_column(values: np.ndarray) -> np.ndarray:
    """Each column min–max scaled to [0, 1] (columns hold different units)."""
    with warnings.catch_warnings():  # an all-NaN column stays blank
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nan_to_num(np.nanmin(values, axis=0)), np.nan_to_num(np.nanmax(values, axis=0))
    return (values - low) / np.where(high - low > 0, high - low, 1.0)


def _cell(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.3g}"


class OverviewPanel(QtWidgets.QWidget):
    """Signals: analysis_requested() — the user wants the source's model-wide statistics."""

    analysis_requested = QtCore.Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = None
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.view_combo = QtWidgets.QComboBox()
        self.view_combo.addItem("target: layer × metric", "target")
        self.view_combo.currentIndexChanged.connect(self._redraw)
        row.addWidget(self.view_combo, 1)
        self.analyse_button = QtWidgets.QPushButton("Analyse the source")
        self.analyse_button.setToolTip(
            "Statistics of every source matrix by layer and role, with the mean-field diagnostics (a queued job)"
        )
        self.analyse_button.clicked.connect(self.analysis_requested)
        self.analyse_button.setEnabled(False)
        row.addWidget(self.analyse_button)
        layout.addLayout(row)
        self.title = QtWidgets.QLabel(
            "Materialise the target (Ctrl+M) to see every layer at once, or analyse the source."
        )
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.heatmap = HeatmapPlot(title="")
        self.stamp = ResultStamp("materialised target", [self.heatmap])
        layout.addWidget(self.stamp)
        self.heatmap.colour_bar.hide()
        layout.addWidget(self.heatmap, 1)
        self.suggestion = QtWidgets.QLabel()
        self.suggestion.setObjectName("overview-suggestions")
        self.suggestion.setWordWrap(True)
        self.suggestion.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        layout.addWidget(self.suggestion)
        self.materialised = None

    def set_source_ready(self, ready: bool) -> None:
        self.analyse_button.setEnabled(ready)
        self.table = None
        while self.view_combo.count() > 1:
            self.view_combo.removeItem(1)

    def show_materialised(self, materialised, recipe) -> None:
        """The target built from ``recipe`` (``materialised``): its layer × metric view."""
        self.materialised = materialised
        self.stamp.stamp(recipe)
        self.view_combo.setCurrentIndex(0)
        self._redraw()

    def show_source_table(self, table) -> None:
        """A ``core.stats.ModelTable``: one view per metric, plus its mean-field suggestions."""
        self.table = table
        while self.view_combo.count() > 1:
            self.view_combo.removeItem(1)
        for metric in table.metrics:
            self.view_combo.addItem(f"source: {metric} by layer × role", metric)
        self.view_combo.setCurrentIndex(1)
        self._redraw()

    def _redraw(self, *_) -> None:
        key = self.view_combo.currentData()
        self.stamp.set_shown(key == "target")  # the source's statistics belong to no recipe
        if key == "target":
            self._draw_target()
        elif self.table is not None and key in self.table.values:
            self._draw_source(key)

    def _draw_target(self) -> None:
        m = self.materialised
        if m is None:
            return
        values, rows, cols = layer_table(m.summaries)
        if not rows:
            return
        self.heatmap.show_matrix(
            _by_column(values),
            levels=(0.0, 1.0),
            colormap=SEQUENTIAL,
            row_labels=rows,
            col_labels=cols,
            cell_text=[[_cell(v) for v in row] for row in values],
            title="target: layer × metric (each column on its own scale)",
        )
        self.title.setText(
            f"Target materialised: {m.num_parameters / 1e6:,.2f} M parameters in {len(m.summaries)} tensors on {m.device}."
        )
        self.suggestion.setText(_spread_reading(values[:, 0]))

    def _draw_source(self, metric: str) -> None:
        t = self.table
        values = np.asarray(t.values[metric], dtype=float)
        self.heatmap.show_matrix(
            values,
            levels=_levels(values),
            colormap=SEQUENTIAL,
            row_labels=t.row_labels(),
            col_labels=list(t.columns),
            cell_text=[[_cell(v) for v in row] for row in values],
            title=f"source: {metric}",
        )
        self.title.setText(f"Source statistics: {len(t.layers)} rows × {len(t.columns)} roles.")
        self.suggestion.setText(_suggestions_text(t))


def _levels(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _suggestions_text(table) -> str:
    try:
        cells = table.suggestions()
    except Exception:  # the table lacks the mean-field metrics
        return ""
    counts = Counter(s for *_, suggestions in cells for s in suggestions)
    if not counts:
        return ""
    total = len(cells)
    lines = [f"• {text} — {n} of {total} matrices" for text, n in counts.most_common()]
    return "<b>Mean-field diagnostics</b><br>" + "<br>".join(lines)


def _spread_reading(ratios: np.ndarray) -> str:
    """How the target's weight spread compares with the source's (a width change moves it)."""
    finite = ratios[np.isfinite(ratios)]
    if finite.size == 0:
        return ""
    mean = float(finite.mean())
    if mean > 1.15:
        return (
            f"Weights are {mean:.2f}× wider-spread than the source on average: the target sums fewer "
            "terms per neuron; consider mean_field with rescale=variance to keep activations in scale."
        )
    if mean < 0.87:
        return (
            f"Weights are {mean:.2f}× the source's spread on average: activations will shrink layer by "
            "layer; consider rescale=none or a distribution fit."
        )
    return f"Weight spread matches the source (mean std ratio {mean:.2f}): the activations' scale should carry over."
