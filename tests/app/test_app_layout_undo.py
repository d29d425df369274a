"""Layout and input: the window fits a 1366 × 768 laptop, seed/device/dtype stay in view, strategy
pitfalls show next to their setting, strategies have human names, form changes undo and redo, and
finished job rows can be cleared (issue 16, items 6–8)."""

from __future__ import annotations

from app.qt import QtCore
from app.words import form_notes, strategy_label
from core.recipe import Recipe

TINY = {"layers": 1, "hidden": 96, "heads": 3, "ffn": 192}


def test_the_window_fits_a_1366_by_768_screen_and_resets_its_layout(qtbot, window):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 768 - 40, hint  # 40 px for a title bar and a panel
    window.splitter.setSizes([10, 10, 1000])
    window.reset_layout()
    sizes = window.splitter.sizes()
    assert sizes[1] > sizes[0] and sizes[1] > sizes[2]
    size = window.default_size()
    screen = window.screen().availableGeometry()
    assert size.width() <= min(1440, screen.width()) and size.height() <= min(900, screen.height())


def test_seed_device_and_dtype_stay_in_view_below_the_scrolling_forms(qtbot, window, gui):
    gui.open_demo()
    target = window.target
    target.add_override("attn", "mimetic")
    target.add_override("mlp", "distribution")
    window.resize(1366, 700)
    qtbot.waitUntil(lambda: target.scroll.verticalScrollBar().maximum() > 0, timeout=5000)  # the forms scroll…
    for widget in (target.seed_spin, target.device_combo, target.dtype_combo):
        assert not target.scroll.isAncestorOf(widget)  # …these do not
        assert widget.visibleRegion().boundingRect().height() >= widget.height() - 1


def test_the_scroll_position_is_kept_when_the_strategy_changes(qtbot, window, gui):
    gui.open_demo()
    target = window.target
    target.add_override("attn", "mimetic")
    window.resize(1366, 700)
    bar = target.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 40, timeout=5000)
    bar.setValue(40)
    target.value_combo.setCurrentIndex(target.value_combo.findData("distribution"))
    qtbot.wait(50)
    assert bar.value() == 40


def test_strategies_show_their_human_names_with_the_identifier_as_tooltip(qtbot, window):
    combo = window.target.value_combo
    i = combo.findData("mean_field")
    assert combo.itemText(i) == strategy_label("mean_field") == "Mean-field sampling"
    assert combo.itemData(i, QtCore.Qt.ToolTipRole).startswith("mean_field: ")
    row = window.target.add_override("attn", "mimetic", emit=False)
    assert row.method_combo.currentText() == "Mimetic attention" and row.method_combo.currentData() == "mimetic"


def test_pitfalls_show_next_to_the_setting_that_causes_them(qtbot, window, gui):
    source = {"layers": 6, "hidden": 384, "ffn": 1536}
    growth = {"default": {"method": "growth"}}
    assert "only shrinks" in form_notes(Recipe(target={"layers": 2}, values=growth), source)["values"]
    assert "not compute" in form_notes(Recipe(target={"layers": 2, "ffn": 3072}, values=growth), source)["values"]
    assert form_notes(Recipe(target={"ffn": 3072}, values=growth), source) == {}
    iid = {"method": "iid", "params": {"replacement": "always"}}
    assert "lose rank" in form_notes(Recipe(target={"hidden": 192}, index=iid), source)["index"]
    assert form_notes(Recipe(target={"hidden": 192}, index={"method": "iid", "params": {}}), source) == {}

    gui.open_demo()
    target = window.target
    assert target.family_note.isVisibleTo(target) and "post-LN" in target.family_note.text()  # the spec's note
    gui.set_target({"layers": 2})
    target.value_combo.setCurrentIndex(target.value_combo.findData("growth"))
    qtbot.waitUntil(lambda: target.value_note.isVisibleTo(target), timeout=5000)
    assert "only shrinks" in target.value_note.text()
    target.value_combo.setCurrentIndex(target.value_combo.findData("select"))
    qtbot.waitUntil(lambda: not target.value_note.isVisibleTo(target), timeout=5000)


def test_form_changes_undo_and_redo(qtbot, window, gui):
    gui.open_demo()
    assert not window.undo_action.isEnabled()
    spins = window.target.size_spins
    spins["layers"].setValue(4)
    gui.plan(lambda p: p.target_sizes["layers"] == 4)
    spins["layers"].setValue(2)
    gui.plan(lambda p: p.target_sizes["layers"] == 2)
    assert window.undo_action.isEnabled() and not window.redo_action.isEnabled()
    window.undo_action.trigger()
    assert spins["layers"].value() == 4
    gui.plan(lambda p: p.target_sizes["layers"] == 4)
    window.undo_action.trigger()
    assert spins["layers"].value() == 6  # the source's: back to the identity recipe
    assert not window.undo_action.isEnabled() and window.redo_action.isEnabled()
    window.redo_action.trigger()
    assert spins["layers"].value() == 4
    spins["layers"].setValue(3)  # a new edit drops what redo had
    qtbot.waitUntil(lambda: not window.redo_action.isEnabled(), timeout=5000)


def test_finished_job_rows_can_be_cleared_and_long_messages_are_elided(qtbot, window, gui):
    gui.open_demo()
    gui.set_target(TINY)
    gui.plan(lambda p: p.target_sizes["hidden"] == 96)
    with qtbot.waitSignal(window.workspace.target_materialised, timeout=120_000):
        window.materialise_action.trigger()
    jobs = window.jobs
    assert jobs.list.count() == 1
    row = jobs.list.itemWidget(jobs.list.item(0))
    row.entry.message = "encoder.layer.1.output.dense.weight" * 3
    from app.jobs import RUNNING

    state, row.entry.state = row.entry.state, RUNNING
    row.refresh()
    text = row.bar.format()
    assert "…" in text and row.bar.fontMetrics().horizontalAdvance(text) <= row.bar.width()
    assert row.bar.toolTip() == row.entry.message
    row.entry.state = state
    jobs.clear_button.click()  # the button a user presses
    assert jobs.list.count() == 0 and not jobs.rows


def test_busy_and_empty_states_say_what_is_happening(qtbot, window, gui):
    seen = []  # what the preview says while the source opens (read right after the window's own slot)
    window.workspace.source_opening.connect(lambda _: seen.append(window.preview.welcome.text()))
    window.open_source("demo")
    gui.plan()
    assert "Opening demo…" in seen[0]  # not "Open the demo model…" while it opens
    gui.preview()
    headers = []
    window.workspace.preview_busy.connect(lambda busy: busy and headers.append(window.preview.title.text()))
    target = window.target
    target.value_combo.setCurrentIndex(target.value_combo.findData("distribution"))
    gui.plan(lambda p: p.values["default"]["method"] == "distribution")
    gui.preview()
    assert headers and headers[-1].startswith("<i>Computing</i>") and "Distribution fit" in headers[-1]
    assert not window.preview.title.text().startswith("<i>Computing")  # the new preview's header replaced it
