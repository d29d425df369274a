"""Function-preserving growth: the grown model computes the source's function exactly.

Tolerance: with the cyclic k-fold clone every grown vector is its source repeated k times and
every fan-in sum is split k ways, so the only differences are float32 rounding in the
reordered sums (about 1e-7 relative here). RMSNorm's eps does not enter: the cloned hidden vector
has exactly the source's mean square. We allow atol 1e-5.
"""

from __future__ import annotations

import logging

import torch
from strategy_sources import mlp_model, save_mlp

from core.plan import TargetSizes, make_plan
from core.sources import open_source
from core.transfer import build_state_dict

GROWTH = {"default": {"method": "growth"}}


def _llama_from(plan, state):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {
        k: v for k, v in plan.target_config.items() if k not in ("architectures", "transformers_version", "model_type")
    }
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_llama_grown_in_width_and_depth_is_exact(llama_path):
    from transformers import LlamaForCausalLM

    source = open_source(llama_path)
    plan = make_plan(source, TargetSizes(layers=4, hidden=64, ffn=128, heads=8), values=GROWTH)
    assert plan.index["method"] == "cyclic"
    assert plan.target_sizes["kv_heads"] == 2 and sum(t.new_layer for t in plan.tensors) > 0
    grown = _llama_from(plan, build_state_dict(plan, source))
    original = LlamaForCausalLM.from_pretrained(llama_path).eval()
    x = torch.randint(0, 100, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(grown(x).logits, original(x).logits, atol=1e-5, rtol=1e-4)
        hidden_src = original.model(x).last_hidden_state
        hidden_new = grown.model(x).last_hidden_state
    torch.testing.assert_close(hidden_new, hidden_src.repeat(1, 1, 2), atol=1e-5, rtol=1e-4)


def test_new_blocks_write_nothing_to_the_residual(llama):
    plan = make_plan(llama, TargetSizes(layers=3), values=GROWTH)
    state = build_state_dict(plan, llama)
    new = [t for t in plan.tensors if t.new_layer]
    assert new
    for t in new:
        if t.writes_residual:
            assert not state[t.name].any(), t.name
        else:
            assert state[t.name].abs().sum() > 0, t.name


def test_mlp_widened_is_exact_and_noise_breaks_symmetry(tmp_path):
    model = mlp_model([16, 24, 20, 5])
    source = save_mlp(model, tmp_path / "mlp.safetensors")
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    # cyclic is surjective for any Ñ ≥ N, and elementwise activations need no k-fold clone
    plan = make_plan(source, TargetSizes(hidden=61), values=GROWTH)
    wide = mlp_model([16, 61, 61, 5])
    wide.load_state_dict(build_state_dict(plan, source))
    with torch.no_grad():
        torch.testing.assert_close(wide(x), model(x), atol=1e-5, rtol=1e-4)
    noisy = make_plan(
        source, TargetSizes(hidden=48), values={"default": {"method": "growth", "params": {"noise": 0.01}}}
    )
    state = build_state_dict(noisy, source)
    wide = mlp_model([16, 48, 48, 5])
    wide.load_state_dict(state)
    with torch.no_grad():  # the ± pairs cancel on the copied inputs: still the source's function
        torch.testing.assert_close(wide(x), model(x), atol=1e-5, rtol=1e-4)
    w = state["2.weight"]  # rows: h1 20→48, columns: h0 24→48, each column copied twice
    assert not torch.equal(w[:20], w[20:40])  # copied rows differ: the symmetry is broken
    assert 0 < (w[:, :24] - w[:, 24:]).std() < 0.05 * w.std()
    first = state["0.weight"]  # its fan-in (the input) is not copied, so no pair can cancel: no noise
    assert torch.equal(first[:24], model[0].weight.detach()) and torch.equal(first[24:], first[:24])


def test_tied_head_growth_is_untied_not_flagged(gpt2_path, caplog):
    """make_plan unties a tied head when growth widens hidden, so growth stays exact: no warning."""
    source = open_source(gpt2_path)
    plan = make_plan(source, TargetSizes(hidden=64, heads=8), values=GROWTH)
    assert plan.target_config["tie_word_embeddings"] is False
    with caplog.at_level(logging.WARNING):
        build_state_dict(plan, source)
    assert "tie_word_embeddings" not in caplog.text


def test_tied_head_kept_when_the_head_is_not_grown_is_flagged(gpt2_path, caplog):
    source = open_source(gpt2_path)
    kept = make_plan(
        source,
        TargetSizes(hidden=64, heads=8),
        values={"default": {"method": "growth"}, "head": {"method": "mean_field"}},
    )
    assert kept.target_config.get("tie_word_embeddings", True) is not False
    with caplog.at_level(logging.WARNING, logger="core.strategies.growth"):
        build_state_dict(kept, source)
    flagged = [r.getMessage() for r in caplog.records if r.name == "core.strategies.growth"]
    assert flagged and "tie_word_embeddings" in flagged[0]
