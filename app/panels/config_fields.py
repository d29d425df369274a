"""The target form's "Advanced" table: target config.json fields, one key / JSON value row each.

It feeds the recipe's ``config`` (the CLI's ``--set KEY=JSON``): a size's field (``hidden_size``) plans
like its spin box, any other field is written into the target config (:mod:`core.plan.config_set`
says which are refused). A row whose value is not JSON is marked red, says why in its tooltip and is
left out of the recipe until it is fixed; so is a row without a key, or a key given twice (the
second row is marked).
"""

from __future__ import annotations

import json

from app.qt import QtCore, QtGui, QtWidgets

ERROR_COLOUR = "#d0453a"


class ConfigFieldsTable(QtWidgets.QWidget):
    """A collapsible key / JSON value table.

    Signals:
        fields_edited(dict): the valid rows changed (the dict :meth:`fields` returns).
    """

    fields_edited = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QtWidgets.QHBoxLayout()
        self.toggle = QtWidgets.QToolButton()
        self.toggle.setObjectName("advanced-toggle")
        self.toggle.setText("Advanced: config fields")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(QtCore.Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(QtCore.Qt.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolTip("Set any field of the target's config.json (values are JSON), like --set KEY=JSON")
        self.toggle.toggled.connect(self.set_expanded)
        header.addWidget(self.toggle)
        header.addStretch(1)
        self.add_button = QtWidgets.QToolButton()
        self.add_button.setText("+")
        self.add_button.setToolTip("Add a config field")
        self.add_button.clicked.connect(lambda: self.add_row())
        self.remove_button = QtWidgets.QToolButton()
        self.remove_button.setText("−")
        self.remove_button.setToolTip("Remove the selected field(s)")
        self.remove_button.clicked.connect(self.remove_selected)
        header.addWidget(self.add_button)
        header.addWidget(self.remove_button)
        layout.addLayout(header)

        self.table = QtWidgets.QTableWidget(0, 2)
        self.table.setObjectName("config-fields")
        self.table.setHorizontalHeaderLabels(["Field", "Value (JSON)"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setSizeAdjustPolicy(QtWidgets.QAbstractScrollArea.AdjustToContents)  # as tall as its rows
        self.table.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.table)
        self.note = QtWidgets.QLabel(
            "A size's field (hidden_size …) sets that size, like its box above (give one or the other); "
            "other fields go into config.json as they are. Red rows are not JSON and are not applied."
        )
        self.note.setWordWrap(True)
        self.note.setEnabled(False)
        layout.addWidget(self.note)
        self._applied: dict = {}
        self._quiet = False
        self.set_expanded(False)

    # -- state -----------------------------------------------------------------------------
    def set_expanded(self, expanded: bool) -> None:
        """Show or hide the table (the header stays)."""
        self.toggle.blockSignals(True)
        self.toggle.setChecked(expanded)
        self.toggle.blockSignals(False)
        self.toggle.setArrowType(QtCore.Qt.DownArrow if expanded else QtCore.Qt.RightArrow)
        for widget in (self.table, self.note, self.add_button, self.remove_button):
            widget.setVisible(expanded)

    def fields(self) -> dict:
        """``{key: value}`` of the valid rows (a row without a key, with a value that is not JSON, or a
        repeated key is left out)."""
        out: dict = {}
        for row in range(self.table.rowCount()):
            key, value, error = self._row(row)
            if key and error is None and key not in out:
                out[key] = value
        return out

    def set_fields(self, values: dict) -> None:
        """Show ``values`` (a recipe's ``config``), replacing every row; opens the table when there are any."""
        self._quiet = True
        try:
            self.table.setRowCount(0)
            for key, value in values.items():
                self.add_row(key, json.dumps(value), emit=False)
        finally:
            self._quiet = False
        self._applied = self.fields()
        self.toggle.setText(self._title())
        if values:
            self.set_expanded(True)

    def add_row(self, key: str = "", text: str = "", *, emit: bool = True) -> int:
        """Append a row (``text`` is the value as JSON); returns its index."""
        quiet, self._quiet = self._quiet, True
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(key))
        self.table.setItem(row, 1, QtWidgets.QTableWidgetItem(text))
        self._quiet = quiet
        self._mark()
        if not key:
            self.set_expanded(True)
            self.table.setCurrentCell(row, 0)
        if emit:
            self._changed()
        return row

    def remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True)
        if not rows and self.table.rowCount():
            rows = [self.table.rowCount() - 1]
        for row in rows:
            self.table.removeRow(row)
        self._mark()
        self._changed()

    def row_error(self, row: int) -> str | None:
        """Why ``row`` is not applied, or None."""
        return self._row(row)[2]

    # -- internals -------------------------------------------------------------------------
    def _row(self, row: int) -> tuple[str, object, str | None]:
        key_item, value_item = self.table.item(row, 0), self.table.item(row, 1)
        key = key_item.text().strip() if key_item else ""
        text = value_item.text().strip() if value_item else ""
        if not key:
            return key, None, "give the field's name" if text else "empty row"
        if any(self._key(r) == key for r in range(row)):
            return key, None, f"{key} is already set in a row above; this row is ignored"
        try:
            return key, json.loads(text), None
        except ValueError:
            return (
                key,
                None,
                f'{text or "(empty)"} is not JSON; quote a string ("{text}"), or write a number, true, null, [1, 2]',
            )

    def _key(self, row: int) -> str:
        item = self.table.item(row, 0)
        return item.text().strip() if item else ""

    def _mark(self) -> None:
        quiet, self._quiet = self._quiet, True
        try:
            for row in range(self.table.rowCount()):
                error = self.row_error(row)
                bad = error is not None and error != "empty row"
                for column in (0, 1):
                    item = self.table.item(row, column)
                    if item is None:
                        continue
                    item.setBackground(QtGui.QColor(ERROR_COLOUR).lighter(170) if bad else QtGui.QBrush())
                    item.setToolTip(error if bad else "")
        finally:
            self._quiet = quiet

    def _on_item_changed(self, _item) -> None:
        if self._quiet:
            return
        self._mark()
        self._changed()

    def _changed(self) -> None:
        current = self.fields()
        self.toggle.setText(self._title())
        if current != self._applied:
            self._applied = current
            self.fields_edited.emit(current)

    def _title(self) -> str:
        n = len(self.fields())
        return f"Advanced: config fields ({n})" if n else "Advanced: config fields"


if __name__ == "__main__":  # a quick look: python -m app.panels.config_fields
    app = QtWidgets.QApplication([])
    table = ConfigFieldsTable()
    table.set_fields({"rope_theta": 20000.0, "layer_norm_eps": 1e-6})
    table.add_row("hidden_act", "gelu")
    table.show()
    app.exec()
