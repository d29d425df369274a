"""GPT-NeoX (Pythia): per-head q|k|v interleave, partial rotary, parallel and sequential residual.

The tiny model (tests/tiny_models.py) has head_dim 8 with rotary_pct 0.5: channels 0–3 of a head
rotate in pairs (0, 2), (1, 3), channels 4–7 do not. Every parameter is perturbed, norms and
biases included, so an identity transfer that drops or misplaces one differs.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny_models import _DECODER, build_tiny, model_output, save_tiny
from torch.testing import assert_close

from core.architectures import FAMILIES
from core.errors import PlanError
from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe
from core.transfer import build_state_dict

GROWTH = {"default": {"method": "growth", "params": {}}}


def build(folder, parallel: bool = True):
    """The tiny gpt_neox, with the parallel residual (Pythia) or the sequential one."""
    if parallel:
        return build_tiny("gpt_neox", folder)
    config = transformers.GPTNeoXConfig(
        **_DECODER, intermediate_size=64, rotary_pct=0.5, max_position_embeddings=64, use_parallel_residual=False
    )
    return save_tiny(config, "AutoModelForCausalLM", folder)


def load(folder):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "sequential"])
def test_identity_transfer_reproduces_the_source_exactly(parallel, tmp_path):
    model, _ = build(tmp_path / "src", parallel)
    out = export_recipe(Recipe(source=str(tmp_path / "src")), tmp_path / "out")
    assert_close(model_output(load(out), "gpt_neox"), model_output(model, "gpt_neox"), rtol=0, atol=0)


def test_fused_qkv_keeps_each_heads_q_k_v_block(tmp_path):
    """Target head t's rows [q | k | v] are its source head's: the (heads, qkv, head_dim) row-major layout."""
    build(tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), target={"hidden": 16, "heads": 2}, index={"method": "random"}, seed=1)
    plan, source = plan_recipe(recipe)
    sd = build_state_dict(plan, source)
    name = "gpt_neox.layers.0.attention.query_key_value"
    hidden = torch.tensor(plan.dims["hidden"].index)
    heads = plan.dims["heads@0"].index
    assert heads != [0, 1]  # a real choice, not the first heads
    w, b = source.read(f"{name}.weight"), source.read(f"{name}.bias")
    rows = torch.tensor([h * 24 + block * 8 + e for h in heads for block in range(3) for e in range(8)])
    assert_close(sd[f"{name}.weight"], w[rows][:, hidden], rtol=0, atol=0)
    assert_close(sd[f"{name}.bias"], b[rows], rtol=0, atol=0)


def test_shrinking_transfer_loads_and_runs(tmp_path):
    build(tmp_path / "src")
    out = export_recipe(
        Recipe(source=str(tmp_path / "src"), target={"layers": 1, "hidden": 16, "heads": 2, "ffn": 32}),
        tmp_path / "out",
    )
    model = load(out)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    assert torch.isfinite(model_output(model, "gpt_neox")).all()


def test_a_smaller_head_dim_keeps_rotary_pairs_and_the_rotary_share(tmp_path):
    """head_dim 8→4 at rotary_pct 0.5: 2 of the 4 rotary channels (one pair) and 2 of the 4 others."""
    build(tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), target={"hidden": 16}, index={"method": "random"}, seed=5)
    plan, _ = plan_recipe(recipe)
    assert plan.source_sizes["rotary_dims"] == 4 and plan.target_sizes["rotary_dims"] == 2
    index = plan.dims["head_dim"].index
    assert index[1] == index[0] + 2 and index[0] in (0, 1)  # the pair (i, i + 2) of the rotary part
    assert all(4 <= i < 8 for i in index[2:])  # the channels that do not rotate come from those that do not
    model = load(export_recipe(recipe, tmp_path / "out"))
    # transformers' own rotary part of the target: int(head_dim × rotary_pct) channels, inv_freq has half.
    assert model.gpt_neox.rotary_emb.inv_freq.numel() * 2 == plan.target_sizes["rotary_dims"]
    assert torch.isfinite(model_output(model, "gpt_neox")).all()


@pytest.mark.parametrize("hidden", [24, 12], ids=["odd-rotary", "fractional-rotary"])
def test_a_head_dim_without_an_even_rotary_part_is_refused(hidden, tmp_path):
    build(tmp_path / "src")
    with pytest.raises(PlanError, match="no even rotary part") as err:
        plan_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": hidden}))
    assert "multiple of 4" in str(err.value)


def test_the_rotary_share_is_read_from_old_and_new_configs():
    spec = FAMILIES.get("gpt_neox")
    base = {"model_type": "gpt_neox", "hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12}
    assert spec.sizes({**base, "rotary_pct": 0.25})["rotary_dims"] == 16  # Pythia's config.json
    assert spec.sizes({**base, "rope_parameters": {"partial_rotary_factor": 0.5}})["rotary_dims"] == 32
    assert spec.sizes(base)["rotary_dims"] == 16  # transformers' default, 0.25
    assert "rotary_dims" not in spec.sizes({**base, "rotary_pct": 1.0})  # all of head_dim rotates


def grown_difference(tmp_path, target: dict, parallel: bool = True) -> float:
    model, _ = build(tmp_path / "src", parallel)
    out = export_recipe(Recipe(source=str(tmp_path / "src"), target=target, values=GROWTH), tmp_path / "out")
    return (model_output(load(out), "gpt_neox", 12) - model_output(model, "gpt_neox", 12)).abs().max().item()


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "sequential"])
def test_growth_in_width_and_depth_keeps_the_function(parallel, tmp_path):
    """Inserted blocks with zero dense / dense_4h_to_h are the identity in both residual forms."""
    assert grown_difference(tmp_path, {"hidden": 64, "heads": 8, "ffn": 100, "layers": 4}, parallel) < 1e-5


def test_growth_refuses_a_larger_head_dim(tmp_path):
    build(tmp_path / "src")
    with pytest.raises(PlanError, match="rotary frequency"):
        plan_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": 64}, values=GROWTH))
