"""Mimetic attention: per head, W_Q W_Kᵀ has a dominant positive diagonal and W_V W_O a negative one."""

from __future__ import annotations

import pytest
import torch

from core.errors import PlanError, StrategyError
from core.plan import TargetSizes, make_plan
from core.sources import open_source
from core.transfer import build_state_dict

MIMETIC = {"default": {"method": "growth"}, "attn": {"method": "mimetic"}}


def _diag_stats(m: torch.Tensor) -> tuple[float, float]:
    d = torch.diagonal(m)
    off = m - torch.diag(d)
    return d.mean().item(), off.abs().sum().item() / (m.numel() - d.numel())


def test_llama_gqa_heads_are_mimetic(llama):
    plan = make_plan(llama, TargetSizes(hidden=64, heads=8, kv_heads=2, ffn=128, head_dim=32), values=MIMETIC)
    state = build_state_dict(plan, llama)
    D, H, KV, d = 64, 8, 2, 32
    p = "model.layers.1.self_attn."
    q, k = state[p + "q_proj.weight"], state[p + "k_proj.weight"]
    v, o = state[p + "v_proj.weight"], state[p + "o_proj.weight"]
    assert q.shape == (H * d, D) and k.shape == (KV * d, D) and o.shape == (D, H * d)
    for h in range(H):
        g = h // (H // KV)
        qk = q[h * d : (h + 1) * d].T.double() @ k[g * d : (g + 1) * d].double()  # hidden × hidden
        vo = o[:, h * d : (h + 1) * d].double() @ v[g * d : (g + 1) * d].double()
        diag, off = _diag_stats(qk)
        assert diag > 0.25 and diag > 3 * off, (h, diag, off)
        diag, off = _diag_stats(vo)
        assert diag < -0.1 and -diag > 2 * off, (h, diag, off)
    # the first head of each kv group is the plain rank-d SVD factorisation
    assert _diag_stats(q[:d].T.double() @ k[:d].double())[0] > 0.3


def test_gpt2_fused_qkv_with_reversed_signs(gpt2_path):
    source = open_source(gpt2_path)
    values = {
        "default": {"method": "select"},
        "attn": {"method": "mimetic", "params": {"qk_sign": "negative", "vo_sign": "positive"}},
    }
    plan = make_plan(source, TargetSizes(), values=values)
    state = build_state_dict(plan, source)
    name = next(n for n in state if n.endswith("h.0.attn.c_attn.weight"))
    w = state[name]  # Conv1D (in, out) = (D, 3·H·d)
    D, d = 32, 8
    q, k, v = w[:, :D], w[:, D : 2 * D], w[:, 2 * D :]
    o = state[name.replace("c_attn", "c_proj")]  # (H·d, D)
    for h in range(4):
        sl = slice(h * d, (h + 1) * d)
        assert _diag_stats(q[:, sl].double() @ k[:, sl].double().T)[0] < -0.3
        assert _diag_stats(v[:, sl].double() @ o[sl].double())[0] > 0.1  # x ↦ x W_V W_O
    assert not state[name.replace("weight", "bias")].any()


def test_non_attention_roles_are_refused(llama):
    # Model-wide, mimetic fills attention and the other roles fall back to select, said in the plan ...
    plan = make_plan(llama, TargetSizes(), values={"default": {"method": "mimetic"}})
    assert {t.strategy for t in plan.tensors if t.role.startswith("attn.")} == {"mimetic"}
    assert {t.fallback_from for t in plan.tensors if not t.role.startswith("attn.")} == {"mimetic"}
    assert plan.warnings and plan.warnings[0].startswith("mimetic cannot fill")
    # ... set for a role explicitly, it is refused at plan time (the app shows it inline) ...
    with pytest.raises(PlanError, match=r"mimetic only fills roles attn\.q.*given (embed|norm|mlp)"):
        make_plan(llama, TargetSizes(), values={"default": {"method": "select"}, "mlp": {"method": "mimetic"}})
    # ... and by the strategy itself, for a plan built by hand.
    plan = make_plan(llama, TargetSizes(), values={"default": {"method": "select"}})
    up = next(t for t in plan.tensors if t.role == "mlp.up")
    up.strategy = "mimetic"
    with pytest.raises(StrategyError, match="only applies to attention"):
        build_state_dict(plan, llama)


def test_an_override_for_a_role_the_model_lacks_is_refused(llama):
    with pytest.raises(
        PlanError, match=r"no tensor of this llama model has role 'atn'; override one of its roles \(.*attn\.q"
    ):
        make_plan(llama, TargetSizes(), values={"default": {"method": "select"}, "atn": {"method": "mimetic"}})


def test_q_and_k_agree_when_filled_separately(llama):
    from core.transfer import fill_tensor

    plan = make_plan(llama, TargetSizes(), values=MIMETIC)
    q = fill_tensor(plan, plan.tensor("model.layers.0.self_attn.q_proj.weight"), llama, cache={})
    k = fill_tensor(plan, plan.tensor("model.layers.0.self_attn.k_proj.weight"), llama, cache={})
    state = build_state_dict(plan, llama)
    assert torch.equal(q, state["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(k, state["model.layers.0.self_attn.k_proj.weight"])
    other = state["model.layers.1.self_attn.q_proj.weight"]
    assert not torch.equal(q, other)  # every layer draws its own Z
