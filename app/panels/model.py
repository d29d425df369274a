"""Model: tensors grouped by layer and role; with a plan, target shapes, layer map and dim maps."""

from __future__ import annotations

from app.qt import QtCore, QtGui, QtWidgets

NAME_ROLE = QtCore.Qt.UserRole
COUNT_ROLE = QtCore.Qt.UserRole + 1
SOURCE_ROLE = QtCore.Qt.UserRole + 2


def _shape(shape) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


class ModelPanel(QtWidgets.QWidget):
    """Signals:
    tensor_selected(name): a target tensor was picked (drives the preview).
    nonfinite_allowed(bool): the user allows (or no longer allows) transferring a source
        whose weights hold NaN/Inf values.
    """

    tensor_selected = QtCore.Signal(str)
    nonfinite_allowed = QtCore.Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel("<b>Model</b> — open a source")
        header.addWidget(self.title, 1)
        self.filter_edit = QtWidgets.QLineEdit()
        self.filter_edit.setPlaceholderText("filter tensors…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.filter_edit.setMaximumWidth(220)
        header.addWidget(self.filter_edit)
        layout.addLayout(header)
        self.values_banner = QtWidgets.QFrame()
        self.values_banner.setObjectName("graft-values-banner")
        self.values_banner.setStyleSheet(
            "#graft-values-banner { background: #fdecea; border: 1px solid #d93025; "
            "border-radius: 4px; } QLabel, QCheckBox { color: #5f2120; }"
        )
        banner = QtWidgets.QHBoxLayout(self.values_banner)
        banner.setContentsMargins(8, 4, 8, 4)
        self.values_label = QtWidgets.QLabel()
        self.values_label.setWordWrap(True)
        banner.addWidget(self.values_label, 1)
        self.allow_nonfinite_box = QtWidgets.QCheckBox("Transfer it anyway")
        self.allow_nonfinite_box.setToolTip(
            "Materialise, validate and export refuse a source with NaN/Inf weights "
            "unless this is ticked (the CLI's --allow-nonfinite)"
        )
        self.allow_nonfinite_box.toggled.connect(self.nonfinite_allowed)
        banner.addWidget(self.allow_nonfinite_box)
        self.values_banner.hide()
        layout.addWidget(self.values_banner)
        self._nonfinite: dict[str, int] = {}

        self.tabs = QtWidgets.QTabWidget()
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setHeaderLabels(["Tensor", "Role", "Shape", "dtype", "Params", "Strategy"])
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.tabs.addTab(self.tree, "Tensors")
        self.layers = _table(["Target layer", "← source layer", "kind"])
        self.tabs.addTab(self.layers, "Layer map")
        self.dims = _table(["Dimension", "source", "target", "method", "indices"])
        self.tabs.addTab(self.dims, "Dimension maps")
        layout.addWidget(self.tabs)
        self._selecting = False

    # -- content -----------------------------------------------------------------------------
    def show_source(self, opened) -> None:
        """Source tensors (no plan yet): grouped by layer, with roles when the family is known."""
        self.tree.clear()
        source = opened.source
        roles = {r.name: r for r in opened.roles}
        groups: dict[str, QtWidgets.QTreeWidgetItem] = {}
        for name, info in source.tensors.items():
            role = roles.get(name)
            layer = role.layer if role else None
            group = self._group(groups, layer)
            item = QtWidgets.QTreeWidgetItem(
                [name, role.role if role else "", _shape(info.shape), info.dtype, _count(info.numel), ""]
            )
            item.setData(0, NAME_ROLE, None)
            item.setData(0, COUNT_ROLE, info.numel)
            item.setData(0, SOURCE_ROLE, name)
            group.addChild(item)
        self._finish_groups(groups)
        self.show_values({}, "")
        family = opened.family if opened.family != "unknown" else "unknown architecture"
        self.title.setText(
            f"<b>{opened.source.display_name}</b> — {family}, "
            f"{_count(source.num_parameters)} parameters, {len(source.tensors)} tensors"
        )
        self.layers.setRowCount(0)
        self.dims.setRowCount(0)

    def show_plan(self, result, selected: str | None = None) -> None:
        """Target tensors of the plan with source → target shapes, layer map and dim maps."""
        plan = result.plan
        expanded = {
            self.tree.topLevelItem(i).text(0)
            for i in range(self.tree.topLevelItemCount())
            if self.tree.topLevelItem(i).isExpanded()
        }
        self._selecting = True
        self.tree.clear()
        groups: dict[str, QtWidgets.QTreeWidgetItem] = {}
        current = None
        for t in plan.tensors:
            group = self._group(groups, t.layer, new=t.new_layer)
            shape = (
                _shape(t.shape)
                if list(t.shape) == list(t.source_shape)
                else f"{_shape(t.source_shape)} → {_shape(t.shape)}"
            )
            item = QtWidgets.QTreeWidgetItem([t.name, t.role, shape, t.dtype, _count(t.numel), t.strategy])
            item.setData(0, NAME_ROLE, t.name)
            item.setData(0, COUNT_ROLE, t.numel)
            item.setData(0, SOURCE_ROLE, t.source_name)
            if t.kind != "param":
                item.setForeground(0, self.palette().brush(QtGui.QPalette.Disabled, QtGui.QPalette.Text))
            group.addChild(item)
            if t.name == selected:
                current = item
        self._finish_groups(groups, expanded)
        if current is not None:
            current.parent().setExpanded(True)
            self.tree.setCurrentItem(current)
        self._selecting = False
        self._mark_nonfinite()
        self._apply_filter(self.filter_edit.text())
        self.layers.setRowCount(len(plan.layer_map))
        for row, link in enumerate(plan.layer_map):
            for col, text in enumerate(
                [str(link.target), str(link.source), "new block (copy)" if link.new else "copied"]
            ):
                self.layers.setItem(row, col, QtWidgets.QTableWidgetItem(text))
        shown = [m for m in plan.dims.values() if m.method != "fixed"]
        self.dims.setRowCount(len(shown))
        for row, m in enumerate(shown):
            preview = ", ".join(map(str, m.index[:24])) + (" …" if len(m.index) > 24 else "")
            for col, text in enumerate([m.key, str(m.source_size), str(m.target_size), m.method, preview]):
                self.dims.setItem(row, col, QtWidgets.QTableWidgetItem(text))
        self.dims.resizeColumnsToContents()

    def show_values(self, nonfinite: dict[str, int], summary: str) -> None:
        """The source's NaN/Inf counts by tensor (empty: all finite): a banner and marked rows."""
        self._nonfinite = dict(nonfinite)
        self.values_banner.setVisible(bool(nonfinite))
        if nonfinite:
            self.values_label.setText(
                f"<b>NaN/Inf weights:</b> {summary}. Materialise, validate and export "
                "refuse this source unless you allow it."
            )
        else:
            self.allow_nonfinite_box.setChecked(False)
        self._mark_nonfinite()

    def _mark_nonfinite(self) -> None:
        warn = QtGui.QBrush(QtGui.QColor("#d93025"))
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                item = group.child(j)
                count = self._nonfinite.get(item.data(0, SOURCE_ROLE))
                if count:
                    item.setForeground(3, warn)
                    item.setText(3, f"{item.text(3).split(' ·')[0]} · {count:,} NaN/Inf")
                    item.setToolTip(3, f"{count:,} NaN/Inf value(s) in the source tensor {item.data(0, SOURCE_ROLE)}")

    def _group(self, groups: dict, layer, new: bool = False) -> QtWidgets.QTreeWidgetItem:
        key = "global" if layer is None else f"layer {layer}"
        if key not in groups:
            label = key + (" (new)" if new else "")
            item = QtWidgets.QTreeWidgetItem([label])
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            item.setFlags(QtCore.Qt.ItemIsEnabled)
            groups[key] = item
        return groups[key]

    def _finish_groups(self, groups: dict, expanded: set[str] | None = None) -> None:
        order = sorted(groups, key=lambda k: -1 if k == "global" else int(k.split()[1]))
        for key in order:
            item = groups[key]
            total = sum(int(item.child(i).data(0, COUNT_ROLE) or 0) for i in range(item.childCount()))
            item.setText(4, _count(total))
            item.setText(1, f"{item.childCount()} tensors")
            self.tree.addTopLevelItem(item)
            item.setExpanded(key in (expanded or set()) or (expanded is None and key in ("global", "layer 0")))
        for col in range(self.tree.columnCount()):
            self.tree.resizeColumnToContents(col)
        self.tree.setColumnWidth(0, min(self.tree.columnWidth(0), 340))

    def _on_current_changed(self, current, _previous) -> None:
        if self._selecting or current is None:
            return
        name = current.data(0, NAME_ROLE)
        if name:
            self.tensor_selected.emit(name)

    def select(self, name: str) -> bool:
        """Make ``name`` the current tensor (as a click would)."""
        items = self.tree.findItems(name, QtCore.Qt.MatchExactly | QtCore.Qt.MatchRecursive, 0)
        if not items:
            return False
        self.tree.setCurrentItem(items[0])
        return True

    def _apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            visible = 0
            for j in range(group.childCount()):
                child = group.child(j)
                hide = bool(text) and text not in child.text(0).lower() and text not in child.text(1).lower()
                child.setHidden(hide)
                visible += not hide
            group.setHidden(visible == 0 and bool(text))


def _table(headers: list[str]) -> QtWidgets.QTableWidget:
    table = QtWidgets.QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    table.setAlternatingRowColors(True)
    return table


__all__ = ["ModelPanel"]
