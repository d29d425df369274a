"""Issue 2: identity transfers are exact, shrinking transfers load, for every supported family."""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny_models import FAMILIES, model_output
from torch.testing import assert_close

from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe
from core.sources import open_source
from core.transfer import build_state_dict


def run(model, family: str):
    return model_output(model, family)


def load(auto: str, folder):
    return getattr(transformers, auto).from_pretrained(folder).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_transfer_reproduces_the_source_exactly(family, tiny_model, tmp_path):
    src, model, auto = tiny_model(family)
    out = export_recipe(Recipe(source=str(src)), tmp_path / "out")
    assert_close(run(load(auto, out), family), run(model, family), rtol=0, atol=0)


SHRINK = {
    "bert": {"layers": 1, "hidden": 16, "heads": 2, "ffn": 32},
    "roberta": {"layers": 1, "hidden": 24, "heads": 3, "ffn": 40},
    "llama": {"layers": 1, "hidden": 16, "heads": 2, "kv_heads": 1, "ffn": 32},
    "qwen2": {"layers": 1, "hidden": 24, "heads": 2, "ffn": 48},
    "gpt2": {"layers": 1, "hidden": 16, "heads": 2, "ffn": 48},
    "vit": {"layers": 1, "hidden": 16, "heads": 2, "ffn": 32},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_shrinking_transfer_loads_and_runs(family, tiny_model, tmp_path):
    src, _, auto = tiny_model(family)
    out = export_recipe(Recipe(source=str(src), target=SHRINK[family]), tmp_path / "out")
    model = load(auto, out)
    assert sum(1 for _ in model.parameters()) > 0
    logits = run(model, family)
    assert torch.isfinite(logits).all()
    cfg = model.config
    assert cfg.hidden_size == SHRINK[family]["hidden"]
    assert cfg.num_hidden_layers == 1


def test_selection_gathers_consistent_rows_and_columns(tiny_model):
    """The target q_proj is the source q_proj restricted to the kept heads (rows) and hidden (cols)."""
    src, model, _ = tiny_model("llama")
    recipe = Recipe(source=str(src), target=SHRINK["llama"], index={"method": "random", "params": {}}, seed=7)
    plan, source = plan_recipe(recipe)
    sd = build_state_dict(plan, source)
    hidden = torch.tensor(plan.dims["hidden"].index)
    heads = plan.dims["heads@0"].index
    kv = plan.dims["kv_heads@0"].index
    hd = plan.target_sizes["head_dim"]
    rows = torch.tensor([h * hd + d for h in heads for d in range(hd)])
    q = source.read("model.layers.0.self_attn.q_proj.weight")
    assert_close(sd["model.layers.0.self_attn.q_proj.weight"], q[rows][:, hidden], rtol=0, atol=0)
    # GQA: every kept query head stays in the kv group that is kept with it.
    src_group = plan.source_sizes["heads"] // plan.source_sizes["kv_heads"]
    tgt_group = plan.target_sizes["heads"] // plan.target_sizes["kv_heads"]
    for t, h in enumerate(heads):
        assert h // src_group == kv[t // tgt_group]
    assert_close(sd["model.norm.weight"], source.read("model.norm.weight")[hidden], rtol=0, atol=0)


def test_gpt2_fused_qkv_keeps_each_block(tiny_model):
    src, _, _ = tiny_model("gpt2")
    plan, source = plan_recipe(Recipe(source=str(src), target={"hidden": 16, "heads": 2}))
    sd = build_state_dict(plan, source)
    w = source.read("transformer.h.0.attn.c_attn.weight")  # Conv1D: (in=32, out=3*32)
    got = sd["transformer.h.0.attn.c_attn.weight"]
    assert got.shape == (16, 48)
    for block in range(3):
        assert_close(got[:, block * 16 : (block + 1) * 16], w[:16, block * 32 : block * 32 + 16], rtol=0, atol=0)


def test_tied_embeddings_stay_tied(tiny_model, tmp_path):
    src, _, auto = tiny_model("qwen2")
    assert "lm_head.weight" not in open_source(src).tensors
    out = export_recipe(Recipe(source=str(src), target=SHRINK["qwen2"]), tmp_path / "out")
    assert "lm_head.weight" not in open_source(out).tensors
    model = load(auto, out)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_sharded_source_and_sharded_export_round_trip(tmp_path):
    from tiny_models import build_tiny

    src = tmp_path / "sharded"
    model, auto = build_tiny("llama", src)
    model.save_pretrained(src, safe_serialization=True, max_shard_size="20KB")
    (src / "model.safetensors").unlink(missing_ok=True)
    source = open_source(src)
    assert len(source.files) > 2
    out = export_recipe(Recipe(source=str(src), max_shard_size="30KB"), tmp_path / "out")
    assert (out / "model.safetensors.index.json").is_file()
    assert len(list(out.glob("model-*.safetensors"))) > 2
    assert_close(run(load(auto, out), "llama"), run(model, "llama"), rtol=0, atol=0)


def test_same_recipe_gives_the_same_bytes(tiny_model, tmp_path):
    src, _, _ = tiny_model("bert")
    recipe = Recipe(source=str(src), target=SHRINK["bert"], index={"method": "random", "params": {}}, seed=11)
    a = export_recipe(recipe, tmp_path / "a")
    b = export_recipe(recipe, tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    recipe.seed = 12
    c = export_recipe(recipe, tmp_path / "c")
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_recipe_in_export_reproduces_it(tiny_model, tmp_path):
    src, _, _ = tiny_model("gpt2")
    a = export_recipe(Recipe(source=str(src), target=SHRINK["gpt2"], seed=3), tmp_path / "a")
    again = Recipe.load(a)
    # a first run records each shard's size and header, and a SHA-256 of the bytes it read
    assert again.provenance["verify"] == "reads" and again.provenance["files"]["model.safetensors"]["size"] > 0
    assert len(again.provenance["reads"]["sha256"]) == 64 and again.provenance["reads"]["bytes"] > 0
    assert again.provenance["identity"]["path"]
    b = export_recipe(again, tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert Recipe.load(b).provenance["reads"] == again.provenance["reads"]


def test_demo_model_identity_transfer_is_exact(tmp_path):
    source = open_source("demo")
    out = export_recipe(Recipe(source="demo"), tmp_path / "demo")
    original = transformers.AutoModel.from_pretrained(source.root).eval()
    exported = transformers.AutoModel.from_pretrained(out).eval()
    ids = torch.randint(0, 30522, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert_close(
            exported(input_ids=ids).last_hidden_state, original(input_ids=ids).last_hidden_state, rtol=0, atol=0
        )
    assert (out / "tokenizer.json").is_file() and (out / "graft_recipe.json").is_file()
