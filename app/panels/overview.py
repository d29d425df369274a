"""Model overview: layer × metric heat maps of the source and of the materialised target, and
the mean-field diagnostics with what they suggest."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from app.panels.stale import ResultStamp
from app.plots import HeatmapPlot
from app.plots.heatmap import SEQUENTIAL
from app.qt import QtCore, QtWidgets
from app.words import metric_tooltip, metric_words, short_column
from core.runs import LAYER_METRICS, layer_metrics, materialised_payload

TARGET_HELP = (
    "Per layer, averaged over its tensors: <b>std ratio</b> = target std ÷ source std (1 keeps the scale), "
    "std, mean and excess kurtosis of the target's weights; colours are scaled per column."
)
EMPTY_TEXT = "Materialise the target (Ctrl+M) to see every layer at once, or analyse the source."


def layer_table(summaries) -> tuple[np.ndarray, list[str], list[str]]:
    """Rows = layers ("global" first), columns = metrics averaged over the layer's tensors: the table a
    materialised run keeps in the history too (:func:`core.runs.layer_metrics`, the one definition)."""
    labels, values = layer_metrics(materialised_payload({}, summaries, 0, ""))
    return np.array(values, dtype=float).reshape(len(labels), len(LAYER_METRICS)), labels, list(LAYER_METRICS)


def _by_column(values: np.ndarray) -> np.ndarray:
    """Each column min–max scaled to [0, 1] (columns hold different units)."""
    with warnings.catch_warnings():  # an all-NaN column stays blank
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nan_to_num(np.nanmin(values, axis=0)), np.nan_to_num(np.nanmax(values, axis=0))
    return (values - low) / np.where(high - low > 0, high - low, 1.0)


def _cell(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.3g}"


#: Before a value that is an estimate rather than exact (as in ``graft stats``).
ESTIMATED = "≈"


def _how(estimated: bool, method: str) -> str:
    """A cell's tooltip line: how its value was obtained."""
    return f"estimated ({method})" if estimated and method else "estimated" if estimated else "exact"


def _estimates_text(count: int, filled: int, method: str) -> str:
    """How many of the shown cells are estimates, for the explanation under the plot."""
    if not filled:
        return ""
    if not count:
        return f"All {filled} values are exact."
    which = f"all {filled} values" if count == filled else f"{count} of the {filled} values"
    rest = f"; the other {filled - count} are exact" if count < filled else ""
    how = f"{method}; " if method else ""
    return f"{ESTIMATED} marks estimates: {which} ({how}measured error above){rest}."


class OverviewPanel(QtWidgets.QWidget):
    """Signals: analysis_requested() — the user wants the source's model-wide statistics;
    tensor_requested(name) — the user clicked a cell: show that tensor."""

    analysis_requested = QtCore.Signal()
    tensor_requested = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = None
        self.analysing = False  # the table is still growing
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.view_combo = QtWidgets.QComboBox()
        self.view_combo.addItem("Target: layer × metric", "target")
        self.view_combo.setItemData(0, TARGET_HELP, QtCore.Qt.ToolTipRole)
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
        self.title = QtWidgets.QLabel(EMPTY_TEXT)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.heatmap = HeatmapPlot(title="")
        self.heatmap.cell_clicked.connect(self._on_cell_clicked)
        self.stamp = ResultStamp("materialised target", [self.heatmap])
        layout.addWidget(self.stamp)
        self.pages = QtWidgets.QStackedWidget()  # nothing to show yet / the heat map
        empty = QtWidgets.QLabel(
            "<p>No overview yet.</p><p><b>Materialise</b> (Ctrl+M) fills every target tensor and shows them here "
            "layer by layer; <b>Analyse the source</b> computes each source matrix's statistics (its rows "
            "appear as they are computed).</p>"
        )
        empty.setWordWrap(True)
        empty.setAlignment(QtCore.Qt.AlignCenter)
        empty.setMargin(30)
        empty.setObjectName("overview-empty")
        self.pages.addWidget(empty)
        self.pages.addWidget(self.heatmap)
        layout.addWidget(self.pages, 1)
        self.legend = QtWidgets.QLabel()  # what the chosen metric measures
        self.legend.setObjectName("overview-metric-help")
        self.legend.setWordWrap(True)
        layout.addWidget(self.legend)
        self.suggestion = QtWidgets.QLabel()
        self.suggestion.setObjectName("overview-suggestions")
        self.suggestion.setWordWrap(True)
        self.suggestion.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        layout.addWidget(self.suggestion)
        self.materialised = None
        self._names: list[list[str]] = []  # the tensor behind each cell of the current view

    def set_source_ready(self, ready: bool) -> None:
        self.analyse_button.setEnabled(ready)
        self.table = None
        self.analysing = False
        while self.view_combo.count() > 1:
            self.view_combo.removeItem(1)
        self._redraw()

    def show_materialised(self, materialised, recipe) -> None:
        """The target built from ``recipe`` (``materialised``): its layer × metric view."""
        self.materialised = materialised
        self.stamp.stamp(recipe)
        self.view_combo.setCurrentIndex(0)
        self._redraw()

    def grow_source_table(self, table) -> None:
        """The source's statistics so far (a ``core.stats.ModelTable`` of the tensors analysed yet)."""
        self.analysing = True
        self._set_table(table)

    def show_source_table(self, table) -> None:
        """A ``core.stats.ModelTable``: one view per metric, plus its mean-field suggestions."""
        self.analysing = False
        self._set_table(table)

    def _set_table(self, table) -> None:
        first = self.table is None
        self.table = table
        if self.view_combo.count() - 1 != len(table.metrics):
            keep = self.view_combo.currentData()
            self.view_combo.blockSignals(True)
            while self.view_combo.count() > 1:
                self.view_combo.removeItem(1)
            for metric in table.metrics:
                label, _ = metric_words(metric, table.descriptions)
                self.view_combo.addItem(f"Source: {label} by layer × role", metric)
                self.view_combo.setItemData(
                    self.view_combo.count() - 1, metric_tooltip(metric, table.descriptions), QtCore.Qt.ToolTipRole
                )
            index = self.view_combo.findData(keep)
            self.view_combo.setCurrentIndex(1 if first or index < 0 else index)
            self.view_combo.blockSignals(False)
        if self.view_combo.currentData() == "target" and first:
            self.view_combo.setCurrentIndex(1)
        self._redraw()

    def _redraw(self, *_) -> None:
        key = self.view_combo.currentData()
        self.stamp.set_shown(key == "target" and self.materialised is not None)  # source statistics have no recipe
        if key == "target" and self.materialised is not None:
            self._draw_target()
        elif self.table is not None and key in self.table.values:
            self._draw_source(key)
        else:
            self.pages.setCurrentIndex(0)
            self.title.setText(EMPTY_TEXT)
            self.legend.setText("")
            self.suggestion.setText("")

    def _draw_target(self) -> None:
        m = self.materialised
        values, rows, cols = layer_table(m.summaries)
        if not rows:
            return
        self.pages.setCurrentIndex(1)
        self._names = [[""] * len(cols) for _ in rows]
        self.heatmap.colour_bar.hide()  # each column on its own scale: no one colour bar reads them all
        self.heatmap.show_matrix(
            _by_column(values),
            levels=(0.0, 1.0),
            colormap=SEQUENTIAL,
            row_labels=rows,
            col_labels=cols,
            cell_text=[[_cell(v) for v in row] for row in values],
            title="target: layer × metric (each column on its own scale)",
        )
        self.heatmap.set_cell_tips(
            [
                [f"{r} · {c}: {_cell(values[i, j]) or 'no value'}" for j, c in enumerate(cols)]
                for i, r in enumerate(rows)
            ]
        )
        self.title.setText(
            f"Target materialised: {m.num_parameters / 1e6:,.2f} M parameters in {len(m.summaries)} tensors on {m.device}."
        )
        self.legend.setText(TARGET_HELP)
        self.suggestion.setText(_spread_reading(values[:, 0]))

    def _draw_source(self, metric: str) -> None:
        t = self.table
        values = np.asarray(t.values[metric], dtype=float)
        label, description = metric_words(metric, t.descriptions)
        self.pages.setCurrentIndex(1)
        self.heatmap.colour_bar.show()  # one metric, one scale
        rows, cols = t.row_labels(), [short_column(c) for c in t.columns]
        estimated = np.asarray(t.estimated.get(metric, np.zeros(values.shape, dtype=bool)), dtype=bool)
        method = t.estimate_methods.get(metric, "")
        self.heatmap.show_matrix(
            values,
            levels=_levels(values),
            colormap=SEQUENTIAL,
            row_labels=rows,
            col_labels=cols,
            cell_text=[
                [ESTIMATED + _cell(v) if e and _cell(v) else _cell(v) for v, e in zip(row, flags)]
                for row, flags in zip(values, estimated)
            ],
            title=f"source: {label}",
        )
        self._names = [[str(n) for n in row] for row in t.names]
        self.heatmap.set_cell_tips(
            [
                [
                    f"{rows[i]} · {t.columns[j]}\n{self._names[i][j]}\n{label}: {_cell(values[i, j]) or 'no value'}"
                    + (f"\n{_how(bool(estimated[i, j]), method)}" if np.isfinite(values[i, j]) else "")
                    if self._names[i][j]
                    else f"{rows[i]} · {t.columns[j]}: no tensor"
                    for j in range(len(t.columns))
                ]
                for i in range(len(rows))
            ]
        )
        filled = sum(1 for row in self._names for n in row if n)
        shown = int(np.isfinite(values).sum())  # cells with a value (a NaN/Inf matrix has no spectrum)
        if self.analysing:
            self.title.setText(f"Analysing the source… {filled} tensors so far (rows appear as they are computed).")
        else:
            self.title.setText(
                f"Source statistics: {filled} matrices in {len(t.layers)} rows × {len(t.columns)} roles. "
                "Click a cell to preview its tensor."
            )
        self.legend.setText(
            f"<b>{label}</b> (<code>{metric}</code>): {description}. Grey cells: no such tensor.<br>"
            + _estimates_text(int(estimated.sum()), shown, method)
        )
        self.suggestion.setText("" if self.analysing else _suggestions_text(t))

    def _on_cell_clicked(self, row: int, column: int) -> None:
        if self.view_combo.currentData() != "target" and row < len(self._names) and column < len(self._names[row]):
            name = self._names[row][column]
            if name:
                self.tensor_requested.emit(name)


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
