"""The Leaderboard tab on the demo model: compare starts, rank them, use one, find it in the history.

A tiny target (1 layer, hidden 96) and 3 steps keep a comparison of two starts and the baseline
to seconds. With the FFN grown past the source's (1536 → 2048) ``select`` is refused by the plan
(it only shrinks), so it comes back as an error row while the others train.
"""

from __future__ import annotations

import os

from app.qt import QtCore

TINY = {"layers": 1, "hidden": 96, "heads": 3, "ffn": 192}
GROWN_FFN = {"layers": 1, "hidden": 96, "heads": 3, "ffn": 2048}
SCREENSHOT = os.environ.get("GRAFT_LEADERBOARD_SCREENSHOT", "/tmp/leaderboard.png")


def _tiny_demo(gui):
    gui.open_demo()
    gui.set_target(TINY)
    return gui.plan(lambda p: p.target_sizes["hidden"] == 96 and p.target_sizes["layers"] == 1)


def _order_key(row: dict) -> tuple:
    """The documented ranking: reached at start first, then fewer steps to the baseline, then
    lower final eval loss; never reached last."""
    steps = row["steps_to_baseline"]
    group = 0 if row["reached_at_start"] else (1 if steps is not None else 2)
    return group, steps or 0, row["final_eval_loss"]


def _table_names(panel) -> list[str]:
    return [panel.table.item(i, 1).text() for i in range(panel.table.rowCount())]


def test_compare_rank_use_and_history(qtbot, window, gui, runner, fresh_history):
    gui.open_demo()
    combo = window.target.value_combo
    combo.setCurrentIndex(combo.findData("mean_field"))  # select cannot grow the FFN
    gui.set_target(GROWN_FFN)
    gui.plan(lambda p: p.target_sizes["ffn"] == 2048 and p.target_sizes["hidden"] == 96)
    panel = window.leaderboard
    panel.set_checked(["select", "mean_field", "distribution"])
    panel.steps_spin.setValue(3)
    assert panel.checked_candidates() == ["distribution", "mean_field", "select"]  # in the list's order
    assert panel.compare_button.isEnabled()
    with qtbot.waitSignal(window.workspace.leaderboard_finished, timeout=300_000):
        qtbot.mouseClick(panel.compare_button, QtCore.Qt.LeftButton)
    assert window.centre_tabs.currentWidget() is panel
    entry = window.workspace.queue.entries[-1]
    assert entry.job.name.startswith("compare") and entry.state == "done"

    # Ranked: the two starts that trained by the rule, the refused one after them, the baseline last.
    board = panel.board
    trained = [r for r in board["rows"] if not r.get("error")]
    failed = [r for r in board["rows"] if r.get("error")]
    assert {r["name"] for r in trained} == {"mean_field", "distribution"}
    assert [r["name"] for r in failed] == ["select"] and "shrink" in failed[0]["error"]
    assert trained == sorted(trained, key=_order_key)
    assert [r["rank"] for r in trained] == [1, 2]
    assert _table_names(panel) == [r["name"] for r in board["rows"]] + ["baseline"]
    assert [panel.table.item(i, 0).text() for i in range(2)] == ["1", "2"]
    error_row = _table_names(panel).index("select")
    assert panel.table.item(error_row, 2).text().startswith("refused:")
    assert panel.table.columnSpan(error_row, 2) == panel.table.columnCount() - 2
    assert panel.table.item(0, 5).text() != "–"  # the zero-step loss of the winner
    # Live eval curves: one per start that trained, and the baseline; steps 0 … 3.
    series = panel.curves.series()
    assert set(series) == {"mean_field", "distribution", "baseline"}
    assert [s for s, _ in series["baseline"]][0] == 0 and [s for s, _ in series["baseline"]][-1] == 3

    # The history holds it (newest first), marked as the one shown.
    qtbot.waitUntil(lambda: len(panel.entries) == 1, timeout=60_000)
    first = panel.history_list.item(0).text()
    assert first.startswith("▶ ") and "leaderboard" in first and f"winner {trained[0]['name']}" in first
    assert "3 steps" in first
    assert panel.shown_path == panel.entries[0]["path"] and os.path.isfile(panel.shown_path)

    window.centre_tabs.setCurrentWidget(panel)
    qtbot.wait(300)  # the curves redraw on their timer
    assert panel.grab().save(SCREENSHOT)
    assert window.grab().save(SCREENSHOT.replace(".png", "-window.png"))

    # "Use this recipe" on distribution: the workspace and the form take that row's recipe.
    row_index = _table_names(panel).index("distribution")
    panel.select_row(row_index)
    assert panel.use_button.isEnabled()
    row = panel.selected_row()
    assert row["name"] == "distribution"
    panel.select_row(_table_names(panel).index("baseline"))
    assert not panel.use_button.isEnabled()  # the baseline has no recipe to use
    panel.select_row(error_row)
    assert not panel.use_button.isEnabled()
    panel.select_row(row_index)
    qtbot.mouseClick(panel.use_button, QtCore.Qt.LeftButton)
    gui.plan(lambda p: any(t.strategy == "distribution" for t in p.tensors))
    recipe = window.workspace.recipe.to_dict()
    for key in ("source", "target", "values", "index", "layers", "seed"):
        assert recipe[key] == row["recipe"][key], key
    assert window.target.value_combo.currentData() == "distribution"
    # The same target asks the same question: the history still lists the run.
    qtbot.waitUntil(lambda: len(panel.entries) == 1 and panel.history_list.count() == 1, timeout=60_000)


def test_history_survives_a_new_window(qtbot, window, gui, runner, fresh_history):
    _tiny_demo(gui)
    panel = window.leaderboard
    panel.set_checked(["select"])
    panel.steps_spin.setValue(3)
    panel.quick_box.setChecked(True)  # quick: rank at step 1 of the 3-step schedule
    panel.quick_spin.setValue(1)
    with qtbot.waitSignal(window.workspace.leaderboard_finished, timeout=300_000):
        panel.request_compare()
    qtbot.waitUntil(lambda: len(panel.entries) == 1, timeout=60_000)
    before = panel.board
    assert before["quick_steps"] == 1 and not panel.table.isColumnHidden(6)
    assert [s for s, _ in panel.curves.series()["select"]] == [0, 1]
    assert "quick: 1 of 3 steps" in panel.history_list.item(0).text()
    window.close()

    from graft_gui_driver import GuiDriver

    from app.main_window import MainWindow

    again = MainWindow(runner=runner)
    qtbot.addWidget(again)
    again.show()
    try:
        second = GuiDriver(qtbot, again)
        _tiny_demo(second)
        shown = again.leaderboard
        qtbot.waitUntil(lambda: len(shown.entries) == 1, timeout=60_000)
        assert shown.board is None and not shown.history_list.item(0).text().startswith("▶")
        shown.show_entry(0)
        assert shown.history_list.item(0).text().startswith("▶ ")
        assert "from the history" in shown.shown_label.text()
        assert _table_names(shown) == [r["name"] for r in before["rows"]] + ["baseline"]
        assert set(shown.curves.series()) == {"select", "baseline"} and not shown.table.isColumnHidden(6)
        assert shown.table.item(0, 6).text() == f"{before['rows'][0]['quick_eval_loss']:.4f}"
        assert shown.curves.series()["select"] == [
            (float(s), float(v)) for s, v, *_ in before["report"]["eval"]["select"]
        ]
        # Another target is another question: its history is empty.
        second.set_target({"hidden": 192, "heads": 6})
        second.plan(lambda p: p.target_sizes["hidden"] == 192)
        qtbot.waitUntil(lambda: not shown.entries, timeout=60_000)
        assert shown.history_list.item(0).text() == "no runs of this target yet"
    finally:
        again.workspace.cancel_all()
        again.close()


def test_a_cancelled_comparison_says_so(qtbot, window, gui, fresh_history):
    _tiny_demo(gui)
    panel = window.leaderboard
    panel.set_checked(["select"])
    panel.steps_spin.setValue(100_000)
    entry = gui.queued(panel.request_compare)
    assert not panel.compare_button.isEnabled()  # one comparison at a time from the tab
    qtbot.waitUntil(lambda: len(panel.curves.series().get("baseline", [])) >= 1, timeout=300_000)
    with qtbot.waitSignal(window.workspace.leaderboard_stopped, timeout=60_000):
        window.workspace.queue.cancel(entry)
    assert entry.state == "cancelled"
    assert "cancelled" in panel.status.text() and panel.compare_button.isEnabled()
    assert panel.board is None
    assert not fresh_history.exists() or not any(fresh_history.rglob("*leaderboard*.json"))
