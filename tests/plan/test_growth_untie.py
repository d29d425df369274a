"""Growth of a tied-head model unties the head so the grown logits equal the source's."""

from __future__ import annotations

import torch
import transformers
from tiny_models import build_tiny
from torch.testing import assert_close

from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe

GROW = {"default": {"method": "growth", "params": {}}}


def test_growing_gpt2_hidden_unties_the_head_and_preserves_logits(tmp_path):
    model, _ = build_tiny("gpt2", tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), target={"hidden": 64, "heads": 8}, values=GROW)
    plan, _ = plan_recipe(recipe)
    assert plan.target_config["tie_word_embeddings"] is False
    assert plan.tensor("lm_head.weight").source_name == "transformer.wte.weight"
    grown = transformers.AutoModelForCausalLM.from_pretrained(export_recipe(recipe, tmp_path / "out")).eval()
    ids = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert_close(grown(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-4, atol=1e-5)


def test_selection_keeps_the_head_tied(tmp_path):
    build_tiny("gpt2", tmp_path / "src")
    plan, _ = plan_recipe(Recipe(source=str(tmp_path / "src"), target={"hidden": 16, "heads": 2}))
    assert plan.target_config.get("tie_word_embeddings", True) is not False
    assert all(t.name != "lm_head.weight" for t in plan.tensors)
