"""Forms generated from frozen parameter dataclasses (field metadata: help, min, max, choices).

The same dataclasses give the CLI its flags and the recipe its schema, so a new strategy
parameter appears here with no GUI code.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from app.qt import QtCore, QtWidgets


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # forward references the form cannot resolve: fall back to the default
        hints = {}
    hint = hints.get(f.name, f.type)
    if isinstance(hint, str):
        hint = type(f.default) if f.default is not dataclasses.MISSING else str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = len(args) < len(typing.get_args(hint))
    if optional and len(args) == 1:
        hint = args[0]
    return hint, optional


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
        self._editors: dict[str, tuple[QtWidgets.QWidget, dataclasses.Field, Any]] = {}
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
        fields = dataclasses.fields(cls)
        if not fields:
            label = QtWidgets.QLabel("no parameters")
            label.setEnabled(False)
            self._layout.addRow(label)
        for f in fields:
            editor = self._make_editor(cls, f)
            label = QtWidgets.QLabel(f.name.replace("_", " "))
            tip = f.metadata.get("help", "")
            label.setToolTip(tip)
            editor.setToolTip(tip)
            self._layout.addRow(label, editor)
        if values:
            self.set_values(values)

    def _make_editor(self, cls: type, f: dataclasses.Field) -> QtWidgets.QWidget:
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else None
        kind, optional = _field_type(cls, f)
        lo, hi = meta.get("min"), meta.get("max")
        if meta.get("choices"):
            editor = QtWidgets.QComboBox()
            for choice in meta["choices"]:
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
            if optional:
                editor.setPlaceholderText("default")
            editor.editingFinished.connect(self._changed)
        self._editors[f.name] = (editor, f, kind)
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
        for name, (editor, f, _kind) in self._editors.items():
            if isinstance(editor, QtWidgets.QComboBox):
                out[name] = editor.currentData()
            elif isinstance(editor, QtWidgets.QCheckBox):
                out[name] = editor.isChecked()
            elif isinstance(editor, QtWidgets.QSpinBox | QtWidgets.QDoubleSpinBox):
                out[name] = editor.value()
            else:
                text = editor.text().strip()
                out[name] = None if text == "" and f.default is None else text
        return out

    def values(self) -> dict:
        """Fields whose value differs from the dataclass default (what a recipe records)."""
        out = {}
        for name, value in self.all_values().items():
            f = self._editors[name][1]
            if f.default is dataclasses.MISSING or value != f.default:
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
