"""Leaderboard: train several starting points of the current target side by side, rank them.

The user ticks candidates (each value strategy; ``by_activation`` and
``by_activation+by_influence`` when those are registered; a "+ teacher" toggle adds a distilled
twin of each), sets the steps (and optionally a quick ranking after the first K of them) and
presses Compare: the window queues one job (``core.leaderboard.compare_steps`` in a child
process) whose eval losses draw live here, one curve per start plus the baseline. The ranked
table follows; "Use this recipe" loads the selected row's recipe into the window the way a recipe
file opens. The history list (newest first) holds earlier leaderboards of this target and
validations of this exact recipe, kept by ``core.history`` across launches; the entry shown is
marked with ▶ and named above the table.
"""

from __future__ import annotations

from app.panels.leaderboard_view import (
    board_from_validation,
    eval_curves,
    fill_table,
    format_created,
    make_table,
    steps_text,
    winner,
)
from app.plots import CurvesPlot
from app.qt import QtCore, QtWidgets

#: value strategies offered but left unticked at first (each start costs one more training arm).
CHECKED_AT_FIRST = ("select", "mean_field", "by_activation")
#: the "baseline" value strategy is the baseline arm itself: never offered as a candidate.
NOT_OFFERED = ("baseline",)
SHOWN_MARK = "▶ "


def candidate_choices() -> list[tuple[str, str]]:
    """``(spec, tooltip)`` of every candidate this Graft can build, in the order offered."""
    from core.strategies import get, names

    choices = [(n, get(n).summary) for n in names("value") if n not in NOT_OFFERED]
    if "by_activation" in names("index"):
        choices.append(("by_activation", get("by_activation").summary + " (value strategy: select)"))
        choices.append(
            (
                "by_activation+by_influence",
                "by_activation, and the layers with the highest Block "
                "Influence (ShortGPT) kept instead of the first ones",
            )
        )
    choices.append(
        (
            "scratch",
            "default-init weights given everything a transfer gets (a head the source lacks "
            "initialised from the body): a start that does not beat it owes its lead to that head",
        )
    )
    return choices


class LeaderboardPanel(QtWidgets.QWidget):
    """Signals (user intents):
    compare_requested(dict): ``{"candidates": [spec, ...], "steps": int, "quick_steps": int | None}``.
    recipe_requested(dict): the selected row's recipe (as a dict), to load into the window.
    """

    compare_requested = QtCore.Signal(object)
    recipe_requested = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.board: dict | None = None  # what the table and curves show
        self.entries: list[dict] = []  # the history list's entries, newest first
        self.shown_path: str | None = None  # the history entry shown (None: the live run or nothing)
        self._running = False
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        layout.addWidget(splitter)
        splitter.addWidget(self._controls())
        right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        self.curves = CurvesPlot(title="eval loss by step: every start and the baseline")
        right.addWidget(self.curves)
        table_box = QtWidgets.QWidget()
        table_layout = QtWidgets.QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        self.shown_label = QtWidgets.QLabel("No leaderboard yet: tick a few starts and press Compare.")
        self.shown_label.setObjectName("leaderboard-shown")
        self.shown_label.setWordWrap(True)
        table_layout.addWidget(self.shown_label)
        self.table = make_table()
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        table_layout.addWidget(self.table, 1)
        row = QtWidgets.QHBoxLayout()
        self.use_button = QtWidgets.QPushButton("Use this recipe")
        self.use_button.setToolTip("Load the selected start's recipe into the window (like opening its recipe file)")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_selected)
        row.addStretch(1)
        row.addWidget(self.use_button)
        table_layout.addLayout(row)
        right.addWidget(table_box)
        right.setSizes([300, 220])
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([230, 700])
        self.set_ready(False)

    def _controls(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        box.setMinimumWidth(220)
        layout = QtWidgets.QVBoxLayout(box)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QtWidgets.QLabel("<b>Starts to compare</b>"))
        self.candidate_list = QtWidgets.QListWidget()
        self.candidate_list.setObjectName("leaderboard-candidates")
        for spec, tip in candidate_choices():
            item = QtWidgets.QListWidgetItem(spec)
            item.setData(QtCore.Qt.UserRole, spec)
            item.setToolTip(tip)
            item.setFlags(item.flags() | QtCore.Qt.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.Checked if spec in CHECKED_AT_FIRST else QtCore.Qt.Unchecked)
            self.candidate_list.addItem(item)
        self.candidate_list.itemChanged.connect(lambda *_: self._update_compare())
        layout.addWidget(self.candidate_list, 2)
        self.teacher_box = QtWidgets.QCheckBox("+ teacher (distilled twins)")
        self.teacher_box.setToolTip(
            "Add a twin of every ticked start trained with the source as its teacher "
            "(distillation), so with and without rank side by side"
        )
        layout.addWidget(self.teacher_box)
        form = QtWidgets.QFormLayout()
        self.steps_spin = QtWidgets.QSpinBox()
        self.steps_spin.setRange(1, 100_000)
        self.steps_spin.setValue(100)
        self.steps_spin.setToolTip("optimizer steps of every start (and of the baseline)")
        form.addRow("Steps", self.steps_spin)
        self.quick_box = QtWidgets.QCheckBox("at step")
        from core.ranking import QUICK_AGREEMENT

        self.quick_box.setToolTip(
            "Quick: stop after the first K steps of the same schedule and rank by the eval "
            f"loss there (the full run's first K steps, exactly); {QUICK_AGREEMENT}"
        )
        self.quick_spin = QtWidgets.QSpinBox()
        self.quick_spin.setRange(1, 100_000)
        self.quick_spin.setValue(20)
        self.quick_spin.setEnabled(False)
        self.quick_box.toggled.connect(self.quick_spin.setEnabled)
        quick = QtWidgets.QHBoxLayout()
        quick.addWidget(self.quick_box)
        quick.addWidget(self.quick_spin, 1)
        form.addRow("Quick", quick)
        layout.addLayout(form)
        self.compare_button = QtWidgets.QPushButton("Compare")
        self.compare_button.setToolTip("Queue one job training every ticked start and the baseline on the same batches")
        self.compare_button.clicked.connect(self.request_compare)
        layout.addWidget(self.compare_button)
        self.status = QtWidgets.QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addWidget(QtWidgets.QLabel("<b>History</b> (this target)"))
        self.history_list = QtWidgets.QListWidget()
        self.history_list.setObjectName("leaderboard-history")
        self.history_list.setWordWrap(True)
        self.history_list.setTextElideMode(QtCore.Qt.ElideRight)
        self.history_list.setToolTip(
            "Earlier leaderboards of this source, target and seed, and validations of "
            "this exact recipe, newest first; pick one to show it"
        )
        self.history_list.itemClicked.connect(lambda item: self.show_entry(self.history_list.row(item)))
        layout.addWidget(self.history_list, 3)
        return box

    # -- user intents ------------------------------------------------------------------------
    def checked_candidates(self) -> list[str]:
        """The specs to compare, teacher twins included."""
        specs = [
            self.candidate_list.item(i).data(QtCore.Qt.UserRole)
            for i in range(self.candidate_list.count())
            if self.candidate_list.item(i).checkState() == QtCore.Qt.Checked
        ]
        if self.teacher_box.isChecked():
            specs += [f"{spec}+teacher" for spec in specs]
        return specs

    def set_checked(self, specs) -> None:
        wanted = set(specs)
        for i in range(self.candidate_list.count()):
            item = self.candidate_list.item(i)
            item.setCheckState(QtCore.Qt.Checked if item.data(QtCore.Qt.UserRole) in wanted else QtCore.Qt.Unchecked)

    def request_compare(self) -> None:
        specs = self.checked_candidates()
        if not specs:
            return
        quick = self.quick_spin.value() if self.quick_box.isChecked() else None
        if quick is not None and quick >= self.steps_spin.value():
            quick = None  # ranking at the last step is the full run
        self.compare_requested.emit({"candidates": specs, "steps": self.steps_spin.value(), "quick_steps": quick})

    def selected_row(self) -> dict | None:
        """The selected table row (a ranked start or the baseline), or None."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or self.board is None:
            return None
        everything = list(self.board.get("rows", [])) + ([self.board["baseline"]] if self.board.get("baseline") else [])
        index = rows[0].row()
        return everything[index] if index < len(everything) else None

    def select_row(self, index: int) -> None:
        self.table.selectRow(index)

    def use_selected(self) -> None:
        row = self.selected_row()
        if row is not None and row.get("recipe") and not row.get("error"):
            self.recipe_requested.emit(row["recipe"])

    def _on_row_selected(self) -> None:
        row = self.selected_row()
        self.use_button.setEnabled(bool(row and row.get("recipe") and not row.get("error")))

    # -- from the window ---------------------------------------------------------------------
    def set_ready(self, ready: bool) -> None:
        """Whether the window holds a plan (a leaderboard needs the target's sizes)."""
        self._ready = ready
        self._update_compare()

    def _update_compare(self) -> None:
        ok = getattr(self, "_ready", False) and not self._running and bool(self.checked_candidates())
        self.compare_button.setEnabled(ok)

    def start(self, specs: list[str], steps: int, quick_steps: int | None) -> None:
        self._running = True
        self._update_compare()
        self.board = None
        self.shown_path = None
        self.curves.clear_data()
        fill_table(self.table, None)
        what = f"first {quick_steps} of {steps}" if quick_steps else str(steps)
        self.status.setText(f"Comparing {len(specs)} starts and the baseline, {what} steps…")
        self.shown_label.setText("Shown: the comparison running now (eval losses appear as they are measured).")
        self._mark_shown()

    def add_step(self, metrics) -> None:
        if metrics.eval_loss is not None:
            self.curves.add_point(metrics.arm, metrics.step, metrics.eval_loss)

    def finish(self, board: dict, history_path: str | None = None) -> None:
        """A comparison ended: show its table; it is the history entry ``history_path`` too."""
        self._running = False
        self._update_compare()
        best = winner(board)
        self.status.setText(f"Done: {best} ranks first." if best else "Done: no start could be trained.")
        self._show(board, f"Shown: the comparison just finished ({steps_text(board)}).", history_path)

    def stopped(self, why: str) -> None:
        """The comparison was cancelled or failed: keep the curves drawn so far, say so."""
        self._running = False
        self._update_compare()
        self.status.setText(f"Comparison {why}; the curves show the steps it completed.")
        self.shown_label.setText(f"Shown: the comparison {why} (no table: it did not finish).")

    def show_history(self, entries: list[dict]) -> None:
        """The history of the current target, newest first (see ``app.jobs.factories.history_job``)."""
        self.entries = list(entries)
        self.history_list.clear()
        for entry in self.entries:
            self.history_list.addItem(QtWidgets.QListWidgetItem(history_text(entry)))
        if not self.entries:
            placeholder = QtWidgets.QListWidgetItem("no runs of this target yet")
            placeholder.setFlags(QtCore.Qt.NoItemFlags)
            self.history_list.addItem(placeholder)
        self._mark_shown()

    def show_entry(self, index: int) -> None:
        """Show the ``index``-th history entry's table and curves."""
        if not 0 <= index < len(self.entries) or self._running:
            return
        entry = self.entries[index]
        board = entry_board(entry)
        kind = "leaderboard" if entry.get("kind") == "leaderboard" else "validation"
        self._show(
            board,
            f"Shown: the {kind} of {format_created(entry.get('created'))} from the history ({steps_text(board)}).",
            entry.get("path"),
        )

    def _show(self, board: dict, label: str, path: str | None) -> None:
        self.board = board
        self.shown_path = str(path) if path else None
        curves = eval_curves(board.get("report"))
        baseline = (board.get("baseline") or {}).get("name")
        order = [r.get("arm", r["name"]) for r in board.get("rows", [])] + [baseline]
        self.curves.set_curves({name: curves[name] for name in order if name in curves})
        fill_table(self.table, board)
        self.shown_label.setText(label)
        self.use_button.setEnabled(False)
        self._mark_shown()

    def _mark_shown(self) -> None:
        for i, entry in enumerate(self.entries):
            item = self.history_list.item(i)
            shown = self.shown_path is not None and str(entry.get("path")) == self.shown_path
            item.setText((SHOWN_MARK if shown else "") + history_text(entry))
            font = item.font()
            font.setBold(shown)
            item.setFont(font)


def entry_board(entry: dict) -> dict:
    """A history entry as a leaderboard dict (a validation becomes a one-start board)."""
    payload = entry.get("payload") or {}
    return payload if entry.get("kind") == "leaderboard" else board_from_validation(payload)


def history_text(entry: dict) -> str:
    """Two lines: ``2025-12-02 15:04 · leaderboard`` and ``40 steps · winner mean_field``."""
    board = entry_board(entry)
    when = format_created(entry.get("created"))
    if entry.get("kind") == "leaderboard":
        best = winner(board)
        return f"{when} · leaderboard\n{steps_text(board)} · winner {best or '–'}"
    row = (board.get("rows") or [{}])[0]
    speed = row.get("speedup")
    verdict = (
        "at the baseline from step 0"
        if row.get("reached_at_start")
        else f"{speed:.1f}× faster"
        if speed
        else "does not reach the baseline"
    )
    return f"{when} · validation\n{steps_text(board)} · {row.get('name', '?')}: {verdict}"


if __name__ == "__main__":  # a quick look: python -m app.panels.leaderboard
    import sys

    app = QtWidgets.QApplication(sys.argv)
    panel = LeaderboardPanel()
    panel.set_ready(True)
    panel.compare_requested.connect(lambda request: print(request))
    panel.resize(1000, 560)
    panel.show()
    app.exec()
