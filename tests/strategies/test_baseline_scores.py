"""Baseline init (the architecture's own) and the neuron scores for by_norm."""

from __future__ import annotations

import torch
from strategy_sources import mlp_model, save_mlp

from core.plan import TargetSizes, make_plan
from core.sources import open_source
from core.strategies.scores import neuron_scores, score_fn
from core.transfer import build_state_dict

BASELINE = {"default": {"method": "baseline"}}


def test_llama_baseline_is_transformers_init(llama):
    plan = make_plan(llama, TargetSizes(hidden=64, layers=3, heads=8, ffn=96), values=BASELINE)
    state = build_state_dict(plan, llama)
    q = state["model.layers.2.self_attn.q_proj.weight"]
    assert q.shape == (64, 64) and abs(q.std().item() - 0.02) < 0.003  # initializer_range
    assert torch.equal(state["model.norm.weight"], torch.ones(64))
    again = build_state_dict(plan, llama)
    assert all(torch.equal(state[n], again[n]) for n in state)


def test_bert_prefixed_names_map_to_the_fresh_model(bert_path):
    source = open_source(bert_path)
    plan = make_plan(source, TargetSizes(hidden=16, heads=2, ffn=32), values=BASELINE)
    assert any(t.name.startswith("bert.") for t in plan.tensors)
    state = build_state_dict(plan, source)
    assert state["bert.encoder.layer.0.attention.self.query.weight"].shape == (16, 16)
    assert torch.equal(state["bert.embeddings.LayerNorm.weight"], torch.ones(16))


def test_mlp_baseline_is_pytorch_default(tmp_path):
    source = save_mlp(mlp_model([16, 24, 5]), tmp_path / "m.safetensors")
    plan = make_plan(source, TargetSizes(hidden=100), values=BASELINE)
    state = build_state_dict(plan, source)
    w = state["2.weight"]
    assert w.shape == (5, 100) and w.abs().max() <= 1 / 100**0.5 and w.abs().max() > 0.8 / 100**0.5


def test_scores_are_row_times_column_norms(tmp_path):
    model = mlp_model([16, 24, 20, 5])
    source = save_mlp(model, tmp_path / "m.safetensors")
    s = neuron_scores(source, "h0", None)
    expected = model[0].weight.detach().double().norm(dim=1) * model[2].weight.detach().double().norm(dim=0)
    torch.testing.assert_close(s, expected)
    summed = neuron_scores(source, "h1", None, combine="sum")
    torch.testing.assert_close(
        summed, model[2].weight.detach().double().norm(dim=1) + model[4].weight.detach().double().norm(dim=0)
    )
    with torch.no_grad():  # make neurons 3, 7, 11 of h0 dominant
        model[0].weight[[3, 7, 11]] *= 10
    source = save_mlp(model, tmp_path / "m2.safetensors")
    plan = make_plan(
        source, TargetSizes(hidden=8), index={"method": "by_norm", "params": {"power": 2.0}}, score_fn=score_fn(source)
    )
    assert {3, 7, 11} <= set(plan.dims["h0"].index)


def test_transformer_scores_cover_every_dimension(llama):
    sizes = {"hidden": 32, "ffn": 64, "heads": 4, "kv_heads": 2, "head_dim": 8}
    for dim, n in sizes.items():
        s = neuron_scores(llama, dim, 1)
        assert s.shape == (n,) and (s > 0).all(), dim
    plan = make_plan(llama, TargetSizes(hidden=16, ffn=32), index={"method": "by_norm"}, score_fn=score_fn(llama))
    assert len(plan.dims["hidden"].index) == 16


def test_multi_head_kv_scores_are_head_scores(bert_path):
    source = open_source(bert_path)
    torch.testing.assert_close(neuron_scores(source, "kv_heads", 0), neuron_scores(source, "heads", 0))
