"""Mimetic attention initialisation (Trockman & Kolter, ICML 2023; METHODS.md §6).

Trained attention heads show W_Q W_Kᵀ ≈ a positive multiple of I and W_V W_O ≈ a negative one
(the paper's row-vector convention, x W). Per head h, with D the residual width and d the head
size, draw Z_h (D × D, entries N(0, 1/D)) and factor

    M_qk = α_qk Z + s_qk β_qk I          (s_qk = +1 "positive", −1 "negative")
    M_vo = α_vo Z' + s_vo β_vo I         (s_vo = −1 by default)

by the SVD M = U S Vᵀ truncated to rank d. In PyTorch's (out, in) layout the head's query rows
are √S Uᵀ and its key rows √S Vᵀ, so W_qᵀ W_k = U S Vᵀ ≈ M (the hidden × hidden bilinear form
of the attention logits); the output columns are U √S and the value rows √S Vᵀ, so the map
x ↦ W_o W_v x ≈ M. GPT-2's heads show the reverse signs: set ``qk_sign=negative``,
``vo_sign=positive``.

Grouped-query attention: a kv head serves r query heads. Its key (value) rows come from the SVD
of its group's first head; every query (output) head h of the group then takes the least-squares
factor against them: W_q^hᵀ = M_h V S^{-1/2}, so W_q^hᵀ W_k = M_h V Vᵀ — exact for the first
head, and the projection of M_h onto the key's row space for the others (diagonal still ≈ β d/D).

q and k (v and o) are filled by separate calls: both regenerate the same Z's from
``ctx.layer_generator`` and return their own factor. No source tensor is needed; biases are zero.
Only attention roles (attn.q, attn.k, attn.v, attn.o, GPT-2's fused attn.qkv) are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import StrategyError
from core.params import param
from core.strategies.base import ValueStrategy, register

ROLES = ("attn.q", "attn.k", "attn.v", "attn.o", "attn.qkv")


@dataclass(frozen=True)
class MimeticParams:
    alpha_qk: float = param(0.7, help="weight of the random part of W_Q W_Kᵀ", min=0.0, max=10.0)
    beta_qk: float = param(0.7, help="weight of the identity in W_Q W_Kᵀ", min=0.0, max=10.0)
    alpha_vo: float = param(0.4, help="weight of the random part of W_V W_O", min=0.0, max=10.0)
    beta_vo: float = param(0.4, help="weight of the identity in W_V W_O", min=0.0, max=10.0)
    qk_sign: str = param(
        "positive", help="sign of the identity in W_Q W_Kᵀ (GPT-2 shows negative)", choices=("positive", "negative")
    )
    vo_sign: str = param(
        "negative", help="sign of the identity in W_V W_O (GPT-2 shows positive)", choices=("negative", "positive")
    )


def _z(ctx, pair: str, head: int, dim: int):
    import torch

    g = ctx.layer_generator("mimetic", pair, head)
    return torch.randn((dim, dim), generator=g, dtype=torch.float64) / dim**0.5


def _top_svd(M, d: int):
    """Top-d singular triplets (U (D×d), S (d,), V (D×d)) of M via the eigenvectors of MᵀM.

    A symmetric eigensolver is several times faster than a full SVD on CPU; the top singular
    values of αZ + βI are well separated from zero, so squaring the condition costs nothing here.
    """
    import torch

    vals, vecs = torch.linalg.eigh(M.T @ M)
    order = vals.argsort(descending=True)[:d]
    S = vals[order].clamp_min(1e-30).sqrt()
    V = vecs[:, order]
    V = V * torch.sign(V.sum(0, keepdim=True) + 1e-300)  # a fixed sign per vector: reproducible bytes
    U = (M @ V) / S[None, :]
    return U, S, V


def _pair_factors(params, ctx, pair: str):
    """(left factors per query/output head, right factor per kv head) for one layer; cached.

    Returns:
        ``heads``: list of (D × d) matrices — W_q^hᵀ (pair "qk") or W_o^h (pair "vo");
        ``kv``: list of (d × D) matrices — W_k^g or W_v^g.
    """
    import torch

    key = ("mimetic", ctx.tensor.layer, pair, ctx.plan.seed, tuple(sorted(vars(params).items())))
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached
    sizes = ctx.plan.target_sizes
    D, H, d = sizes["hidden"], sizes["heads"], sizes["head_dim"]
    KV = sizes.get("kv_heads", H)
    if d > D:
        raise StrategyError(f"mimetic init needs head_dim ({d}) ≤ hidden ({D})")
    alpha, beta = (params.alpha_qk, params.beta_qk) if pair == "qk" else (params.alpha_vo, params.beta_vo)
    sign = {"positive": 1.0, "negative": -1.0}[params.qk_sign if pair == "qk" else params.vo_sign]
    eye = torch.eye(D, dtype=torch.float64)
    r = H // KV
    heads, kv = [None] * H, []
    for g in range(KV):
        first = g * r
        M = alpha * _z(ctx, pair, first, D) + sign * beta * eye
        U, S, V = _top_svd(M, d)
        root = S.sqrt()
        right = root[:, None] * V.T  # (d, D): W_k^g or W_v^g
        kv.append(right)
        heads[first] = U * root[None, :]  # (D, d)
        pinv = V / root[None, :]  # (D, d) = V S^{-1/2}
        for h in range(first + 1, first + r):
            M_h = alpha * _z(ctx, pair, h, D) + sign * beta * eye
            heads[h] = M_h @ pinv
    ctx.cache[key] = (heads, kv)
    return heads, kv


@register
class Mimetic(ValueStrategy):
    name = "mimetic"
    summary = "mimetic attention: per head W_Q W_Kᵀ ≈ αZ + βI and W_V W_O ≈ αZ − βI, no source needed"
    Params = MimeticParams
    default_index = "cyclic"
    can_grow = True
    roles = ROLES

    def fill(self, params, ctx):
        import torch

        t = ctx.tensor
        if t.role not in ROLES:
            raise StrategyError(
                f"mimetic init only applies to attention projections ({', '.join(ROLES)}), "
                f"not {t.name} (role {t.role}); assign another strategy to that role"
            )
        if len(ctx.shape) == 1:
            return torch.zeros(ctx.shape, dtype=torch.float32)
        transposed = t.fan_in == 0  # GPT-2 Conv1D stores (in, out)
        if t.role == "attn.qkv":
            q_heads, k_kv = _pair_factors(params, ctx, "qk")
            _, v_kv = _pair_factors(params, ctx, "vo")
            blocks = [torch.cat([h.T for h in q_heads]), torch.cat(k_kv), torch.cat(v_kv)]
            out = torch.cat(blocks)  # (3·H·d, D) in (out, in) layout
        elif t.role == "attn.q":
            out = torch.cat([h.T for h in _pair_factors(params, ctx, "qk")[0]])
        elif t.role == "attn.k":
            out = torch.cat(_pair_factors(params, ctx, "qk")[1])
        elif t.role == "attn.v":
            out = torch.cat(_pair_factors(params, ctx, "vo")[1])
        else:  # attn.o: (D, H·d)
            out = torch.cat(_pair_factors(params, ctx, "vo")[0], dim=1)
        if transposed:
            out = out.T
        if tuple(out.shape) != ctx.shape:
            raise StrategyError(
                f"mimetic init built {tuple(out.shape)} for {t.name} but the plan expects {ctx.shape}; "
                "the target's hidden/heads/head_dim do not match this tensor"
            )
        return out.to(torch.float32).contiguous()
