"""The Runs tab: runs kept across a restart, listed for the whole source, two side by side.

One window materialises and validates two recipes of a tiny demo target (select, mean_field;
3 steps each), then closes; a new window on the same history (the autouse ``fresh_history``)
opens the demo at its full size — another recipe — and still lists all four runs; ticking two
validations overlays their curves, two materialised targets sets their layer numbers side by
side, and "Use recipe A" brings A's recipe back into the form.
"""

from __future__ import annotations

import json
import os

from graft_gui_driver import GuiDriver

from app.qt import QtCore

TINY = {"layers": 1, "hidden": 96, "heads": 3, "ffn": 192}
SCREENSHOT = os.environ.get("GRAFT_RUNS_SCREENSHOT", "/tmp/runs.png")


def _strategy(window, gui, name: str) -> None:
    combo = window.target.value_combo
    combo.setCurrentIndex(combo.findData(name))
    gui.plan(
        lambda p: p.target_sizes["hidden"] == 96 and window.workspace.plan.recipe.values["default"]["method"] == name
    )


def _materialise_and_validate(qtbot, window) -> None:
    with qtbot.waitSignal(window.workspace.target_materialised, timeout=120_000):
        window.materialise_action.trigger()
    window.jobs.steps_spin.setValue(3)
    with qtbot.waitSignal(window.workspace.validation_finished, timeout=180_000):
        window.validate_action.trigger()


def _index(panel, kind: str, method: str) -> int:
    return next(
        i
        for i, e in enumerate(panel.entries)
        if e["kind"] == kind and e["payload"]["recipe"]["values"]["default"]["method"] == method
    )


def test_runs_survive_a_restart_and_compare_side_by_side(qtbot, runner, fresh_history):
    from app.main_window import MainWindow

    first = MainWindow(runner=runner)
    qtbot.addWidget(first)
    first.resize(1440, 900)
    first.show()
    gui = GuiDriver(qtbot, first)
    gui.open_demo()
    gui.set_target(TINY)
    gui.plan(lambda p: p.target_sizes["hidden"] == 96 and p.target_sizes["layers"] == 1)
    _strategy(first, gui, "select")
    _materialise_and_validate(qtbot, first)
    _strategy(first, gui, "mean_field")
    _materialise_and_validate(qtbot, first)
    qtbot.waitUntil(lambda: len(first.runs.entries) == 4, timeout=30_000)
    kinds = sorted(e["kind"] for e in first.runs.entries)
    assert kinds == ["materialised", "materialised", "validation", "validation"]
    # The materialised record: the numbers the overview shows, one row per target tensor, no tensors.
    kept = json.loads(open(first.runs.entries[_index(first.runs, "materialised", "select")]["path"]).read())
    payload = kept["payload"]
    assert payload["num_parameters"] == first.workspace.materialised.num_parameters > 0
    assert len(payload["tensors"]) == len(first.workspace.plan.plan.tensors)
    assert set(payload["tensors"][0]) == {"name", "role", "layer", "std", "source_std", "mean", "excess_kurtosis"}
    first.workspace.cancel_all()
    first.close()

    # A new window (the app restarted): the demo at its own size is another recipe, yet every run
    # of the source is listed.
    window = MainWindow(runner=runner)
    qtbot.addWidget(window)
    window.resize(1440, 900)
    window.show()
    gui = GuiDriver(qtbot, window)
    gui.open_demo()
    panel = window.runs
    qtbot.waitUntil(lambda: len(panel.entries) == 4, timeout=30_000)
    assert panel.run_list.count() == 4
    assert [e["created"] for e in panel.entries] == sorted((e["created"] for e in panel.entries), reverse=True)
    text = panel.run_list.item(_index(panel, "validation", "select")).text()
    assert "· validation\ndemo → layers 1, hidden 96" in text and text.endswith(" · select · seed 0")

    # Two validations: both curve sets in one plot, labelled, and both verdicts.
    window.centre_tabs.setCurrentWidget(panel)
    panel.tick(_index(panel, "validation", "select"))
    assert panel.use_buttons["A"].isEnabled() and not panel.use_buttons["B"].isEnabled()
    panel.tick(_index(panel, "validation", "mean_field"))
    a, b = panel.pair()
    assert a["payload"]["recipe"]["values"]["default"]["method"] == "select"
    assert b["payload"]["recipe"]["values"]["default"]["method"] == "mean_field"
    assert panel.pages.currentWidget() is panel.curves
    series = panel.curves.series()
    assert set(series) == {"A · transferred", "A · baseline", "B · transferred", "B · baseline"}
    assert [s for s, _ in series["B · transferred"]][-1] == 3
    diff = {
        panel.diff_table.item(i, 0).text(): (panel.diff_table.item(i, 1).text(), panel.diff_table.item(i, 2).text())
        for i in range(panel.diff_table.rowCount())
    }
    assert diff["values.default.method"] == ("select", "mean_field")
    for side in ("A", "B"):
        card = panel.cards[side].text()
        assert f"<b>Run {side}</b> · validation" in card and "transferred" in card and "baseline" in card
    assert panel.run_list.item(_index(panel, "validation", "select")).text().startswith("A  ")
    qtbot.wait(300)
    assert panel.grab().save(SCREENSHOT)
    assert window.grab().save(SCREENSHOT.replace(".png", "-window.png"))

    # A third tick replaces the older of the two: two materialised targets, layer by layer.
    panel.tick(_index(panel, "validation", "select"), False)
    panel.tick(_index(panel, "validation", "mean_field"), False)
    assert panel.pair() == (None, None) and panel.pages.currentWidget() is panel.placeholder
    panel.tick(_index(panel, "materialised", "select"))
    panel.tick(_index(panel, "materialised", "mean_field"))
    panel.tick(_index(panel, "validation", "select"))  # drops A
    assert panel.pair()[0]["kind"] == "materialised" and panel.pair()[1]["kind"] == "validation"
    panel.tick(_index(panel, "validation", "select"), False)
    panel.tick(_index(panel, "materialised", "select"))
    a, b = panel.pair()
    assert (a["kind"], b["kind"]) == ("materialised", "materialised")
    assert b["payload"]["recipe"]["values"]["default"]["method"] == "select"
    assert panel.pages.currentWidget() is panel.layer_table
    table = panel.layer_table
    assert [table.item(i, 0).text() for i in range(table.rowCount())] == ["global", "layer 0"]
    headers = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert headers[:3] == ["Layer", "std ratio\nA", "std ratio\nB"]
    assert table.item(1, 3).text() not in ("", "–")  # layer 0's std under A
    assert all(f"M parameters in {len(payload['tensors'])} tensors" in panel.cards[s].text() for s in ("A", "B"))
    qtbot.wait(200)
    assert panel.grab().save(SCREENSHOT.replace(".png", "-layers.png"))

    # Use recipe A (mean_field's materialised run): the form takes it, the plan follows.
    qtbot.mouseClick(panel.use_buttons["A"], QtCore.Qt.LeftButton)
    gui.plan(
        lambda p: (
            p.target_sizes["hidden"] == 96 and window.workspace.plan.recipe.values["default"]["method"] == "mean_field"
        )
    )
    window.workspace.cancel_all()
    window.close()
