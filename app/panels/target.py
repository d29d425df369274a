"""Target & strategy: sizes with a live parameter count, the strategies and their generated forms."""

from __future__ import annotations

from contextlib import contextmanager

from app.panels.config_fields import ConfigFieldsTable
from app.panels.forms import DataclassForm
from app.panels.overrides import ROLE_CHOICES, OverrideRow, role_choices
from app.qt import QtCore, QtWidgets
from app.words import form_notes, strategy_label
from core.devices import DEVICES  # which ones work here comes later, from set_devices
from core.dtypes import EXPORT_DTYPES, itemsize
from core.plan import LAYER_MAPS, TargetSizes

DEFAULT_INDEX = "(strategy's default)"
SAME_FAMILY = "same as the source"

ERROR_COLOUR = "#d0453a"
WARNING_COLOUR = "#b06000"


def _target_families() -> list[str]:
    """The families a target may have: those with a transformers model and repeated blocks."""
    from core.architectures import FAMILIES

    return sorted(name for name, spec in FAMILIES.items() if spec.library == "transformers" and spec.layered)


def _strategies():
    from core.strategies import get, names

    return {n: get(n) for n in names("value")}, {n: get(n) for n in names("index")}


class TargetPanel(QtWidgets.QWidget):
    """Signals:
    recipe_edited(Recipe): any field changed; the workspace re-plans (debounced).

    Sizes and strategies scroll; seed, device and dtype stay in view below them.
    """

    recipe_edited = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        # Never sideways: a horizontal scroll hides the labels on the left (a form is as wide as the panel).
        self.scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        outer.addWidget(self.scroll, 1)
        body = QtWidgets.QWidget()
        self.scroll.setWidget(body)
        layout = QtWidgets.QVBoxLayout(body)
        self.values, self.indexes = _strategies()
        self._source_sizes: dict[str, int] = {}
        self._unavailable: dict[str, str] = {}  # device → why this machine cannot use it
        self._roles: tuple[str, ...] = ROLE_CHOICES  # what an override's role list offers
        self._location = "demo"
        self._revision = None
        self._loading = False

        layout.addWidget(QtWidgets.QLabel("<b>Target</b>"))
        sizes = QtWidgets.QFormLayout()
        self.family_combo = QtWidgets.QComboBox()  # another family than the source's (core.plan.cross)
        self.family_combo.setObjectName("target-family")
        self.family_combo.addItem(SAME_FAMILY, None)
        for family in _target_families():
            self.family_combo.addItem(family, family)
        self.family_combo.setToolTip(
            "Build a model of another family (e.g. llama from a bert source): roles map by name, "
            "the target keeps the source's tokenizer"
        )
        self.family_combo.currentIndexChanged.connect(self._edited)
        sizes.addRow("Family", self.family_combo)
        self.family_note = QtWidgets.QLabel()  # the source family's caveats (its spec's notes)
        self.family_note.setObjectName("family-note")
        self.family_note.setWordWrap(True)
        self.family_note.setEnabled(False)
        self.family_note.hide()
        sizes.addRow(self.family_note)
        self.size_spins: dict[str, QtWidgets.QSpinBox] = {}
        self._size_help: dict[str, str] = {}
        for key, label, help_text in TargetSizes.size_fields():
            spin = QtWidgets.QSpinBox()
            spin.setToolTip(help_text)
            self._size_help[key] = help_text
            spin.setRange(1, 1_000_000)
            spin.setKeyboardTracking(False)
            spin.setAccelerated(True)
            spin.valueChanged.connect(self._edited)
            self.size_spins[key] = spin
            sizes.addRow(label, spin)
        layout.addLayout(sizes)
        self.config_fields = ConfigFieldsTable()  # any other target config field (the recipe's ``config``)
        self.config_fields.fields_edited.connect(self._edited)
        layout.addWidget(self.config_fields)
        self.count_label = QtWidgets.QLabel("–")
        self.count_label.setObjectName("parameter-count")
        layout.addWidget(self.count_label)
        self.message = QtWidgets.QLabel()
        self.message.setObjectName("plan-message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {ERROR_COLOUR};")
        self.message.hide()
        layout.addWidget(self.message)

        layout.addWidget(_rule())
        layout.addWidget(QtWidgets.QLabel("<b>Strategy</b>"))
        form = QtWidgets.QFormLayout()
        self.value_combo = QtWidgets.QComboBox()
        for name, strategy in self.values.items():
            self.value_combo.addItem(strategy_label(name), name)
            self.value_combo.setItemData(
                self.value_combo.count() - 1, f"{name}: {strategy.summary}", QtCore.Qt.ToolTipRole
            )
        self.value_combo.currentIndexChanged.connect(self._on_value_strategy)
        form.addRow("Values", self.value_combo)
        layout.addLayout(form)
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.summary.setEnabled(False)
        layout.addWidget(self.summary)
        self.value_form = DataclassForm()
        self.value_form.values_changed.connect(self._edited)
        layout.addWidget(self.value_form)
        self.value_note = _note_label("value-note")  # a pitfall of the chosen value strategy, where it is set
        layout.addWidget(self.value_note)

        form2 = QtWidgets.QFormLayout()
        self.index_combo = QtWidgets.QComboBox()
        self.index_combo.addItem(DEFAULT_INDEX, None)
        for name, strategy in self.indexes.items():
            self.index_combo.addItem(strategy_label(name), name)
            self.index_combo.setItemData(
                self.index_combo.count() - 1, f"{name}: {strategy.summary}", QtCore.Qt.ToolTipRole
            )
        self.index_combo.currentIndexChanged.connect(self._on_index_strategy)
        form2.addRow("Neurons", self.index_combo)
        self.layers_combo = QtWidgets.QComboBox()
        for choice in LAYER_MAPS:
            self.layers_combo.addItem(choice.replace("_", " "), choice)
        self.layers_combo.currentIndexChanged.connect(self._edited)
        form2.addRow("Layers", self.layers_combo)
        layout.addLayout(form2)
        self.index_form = DataclassForm()
        self.index_form.values_changed.connect(self._edited)
        layout.addWidget(self.index_form)
        self.index_note = _note_label("index-note")
        layout.addWidget(self.index_note)

        overrides_header = QtWidgets.QHBoxLayout()
        overrides_header.addWidget(QtWidgets.QLabel("Per-role overrides"))
        overrides_header.addStretch(1)
        self.add_override_button = QtWidgets.QToolButton()
        self.add_override_button.setText("+")
        self.add_override_button.setToolTip("Use another strategy for one role (e.g. attention)")
        self.add_override_button.clicked.connect(
            lambda: self.add_override("attn", "mimetic" if "mimetic" in self.values else "select")
        )
        overrides_header.addWidget(self.add_override_button)
        layout.addLayout(overrides_header)
        self.overrides = QtWidgets.QVBoxLayout()
        layout.addLayout(self.overrides)

        layout.addStretch(1)
        footer = QtWidgets.QWidget()  # outside the scroll area: always in view
        footer_layout = QtWidgets.QVBoxLayout(footer)
        footer_layout.setContentsMargins(9, 0, 9, 4)
        footer_layout.addWidget(_rule())
        misc = QtWidgets.QFormLayout()
        self.seed_spin = QtWidgets.QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.valueChanged.connect(self._edited)
        misc.addRow("Seed", self.seed_spin)
        self.device_combo = QtWidgets.QComboBox()
        for device in DEVICES:
            self.device_combo.addItem(device, device)
        self.device_combo.currentIndexChanged.connect(self._edited)
        self.device_combo.currentIndexChanged.connect(lambda _: self.device_note.hide())
        misc.addRow("Device", self.device_combo)
        self.device_note = QtWidgets.QLabel()
        self.device_note.setObjectName("device-note")
        self.device_note.setWordWrap(True)
        self.device_note.hide()
        misc.addRow(self.device_note)
        self.dtype_combo = QtWidgets.QComboBox()
        self.dtype_combo.addItem("keep source dtype", None)
        for dtype in EXPORT_DTYPES:
            self.dtype_combo.addItem(dtype, dtype)
        self.dtype_combo.currentIndexChanged.connect(self._edited)
        misc.addRow("dtype", self.dtype_combo)
        footer_layout.addLayout(misc)
        outer.addWidget(footer)
        self.value_combo.setCurrentIndex(max(0, self.value_combo.findData("select")))
        self._on_value_strategy()
        self.setEnabled(False)

    # -- from the workspace ------------------------------------------------------------------
    def set_source(self, opened) -> None:
        """Reset sizes to the source's (a new source starts as an identity transfer)."""
        self._loading = True
        try:
            self._location = opened.location
            self._revision = None
            self._source_sizes = dict(opened.sizes)
            self._roles = role_choices(r.role for r in opened.roles if r.kind != "buffer") or ROLE_CHOICES
            self.clear_overrides()  # a new source starts as an identity transfer
            self.config_fields.set_fields({})
            self.family_combo.setCurrentIndex(0)
            notes = _family_notes(opened.family)
            self.family_note.setText(f"{opened.family}: {notes}" if notes else "")
            self.family_note.setVisible(bool(notes))
            for key, spin in self.size_spins.items():
                size = opened.sizes.get(key)
                spin.setEnabled(size is not None and key in opened.editable)
                spin.setValue(size or 1)
                spin.setToolTip(
                    f"{self._size_help[key]}; source: {size}" if size is not None else "not used by this architecture"
                )
            self.setEnabled(opened.family != "unknown")
        finally:
            self._loading = False

    def set_recipe(self, recipe) -> None:
        """Show ``recipe`` in the form (after opening a recipe file)."""
        self._loading = True
        try:
            self._location, self._revision = recipe.source, recipe.revision
            for key, spin in self.size_spins.items():
                spin.setValue(recipe.target.get(key, self._source_sizes.get(key, spin.value())))
            family = self.family_combo.findData(recipe.target_family) if recipe.target_family else 0
            if family < 0:  # a family this build does not list: keep it, the plan says what is wrong
                self.family_combo.addItem(recipe.target_family, recipe.target_family)
                family = self.family_combo.count() - 1
            self.family_combo.setCurrentIndex(family)
            default = recipe.values.get("default", {"method": "select"})
            self.value_combo.setCurrentIndex(max(0, self.value_combo.findData(default["method"])))
            self._on_value_strategy(rebuild_only=True)
            self.value_form.set_values(default.get("params", {}))
            index = recipe.index or {}
            self.index_combo.setCurrentIndex(max(0, self.index_combo.findData(index.get("method"))))
            self._on_index_strategy(rebuild_only=True)
            self.index_form.set_values(index.get("params", {}))
            if isinstance(recipe.layers, str):
                self.layers_combo.setCurrentIndex(max(0, self.layers_combo.findData(recipe.layers)))
            self.clear_overrides()
            for role, choice in recipe.values.items():
                if role != "default":
                    self.add_override(role, choice["method"], choice.get("params"), emit=False)
            self.config_fields.set_fields(recipe.config)
            self.seed_spin.setValue(recipe.seed)
            self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(recipe.device)))
            self.dtype_combo.setCurrentIndex(max(0, self.dtype_combo.findData(recipe.dtype)))
        finally:
            self._loading = False
        self._check_device()
        self._show_notes(self.recipe())

    def set_devices(self, availability: dict) -> None:
        """Grey out the devices this machine lacks (``device → None`` or why it is missing);
        a recipe that asked for a missing one falls back to the CPU, and the form says so."""
        model = self.device_combo.model()
        for i in range(self.device_combo.count()):
            device = self.device_combo.itemData(i)
            why = availability.get(device, "not offered by this torch")
            model.item(i).setEnabled(why is None)
            self.device_combo.setItemData(i, why or f"run on {device}", QtCore.Qt.ToolTipRole)
        self._unavailable = {d: why for d, why in availability.items() if why is not None}
        self._check_device()

    def _check_device(self) -> None:
        device = self.device_combo.currentData()
        why = self._unavailable.get(device)
        if why is None:
            return
        self.device_combo.setCurrentIndex(self.device_combo.findData("cpu"))  # re-plans via _edited
        self.device_note.setText(f"The recipe asked for {device}, but {why}; it runs on cpu here.")
        self.device_note.show()

    def show_plan(self, result) -> None:
        plan = result.plan
        self._loading = True
        try:  # show derived sizes (kv heads, head dim) as the plan resolved them
            for key, spin in self.size_spins.items():
                if not spin.isEnabled() and key in plan.target_sizes:
                    spin.setValue(plan.target_sizes[key])
        finally:
            self._loading = False
        dtype = self.dtype_combo.currentData()
        width = itemsize(dtype) if dtype else _source_width(plan)
        params = plan.num_parameters
        self.count_label.setText(f"<b>{params / 1e6:,.2f} M</b> parameters · {params * width / 1e6:,.1f} MB")
        warnings = list(getattr(plan, "warnings", []))
        if warnings:  # the plan is valid, but not what a user may assume (growth that is not exact, …)
            self.message.setStyleSheet(f"color: {WARNING_COLOUR};")
            self.message.setText("\n".join(f"Note: {w}" for w in warnings))
            self.message.show()
        else:
            self.message.hide()

    def show_plan_error(self, message: str) -> None:
        self.message.setStyleSheet(f"color: {ERROR_COLOUR};")
        self.message.setText(message)
        self.message.show()

    # -- overrides ---------------------------------------------------------------------------
    def add_override(self, role: str, method: str, params: dict | None = None, emit: bool = True) -> OverrideRow:
        """Add a row that fills ``role`` (a role prefix) with ``method`` and its ``params``."""
        row = OverrideRow(self.values, role, method, params, roles=self._roles)
        row.edited.connect(self._edited)
        row.remove_requested.connect(self._remove_override)
        self.overrides.addWidget(row)
        if emit:
            self._edited()
        return row

    def override_rows(self) -> list[OverrideRow]:
        return [self.overrides.itemAt(i).widget() for i in range(self.overrides.count())]

    def _remove_override(self, row: OverrideRow) -> None:
        self.overrides.removeWidget(row)
        row.setParent(None)
        row.deleteLater()
        self._edited()

    def clear_overrides(self) -> None:
        while self.overrides.count():
            widget = self.overrides.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()

    def _override_values(self) -> dict:
        return {row.role: row.choice() for row in self.override_rows() if row.role and row.role != "default"}

    # -- building the recipe -----------------------------------------------------------------
    def _on_value_strategy(self, *_, rebuild_only: bool = False) -> None:
        name = self.value_combo.currentData()
        strategy = self.values.get(name)
        if strategy is None:
            return
        self.summary.setText(strategy.summary)
        with self._scroll_kept():  # a new form of another height must not move what the user looks at
            self.value_form.set_dataclass(strategy.Params)
        self.index_combo.setItemText(0, f"default ({strategy.default_index})")
        if not rebuild_only:
            self._edited()

    def _on_index_strategy(self, *_, rebuild_only: bool = False) -> None:
        name = self.index_combo.currentData()
        with self._scroll_kept():
            self.index_form.set_dataclass(self.indexes[name].Params if name else None)
        if not rebuild_only:
            self._edited()

    def recipe(self):
        """The recipe this form describes."""
        from core.recipe import Recipe

        target = {}
        for key, spin in self.size_spins.items():
            if spin.isEnabled() and spin.value() != self._source_sizes.get(key):
                target[key] = spin.value()
        values = {"default": {"method": self.value_combo.currentData(), "params": self.value_form.values()}}
        values.update(self._override_values())
        index_name = self.index_combo.currentData()
        index = {"method": index_name, "params": self.index_form.values()} if index_name else None
        return Recipe(
            source=self._location,
            revision=self._revision,
            target=target,
            config=self.config_fields.fields(),
            target_family=self.family_combo.currentData(),
            values=values,
            index=index,
            layers=self.layers_combo.currentData(),
            seed=self.seed_spin.value(),
            dtype=self.dtype_combo.currentData(),
            device=self.device_combo.currentData(),
        )

    @contextmanager
    def _scroll_kept(self):
        """Keep the scroll position across a change of the forms' heights."""
        bar = self.scroll.verticalScrollBar()
        value = bar.value()
        yield
        self.scroll.widget().adjustSize()
        bar.setValue(min(value, bar.maximum()))
        QtCore.QTimer.singleShot(0, self, lambda: bar.setValue(min(value, bar.maximum())))  # after the relayout

    def _show_notes(self, recipe) -> None:
        notes = form_notes(recipe, self._source_sizes)
        for key, label in (("values", self.value_note), ("index", self.index_note)):
            label.setText(notes.get(key, ""))
            label.setVisible(key in notes)

    def _edited(self, *_) -> None:
        if not self._loading and self.isEnabled():
            recipe = self.recipe()
            self._show_notes(recipe)
            self.recipe_edited.emit(recipe)


def _source_width(plan) -> int:
    """Bytes per parameter as the source stores them: its widest float dtype (4 when it has none)."""
    return max((itemsize(t.dtype, 4) for t in plan.tensors if t.dtype.startswith(("F", "BF"))), default=4)


def _note_label(name: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {WARNING_COLOUR};")
    label.hide()
    return label


def _family_notes(family: str) -> str:
    """The family's caveats (its spec's notes): what a user should know before sizing it."""
    from core.architectures import FAMILIES
    from core.errors import ArchitectureError

    try:
        return FAMILIES.get(family).notes
    except ArchitectureError:  # "unknown" (a source no spec describes) has none to show
        return ""


def _rule() -> QtWidgets.QFrame:
    line = QtWidgets.QFrame()
    line.setFrameShape(QtWidgets.QFrame.HLine)
    line.setFrameShadow(QtWidgets.QFrame.Sunken)
    return line
