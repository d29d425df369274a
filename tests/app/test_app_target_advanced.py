"""The target form's "Advanced" table: config fields (key / JSON value) that feed the recipe's ``config``."""

from __future__ import annotations

from app.panels.config_fields import ConfigFieldsTable
from app.panels.target import TargetPanel
from app.qt import QtCore
from core.recipe import Recipe


def _edit(table: ConfigFieldsTable, row: int, column: int, text: str) -> None:
    table.table.item(row, column).setText(text)


def test_valid_rows_feed_the_recipe_and_a_row_that_is_not_json_is_marked_and_left_out(qtbot):
    table = ConfigFieldsTable()
    qtbot.addWidget(table)
    assert table.table.isHidden() and table.fields() == {}  # collapsed until asked for
    seen = []
    table.fields_edited.connect(seen.append)

    row = table.add_row()
    assert not table.table.isHidden() and table.toggle.isChecked()  # adding a row opens it
    _edit(table, row, 0, "rope_theta")
    _edit(table, row, 1, "20000.0")
    bad = table.add_row("hidden_act", "gelu")
    assert table.fields() == {"rope_theta": 20000.0}
    assert "not JSON" in table.row_error(bad) and "not JSON" in table.table.item(bad, 1).toolTip()
    assert table.table.item(bad, 1).background().style() != QtCore.Qt.NoBrush  # marked
    assert table.table.item(row, 1).background().style() == QtCore.Qt.NoBrush

    _edit(table, bad, 1, '"gelu"')  # fixed: applied, no longer marked
    assert table.fields() == {"rope_theta": 20000.0, "hidden_act": "gelu"}
    assert table.row_error(bad) is None and table.table.item(bad, 1).toolTip() == ""
    assert seen[-1] == {"rope_theta": 20000.0, "hidden_act": "gelu"}
    assert "(2)" in table.toggle.text()

    twice = table.add_row("rope_theta", "1.0")  # a repeated key: the first row wins, the second is marked
    assert table.fields()["rope_theta"] == 20000.0 and "already set" in table.row_error(twice)

    table.table.selectRow(0)
    table.remove_selected()
    assert table.fields() == {"hidden_act": "gelu", "rope_theta": 1.0}  # the repeat is the only one now


def test_the_target_panel_round_trips_a_recipes_config_and_a_new_source_clears_it(qtbot):
    panel = TargetPanel()
    qtbot.addWidget(panel)
    config = {"layer_norm_eps": 1e-5, "hidden_dropout_prob": 0.0, "id2label": {"0": "no", "1": "yes"}}
    recipe = Recipe(source="demo", config=config, seed=3)
    panel.set_recipe(recipe)
    assert panel.config_fields.table.rowCount() == 3 and not panel.config_fields.table.isHidden()
    assert panel.recipe().config == config
    assert panel.recipe().to_dict()["config"] == config

    panel.set_recipe(Recipe(source="demo"))  # a recipe without config fields: none in the form or the recipe
    assert panel.config_fields.table.rowCount() == 0
    assert "config" not in panel.recipe().to_dict()


def test_a_config_field_reaches_the_plan_and_a_refused_one_shows_why(qtbot, window, gui):
    gui.open_demo()
    target = window.target
    row = target.config_fields.add_row()
    target.config_fields.table.item(row, 0).setText("layer_norm_eps")
    target.config_fields.table.item(row, 1).setText("1e-5")
    plan = gui.plan(lambda p: p.target_config.get("layer_norm_eps") == 1e-5)
    assert window.workspace.recipe.config == {"layer_norm_eps": 1e-5}
    assert plan.target_sizes["hidden"] == plan.source_sizes["hidden"]

    # hidden_size is the Hidden box's field: it plans exactly like the box.
    target.config_fields.add_row("hidden_size", "192")
    plan = gui.plan(lambda p: p.target_sizes["hidden"] == 192)
    assert plan.target_config["hidden_size"] == 192

    target.config_fields.add_row("vocab_size", "5")  # the tensors carry the vocabulary: refused, said why
    qtbot.waitUntil(lambda: target.message.isVisible() and "vocab_size" in target.message.text(), timeout=60_000)
    assert "vocab" in target.message.text()
