"""Forms generated from frozen parameter dataclasses (``core.params``: help, min, max, choices).

Each editor is chosen from :func:`core.params.describe` — the same description that gives the
CLI its flags, the recipe its checks and ``graft strategies`` its rows — so a new strategy
parameter appears here with no GUI code.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from app.qt import QtCore, QtWidgets
from core.params import ParamInfo, describe


class DataclassForm(QtWidgets.QWidget):
    """One labelled editor per field; ``values()`` returns only fields that differ from defaults.

    Signals:
        values_changed(dict): any editor changed (all current values).
    """

    values_changed = QtCore.Signal(dict)

    def __init__(self, cls: type | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QtWidgets.QFormLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setFieldGrowthPolicy(QtWidgets.QFormLayout.AllNonFixedFieldsGrow)
        self._editors: dict[str, tuple[QtWidgets.QWidget, ParamInfo]] = {}
        self.cls: type | None = None
        self.set_dataclass(cls)

    def set_dataclass(self, cls: type | None, values: dict | None = None) -> None:
        """Rebuild the form for ``cls`` (None: empty), pre-filled with ``values``."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self._editors.clear()
        self.cls = cls
        if cls is None:
            return
        infos = describe(cls)
        if not infos:
            label = QtWidgets.QLabel("no parameters")
            label.setEnabled(False)
            self._layout.addRow(label)
        for info in infos:
            editor = self._make_editor(info)
            label = QtWidgets.QLabel(info.name.replace("_", " "))
            label.setToolTip(info.help)
            editor.setToolTip(info.help)
            self._layout.addRow(label, editor)
        if values:
            self.set_values(values)

    def _make_editor(self, info: ParamInfo) -> QtWidgets.QWidget:
        default = info.default if info.default is not dataclasses.MISSING else None
        kind, lo, hi = info.type, info.min, info.max
        if info.choices:
            editor = QtWidgets.QComboBox()
            for choice in info.choices:
                editor.addItem(str(choice), choice)
            editor.currentIndexChanged.connect(self._changed)
        elif kind is bool:
            editor = QtWidgets.QCheckBox()
            editor.toggled.connect(self._changed)
        elif kind is int:
            editor = QtWidgets.QSpinBox()
            editor.setRange(int(lo) if lo is not None else -(2**31) + 1, int(hi) if hi is not None else 2**31 - 1)
            editor.valueChanged.connect(self._changed)
        elif kind is float:
            editor = QtWidgets.QDoubleSpinBox()
            editor.setDecimals(_decimals(default))
            editor.setRange(float(lo) if lo is not None else -1e9, float(hi) if hi is not None else 1e9)
            editor.setSingleStep(_step(default, lo, hi))
            editor.valueChanged.connect(self._changed)
        else:
            editor = QtWidgets.QLineEdit()
            if info.optional:
                editor.setPlaceholderText("default")
            editor.editingFinished.connect(self._changed)
        self._editors[info.name] = (editor, info)
        if default is not None:
            self._set(editor, default)
        return editor

    # -- values ------------------------------------------------------------------------------
    def _set(self, editor: QtWidgets.QWidget, value: Any) -> None:
        editor.blockSignals(True)
        try:
            if isinstance(editor, QtWidgets.QComboBox):
                editor.setCurrentIndex(max(0, editor.findData(value)))
            elif isinstance(editor, QtWidgets.QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, QtWidgets.QSpinBox | QtWidgets.QDoubleSpinBox):
                editor.setValue(value)
            else:
                editor.setText("" if value is None else str(value))
        finally:
            editor.blockSignals(False)

    def set_values(self, values: dict) -> None:
        for name, value in values.items():
            if name in self._editors:
                self._set(self._editors[name][0], value)

    def all_values(self) -> dict:
        out = {}
        for name, (editor, info) in self._editors.items():
            if isinstance(editor, QtWidgets.QComboBox):
                out[name] = editor.currentData()
            elif isinstance(editor, QtWidgets.QCheckBox):
                out[name] = editor.isChecked()
            elif isinstance(editor, QtWidgets.QSpinBox | QtWidgets.QDoubleSpinBox):
                out[name] = editor.value()
            else:
                text = editor.text().strip()
                out[name] = None if text == "" and info.default is None else text
        return out

    def values(self) -> dict:
        """Fields whose value differs from the dataclass default (what a recipe records)."""
        out = {}
        for name, value in self.all_values().items():
            default = self._editors[name][1].default
            if default is dataclasses.MISSING or value != default:
                out[name] = value
        return out

    def editor(self, name: str) -> QtWidgets.QWidget:
        return self._editors[name][0]

    def _changed(self, *_: Any) -> None:
        self.values_changed.emit(self.all_values())


def _decimals(default: Any) -> int:
    if not isinstance(default, float) or default == 0:
        return 3
    return max(2, min(8, 2 - int(math.floor(math.log10(abs(default))))))


def _step(default: Any, lo: Any, hi: Any) -> float:
    if lo is not None and hi is not None and hi > lo:
        return (hi - lo) / 100
    if isinstance(default, float) and default:
        return abs(default) / 10
    return 0.1
