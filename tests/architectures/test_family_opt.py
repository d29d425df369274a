"""OPT: learned positions with their offset, project_in/out, pre-LN (opt-125m) and post-LN (opt-350m).

``opt`` is opt-125m-like (tied head, no projections); ``opt-350m`` has word_embed_proj_dim 16 <
hidden 32 (project_in/out) and do_layer_norm_before false. Every parameter is perturbed.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny_models import model_output
from torch.testing import assert_close

from core.errors import PlanError
from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe
from core.sources import open_source

GROWTH = {"default": {"method": "growth", "params": {}}}


def load(folder):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.mark.parametrize("family", ["opt", "opt-350m"])
def test_identity_transfer_reproduces_the_source_exactly(family, tiny_model, tmp_path):
    src, model, _ = tiny_model(family)
    out = export_recipe(Recipe(source=str(src)), tmp_path / "out")
    assert_close(model_output(load(out), family), model_output(model, family), rtol=0, atol=0)


@pytest.mark.parametrize(
    "family, target, proj",
    [
        ("opt", {"layers": 1, "hidden": 16, "heads": 2, "ffn": 32}, 16),  # no projections: follows hidden
        ("opt-350m", {"layers": 1, "hidden": 24, "heads": 3, "ffn": 32}, 16),  # kept: project_in/out resized
    ],
)
def test_shrinking_transfer_loads_and_runs(family, target, proj, tiny_model, tmp_path):
    src, _, _ = tiny_model(family)
    out = export_recipe(Recipe(source=str(src), target=target), tmp_path / "out")
    model = load(out)
    assert model.config.hidden_size == target["hidden"] and model.config.word_embed_proj_dim == proj
    assert torch.isfinite(model_output(model, family)).all()
    tensors = open_source(out).tensors
    # the position table keeps its max_position_embeddings + 2 rows
    assert tensors["model.decoder.embed_positions.weight"].shape == (66, target["hidden"])
    if family == "opt-350m":
        assert tensors["model.decoder.project_in.weight"].shape == (target["hidden"], proj)
        assert tensors["model.decoder.embed_tokens.weight"].shape == (100, proj)


def test_a_hidden_size_equal_to_word_embed_proj_dim_is_refused(tiny_model):
    src, _, _ = tiny_model("opt-350m")
    with pytest.raises(PlanError, match="equals word_embed_proj_dim"):
        plan_recipe(Recipe(source=str(src), target={"hidden": 16, "heads": 2}))


@pytest.mark.parametrize(
    "family, target",
    [
        ("opt", {"hidden": 64, "heads": 8, "ffn": 100, "layers": 4}),  # the tied head is untied
        ("opt-350m", {"hidden": 64, "heads": 8, "ffn": 100}),  # post-LN: width only
    ],
)
def test_growth_keeps_the_function(family, target, tiny_model, tmp_path):
    src, model, _ = tiny_model(family)
    plan, source = plan_recipe(Recipe(source=str(src), target=target, values=GROWTH))
    assert not plan.warnings
    out = export_recipe(Recipe(source=str(src), target=target, values=GROWTH), tmp_path / "out")
    assert (model_output(load(out), family, 12) - model_output(model, family, 12)).abs().max().item() < 1e-5


def test_growth_refuses_depth_growth_of_post_ln_blocks(tiny_model):
    src, _, _ = tiny_model("opt-350m")
    with pytest.raises(PlanError, match="post-LN"):
        plan_recipe(Recipe(source=str(src), target={"layers": 3}, values=GROWTH))
    src, _, _ = tiny_model("opt", name="pre-ln")
    plan, _ = plan_recipe(Recipe(source=str(src), target={"layers": 3}, values=GROWTH))
    assert any(link.new for link in plan.layer_map)
