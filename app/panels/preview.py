"""Preview: the selected target tensor next to its source — histograms, maps, spectrum, numbers."""

from __future__ import annotations

import numpy as np

from app.panels.stale import ResultStamp
from app.plots import HeatmapPlot, HistogramPlot, SpectrumPlot
from app.qt import QtCore, QtWidgets

MAPS = (
    ("row_corr", "row correlations"),
    ("col_corr", "column correlations"),
    ("heads_qk", "head W_Q W_Kᵀ"),
    ("heads_vo", "head W_V W_O"),
)
#: head map → (its per-head diagonal dominance, the short name in plot titles)
HEAD_MAPS = {"heads_qk": ("dominance_qk", "QKᵀ"), "heads_vo": ("dominance_vo", "VO")}


def _subset(shown: int, total: int, what: str) -> str:
    """``64 of 384 rows (a spread sample)`` when a map shows a subset, else nothing."""
    return f"{shown} of {total:,} {what} (a spread sample)" if shown < total else ""


def _note(plot, text: str) -> None:
    """A line under a map (its bottom axis label), or none: it says when the map shows a subset."""
    axis = plot.plotItem.getAxis("bottom")
    axis.setLabel(text)
    axis.showLabel(bool(text))


def _axis_total(shape: tuple, which: str) -> int:
    """How many rows (or flattened columns) a correlation map of a tensor of ``shape`` samples from."""
    if which == "row_corr":
        return int(shape[0]) if shape else 0
    return int(np.prod(shape[1:])) if len(shape) > 1 else 0


WELCOME = (
    "<h3>Nothing to preview yet</h3>"
    "<p>Open the <b>demo model</b> (Ctrl+D), a <b>.safetensors file</b> (Ctrl+O) or a <b>model folder</b> "
    "(Ctrl+Shift+O) — or drop one on the Sources panel.</p>"
    "<p>Then set the target sizes and a strategy on the right: the selected tensor's values, "
    "correlations and spectrum appear here, source against target, as you type.</p>"
)


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "–"
    if value == int(value) and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.3g}"


class PreviewPanel(QtWidgets.QWidget):
    """Shows a ``PreviewData``; it never computes anything itself."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.data = None
        #: the recipe a preview was made from, and what is being computed, asked of the window
        self.recipe_of_preview = None
        self.describe_busy = None
        self._generation = 0
        self._stages: list = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel("<b>Preview</b> — pick a tensor")
        # A long tensor name must not widen the window: the label gives way (its full text is its tooltip).
        self.title.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)
        self.title.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        header.addWidget(self.title, 1)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(10)
        self.busy.setTextVisible(False)
        self.busy.hide()
        header.addWidget(self.busy)
        self.map_combo = QtWidgets.QComboBox()
        for key, label in MAPS:
            self.map_combo.addItem(label, key)
        self.map_combo.currentIndexChanged.connect(self._show_maps)
        header.addWidget(self.map_combo)
        self.head_spin = QtWidgets.QSpinBox()
        self.head_spin.setPrefix("head ")
        self.head_spin.setToolTip("Which attention head the W_Q W_Kᵀ / W_V W_O maps show")
        self.head_spin.valueChanged.connect(self._show_maps)
        self.head_spin.hide()
        header.addWidget(self.head_spin)
        self.log_box = QtWidgets.QCheckBox("log density")
        self.log_box.setToolTip("Draw the histograms' density on a log axis, to compare the tails")
        self.log_box.toggled.connect(self._set_log_density)
        header.addWidget(self.log_box)
        layout.addLayout(header)
        self.stamp = ResultStamp("preview", [], follows=True)  # its results (the plots) are added below

        self.pages = QtWidgets.QStackedWidget()
        welcome = QtWidgets.QLabel(WELCOME)
        self.welcome = welcome
        welcome.setWordWrap(True)
        welcome.setAlignment(QtCore.Qt.AlignCenter)
        welcome.setMargin(40)
        welcome.setObjectName("preview-welcome")
        self.pages.addWidget(welcome)
        grid = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        top = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.histogram = HistogramPlot(title="values: source vs target")
        top.addWidget(self.histogram)
        self.stats = QtWidgets.QTableWidget(0, 3)
        self.stats.setHorizontalHeaderLabels(["", "source", "target"])
        self.stats.verticalHeader().hide()
        self.stats.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        header = self.stats.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.Stretch)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeToContents)
        self.stats.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.stats.setMinimumWidth(290)
        top.addWidget(self.stats)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)
        bottom = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.source_map = HeatmapPlot(title="source")
        self.target_map = HeatmapPlot(title="target")
        self.spectrum = SpectrumPlot(title="singular values")
        for w in (self.source_map, self.target_map, self.spectrum):
            bottom.addWidget(w)
        grid.addWidget(top)
        grid.addWidget(bottom)
        self.pages.addWidget(grid)
        self.stamp.results = [top, bottom]
        layout.addWidget(self.stamp)
        layout.addWidget(self.pages, 1)
        self.suggestions = QtWidgets.QLabel()
        self.suggestions.setObjectName("mean-field-suggestions")
        self.suggestions.setWordWrap(True)
        self.suggestions.hide()
        layout.addWidget(self.suggestions)
        self.message = QtWidgets.QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #d0453a;")
        self.message.hide()
        layout.addWidget(self.message)

    def set_busy(self, busy: bool) -> None:
        """A preview is being computed (:attr:`describe_busy` says of what), or is no longer."""
        self.busy.setVisible(busy)
        what = self.describe_busy() if busy and self.describe_busy is not None else ""
        if busy and what:  # say what is coming, not the last tensor's header
            self._header = self.title.text()
            self.title.setText(f"<i>Computing</i> {what}…")
        elif not busy and getattr(self, "_header", None) is not None and self.title.text().startswith("<i>Computing"):
            self.title.setText(self._header)  # cancelled or failed: the header of what is still shown
        if not busy:
            self._header = None

    def source_failed(self, _error) -> None:
        """The source did not open: the page before any preview invites to open one again."""
        self.show_opening(None)

    def show_opening(self, location: str | None) -> None:
        """A source is opening (``location``), or none is open (None): the page before any preview says which."""
        if self.data is None or location is not None:
            if location is not None:  # the shown preview is of the source being replaced: drop it
                self.data = None
                self._generation += 1  # and the stages of its drawing still queued
                self._stages = []
            self.welcome.setText(
                f"<h3>Opening {location}…</h3><p>Reading its headers and config; the first tensor's preview "
                "follows once it is planned.</p>"
                if location is not None
                else WELCOME
            )
            self.pages.setCurrentIndex(0)
            self.title.setText(
                "<b>Preview</b> — opening…" if location is not None else "<b>Preview</b> — pick a tensor"
            )

    def show_preview(self, data) -> None:
        """Show ``data`` in stages, one plot per event-loop turn.

        Each plot costs 10–20 ms to update and repaint on the GUI thread; done at once, a preview
        would hold the window for 60+ ms every time the form changes. In stages, input and timers
        are handled between plots. A newer preview drops the stages an older one has left.
        """
        self.data = data
        if self.recipe_of_preview is not None:
            self.stamp.stamp(self.recipe_of_preview())
        self._generation += 1
        self._stages = [
            self._show_header,
            self._show_histogram,
            self._show_numbers,
            self._show_spectrum,
            lambda: self._show_map("source"),
            lambda: self._show_map("target"),
        ]
        self._next_stage(self._generation)

    @property
    def settled(self) -> bool:
        """Whether the current preview is fully drawn (no stage left)."""
        return not self._stages

    def _next_stage(self, generation: int) -> None:
        if generation != self._generation or not self._stages:
            return
        self._stages.pop(0)()
        if self._stages:
            QtCore.QTimer.singleShot(0, self, lambda: self._next_stage(generation))  # dropped if self is deleted

    def _show_header(self) -> None:
        data = self.data
        self.pages.setCurrentIndex(1)
        self.message.hide()
        src = "×".join(map(str, data.source_shape)) if data.source_name else "no source"
        dst = "×".join(map(str, data.target_shape))
        self.title.setText(f"<b>{data.tensor}</b> · {data.role} · {data.strategy} · {src} → {dst}")
        self.title.setToolTip(f"{data.tensor} · {data.role} · {data.strategy} · {src} → {dst}")
        self.suggestions.setText(
            "Mean-field reading of the source: " + " ".join(data.suggestions) if data.suggestions else ""
        )
        self.suggestions.setVisible(bool(data.suggestions))

    def _show_histogram(self) -> None:
        if self.data.histogram is not None:
            self.histogram.show_histogram(self.data.histogram)
        else:
            self.histogram.clear_data()

    def _show_numbers(self) -> None:
        self.stats.setRowCount(len(self.data.stats))
        for row, (name, s, t) in enumerate(self.data.stats):
            for col, text in enumerate((name, _fmt(s), _fmt(t))):
                item = self.stats.item(row, col)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    if col:
                        item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                    self.stats.setItem(row, col, item)
                item.setText(text)

    def _show_spectrum(self) -> None:
        if self.data.spectrum:
            self.spectrum.show_spectrum(self.data.spectrum)
        else:
            self.spectrum.clear_data()

    def _set_log_density(self, on: bool) -> None:
        self.histogram.set_log_density(on)
        if self.data is not None:
            self._show_histogram()

    def _show_maps(self, *_) -> None:
        if self.data is not None:
            self._show_map("source")
            self._show_map("target")

    def _show_map(self, which: str) -> None:
        key = self.map_combo.currentData()
        maps = getattr(self.data, key) or {}
        label = self.map_combo.currentText()
        plot = self.source_map if which == "source" else self.target_map
        head = key in HEAD_MAPS
        self._set_head_range(maps if head else {})
        matrix = maps.get(which)
        if matrix is None:
            plot.clear_data()
            _note(plot, "")
            if head:
                why = f"{label} maps are drawn for attention query weights only"
            elif which == "source" and self.data.source_name is None:
                why = "this tensor has no source"
            else:
                why = f"no {label}: the tensor is a vector"
            plot.plotItem.setTitle(f"{which}: {why}", size="9pt")
            return
        shape = self.data.source_shape if which == "source" else self.data.target_shape
        if not head:
            matrix = np.asarray(matrix)
            what = "rows" if key == "row_corr" else "columns"
            _note(plot, _subset(matrix.shape[0], _axis_total(shape, key), what))
            plot.show_matrix(matrix, levels=(-1.0, 1.0), title=f"{which} {label}")
            return
        h = self.head_spin.value()
        if h >= matrix.shape[0]:
            plot.clear_data()
            plot.plotItem.setTitle(f"{which} has {matrix.shape[0]} heads: no h{h}", size="9pt")
            return
        field, short = HEAD_MAPS[key]
        dominance = getattr(self.data, field).get(which)
        reading = f" · diag {dominance[h]:+.1f}×" if dominance is not None else ""  # mean diag / mean |off-diag|
        # Source and target on one colour range, so equal colours mean equal values.
        tops = [np.nanmax(np.abs(m[h])) for m in maps.values() if m is not None and h < m.shape[0] and m[h].size]
        top = max([float(t) for t in tops if np.isfinite(t)] + [1e-12])
        _note(plot, _subset(matrix.shape[-1], int(shape[-1]) if shape else 0, "hidden dims"))
        plot.show_matrix(np.asarray(matrix[h]), levels=(-top, top), title=f"{which} h{h} {short}{reading}")

    def _set_head_range(self, maps: dict) -> None:
        """Show the head picker for head maps, up to the larger side's head count."""
        heads = max((m.shape[0] for m in maps.values()), default=0)
        self.head_spin.setVisible(heads > 0)
        if heads and self.head_spin.maximum() != heads - 1:
            self.head_spin.blockSignals(True)
            self.head_spin.setRange(0, heads - 1)
            self.head_spin.blockSignals(False)

    def show_error(self, message: str) -> None:
        self.message.setText(f"Preview failed: {message}")
        self.message.show()
