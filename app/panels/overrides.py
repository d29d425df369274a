"""Per-role strategy overrides: one row each — role, strategy and that strategy's generated form.

A recipe's ``values`` maps a role prefix (``attn``, ``attn.q``, ``mlp``, …; the most specific one
wins) to ``{"method": name, "params": {...}}``. Each row edits one such entry; its parameter form
is built from the chosen strategy's ``Params`` dataclass, like the default strategy's form.
"""

from __future__ import annotations

from app.panels.forms import DataclassForm
from app.qt import QtCore, QtWidgets
from app.words import strategy_label

#: Offered before a source is open (an editable combo: any role prefix can be typed).
ROLE_CHOICES = ("attn", "attn.q", "attn.k", "attn.v", "attn.o", "mlp", "embed", "norm", "head", "pos")


def role_choices(roles) -> tuple[str, ...]:
    """The role prefixes a source's tensors carry, each family before its members
    (``attn``, ``attn.q``, ``attn.k``, …, ``mlp``, ``mlp.up``, …) in first-seen order."""
    out: dict[str, None] = {}
    for role in roles:
        if role:
            out.setdefault(role.split(".")[0], None)
            out.setdefault(role, None)
    families = [r for r in out if "." not in r]
    return tuple(x for family in families for x in (family, *[r for r in out if r.startswith(family + ".")]))


class OverrideRow(QtWidgets.QFrame):
    """Role, strategy and parameters of one override.

    Signals:
        edited(): the role, the strategy or a parameter changed.
        remove_requested(OverrideRow): the user pressed ✕.
    """

    edited = QtCore.Signal()
    remove_requested = QtCore.Signal(object)

    def __init__(
        self,
        strategies: dict,
        role: str,
        method: str,
        params: dict | None = None,
        *,
        roles: tuple[str, ...] = ROLE_CHOICES,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setFrameShape(QtWidgets.QFrame.StyledPanel)
        self._strategies = strategies
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QHBoxLayout()
        self.role_combo = QtWidgets.QComboBox()
        self.role_combo.addItems(list(roles))
        self.role_combo.setEditable(True)
        self.role_combo.setToolTip("A role or role prefix (attn covers attn.q, attn.k, …); the most specific one wins")
        self.role_combo.setCurrentText(role)
        self.method_combo = QtWidgets.QComboBox()
        for name, strategy in strategies.items():
            self.method_combo.addItem(strategy_label(name), name)
            self.method_combo.setItemData(
                self.method_combo.count() - 1, f"{name}: {strategy.summary}", QtCore.Qt.ToolTipRole
            )
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(method)))
        self.remove_button = QtWidgets.QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove this override")
        for combo in (self.role_combo, self.method_combo):  # may shrink below their longest item
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        top.addWidget(self.role_combo, 1)
        top.addWidget(self.method_combo, 1)
        top.addWidget(self.remove_button)
        layout.addLayout(top)
        self.form = DataclassForm()
        layout.addWidget(self.form)
        self._rebuild_form(params)

        self.role_combo.currentTextChanged.connect(lambda _: self.edited.emit())
        self.method_combo.currentIndexChanged.connect(self._on_method_changed)
        self.form.values_changed.connect(lambda _: self.edited.emit())
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))

    @property
    def role(self) -> str:
        return self.role_combo.currentText().strip()

    @property
    def method(self) -> str:
        return self.method_combo.currentData()

    def choice(self) -> dict:
        """This row's recipe entry: ``{"method": name, "params": fields that differ from the defaults}``."""
        return {"method": self.method, "params": self.form.values()}

    def _rebuild_form(self, params: dict | None = None) -> None:
        strategy = self._strategies.get(self.method)
        self.form.set_dataclass(strategy.Params if strategy is not None else None, params)

    def _on_method_changed(self, *_) -> None:
        self._rebuild_form()  # a new strategy starts from its own defaults
        self.edited.emit()


if __name__ == "__main__":  # a quick look: python -m app.panels.overrides
    import sys

    from core.strategies import get, names

    app = QtWidgets.QApplication(sys.argv)
    row = OverrideRow({n: get(n) for n in names("value")}, "attn", "mimetic", {"alpha_qk": 0.5})
    row.edited.connect(lambda: print(row.role, row.choice()))
    row.show()
    app.exec()
