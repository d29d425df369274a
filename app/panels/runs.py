"""Runs: every run of the open source kept in the history, and two of them side by side.

The list holds every history entry whose recipe reads the open source — leaderboards, validations
and materialised targets of every recipe, newest first (``core.runs.runs_of_source``, read by
``factories.runs_job``). The user ticks two: the first ticked is run A, the second run B (a third
tick replaces the older of the two). The right side then shows what differs between their recipes
(A → B), what each found (verdicts, ranking, size), and, by kind:

- runs with eval curves (validations, leaderboards): both sets overlaid in one plot, A solid and
  B dashed, one colour per arm;
- two materialised targets: their layer × metric numbers side by side, B tinted by its change.

"Use recipe A/B" loads that run's recipe into the form (``recipe_requested``).
"""

from __future__ import annotations

import math

from app.panels.leaderboard_view import eval_curves, format_created
from app.plots import CurvesPlot
from app.plots._pg import pg
from app.plots.style import CYCLE, SERIES_COLOURS
from app.qt import QtCore, QtGui, QtWidgets
from core.runs import LAYER_METRICS, entry_diff, entry_recipe, layer_metrics, recipe_summary, value_text, verdict_lines

SIDES = ("A", "B")
KIND_WORDS = {"leaderboard": "leaderboard", "validation": "validation", "materialised": "materialised"}
#: tints of a B cell that moved from A by more than CHANGED (relative): up, down.
UP, DOWN = QtGui.QColor(232, 116, 59, 70), QtGui.QColor(59, 125, 216, 70)
CHANGED = 0.05
SHORT = {"excess kurtosis": "kurtosis"}  # column headers; the tooltip says the whole name
EMPTY_TEXT = "Tick two runs in the list to see them side by side."


def entry_text(entry: dict) -> str:
    """``2025-12-02 15:04 · validation`` and the recipe summary, on two lines."""
    kind = KIND_WORDS.get(entry.get("kind"), str(entry.get("kind")))
    return f"{format_created(entry.get('created'))} · {kind}\n{recipe_summary(entry_recipe(entry))}"


def arm_colours(names) -> dict[str, str]:
    """One colour per arm name, the same in A and B (the baseline grey)."""
    colours, i = {}, 0
    for name in names:
        if name in colours:
            continue
        if name in SERIES_COLOURS:
            colours[name] = SERIES_COLOURS[name]
        else:
            colours[name] = CYCLE[i % len(CYCLE)]
            i += 1
    return colours


class RunsPanel(QtWidgets.QWidget):
    """Signals: recipe_requested(dict) — load this run's recipe into the window."""

    recipe_requested = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.entries: list[dict] = []
        self.ticked: list[str] = []  # paths of the ticked entries: [A, B]
        self._filling = False
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        layout.addWidget(splitter)
        splitter.addWidget(self._list_box())
        splitter.addWidget(self._compare_box())
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([250, 750])
        self._show_pair()

    def _list_box(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        box.setMinimumWidth(240)
        layout = QtWidgets.QVBoxLayout(box)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QtWidgets.QLabel("<b>Runs of this source</b> (newest first)"))
        self.run_list = QtWidgets.QListWidget()
        self.run_list.setObjectName("runs-list")
        self.run_list.setWordWrap(True)
        self.run_list.setAlternatingRowColors(True)
        self.run_list.setToolTip(
            "Every leaderboard, validation and materialised target of this source kept across launches, "
            "whatever its recipe; tick two to compare them (the first ticked is A)"
        )
        self.run_list.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.run_list, 1)
        return box

    def _compare_box(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(box)
        layout.setContentsMargins(4, 4, 4, 4)
        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        top = QtWidgets.QWidget()
        top_layout = QtWidgets.QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        cards = QtWidgets.QHBoxLayout()
        self.cards: dict[str, QtWidgets.QLabel] = {}
        self.use_buttons: dict[str, QtWidgets.QPushButton] = {}
        for side in SIDES:
            column = QtWidgets.QVBoxLayout()
            card = QtWidgets.QLabel()
            card.setObjectName(f"runs-card-{side}")
            card.setWordWrap(True)
            card.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
            card.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
            scroll = QtWidgets.QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
            scroll.setWidget(card)
            column.addWidget(scroll, 1)
            button = QtWidgets.QPushButton(f"Use recipe {side}")
            button.setToolTip(f"Load run {side}'s recipe into the window (like opening its recipe file)")
            button.clicked.connect(lambda _=False, s=side: self.use_recipe(s))
            column.addWidget(button, 0, QtCore.Qt.AlignLeft)
            cards.addLayout(column, 1)
            self.cards[side], self.use_buttons[side] = card, button
        top_layout.addLayout(cards, 3)
        self.diff_table = QtWidgets.QTableWidget(0, 3)
        self.diff_table.setObjectName("runs-recipe-diff")
        self.diff_table.setHorizontalHeaderLabels(["What differs", "A", "B"])
        self.diff_table.setToolTip("The recipe fields (and, for two runs of one kind, the run options) that differ")
        self.diff_table.verticalHeader().hide()
        self.diff_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        header = self.diff_table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeToContents)
        for column in (1, 2):
            header.setSectionResizeMode(column, QtWidgets.QHeaderView.Stretch)
        top_layout.addWidget(self.diff_table, 2)
        split.addWidget(top)
        self.pages = QtWidgets.QStackedWidget()
        self.placeholder = QtWidgets.QLabel()
        self.placeholder.setAlignment(QtCore.Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.pages.addWidget(self.placeholder)
        self.curves = CurvesPlot(title="eval loss by step: run A solid, run B dashed")
        self.pages.addWidget(self.curves)
        self.layer_table = QtWidgets.QTableWidget(0, 1 + 2 * len(LAYER_METRICS))
        self.layer_table.setObjectName("runs-layer-table")
        self.layer_table.verticalHeader().hide()
        self.layer_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.layer_table.setAlternatingRowColors(True)
        self.layer_table.setToolTip(
            "Per layer, averaged over its tensors, as the model overview shows a materialised target; "
            "a B cell is tinted when it moved more than 5% from A (orange up, blue down)"
        )
        self.pages.addWidget(self.layer_table)
        split.addWidget(self.pages)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([220, 330])
        layout.addWidget(split, 1)
        return box

    # -- from the window ---------------------------------------------------------------------
    def show_runs(self, entries: list[dict]) -> None:
        """Every run of the open source, newest first; the runs still in the list stay ticked."""
        self.entries = list(entries)
        paths = {str(e.get("path")) for e in self.entries}
        self.ticked = [p for p in self.ticked if p in paths]
        self._filling = True
        self.run_list.clear()
        for entry in self.entries:
            item = QtWidgets.QListWidgetItem(entry_text(entry))
            item.setData(QtCore.Qt.UserRole, str(entry.get("path")))
            item.setToolTip(str(entry.get("path")))
            item.setFlags(QtCore.Qt.ItemIsEnabled | QtCore.Qt.ItemIsUserCheckable)
            self.run_list.addItem(item)
        if not self.entries:
            placeholder = QtWidgets.QListWidgetItem("no runs of this source yet: materialise or validate one")
            placeholder.setFlags(QtCore.Qt.NoItemFlags)
            self.run_list.addItem(placeholder)
        self._filling = False
        self._show_pair()

    # -- user intents ------------------------------------------------------------------------
    def tick(self, index: int, ticked: bool = True) -> None:
        """Tick (or untick) the ``index``-th run, as a click on its box does."""
        self.run_list.item(index).setCheckState(QtCore.Qt.Checked if ticked else QtCore.Qt.Unchecked)

    def pair(self) -> tuple[dict | None, dict | None]:
        """The runs ticked as A and B (None where fewer are ticked)."""
        by_path = {str(e.get("path")): e for e in self.entries}
        shown = [by_path[p] for p in self.ticked if p in by_path]
        return (shown[0] if shown else None), (shown[1] if len(shown) > 1 else None)

    def use_recipe(self, side: str) -> None:
        entry = self.pair()[SIDES.index(side)]
        recipe = entry_recipe(entry) if entry is not None else None
        if recipe:
            self.recipe_requested.emit(recipe)

    def _on_item_changed(self, item: QtWidgets.QListWidgetItem) -> None:
        if self._filling:
            return
        path = item.data(QtCore.Qt.UserRole)
        if item.checkState() == QtCore.Qt.Checked and path not in self.ticked:
            self.ticked.append(path)
        elif item.checkState() != QtCore.Qt.Checked and path in self.ticked:
            self.ticked.remove(path)
        self.ticked = self.ticked[-2:]  # a third tick replaces the older of the two
        self._show_pair()

    # -- drawing -----------------------------------------------------------------------------
    def _mark_list(self) -> None:
        self._filling = True
        for i in range(self.run_list.count()):
            item = self.run_list.item(i)
            path = item.data(QtCore.Qt.UserRole)
            if path is None:
                continue
            side = SIDES[self.ticked.index(path)] if path in self.ticked else None
            item.setCheckState(QtCore.Qt.Checked if side else QtCore.Qt.Unchecked)
            text = entry_text(self.entries[i])
            item.setText(f"{side}  {text}" if side else text)
            font = item.font()
            font.setBold(side is not None)
            item.setFont(font)
        self._filling = False

    def _show_pair(self) -> None:
        self._mark_list()
        a, b = self.pair()
        for side, entry in zip(SIDES, (a, b)):
            self.use_buttons[side].setEnabled(bool(entry is not None and entry_recipe(entry)))
            self.cards[side].setText(card_html(side, entry))
        if b is None:
            self.diff_table.setRowCount(0)
            self.placeholder.setText(EMPTY_TEXT if a is None else "Run A ticked; tick one more run as B.")
            self.curves.clear_data()
            self.pages.setCurrentWidget(self.placeholder)
            return
        self._fill_diff(a, b)
        if a.get("kind") == b.get("kind") == "materialised":
            self._fill_layers(a, b)
            self.pages.setCurrentWidget(self.layer_table)
        elif self._draw_curves(a, b):
            self.pages.setCurrentWidget(self.curves)
        else:
            self.placeholder.setText("Neither run has eval curves; their recipes and findings are compared above.")
            self.pages.setCurrentWidget(self.placeholder)

    def _fill_diff(self, a: dict, b: dict) -> None:
        diff = entry_diff(a, b)
        table = self.diff_table
        table.clearSpans()
        table.setRowCount(max(1, len(diff)))
        if not diff:
            item = QtWidgets.QTableWidgetItem("the same recipe and options: the runs differ only in when they ran")
            table.setItem(0, 0, item)
            table.setSpan(0, 0, 1, 3)
            return
        for i, (field, va, vb) in enumerate(diff):
            for j, text in enumerate((field, value_text(va), value_text(vb))):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(i, j, item)

    def _draw_curves(self, a: dict, b: dict) -> bool:
        runs = {side: eval_curves(_report(entry)) for side, entry in zip(SIDES, (a, b))}
        colours = arm_colours(arm for curves in runs.values() for arm in curves)
        labelled = {f"{side} · {arm}": points for side, curves in runs.items() for arm, points in curves.items()}
        self.curves.set_curves(labelled)
        for item in self.curves.plotItem.listDataItems():
            side, _, arm = str(item.name()).partition(" · ")
            style = QtCore.Qt.SolidLine if side == "A" else QtCore.Qt.DashLine
            item.setPen(pg.mkPen(colours.get(arm, CYCLE[0]), width=2, style=style))
        return bool(labelled)

    def _fill_layers(self, a: dict, b: dict) -> None:
        (rows_a, values_a), (rows_b, values_b) = layer_metrics(a["payload"]), layer_metrics(b["payload"])
        by_a, by_b = dict(zip(rows_a, values_a)), dict(zip(rows_b, values_b))
        rows = rows_a + [r for r in rows_b if r not in by_a]
        table = self.layer_table
        for j, (metric, side) in enumerate(((m, s) for m in LAYER_METRICS for s in SIDES), start=1):
            header = QtWidgets.QTableWidgetItem(f"{SHORT.get(metric, metric)}\n{side}")
            header.setToolTip(f"{metric} of run {side}")
            table.setHorizontalHeaderItem(j, header)
        table.setHorizontalHeaderItem(0, QtWidgets.QTableWidgetItem("Layer"))
        table.setRowCount(len(rows))
        nan_row = [math.nan] * len(LAYER_METRICS)
        for i, row in enumerate(rows):
            table.setItem(i, 0, QtWidgets.QTableWidgetItem(row))
            va, vb = by_a.get(row, nan_row), by_b.get(row, nan_row)
            for k in range(len(LAYER_METRICS)):
                for j, value in enumerate((va[k], vb[k])):
                    item = QtWidgets.QTableWidgetItem(_cell(value))
                    item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                    if j == 1 and _moved(va[k], vb[k]):
                        item.setBackground(UP if vb[k] > va[k] else DOWN)
                    table.setItem(i, 1 + 2 * k + j, item)
        table.resizeColumnsToContents()


def _report(entry: dict) -> dict | None:
    payload = entry.get("payload") or {}
    return payload.get("report") if entry.get("kind") in ("validation", "leaderboard") else None


def card_html(side: str, entry: dict | None) -> str:
    """Run ``side``'s card: its kind and time, its recipe, what it found."""
    if entry is None:
        return f"<b>Run {side}</b>: tick a run in the list."
    kind = KIND_WORDS.get(entry.get("kind"), "?")
    lines = "".join(f"<li>{_escape(line)}</li>" for line in verdict_lines(entry))
    return (
        f"<b>Run {side}</b> · {kind} · {format_created(entry.get('created'))}<br>"
        f"{_escape(recipe_summary(entry_recipe(entry)))}"
        f"<ul style='margin-left:-24px; margin-top:2px'>{lines}</ul>"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.4g}"


def _moved(a: float, b: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(b - a) > CHANGED * max(abs(a), 1e-12)


if __name__ == "__main__":  # a quick look: python -m app.panels.runs (the user's history, every source)
    import sys

    from core.history import History

    app = QtWidgets.QApplication(sys.argv)
    panel = RunsPanel()
    panel.show_runs(History().entries())
    panel.recipe_requested.connect(lambda recipe: print(recipe))
    panel.resize(1100, 600)
    panel.show()
    app.exec()
