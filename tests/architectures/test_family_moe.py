"""Mixture-of-experts families (mixtral, qwen2_moe, qwen3_moe) and dense → MoE upcycling (issue 15)."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from tiny_models import MOE_FAMILIES, model_output
from torch.testing import assert_close

from core.errors import PlanError
from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe
from core.transfer import build_state_dict

ROUTER = {"mixtral": "block_sparse_moe.gate", "qwen2_moe": "mlp.gate", "qwen3_moe": "mlp.gate"}
UP = {"mixtral": "block_sparse_moe.experts.{e}.w3", "qwen2_moe": "mlp.experts.{e}.up_proj"}
UP["qwen3_moe"] = UP["qwen2_moe"]


def load(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder).eval()


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_identity_transfer_reproduces_the_moe_model_exactly(family, tiny_model, tmp_path):
    src, model, _ = tiny_model(family)
    out = export_recipe(Recipe(source=str(src)), tmp_path / "out")
    assert_close(model_output(load(out), family), model_output(model, family), rtol=0, atol=0)


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_fewer_experts_and_narrower_experts_load_and_run(family, tiny_model, tmp_path):
    src, _, _ = tiny_model(family)
    target = {"experts": 2, "hidden": 16, "ffn": 24, "layers": 1}
    out = export_recipe(Recipe(source=str(src), target=target), tmp_path / "out")
    model = load(out)
    assert model.config.num_experts == 2 if family == "qwen2_moe" else model.config.num_local_experts == 2
    assert model.config.num_experts_per_tok <= 2
    assert torch.isfinite(model_output(model, family)).all()


def test_expert_selection_moves_the_router_row_with_its_expert(tiny_model):
    src, _, _ = tiny_model("mixtral")
    recipe = Recipe(source=str(src), target={"experts": 2, "ffn": 24}, index={"method": "random", "params": {}}, seed=3)
    plan, source = plan_recipe(recipe)
    sd = build_state_dict(plan, source)
    kept = plan.dims["experts@1"].index
    assert len(set(kept)) == 2
    router = source.read(f"model.layers.1.{ROUTER['mixtral']}.weight")
    assert_close(sd[f"model.layers.1.{ROUTER['mixtral']}.weight"], router[kept], rtol=0, atol=0)
    for e, s in enumerate(kept):  # target expert e is source expert s, restricted to its own ffn map
        rows = plan.dims[f"ffn@1/{e}"].index
        want = source.read(f"model.layers.1.{UP['mixtral'].format(e=s)}.weight")[rows]
        assert_close(sd[f"model.layers.1.{UP['mixtral'].format(e=e)}.weight"], want, rtol=0, atol=0)
    # Each expert's neurons are drawn on their own: the experts are unrelated networks.
    assert plan.dims["ffn@1/0"].index != plan.dims["ffn@1/1"].index


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_doubled_experts_keep_the_function_with_doubled_top_k(family, tiny_model, tmp_path):
    src, model, _ = tiny_model(family)
    recipe = Recipe(source=str(src), target={"experts": 8}, values={"default": {"method": "growth"}})
    plan, _ = plan_recipe(recipe)
    assert plan.dims["experts@0"].index == [0, 1, 2, 3, 0, 1, 2, 3]
    assert any("num_experts_per_tok=4" in w for w in plan.warnings)
    out = export_recipe(recipe, tmp_path / "out")
    grown = load(out)
    assert not torch.allclose(model_output(grown, family), model_output(model, family), atol=1e-3)  # top-2 of copies
    config = json.loads((out / "config.json").read_text())
    config["num_experts_per_tok"] = 4
    (out / "config.json").write_text(json.dumps(config))
    assert_close(model_output(load(out), family), model_output(model, family), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("dense", "moe"), [("llama", "mixtral"), ("qwen2", "qwen2_moe"), ("qwen3", "qwen3_moe")])
def test_upcycled_dense_model_computes_the_dense_function_exactly(dense, moe, tiny_model, tmp_path):
    src, model, _ = tiny_model(dense)
    out = export_recipe(Recipe(source=str(src), target={"experts": 4}), tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == moe
    upcycled = load(out)
    assert type(upcycled).__name__.lower().startswith(moe.replace("_", ""))
    # Zero routers: uniform weights 1/k over k identical copies of the dense MLP, bit for bit.
    assert_close(model_output(upcycled, moe), model_output(model, dense), rtol=0, atol=0)


def test_upcycled_experts_are_copies_and_a_random_router_still_keeps_the_function(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    src, model, _ = tiny_model("llama")
    recipe = Recipe(source=str(src), target={"experts": 4})
    plan, source = plan_recipe(recipe)
    sd = build_state_dict(plan, source)
    gate = source.dense.read("model.layers.0.mlp.gate_proj.weight")
    for e in range(4):
        assert_close(sd[f"model.layers.0.block_sparse_moe.experts.{e}.w1.weight"], gate, rtol=0, atol=0)
    assert not sd["model.layers.0.block_sparse_moe.gate.weight"].any()
    out = export_recipe(recipe, tmp_path / "out")
    # A trained (random) router: renormalised top-k weights over identical experts still sum to one.
    weights = load_file(out / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    for name in [n for n in weights if n.endswith("block_sparse_moe.gate.weight")]:
        weights[name] = torch.randn(weights[name].shape, generator=g)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    assert_close(model_output(load(out), "mixtral"), model_output(model, "llama"), rtol=1e-5, atol=1e-6)


def test_qwen2_moe_upcycle_starts_the_shared_expert_silent(tiny_model):
    src, _, _ = tiny_model("qwen2")
    plan, source = plan_recipe(Recipe(source=str(src), target={"experts": 2}))
    sd = build_state_dict(plan, source)
    assert plan.target_config["norm_topk_prob"] is True
    assert not sd["model.layers.1.mlp.shared_expert.down_proj.weight"].any()
    assert_close(
        sd["model.layers.1.mlp.shared_expert.up_proj.weight"], source.dense.read("model.layers.1.mlp.up_proj.weight")
    )


def test_experts_of_a_family_without_an_moe_twin_are_refused(tiny_model):
    src, _, _ = tiny_model("gpt2")
    with pytest.raises(PlanError, match="upcycles"):
        plan_recipe(Recipe(source=str(src), target={"experts": 4}))


def test_moe_blocks_are_pre_norm_and_their_experts_resizable():
    from core.architectures import FAMILIES

    for name in ("mixtral", "qwen2_moe"):
        spec = FAMILIES.get(name)
        assert spec.norm_placement == "pre"
        assert {"experts", "ffn", "hidden"} <= spec.target_size_names()


@pytest.mark.parametrize("source_family", ["mixtral", "llama"])
def test_baseline_init_of_an_moe_target_is_transformers_own(source_family, tiny_model, tmp_path):
    """The baseline arm of an MoE target (transformers 5 holds its experts fused) exports every
    checkpoint tensor: the fresh model's state converted back to per-expert form, as it saves."""
    src, _, _ = tiny_model(source_family)
    target = {"experts": 3} if source_family == "mixtral" else {"experts": 4}
    out = export_recipe(
        Recipe(source=str(src), target=target, values={"default": {"method": "baseline"}}), tmp_path / "o"
    )
    model, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    experts = model.model.layers[1].mlp.experts
    std = model.config.initializer_range
    for fused in (experts.gate_up_proj, experts.down_proj):  # transformers' normal(0, initializer_range)
        assert float(fused.detach().std()) == pytest.approx(std, rel=0.15)
    assert model.config.num_local_experts == target["experts"]
