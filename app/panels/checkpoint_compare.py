"""Compare two checkpoints: a layer × role heat map of a distance, the table of every tensor pair,
and for the selected pair both histograms and both spectra overlaid.

The comparison and each pair's detail are jobs (``factories.checkpoint_diff_job`` in a child
process, ``factories.pair_detail_job``), awaited on this panel's two controllers; a newer
comparison supersedes a running one. ``graft diff A B`` prints the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from app.jobs import JobController, factories, flow
from app.plots import HeatmapPlot, HistogramPlot, SpectrumPlot
from app.plots.heatmap import SEQUENTIAL
from app.plots.histogram import HistogramData
from app.qt import QtCore, QtWidgets
from core.errors import Cancelled

#: the table's metric columns (keys of ``core.stats.diff.DIFF_METRICS``; the labels come with the result)
TABLE_METRICS = ("rel_frobenius", "cos_mean", "cos_min", "ks", "w1", "std_ratio")
ERROR_COLOUR = "#d0453a"
NAME_COLUMN_WIDTH = 260  # pixels; the full name is the cell's tooltip


def fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "—" if value is None or math.isnan(value) else str(value)
    return "0" if value == 0 else f"{value:.3g}"


def shape_text(pair) -> str:
    a, b = "×".join(map(str, pair.shape_a)), "×".join(map(str, pair.shape_b))
    return a if a == b else f"{a} → {b}"


class _Side(QtWidgets.QWidget):
    """One checkpoint: a location (a path, a hub id or 'demo') with file and folder pickers."""

    def __init__(self, label: str, parent=None) -> None:
        super().__init__(parent)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel(f"<b>{label}</b>"))
        self.edit = QtWidgets.QLineEdit()
        self.edit.setPlaceholderText("a model folder, a .safetensors file, a hub repo id or 'demo'")
        row.addWidget(self.edit, 1)
        self.file_button = QtWidgets.QPushButton("File…")
        self.file_button.clicked.connect(self._choose_file)
        self.folder_button = QtWidgets.QPushButton("Folder…")
        self.folder_button.clicked.connect(self._choose_folder)
        self.source_button = QtWidgets.QPushButton("Open source")
        self.source_button.setToolTip("The source open in the main window")
        self.source_button.setEnabled(False)
        for button in (self.file_button, self.folder_button, self.source_button):
            row.addWidget(button)
        self.open_source = ""
        self.source_button.clicked.connect(lambda: self.edit.setText(self.open_source))

    @property
    def location(self) -> str:
        return self.edit.text().strip()

    def _choose_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose a checkpoint file", self.location, "safetensors (*.safetensors);;All files (*)"
        )
        if path:
            self.edit.setText(path)

    def _choose_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a model folder (a source or an export)")
        if path:
            self.edit.setText(path)


class CheckpointComparePanel(QtWidgets.QWidget):
    """Signals: compared(Diffed) once a comparison is shown; detail_shown(str) once a pair's plots are."""

    compared = QtCore.Signal(object)
    detail_shown = QtCore.Signal(str)

    def __init__(self, controller: JobController, detail_controller: JobController, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.detail_controller = detail_controller
        self.result = None
        self._pairs: list = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.side_a, self.side_b = _Side("A"), _Side("B")
        layout.addWidget(self.side_a)
        layout.addWidget(self.side_b)
        row = QtWidgets.QHBoxLayout()
        self.compare_button = QtWidgets.QPushButton("Compare")
        self.compare_button.setToolTip("Measure every tensor pair of A and B (a background job)")
        self.compare_button.clicked.connect(self.start)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.controller.cancel)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.metric_combo = QtWidgets.QComboBox()
        self.metric_combo.setToolTip("The distance the heat map shows")
        self.metric_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToContents)
        self.metric_combo.currentIndexChanged.connect(self._redraw)
        self.matrices_only = QtWidgets.QCheckBox("Matrices only")
        self.matrices_only.setToolTip("Leave biases and norms (1-D tensors) out of the heat map")
        self.matrices_only.setChecked(True)
        self.matrices_only.toggled.connect(self._redraw)
        for w, stretch in ((self.compare_button, 0), (self.cancel_button, 0), (self.progress, 1)):
            row.addWidget(w, stretch)
        row.addWidget(QtWidgets.QLabel("Heat map:"))
        row.addWidget(self.metric_combo)
        row.addWidget(self.matrices_only)
        layout.addLayout(row)
        self.status = QtWidgets.QLabel("Choose two checkpoints: a source and its export, a base and a fine-tune, …")
        self.status.setObjectName("compare-status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        layout.addWidget(self.status)

        self.heatmap = HeatmapPlot(title="")
        self.heatmap.cell_clicked.connect(self._on_cell_clicked)
        self._shown_columns: list[int] = []
        self.table = QtWidgets.QTableWidget(0, 3 + len(TABLE_METRICS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setTextElideMode(QtCore.Qt.ElideLeft)  # the end of a name tells the tensors of a layer apart
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.histogram = HistogramPlot(title="select a tensor")
        self.spectrum = SpectrumPlot(title="")
        left = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        left.addWidget(self.heatmap)
        left.addWidget(self.table)
        right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        right.addWidget(self.histogram)
        right.addWidget(self.spectrum)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout.addWidget(self.splitter, 1)
        self.controller.progressed.connect(self._on_progress)

    # -- inputs ------------------------------------------------------------------------------
    def set_open_source(self, location: str | None) -> None:
        """The source open in the main window (offered by both sides' "Open source"); fills A if empty."""
        for side in (self.side_a, self.side_b):
            side.open_source = location or ""
            side.source_button.setEnabled(bool(location))
        if location and not self.side_a.location:
            self.side_a.edit.setText(location)

    def set_locations(self, a: str | Path, b: str | Path) -> None:
        self.side_a.edit.setText(str(a))
        self.side_b.edit.setText(str(b))

    # -- the comparison ----------------------------------------------------------------------
    @flow
    async def start(self) -> None:
        """Compare A and B in the background; the heat map, table and status follow."""
        a, b = self.side_a.location, self.side_b.location
        if not a or not b:
            self._say("Choose both checkpoints first (A and B).", error=True)
            return
        self._busy(True)
        self._say(f"Comparing {a} with {b}…")
        try:
            result = await self.controller.run(factories.checkpoint_diff_job(a, b))
        except Cancelled:
            if not self.controller.running:  # not superseded by a newer comparison
                self._busy(False)
                self._say("Comparison cancelled.")
            return
        except Exception as exc:  # a GraftError's message is the user's; a bug's is logged by the controller
            self._busy(False)
            self._say(f"Cannot compare: {exc}", error=True)
            return
        self._busy(False)
        self.show_result(result)

    def show_result(self, result) -> None:
        """Show a :class:`app.jobs.results.Diffed`."""
        self.result = result
        self._pairs = list(result.diff.pairs)
        key = self.metric_combo.currentData() or "rel_frobenius"
        self.metric_combo.blockSignals(True)
        self.metric_combo.clear()
        for metric, label in result.metrics.items():
            self.metric_combo.addItem(label, metric)
        self.metric_combo.setCurrentIndex(max(0, self.metric_combo.findData(key)))
        self.metric_combo.blockSignals(False)
        self._fill_table(result.metrics)
        self._redraw()
        self._say(_summary_text(result.diff))
        self.compared.emit(result)

    def _fill_table(self, labels: dict[str, str]) -> None:
        headers = ["tensor", "shape", *(labels.get(m, m) for m in TABLE_METRICS), "note"]
        self.table.blockSignals(True)
        self.table.clearContents()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(self._pairs))
        for r, p in enumerate(self._pairs):
            name = p.name if p.pair.name_b == p.name else f"{p.name} ⇄ {p.pair.name_b}"
            note = p.note or ("" if p.distances_exact else "KS/W1 sampled")
            cells = [name, shape_text(p.pair), *(fmt(p.value(m)) for m in TABLE_METRICS), note]
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if c == 0:
                    item.setToolTip(text)
                if 2 <= c < 2 + len(TABLE_METRICS):
                    item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        # Names are long (``model.layers.17.self_attn.q_proj.weight``): keep room for the numbers.
        self.table.setColumnWidth(0, min(self.table.columnWidth(0), NAME_COLUMN_WIDTH))

    def _redraw(self, *_) -> None:
        if self.result is None:
            return
        metric = self.metric_combo.currentData() or "rel_frobenius"
        t = self.result.table
        values = np.asarray(t.values[metric], dtype=float)
        keep = list(range(len(t.columns)))
        if self.matrices_only.isChecked():
            shapes = {p.name: p.pair.shape_a for p in self._pairs}
            matrix = [any(len(shapes.get(str(n), ())) >= 2 for n in t.names[:, j] if n) for j in keep]
            keep = [j for j in keep if matrix[j]] or keep
        values = values[:, keep]
        self._shown_columns = keep
        self.heatmap.show_matrix(
            values,
            levels=_levels(values, metric),
            colormap=SEQUENTIAL,
            row_labels=t.row_labels(),
            col_labels=[t.columns[j] for j in keep],
            cell_text=[[fmt(v) if math.isfinite(v) else "" for v in row] for row in values],
            title=f"{self.metric_combo.currentText()} by layer × role",
        )
        names = t.names[:, keep]
        self.heatmap.set_cell_tips(
            [[f"{n}: {fmt(v)}" if n else "" for n, v in zip(name_row, row)] for name_row, row in zip(names, values)]
        )

    # -- one pair ----------------------------------------------------------------------------
    def select_tensor(self, name: str) -> None:
        """Select the pair holding ``name`` (A's or B's): its row, then its histograms and spectra."""
        for r, p in enumerate(self._pairs):
            if name in (p.pair.name_a, p.pair.name_b):
                self.table.selectRow(r)
                self.table.scrollToItem(self.table.item(r, 0))
                return

    def _on_row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and self.result is not None:
            self.show_detail(self._pairs[rows[0].row()].name)

    def _on_cell_clicked(self, row: int, column: int) -> None:
        names = self.result.table.names if self.result is not None else None
        if names is not None and column < len(self._shown_columns) and names[row, self._shown_columns[column]]:
            self.select_tensor(str(names[row, self._shown_columns[column]]))

    @flow
    async def show_detail(self, name: str) -> None:
        """Compute and draw the pair holding ``name``: overlaid histograms and spectra of A and B."""
        result = self.result
        try:
            detail = await self.detail_controller.run(factories.pair_detail_job(result.a, result.b, name))
        except Cancelled:
            return
        except Exception as exc:
            self._say(f"Cannot compare {name}: {exc}", error=True)
            return
        h, pair = detail.histogram, detail.diff.pair
        self.histogram.show_histogram(
            HistogramData(
                np.asarray(h.edges),
                {
                    f"A {shape_text_one(pair.shape_a)}": h.source_density,
                    f"B {shape_text_one(pair.shape_b)}": h.target_density,
                },
                densities=True,
            ),
            title=f"{_where(pair)}: KS {fmt(detail.diff.ks)}, W1 {fmt(detail.diff.w1)}",
        )
        spectra = {"A": detail.spectrum_a, "B": detail.spectrum_b}
        spectra = {k: v for k, v in spectra.items() if len(v)}
        title = f"{_where(pair)}: singular values" if spectra else "no spectrum (a 1-D tensor)"
        self.spectrum.show_spectrum(spectra, title=title)
        self.detail_shown.emit(name)

    # -- status ------------------------------------------------------------------------------
    def _busy(self, busy: bool) -> None:
        self.compare_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)

    def _on_progress(self, fraction: float, message: str, eta: float) -> None:
        if fraction < 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        self.progress.setToolTip(message)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setStyleSheet(f"color: {ERROR_COLOUR};" if error else "")
        self.status.setText(text)


def _where(pair) -> str:
    """``layer 0 attn.q`` (``other pos`` outside the layers): short enough for a plot title."""
    return f"{'layer ' + str(pair.layer) if pair.layer is not None else 'other'} {pair.column}"


def shape_text_one(shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _levels(values: np.ndarray, metric: str) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if metric.startswith("cos"):
        high = 1.0  # cosines: 1 = unchanged, the top of the scale
    elif metric != "std_ratio":
        low = 0.0  # distances: 0 = unchanged, the bottom of the scale
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _summary_text(diff) -> str:
    s = diff.summary()
    changed = s["compared"] - s["identical"] - s["shape_differs"]
    parts = [
        f"<b>{s['compared']}</b> pairs: {s['identical']} identical, {changed} changed, "
        f"{s['shape_differs']} of another shape (distribution metrics only)"
    ]
    worst = s["largest_rel_frobenius"]
    if worst and worst["value"] > 0:
        parts.append(f"largest ‖A−B‖/‖A‖ {fmt(worst['value'])} in {worst['name']}")
    for label, names in (("only in A", diff.pairing.only_a), ("only in B", diff.pairing.only_b)):
        if names:
            parts.append(f"{len(names)} only in {label[-1]} ({names[0]}{', …' if len(names) > 1 else ''})")
    if diff.pairing.not_compared:
        parts.append(f"{len(diff.pairing.not_compared)} not compared (integer or buffer)")
    return (
        "; ".join(parts) + ". Click a cell or a row for both histograms and spectra. Grey cells: no tensor there, "
        "or a metric that does not apply (row cosines of 1-D tensors, elementwise metrics of other shapes)."
    )


class CheckpointCompareWindow(QtWidgets.QDialog):
    """The compare panel in a window of its own (File → Compare checkpoints…): a heat map, a table
    and two plots need more room than a tab under the model panel has."""

    def __init__(self, controller: JobController, detail_controller: JobController, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Graft — compare checkpoints")
        self.setObjectName("graft-compare-window")
        self.setWindowFlag(QtCore.Qt.Window)
        self.panel = CheckpointComparePanel(controller, detail_controller, self)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.panel)
        self.resize(1320, 860)

    def reveal(self) -> None:
        """Show the window (or bring it to the front)."""
        self.show()
        self.raise_()
        self.activateWindow()
