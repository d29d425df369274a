"""Phi-3: fused [Q;K;V] with grouped-query attention (a concatenated axis) and fused [gate; up].

The tiny model (tests/tiny_models.py) has hidden 32, 4 query heads over 2 kv heads, head_dim 8,
ffn 48: ``qkv_proj`` is (4·8 + 2·2·8) × 32 = 64 × 32, ``gate_up_proj`` 96 × 32. Every parameter
is perturbed, norms included, so an identity transfer that drops or misplaces one differs.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from tiny_models import _DECODER, build_tiny, model_output, save_tiny
from torch.testing import assert_close

from core.architectures import FAMILIES, describe, detect
from core.architectures.check import source_problems
from core.architectures.spec import Concat, axis_atoms, axis_parts, is_concat
from core.budget import estimate
from core.errors import PlanError
from core.pipeline import export_recipe, plan_recipe
from core.plan import Plan
from core.recipe import Recipe
from core.sources import demo_model_path, open_source
from core.strategies.scores import neuron_scores
from core.transfer import build_state_dict, composite_index

GROWTH = {"default": {"method": "growth", "params": {}}}
QKV = "model.layers.0.self_attn.qkv_proj.weight"
GATE_UP = "model.layers.0.mlp.gate_up_proj.weight"


def load(folder):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def partial_rotary(folder, **extra):
    """A Phi-4-mini-like tiny model: only half of head_dim 8 rotates."""
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5, **extra}
    config = transformers.Phi3Config(
        **_DECODER,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        rope_parameters=rope,
    )
    return save_tiny(config, "AutoModelForCausalLM", folder)


def test_identity_transfer_reproduces_the_source_exactly(tmp_path):
    model, _ = build_tiny("phi3", tmp_path / "src")
    out = export_recipe(Recipe(source=str(tmp_path / "src")), tmp_path / "out")
    assert_close(model_output(load(out), "phi3"), model_output(model, "phi3"), rtol=0, atol=0)


def test_the_partial_rotary_identity_is_exact_too(tmp_path):
    model, _ = partial_rotary(tmp_path / "src")
    out = export_recipe(Recipe(source=str(tmp_path / "src")), tmp_path / "out")
    assert_close(model_output(load(out), "phi3"), model_output(model, "phi3"), rtol=0, atol=0)


def test_the_fused_tensors_are_described_by_a_concatenated_axis_and_a_product_axis(tmp_path):
    build_tiny("phi3", tmp_path / "src")
    plan, source = plan_recipe(Recipe(source=str(tmp_path / "src")))
    rows = {t.name: t for t in plan.tensors}
    assert rows[QKV].axes[0] == [["heads@0", "head_dim"], ["kv_heads@0", "head_dim"], ["kv_heads@0", "head_dim"]]
    assert rows[QKV].shape == [64, 32] and rows[GATE_UP].axes[0] == ["two", "ffn@0"]
    labels = {t.name: t.dims_label for t in describe(source)}
    assert labels[QKV] == "heads·head_dim+kv_heads·head_dim+kv_heads·head_dim × hidden"
    # A plan with a concatenated axis still serialises to JSON and back.
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert [t.axes for t in again.tensors] == [t.axes for t in plan.tensors]


def test_composite_index_of_a_concatenated_axis_shifts_each_part_by_its_source_offset(tmp_path):
    """Target q, k, v blocks take their own heads' rows: q from [0, 32), k from 32 + [0, 16), v from 48 + …"""
    build_tiny("phi3", tmp_path / "src")
    recipe = Recipe(
        source=str(tmp_path / "src"), target={"heads": 2, "kv_heads": 1, "hidden": 16}, index={"method": "random"}
    )
    plan, source = plan_recipe(recipe)
    heads, kv, head_dim = (plan.dims[k].index for k in ("heads@0", "kv_heads@0", "head_dim"))
    assert head_dim != list(range(4)) and kv in ([0], [1])
    q = [h * 8 + e for h in heads for e in head_dim]
    k = [32 + g * 8 + e for g in kv for e in head_dim]
    v = [48 + g * 8 + e for g in kv for e in head_dim]
    index = composite_index(plan, plan.tensors[1].axes[0])
    assert index.tolist() == q + k + v
    hidden = torch.tensor(plan.dims["hidden"].index)
    sd = build_state_dict(plan, source)
    assert_close(sd[QKV], source.read(QKV)[torch.tensor(q + k + v)][:, hidden], rtol=0, atol=0)
    # a kept query head keeps its kv group
    assert all(h // 2 == kv[0] for h in heads)


def test_composite_index_is_none_for_an_unchanged_concatenated_axis(tmp_path):
    build_tiny("phi3", tmp_path / "src")
    plan, _ = plan_recipe(Recipe(source=str(tmp_path / "src"), target={"ffn": 24}))
    assert composite_index(plan, plan.tensors[1].axes[0]) is None


def test_gate_and_up_rows_of_one_neuron_stay_together(tmp_path):
    build_tiny("phi3", tmp_path / "src")
    plan, source = plan_recipe(
        Recipe(source=str(tmp_path / "src"), target={"ffn": 20}, index={"method": "random"}, seed=3)
    )
    ffn = plan.dims["ffn@0"].index
    rows = torch.tensor(ffn + [48 + i for i in ffn])
    assert_close(build_state_dict(plan, source)[GATE_UP], source.read(GATE_UP)[rows], rtol=0, atol=0)


@pytest.mark.parametrize(
    "target",
    [
        {"layers": 1, "hidden": 16, "heads": 2, "kv_heads": 1, "ffn": 24},
        {"heads": 2, "hidden": 16},  # kv heads derived: groups of 2 kept
        {"heads": 2, "kv_heads": 2, "hidden": 16},  # GQA → multi-head attention
        {"hidden": 16},  # head_dim 8→4, rotary pairs kept
    ],
    ids=["all", "heads", "kv_heads", "head_dim"],
)
def test_a_shrink_loads_in_transformers_and_runs(target, tmp_path):
    build_tiny("phi3", tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), target=target)
    out = export_recipe(recipe, tmp_path / "out")
    model = load(out)
    plan, source = plan_recipe(recipe)
    sizes = plan.target_sizes
    assert (model.config.hidden_size, model.config.num_attention_heads) == (sizes["hidden"], sizes["heads"])
    assert (model.config.num_key_value_heads, model.config.intermediate_size) == (sizes["kv_heads"], sizes["ffn"])
    assert torch.isfinite(model_output(model, "phi3")).all()
    # the memory estimate sums the concatenated axis's parts: it equals the exported weights
    exported = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    assert estimate(FAMILIES.get("phi3"), source, sizes).total_bytes == exported


@pytest.mark.parametrize("method", ["mean_field", "covariance", "distribution", "templates", "mimetic", "baseline"])
def test_every_value_strategy_fills_the_fused_tensors(method, tmp_path):
    build_tiny("phi3", tmp_path / "src")
    values = {"default": {"method": method}}
    if method == "mimetic":  # attention only: the rest is selected
        values = {"default": {"method": "select"}, "attn": {"method": "mimetic"}}
    recipe = Recipe(source=str(tmp_path / "src"), target={"heads": 2, "hidden": 16, "ffn": 24}, values=values)
    model = load(export_recipe(recipe, tmp_path / "out"))
    assert torch.isfinite(model_output(model, "phi3")).all()


def test_kv_head_scores_read_the_key_and_value_blocks(tmp_path):
    """by_norm's kv_heads scores: the norms of each kv head's key and value rows of qkv_proj."""
    build_tiny("phi3", tmp_path / "src")
    plan, source = plan_recipe(Recipe(source=str(tmp_path / "src")))
    w = source.read(QKV).to(torch.float64)
    k, v = w[32:48].reshape(2, 8, 32), w[48:64].reshape(2, 8, 32)
    expected = ((k * k).sum((1, 2)) + (v * v).sum((1, 2))).sqrt()
    assert_close(neuron_scores(source, "kv_heads", 0), expected)
    recipe = Recipe(source=str(tmp_path / "src"), target={"kv_heads": 1}, index={"method": "by_norm"})
    assert torch.isfinite(model_output(load(export_recipe(recipe, tmp_path / "out")), "phi3")).all()


def test_by_activation_selects_through_the_fused_tensors(tmp_path):
    """The calibration pass hooks qkv_proj, o_proj, gate_up_proj and down_proj (fan-ins hidden, heads, ffn);
    the vocabulary is the demo tokenizer's, which tokenises the calibration text."""
    config = transformers.Phi3Config(
        **{**_DECODER, "vocab_size": 30522},
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    save_tiny(config, "AutoModelForCausalLM", tmp_path / "src")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(demo_model_path() / name, tmp_path / "src" / name)
    recipe = Recipe(
        source=str(tmp_path / "src"),
        target={"heads": 2, "kv_heads": 1, "hidden": 16, "ffn": 24},
        index={"method": "by_activation", "params": {"samples": 8, "seq_len": 32}},
    )
    plan, _ = plan_recipe(recipe)
    assert plan.dims["ffn@0"].method == "by_activation" and plan.dims["ffn@0"].index != list(range(24))
    model = load(export_recipe(recipe, tmp_path / "out"))
    assert torch.isfinite(model(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def grown_difference(tmp_path, target: dict) -> float:
    model, _ = build_tiny("phi3", tmp_path / "src")
    out = export_recipe(Recipe(source=str(tmp_path / "src"), target=target, values=GROWTH), tmp_path / "out")
    return (model_output(load(out), "phi3", 12) - model_output(model, "phi3", 12)).abs().max().item()


@pytest.mark.parametrize(
    "target",
    [
        {"hidden": 64, "heads": 8, "kv_heads": 4, "ffn": 100, "layers": 4},
        {"hidden": 96, "heads": 12, "layers": 3},  # kv heads kept: groups of 6
    ],
    ids=["2x", "3x-groups"],
)
def test_growth_in_width_and_depth_keeps_the_function(target, tmp_path):
    assert grown_difference(tmp_path, target) < 1e-5


def test_growth_refuses_a_larger_rotary_head_dim(tmp_path):
    build_tiny("phi3", tmp_path / "src")
    with pytest.raises(PlanError, match="rotary frequency"):
        plan_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": 64}, values=GROWTH))


def test_inexact_head_dim_growth_scales_the_q_and_k_blocks_only(tmp_path):
    """allow_inexact: a 2-fold head_dim clone scales q and k rows by 2^(-1/4), v rows not (HyperCloning)."""
    build_tiny("phi3", tmp_path / "src")
    values = {"default": {"method": "growth", "params": {"allow_inexact": True}}}
    plan, source = plan_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": 64}, values=values))
    out = build_state_dict(plan, source)[QKV]
    plain = source.read(QKV)[composite_index(plan, plan.tensors[1].axes[0])][:, torch.arange(64) % 32] / 2
    factor = 2 ** (-0.25)
    assert_close(out[:64], plain[:64] * factor)  # q (4 heads × 16)
    assert_close(out[64:96], plain[64:96] * factor)  # k (2 kv heads × 16)
    assert_close(out[96:], plain[96:])  # v


def test_a_smaller_head_dim_keeps_the_partial_rotary_pairs_and_share(tmp_path):
    partial_rotary(tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), target={"hidden": 16}, index={"method": "random"}, seed=5)
    plan, _ = plan_recipe(recipe)
    assert plan.source_sizes["rotary_dims"] == 4 and plan.target_sizes["rotary_dims"] == 2
    index = plan.dims["head_dim"].index
    assert index[1] == index[0] + 2 and index[0] in (0, 1) and all(4 <= i < 8 for i in index[2:])
    model = load(export_recipe(recipe, tmp_path / "out"))
    assert model.model.rotary_emb.inv_freq.numel() * 2 == plan.target_sizes["rotary_dims"]
    assert torch.isfinite(model_output(model, "phi3")).all()


def test_a_longrope_head_dim_change_is_refused_and_heads_may_still_change(tmp_path):
    """longrope lists a factor per rotary pair: head_dim 8 has 4 pairs, a head_dim of 4 could not use them."""
    factors = {"short_factor": [1.0, 1.1, 1.2, 1.3], "long_factor": [2.0, 2.1, 2.2, 2.3]}
    config = transformers.Phi3Config(
        **_DECODER,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=128,
        original_max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, **factors},
    )
    model, _ = save_tiny(config, "AutoModelForCausalLM", tmp_path / "src")
    with pytest.raises(PlanError, match="factor per rotary pair of head_dim 8"):
        plan_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": 16}))
    out = export_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": 16, "heads": 2}), tmp_path / "out")
    assert torch.isfinite(model_output(load(out), "phi3")).all()


def test_concat_is_a_tuple_of_parts():
    axis = Concat((("heads", "head_dim"), ("kv_heads", "head_dim")))
    assert axis == (("heads", "head_dim"), ("kv_heads", "head_dim")) and hash(axis) == hash(tuple(axis))
    assert is_concat(axis) and is_concat([["heads@0", "head_dim"], ["kv_heads@0", "head_dim"]])
    assert not is_concat(("heads", "head_dim")) and not is_concat(["vocab"]) and not is_concat(())
    assert axis_atoms(axis) == ["heads", "head_dim", "kv_heads"] and axis_parts(("ffn",)) == [("ffn",)]


def test_the_source_check_sums_the_parts_of_a_concatenated_axis(tmp_path):
    build_tiny("phi3", tmp_path / "src")
    source = open_source(tmp_path / "src")
    spec, config = detect(source)
    assert source_problems(source, spec, config) == []
    wrong = source_problems(source, spec, {**config, "num_key_value_heads": 4})  # 4·8 + 2·4·8 = 96 rows, not 64
    assert any("qkv_proj" in p and "implies 96" in p for p in wrong), wrong
