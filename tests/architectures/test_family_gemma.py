"""The Gemma family (gemma, gemma2, gemma3_text): identity, shrink, growth, and the √hidden embedding division.

Every source is a pico model of tests/tiny_models.py with every parameter perturbed (norms'
zero-centred weights and the embedding included); Gemma 2's attention logits are soft-capped at 5
so the cap acts, and both Gemma 2 and 3 alternate sliding-window (4) and full attention.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import transformers
from tiny_models import GEMMA_FAMILIES, example_inputs, model_output
from torch.testing import assert_close

from core.architectures import spec_for_model_type
from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe
from core.transfer import build_state_dict, embedding_divisor

EMBED = "model.embed_tokens.weight"
SHRINK = {"layers": 1, "hidden": 16, "heads": 2, "kv_heads": 1, "ffn": 32}


def load(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder).eval()


def first_residual(model, inputs=None):
    """The residual stream after the embedding (× √hidden): ``hidden_states[0]``."""
    with torch.no_grad():
        return model(**(inputs or example_inputs("gemma")), output_hidden_states=True).hidden_states[0]


@pytest.mark.parametrize("family", GEMMA_FAMILIES)
def test_the_family_spec_takes_every_gemma_model_type(family, tiny_model):
    src, model, _ = tiny_model(family)
    config = json.loads((src / "config.json").read_text())
    assert config["model_type"] == family and spec_for_model_type(family).family == "gemma"
    assert config["tie_word_embeddings"] is True  # the config classes' default: no lm_head in the file


@pytest.mark.parametrize("family", GEMMA_FAMILIES)
def test_identity_transfer_reproduces_the_source_exactly(family, tiny_model, tmp_path):
    src, model, _ = tiny_model(family)
    out = export_recipe(Recipe(source=str(src)), tmp_path / "out")
    assert_close(model_output(load(out), family), model_output(model, family), rtol=0, atol=0)


@pytest.mark.parametrize("family", GEMMA_FAMILIES)
def test_a_shrink_loads_keeps_the_gemma_fields_and_runs(family, tiny_model, tmp_path):
    src, _, _ = tiny_model(family)
    source_config = json.loads((src / "config.json").read_text())
    out = export_recipe(Recipe(source=str(src), target=SHRINK), tmp_path / "out")
    model = load(out)
    assert torch.isfinite(model_output(model, family)).all()
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (16, 1, 2, 32)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    written = json.loads((out / "config.json").read_text())
    for key in ("attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar", "sliding_window"):
        assert written.get(key) == source_config.get(key), key
    if "layer_types" in source_config:
        assert written["layer_types"] == source_config["layer_types"][:1]  # follows the layer map (first_n)


@pytest.mark.parametrize("family", GEMMA_FAMILIES)
def test_growth_keeps_the_function(family, tiny_model, tmp_path):
    """Wider (2-fold hidden and heads, a non-multiple ffn) and deeper: the tied head is untied, the
    embedding divided by √2, and an inserted block with zero output projections adds nothing even
    through Gemma 2/3's post-attention / post-feedforward norms (RMSNorm(0) = 0)."""
    src, model, _ = tiny_model(family)
    recipe = Recipe(
        source=str(src),
        target={"hidden": 64, "heads": 8, "kv_heads": 4, "ffn": 100, "layers": 4},
        values={"default": {"method": "growth"}},
    )
    plan, source = plan_recipe(recipe)
    assert plan.target_config["tie_word_embeddings"] is False and not any("logits scale" in w for w in plan.warnings)
    grown = load(export_recipe(recipe, tmp_path / "out", source=source, plan=plan))
    diff = (model_output(grown, family, length=12) - model_output(model, family, length=12)).abs().max().item()
    assert diff < 1e-5


@pytest.mark.parametrize("family", GEMMA_FAMILIES)
@pytest.mark.parametrize("method", ["select", "mean_field"])
def test_every_source_strategy_keeps_the_residual_streams_scale(family, method, tiny_model, tmp_path):
    """select: the target's first residual stream is exactly the source's on the kept hidden
    coordinates (undivided it would be √(16/32) ≈ 0.71 of it); mean_field's sampled embedding of a
    wider model has the source's RMS (undivided: √2 times it)."""
    src, model, _ = tiny_model(family)
    target = SHRINK if method == "select" else {"hidden": 64, "heads": 8}
    recipe = Recipe(source=str(src), target=target, values={"default": {"method": method}}, seed=3)
    plan, source = plan_recipe(recipe)
    divisor = math.sqrt(target["hidden"] / 32)
    assert embedding_divisor(plan, plan.tensor(EMBED)) == pytest.approx(divisor)
    assert any(f"divided by √({target['hidden']}/32)" in w and "tied" in w for w in plan.warnings)
    target_model = load(export_recipe(recipe, tmp_path / "out", source=source, plan=plan))
    ours, theirs = first_residual(target_model), first_residual(model)
    if method == "select":
        assert_close(ours, theirs[..., plan.dims["hidden"].index], rtol=1e-6, atol=1e-7)
        state = build_state_dict(plan, source)
        hidden = torch.tensor(plan.dims["hidden"].index)  # (1 + w) norms: selecting w selects the scale 1 + w
        assert torch.equal(state["model.norm.weight"], source.read("model.norm.weight")[hidden])
    else:
        ratio = (ours.pow(2).mean().sqrt() / theirs.pow(2).mean().sqrt()).item()
        assert 0.9 < ratio < 1.1


def test_the_tied_heads_logits_come_nearer_the_sources_scale_with_the_division(tiny_model, tmp_path):
    """The measurement behind keeping the division with a tied head (gemma.py's docstring): the
    head reads the divided matrix, and a shrunk head's logits, summed over fewer coordinates, are
    nearer the source's scale with it than without."""
    src, model, _ = tiny_model("gemma2")
    plan, source = plan_recipe(Recipe(source=str(src), target={"hidden": 16, "heads": 2}))
    state = build_state_dict(plan, source)
    shrunk = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**plan.target_config))
    divisor = embedding_divisor(plan, plan.tensor(EMBED))

    def logits_std(embed):
        shrunk.load_state_dict({**state, EMBED: embed}, strict=False)
        return model_output(shrunk.eval(), "gemma2").std().item()

    reference = model_output(model, "gemma2").std().item()
    divided, undivided = logits_std(state[EMBED]), logits_std(state[EMBED] * divisor)
    assert abs(math.log(divided / reference)) < abs(math.log(undivided / reference))


def test_the_embedding_is_left_alone_where_it_keeps_its_scale(tiny_model):
    """Same hidden (only layers and ffn shrink), or the target's own init (baseline): no division, no note."""
    src, _, _ = tiny_model("gemma3_text")
    plan, _ = plan_recipe(Recipe(source=str(src), target={"layers": 1, "ffn": 32}))
    assert embedding_divisor(plan, plan.tensor(EMBED)) is None and not plan.warnings
    plan, _ = plan_recipe(Recipe(source=str(src), target=SHRINK, values={"default": {"method": "baseline"}}))
    assert embedding_divisor(plan, plan.tensor(EMBED)) is None
    assert not any("√hidden" in w for w in plan.warnings)


def test_graft_validate_trains_a_gemma2_export(tiny_model, tmp_path):
    from app.cli import main

    src, _, _ = tiny_model("gemma2")
    export = export_recipe(Recipe(source=str(src), target=SHRINK), tmp_path / "exp")
    out = tmp_path / "run"
    fast = ["--steps", "2", "--batch-size", "2", "--seq-len", "16", "--eval-every", "1", "--eval-batches", "1"]
    assert main(["validate", str(export), "--out", str(out), *fast, "--device", "cpu"]) == 0
    report = json.loads((out / "validation.json").read_text())
    assert report["status"] == "complete" and set(report["records"]) == {"exp", "baseline"}


def test_growth_with_the_head_kept_tied_scales_the_logits_by_the_root_of_the_growth(tiny_model, tmp_path):
    """A 2-fold clone whose head stays tied (head filled by another strategy): the head reads the
    cloned embedding divided by √2 over 2× the coordinates, so the logits are √2× the source's (2×
    undivided), as the plan's warning says. Gemma 1: no final soft-cap to bend them."""
    src, model, _ = tiny_model("gemma")
    recipe = Recipe(
        source=str(src),
        target={"hidden": 64, "heads": 8, "kv_heads": 4},
        values={"default": {"method": "growth"}, "head": {"method": "mean_field"}},
    )
    plan, source = plan_recipe(recipe)
    assert plan.target_config.get("tie_word_embeddings", True) is not False
    assert any("logits scale by about 1.414" in w for w in plan.warnings)
    grown = load(export_recipe(recipe, tmp_path / "out", source=source, plan=plan))
    assert_close(model_output(grown, "gemma"), math.sqrt(2) * model_output(model, "gemma"), rtol=1e-4, atol=1e-5)
