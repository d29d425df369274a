"""Per-role overrides in the target form: a role, a strategy and that strategy's own parameters."""

from __future__ import annotations

import json

import torch

from app.cli import main
from app.panels.overrides import role_choices
from app.qt import QtWidgets
from core.pipeline import plan_recipe
from core.recipe import Recipe
from core.transfer import fill_tensor

SMALL = {"layers": 2, "hidden": 192, "heads": 6, "ffn": 384}


def test_role_choices_put_each_family_before_its_members():
    roles = ["embed", "norm", "attn.q", "attn.k", "mlp.up", "attn.o", "mlp.down", "norm"]
    assert role_choices(roles) == ("embed", "norm", "attn", "attn.q", "attn.k", "attn.o", "mlp", "mlp.up", "mlp.down")


def test_override_parameters_reach_the_plan_the_preview_the_recipe_and_the_export(qtbot, window, gui, tmp_path):
    gui.open_demo()
    gui.set_target(SMALL)
    target = window.target
    # The role list is the demo model's own roles.
    row = target.add_override("attn", "mimetic")
    offered = [row.role_combo.itemText(i) for i in range(row.role_combo.count())]
    assert "attn" in offered and "attn.q" in offered and "mlp.up" in offered and "head" not in offered

    # The row's form is the mimetic strategy's dataclass; editing it changes the plan.
    alpha = row.form.editor("alpha_qk")
    assert isinstance(alpha, QtWidgets.QDoubleSpinBox)
    alpha.setValue(0.25)
    row.form.editor("qk_sign").setCurrentIndex(row.form.editor("qk_sign").findData("negative"))
    plan = gui.plan(lambda p: any(t.role == "attn.q" and t.params.get("alpha_qk") == 0.25 for t in p.tensors))
    query = next(t for t in plan.tensors if t.role == "attn.q" and t.name.endswith("weight"))
    assert query.strategy == "mimetic" and query.params["qk_sign"] == "negative"
    assert all(t.strategy == "select" for t in plan.tensors if t.role.startswith("mlp"))

    # The preview shows the overridden tensor as the GUI's recipe fills it, bit for bit.
    assert window.model.select(query.name)
    data = gui.preview(query.name)
    assert data.strategy == "mimetic"
    recipe = window.workspace.recipe
    assert recipe.values["attn"] == {"method": "mimetic", "params": {"alpha_qk": 0.25, "qk_sign": "negative"}}
    cli_plan, source = plan_recipe(Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))))
    expected = fill_tensor(cli_plan, cli_plan.tensor(query.name), source).float()
    torch.testing.assert_close(fill_tensor(plan, query, window.workspace.source).float(), expected, rtol=0, atol=0)
    shown_std = next(target for metric, _, target in data.stats if metric == "std")
    assert abs(shown_std - expected.std().item()) <= 1e-3 * expected.std().item()

    # Another strategy in the same row swaps the form for that strategy's parameters.
    row.method_combo.setCurrentIndex(row.method_combo.findData("distribution"))
    assert "family" in [f for f in row.form.all_values()] and "alpha_qk" not in row.form.all_values()
    row.form.editor("family").setCurrentIndex(row.form.editor("family").findData("laplace"))
    plan = gui.plan(lambda p: any(t.role == "attn.q" and t.strategy == "distribution" for t in p.tensors))
    assert next(t for t in plan.tensors if t.role == "attn.q").params["family"] == "laplace"

    # Saved and opened back: the override and its parameters come back into the form.
    path = tmp_path / "recipe.json"
    window.save_recipe(str(path))
    assert json.loads(path.read_text())["values"]["attn"] == {"method": "distribution", "params": {"family": "laplace"}}

    # The GUI's export and `graft export --recipe` of the saved file write the same bytes.
    gui_out, cli_out = tmp_path / "from-gui", tmp_path / "from-cli"
    with qtbot.waitSignal(window.workspace.exported, timeout=180_000):
        window.workspace.export(gui_out, dtype=None, max_shard_size="5GB")
    assert main(["export", "--recipe", str(path), "--out", str(cli_out)]) == 0
    weights = sorted(p.name for p in gui_out.glob("*.safetensors"))
    assert weights and weights == sorted(p.name for p in cli_out.glob("*.safetensors"))
    for name in weights:
        assert (gui_out / name).read_bytes() == (cli_out / name).read_bytes(), name
    row.remove_button.click()
    gui.plan(lambda p: all(t.strategy == "select" for t in p.tensors if t.kind == "param"))
    assert target.override_rows() == []
    window.open_recipe(str(path))
    gui.plan(lambda p: any(t.role == "attn.q" and t.params.get("family") == "laplace" for t in p.tensors))
    (restored,) = target.override_rows()
    assert restored.role == "attn" and restored.method == "distribution"
    assert restored.form.values() == {"family": "laplace"}


def test_an_override_the_model_cannot_take_is_an_inline_message(qtbot, window, gui):
    gui.open_demo()
    row = window.target.add_override("attn", "mimetic")
    gui.plan(lambda p: any(t.strategy == "mimetic" for t in p.tensors))
    message = window.target.message

    row.role_combo.setCurrentText("atn")  # a typo
    qtbot.waitUntil(lambda: message.isVisible() and "role 'atn'" in message.text(), timeout=60_000)
    assert "attn.q" in message.text() and not window.materialise_action.isEnabled()

    row.role_combo.setCurrentText("mlp")  # mimetic is for attention only
    qtbot.waitUntil(lambda: message.isVisible() and "mimetic only fills roles" in message.text(), timeout=60_000)

    row.role_combo.setCurrentText("attn.q")
    gui.plan(lambda p: [t.strategy for t in p.tensors if t.role.startswith("attn.")].count("mimetic") == 12)
    qtbot.waitUntil(lambda: not message.isVisible(), timeout=60_000)
    assert window.materialise_action.isEnabled()
