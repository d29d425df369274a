"""The target form's "Family" choice: a target of another family than the source's (core.plan.cross)."""

from __future__ import annotations

from app.panels.target import SAME_FAMILY, TargetPanel
from core.recipe import Recipe


def test_the_family_choice_defaults_to_the_source_and_round_trips_a_recipe(qtbot):
    panel = TargetPanel()
    qtbot.addWidget(panel)
    assert panel.family_combo.currentText() == SAME_FAMILY
    assert panel.recipe().target_family is None and "target_family" not in panel.recipe().to_dict()
    assert panel.family_combo.findData("llama") > 0 and panel.family_combo.findData("mlp") < 0

    panel.set_recipe(Recipe(source="demo", target={"hidden": 256}, target_family="llama"))
    assert panel.family_combo.currentData() == "llama"
    assert panel.recipe().to_dict()["target_family"] == "llama"

    panel.set_recipe(Recipe(source="demo"))
    assert panel.recipe().target_family is None


def test_choosing_llama_plans_a_llama_target_from_the_demo(qtbot, window, gui, tmp_path):
    gui.open_demo()
    target = window.target
    target.size_spins["hidden"].setValue(256)
    target.size_spins["heads"].setValue(8)
    target.family_combo.setCurrentIndex(target.family_combo.findData("llama"))
    plan = gui.plan(lambda p: p.family == "llama")
    assert plan.source_family == "bert" and plan.target_config["model_type"] == "llama"
    assert window.workspace.recipe.target_family == "llama"
    qtbot.waitUntil(lambda: target.message.isVisible() and "bert → llama" in target.message.text(), timeout=60_000)
    target.grab().save(str(tmp_path / "target-family.png"))
