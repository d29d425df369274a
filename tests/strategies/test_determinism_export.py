"""Every value strategy: same seed → same bytes; the export loads in transformers."""

from __future__ import annotations

import pytest
import torch

from core.export import ExportEntry, export_checkpoint
from core.plan import TargetSizes, make_plan
from core.sources import open_source
from core.transfer import build_state_dict

RECIPES = {
    "mean_field": {"default": {"method": "mean_field", "params": {"noise": 0.01}}},
    "growth": {"default": {"method": "growth", "params": {"noise": 0.01}}},
    "distribution": {
        "default": {"method": "distribution", "params": {"family": "kde", "scope": "row"}},
        "attn": {"method": "distribution", "params": {"family": "student_t", "scope": "role"}},
    },
    "covariance": {"default": {"method": "covariance"}},
    "mimetic": {"default": {"method": "mean_field"}, "attn": {"method": "mimetic"}},
    "templates": {
        "default": {"method": "mean_field"},
        "attn": {"method": "templates", "params": {"k": 4, "t1": 4, "t2": 4}},
        "mlp": {"method": "templates", "params": {"k": 4, "t1": 8, "t2": 8}},
    },
    "baseline": {"default": {"method": "baseline"}},
}
GROW = TargetSizes(layers=3, hidden=48, ffn=96, heads=6)


def _bytes(state: dict) -> dict:
    return {n: t.contiguous().view(torch.uint8).reshape(-1).numpy().tobytes() for n, t in state.items()}


def _export(plan, state, out):
    entries = [ExportEntry(t.name, tuple(t.shape), state[t.name].dtype) for t in plan.tensors]
    return export_checkpoint(out, entries=entries, produce=state.__getitem__, config=plan.target_config)


@pytest.mark.parametrize("strategy", sorted(RECIPES))
def test_same_seed_same_bytes_and_loads_in_transformers(llama_path, tmp_path, strategy):
    from transformers import LlamaForCausalLM

    source = open_source(llama_path)
    plan = make_plan(source, GROW, values=RECIPES[strategy], index={"method": "iid"}, seed=7)
    first = build_state_dict(plan, source)
    second = build_state_dict(
        make_plan(source, GROW, values=RECIPES[strategy], index={"method": "iid"}, seed=7), source
    )
    assert _bytes(first) == _bytes(second)
    other = build_state_dict(make_plan(source, GROW, values=RECIPES[strategy], index={"method": "iid"}, seed=8), source)
    assert _bytes(first) != _bytes(other)
    out = _export(plan, first, tmp_path / "out")
    model, info = LlamaForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.hidden_size == 48 and model.config.num_hidden_layers == 3
    torch.testing.assert_close(
        model.state_dict()["model.layers.2.mlp.up_proj.weight"], first["model.layers.2.mlp.up_proj.weight"]
    )
    with torch.no_grad():
        assert torch.isfinite(model(torch.randint(0, 100, (1, 8))).logits).all()


@pytest.mark.parametrize("strategy", ["mimetic", "growth", "baseline"])
def test_gpt2_exports_load(gpt2_path, tmp_path, strategy):
    from transformers import GPT2LMHeadModel

    source = open_source(gpt2_path)
    values = {"default": {"method": "growth"}, "attn": {"method": strategy}}
    plan = make_plan(source, TargetSizes(hidden=64, heads=8, layers=3), values=values)
    state = build_state_dict(plan, source)
    model, info = GPT2LMHeadModel.from_pretrained(_export(plan, state, tmp_path / "g"), output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        assert torch.isfinite(model(torch.randint(0, 100, (1, 8))).logits).all()
