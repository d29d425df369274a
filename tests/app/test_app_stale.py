"""Nothing stale: every result names its recipe, and greys out with "Out of date — re-run" once the
form's recipe is another one (issue 16, item 1)."""

from __future__ import annotations

from app.panels.stale import ResultStamp, recipe_key, recipe_summary
from app.qt import QtWidgets
from core.recipe import Recipe

TINY = {"layers": 1, "hidden": 96, "heads": 3, "ffn": 192}


def test_a_stamp_follows_the_forms_recipe_by_content(qtbot):
    result, plot = QtWidgets.QLabel("8.0x faster"), QtWidgets.QWidget()
    stamp = ResultStamp("validation", [result, plot])
    for widget in (stamp, result, plot):
        qtbot.addWidget(widget)
    made = Recipe(source="demo", target={"layers": 4}, seed=1)
    assert not stamp.isVisibleTo(None) or stamp.isHidden()  # nothing shown: no stamp
    stamp.stamp(made)
    assert not stamp.stale and recipe_key(made) in stamp.text() and "layers 4" in stamp.text()
    assert result.isEnabled() and plot.graphicsEffect() is None

    stamp.recipe_changed(Recipe(source="demo", target={"layers": 2}, seed=1))
    assert stamp.stale and "Out of date — re-run" in stamp.text() and recipe_key(made) in stamp.text()
    assert not result.isEnabled() and plot.graphicsEffect() is not None  # greyed out

    stamp.recipe_changed(Recipe(source="demo", target={"layers": 4}, seed=1))  # back to the same settings
    assert not stamp.stale and result.isEnabled() and plot.graphicsEffect() is None
    stamp.recipe_changed(None)  # the form describes no valid recipe
    assert stamp.stale


def test_recipe_keys_and_summaries():
    a = Recipe(source="/models/all-MiniLM-L6-v2", target={"layers": 4, "hidden": 256}, seed=0)
    assert recipe_key(a) == recipe_key(Recipe.from_dict(a.to_dict()))
    assert recipe_key(a) != recipe_key(Recipe(source=a.source, target=a.target, seed=1))
    with_provenance = Recipe.from_dict({**a.to_dict(), "provenance": {"shards": {"x": "abc"}}})
    assert recipe_key(with_provenance) == recipe_key(a)  # an export's provenance decides nothing
    assert recipe_summary(a) == "all-MiniLM-L6-v2 → layers 4, hidden 256 · select · seed 0"
    overrides = Recipe(values={"default": {"method": "mean_field"}, "attn": {"method": "mimetic"}})
    assert "mean_field + 1 override ·" in recipe_summary(overrides)


def test_results_go_out_of_date_when_the_form_changes_and_come_back_with_it(qtbot, window, gui):
    gui.open_demo()
    gui.set_target(TINY)
    gui.plan(lambda p: p.target_sizes["hidden"] == 96 and p.target_sizes["layers"] == 1)
    gui.preview()
    assert window.preview.stamp.isVisibleTo(window) and not window.preview.stamp.stale

    with qtbot.waitSignal(window.workspace.target_materialised, timeout=120_000):
        window.materialise_action.trigger()
    window.jobs.steps_spin.setValue(3)
    with qtbot.waitSignal(window.workspace.validation_finished, timeout=180_000):
        window.validate_action.trigger()
    overview, validation = window.overview.stamp, window.validation.stamp
    assert not overview.stale and not validation.stale
    key = validation.key
    assert key in validation.text() and key == overview.key

    # Another depth: every result says it is out of date, and the curves are greyed out.
    window.target.size_spins["layers"].setValue(2)
    qtbot.waitUntil(lambda: validation.stale and overview.stale, timeout=10_000)
    assert "Out of date — re-run" in validation.text() and key in validation.text()
    assert window.validation.curves.graphicsEffect() is not None
    # The preview catches up by itself: a new preview of the new plan is current again.
    gui.plan(lambda p: p.target_sizes["layers"] == 2)
    qtbot.waitUntil(lambda: not window.preview.stamp.stale, timeout=120_000)

    # Back to the recipe they were made for: current again.
    window.target.size_spins["layers"].setValue(1)
    qtbot.waitUntil(lambda: not validation.stale and not overview.stale, timeout=10_000)
    assert window.validation.curves.graphicsEffect() is None
