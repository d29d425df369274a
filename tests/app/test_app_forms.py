"""Strategy forms come from the Params dataclasses: every strategy gets one, values round-trip."""

from __future__ import annotations

import dataclasses

import pytest

from app.panels.forms import DataclassForm
from app.qt import QtWidgets
from core.strategies import get, make_params, names
from core.training import ValidationConfig


@pytest.mark.parametrize("name", names())
def test_every_strategy_gets_a_form_whose_values_validate(qtbot, name):
    form = DataclassForm(get(name).Params)
    qtbot.addWidget(form)
    fields = dataclasses.fields(get(name).Params)
    assert form.values() == {}  # defaults are not recorded
    make_params(name, form.all_values())  # what the form shows is acceptable to core
    for f in fields:
        editor = form.editor(f.name)
        assert editor.toolTip() == f.metadata.get("help", "")
        if f.metadata.get("choices"):
            assert isinstance(editor, QtWidgets.QComboBox) and editor.count() == len(f.metadata["choices"])


def test_bounds_and_changes(qtbot):
    form = DataclassForm(ValidationConfig)
    qtbot.addWidget(form)
    steps = form.editor("steps")
    assert isinstance(steps, QtWidgets.QSpinBox) and steps.minimum() == 1
    with qtbot.waitSignal(form.values_changed, timeout=1000):
        steps.setValue(7)
    assert form.values() == {"steps": 7}
    form.set_values({"schedule": "linear", "bf16": False})
    assert form.values() == {"steps": 7, "schedule": "linear", "bf16": False}
    ValidationConfig(**form.all_values())
