"""A valid plan that is not what the user may assume (growth that cannot stay exact) says so inline."""

from __future__ import annotations


def test_inexact_growth_is_noted_under_the_sizes(qtbot, window, gui):
    gui.open_demo()
    window.target.value_combo.setCurrentIndex(window.target.value_combo.findData("growth"))
    gui.set_target({"hidden": 512, "heads": 16})  # 384 → 512 is not a k-fold clone
    plan = gui.plan(lambda p: p.target_sizes["hidden"] == 512 and p.values["default"]["method"] == "growth")
    assert plan.warnings
    qtbot.waitUntil(lambda: window.target.message.isVisible(), timeout=30_000)
    assert window.target.message.text().startswith("Note: ") and "hidden" in window.target.message.text()
    gui.set_target({"hidden": 768, "heads": 24})  # an exact 2-fold clone: nothing to say
    gui.plan(lambda p: p.target_sizes["hidden"] == 768 and not p.warnings)
    qtbot.waitUntil(lambda: not window.target.message.isVisible(), timeout=30_000)
