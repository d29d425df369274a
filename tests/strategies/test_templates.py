"""WAVE templates: exact with all templates, monotonically worse with fewer; scalers identifiable."""

from __future__ import annotations

import pytest
import torch

from core.errors import PlanError, StrategyError
from core.plan import TargetSizes, make_plan
from core.strategies.templates import assemble, scalers_of
from core.transfer import build_state_dict, fill_tensor


def _errors(llama, k: int, t: int = 4):
    plan = make_plan(
        llama,
        TargetSizes(),
        values={"default": {"method": "select"}, "mlp": {"method": "templates", "params": {"k": k, "t1": t, "t2": t}}},
    )
    cache: dict = {}
    for tp in plan.tensors:
        fill_tensor(plan, tp, llama, cache=cache)
    return cache["wave_error"], cache


def test_identity_size_with_all_templates_is_exact(llama):
    errors, _ = _errors(llama, k=16)
    assert errors and max(errors.values()) < 1e-10
    plan = make_plan(
        llama,
        TargetSizes(),
        values={"default": {"method": "select"}, "mlp": {"method": "templates", "params": {"k": 16, "t1": 4, "t2": 4}}},
    )
    name = "model.layers.1.mlp.up_proj.weight"
    torch.testing.assert_close(fill_tensor(plan, plan.tensor(name), llama), llama.read(name), atol=1e-6, rtol=0)


def test_fewer_templates_larger_error_monotonically(llama):
    curves = [(_errors(llama, k)[0]) for k in (1, 2, 4, 8, 12, 16)]
    for name in curves[0]:
        errs = [c[name] for c in curves]
        assert all(a >= b - 1e-12 for a, b in zip(errs, errs[1:])), (name, errs)
        assert errs[0] > errs[-1] + 0.1


def test_scalers_are_recoverable_and_targets_resize(llama):
    plan = make_plan(
        llama,
        TargetSizes(hidden=64, ffn=128),
        index={"method": "cyclic"},
        values={"default": {"method": "growth"}, "mlp": {"method": "templates", "params": {"k": 4, "t1": 4, "t2": 4}}},
    )
    cache: dict = {}
    state = {t.name: fill_tensor(plan, t, llama, cache=cache) for t in plan.tensors}
    name = "model.layers.0.mlp.down_proj.weight"
    w = state[name].double()
    assert w.shape == (64, 128)
    templates = cache["wave_templates"][name]
    s = scalers_of(w, templates)
    assert s.shape == (4, 16, 32)
    torch.testing.assert_close(assemble(s, templates), w, atol=1e-6, rtol=0)
    interp = make_plan(
        llama,
        TargetSizes(hidden=64, ffn=128),
        index={"method": "cyclic"},
        values={
            "default": {"method": "growth"},
            "mlp": {"method": "templates", "params": {"k": 4, "t1": 4, "t2": 4, "resize": "interpolate"}},
        },
    )
    assert fill_tensor(interp, interp.tensor(name), llama).shape == (64, 128)


def test_indivisible_sizes_are_refused_clearly(llama):
    # Set for a role explicitly, a tile that does not divide is refused when the plan is made ...
    with pytest.raises(
        PlanError,
        match=r"templates of 8×8 do not tile the target's 100×32 \(model.embed_tokens.weight\); "
        r"choose another strategy for role embed",
    ):
        make_plan(llama, TargetSizes(), values={"default": {"method": "select"}, "embed": {"method": "templates"}})
    # ... model-wide, that tensor falls back to select (the plan says so) ...
    plan = make_plan(llama, TargetSizes(), values={"default": {"method": "templates", "params": {"t1": 8, "t2": 8}}})
    assert plan.tensor("model.embed_tokens.weight").strategy == "select"
    # ... and a plan edited by hand still meets the strategy's own check.
    plan.tensor("model.embed_tokens.weight").strategy = "templates"
    plan.tensor("model.embed_tokens.weight").params = {"t1": 8, "t2": 8}
    with pytest.raises(StrategyError, match="do not tile"):
        build_state_dict(plan, llama)  # the 100-row embedding
