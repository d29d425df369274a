"""Recipes: saved from the form, opened back into it; shortcuts for the main actions."""

from __future__ import annotations

import json

import pytest

from app.dialogs import open_error_dialogs
from app.qt import QtGui


def test_recipe_round_trip(window, gui, tmp_path):
    gui.open_demo()
    gui.set_target({"layers": 2, "hidden": 192, "heads": 6, "ffn": 384})
    window.target.seed_spin.setValue(7)
    window.target.add_override("attn", "select")
    gui.plan(lambda p: p.seed == 7 and p.target_sizes["hidden"] == 192)
    path = tmp_path / "recipe.json"
    window.save_recipe(str(path))
    saved = json.loads(path.read_text())
    assert saved["target"]["hidden"] == 192 and saved["seed"] == 7 and "attn" in saved["values"]

    window.target.seed_spin.setValue(3)
    gui.plan(lambda p: p.seed == 3)
    window.open_recipe(str(path))
    gui.plan(lambda p: p.seed == 7 and p.target_sizes["hidden"] == 192)
    assert window.target.seed_spin.value() == 7
    assert window.target.size_spins["hidden"].value() == 192


def test_bad_recipe_shows_an_error(window, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"graft_recipe": 1, "nonsense": true}')
    window.open_recipe(str(path))
    boxes = open_error_dialogs(window)
    assert len(boxes) == 1 and "nonsense" in boxes[0].text()


@pytest.mark.parametrize(
    "shortcut", ["Ctrl+M", "Ctrl+T", "Ctrl+E", "Ctrl+S", "Ctrl+R", "Ctrl+O", "Ctrl+Shift+O", "Ctrl+D"]
)
def test_main_actions_have_shortcuts(window, shortcut):
    wanted = QtGui.QKeySequence(shortcut)
    assert any(a.shortcut() == wanted for a in window.findChildren(QtGui.QAction)), shortcut
