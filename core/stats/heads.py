"""Per-head attention maps: W_Q W_Kᵀ and W_V W_O on the hidden dimension.

Input weights are in PyTorch (out, in) layout: ``q`` (heads·head_dim, hidden), ``k`` and ``v``
(kv_heads·head_dim, hidden), ``o`` (hidden, heads·head_dim). For head h with rows
Q_h = q[h·d:(h+1)·d], K_h = k[g·d:(g+1)·d] (g = h // (heads/kv_heads): query heads share their
kv group as in transformers' ``repeat_kv``), V_h likewise, O_h = o[:, h·d:(h+1)·d]:

- QK map  = Q_hᵀ K_h   (hidden × hidden): the bilinear form x_i · QK · x_jᵀ is the attention
  logit (up to 1/√d) — Trockman & Kolter's W_Q W_Kᵀ in their row-vector convention;
- VO map  = V_hᵀ O_hᵀ  (hidden × hidden): the head's value-output map x ↦ x · VO — their W_V W_O.

Mimetic initialisation imitates what these look like in trained models: QK ≈ +αI, VO ≈ ±βI.
Two scalars per head measure it:

- ``diag_dominance`` = mean diagonal / mean |off-diagonal|: ≫ 1 for a map close to a positive
  multiple of the identity, ≪ −1 for a negative one, ≈ 0 ± 1/√hidden-ish for no identity
  component. The diagonal mean is exact (over the whole hidden dimension: the diagonal costs
  heads·head_dim·hidden products); the off-diagonal mean is estimated on the subsampled block.
- ``trace_sign``: the sign of the exact trace (+1, −1, or 0).

NaN/±Inf weights make the map entries they touch NaN, their heads' dominance NaN and their
trace sign 0.

The returned maps are restricted to a fixed-seed subset of at most ``max_hidden`` hidden
indices (the same for QK and VO, and for every head) so that they display as heat maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.errors import StatsError
from core.stats.sampling import DEFAULT_SEED, as_tensor, index_subset, to_float32


@dataclass(frozen=True, eq=False)
class HeadMaps:
    """Per-head QKᵀ and VO maps on a hidden subset, plus identity-likeness scalars.

    Attributes:
        qk, vo: (heads, s, s) float32 maps on the hidden subset.
        hidden_indices: (s,) the hidden indices shown.
        qk_diag_dominance, vo_diag_dominance: (heads,) mean diagonal / mean |off-diagonal|.
        qk_trace_sign, vo_trace_sign: (heads,) sign of the exact trace.
    """

    qk: np.ndarray
    vo: np.ndarray
    hidden_indices: np.ndarray
    qk_diag_dominance: np.ndarray
    vo_diag_dominance: np.ndarray
    qk_trace_sign: np.ndarray
    vo_trace_sign: np.ndarray

    @property
    def num_heads(self) -> int:
        return self.qk.shape[0]

    def summary(self) -> dict:
        """Per-head scalars as plain lists (for JSON and tables; NaN as None)."""

        def finite(values: np.ndarray) -> list:
            return [float(v) if np.isfinite(v) else None for v in values]  # JSON has no NaN

        return {
            "qk_diag_dominance": finite(self.qk_diag_dominance),
            "vo_diag_dominance": finite(self.vo_diag_dominance),
            "qk_trace_sign": self.qk_trace_sign.tolist(),
            "vo_trace_sign": self.vo_trace_sign.tolist(),
        }


def _dominance(diag_mean: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    s = block.shape[-1]
    if s < 2:
        return torch.full_like(diag_mean, float("nan"))
    off = block.abs().sum(dim=(1, 2)) - block.diagonal(dim1=1, dim2=2).abs().sum(dim=1)
    off_mean = off / (s * (s - 1))
    return diag_mean / torch.where(off_mean > 0, off_mean, torch.full_like(off_mean, float("nan")))


def _nan_if_not_finite(x: torch.Tensor) -> torch.Tensor:
    """±Inf products (from ±Inf weights) as NaN: undefined, like the NaN ones, and drawable."""
    return torch.where(torch.isfinite(x), x, torch.full_like(x, float("nan")))


def _sign(diag: torch.Tensor) -> np.ndarray:
    """Sign of each head's trace as int8; 0 where the trace is NaN (NaN/Inf weights)."""
    return torch.nan_to_num(torch.sign(diag.double().sum(1)), nan=0.0).cpu().numpy().astype(np.int8)


def head_maps(
    q,
    k,
    v,
    o,
    num_heads: int,
    num_kv_heads: int | None = None,
    head_dim: int | None = None,
    *,
    max_hidden: int | None = 256,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> HeadMaps:
    """Per-head W_Q W_Kᵀ and W_V W_O maps (see the module docstring for the conventions).

    Args:
        q: (heads·head_dim, hidden). k, v: (kv_heads·head_dim, hidden). o: (hidden, heads·head_dim).
        num_heads: query heads. num_kv_heads: key/value heads (GQA/MQA; default num_heads).
        head_dim: per-head size (default q.shape[0] // num_heads).
        max_hidden: at most this many hidden indices in the returned maps (None: all).
        seed: hidden subset seed.
        device: where the products run.

    Returns:
        :class:`HeadMaps` with maps of shape (heads, s, s), s = min(hidden, max_hidden).
    """
    num_kv_heads = num_kv_heads or num_heads
    head_dim = head_dim or q.shape[0] // num_heads
    qt, kt, vt, ot = (to_float32(as_tensor(t, device)).reshape(t.shape[0], -1) for t in (q, k, v, o))
    hidden = qt.shape[1]
    expected = {
        "q": (qt.shape, (num_heads * head_dim, hidden)),
        "k": (kt.shape, (num_kv_heads * head_dim, hidden)),
        "v": (vt.shape, (num_kv_heads * head_dim, hidden)),
        "o": (ot.shape, (hidden, num_heads * head_dim)),
    }
    for name, (got, want) in expected.items():
        if tuple(got) != want:
            raise StatsError(
                f"{name} has shape {tuple(got)} but {num_heads} heads, {num_kv_heads} kv heads and head_dim "
                f"{head_dim} need {want}; check the head counts"
            )
    if num_heads % num_kv_heads:
        raise StatsError(f"{num_heads} query heads cannot share {num_kv_heads} kv heads evenly")
    group = num_heads // num_kv_heads
    qh = qt.reshape(num_heads, head_dim, hidden)
    kh = kt.reshape(num_kv_heads, head_dim, hidden).repeat_interleave(group, dim=0)
    vh = vt.reshape(num_kv_heads, head_dim, hidden).repeat_interleave(group, dim=0)
    oh = ot.T.reshape(num_heads, head_dim, hidden)  # O_hᵀ rows: (heads, head_dim, hidden)

    idx = index_subset(hidden, max_hidden, seed=seed)
    sel = torch.from_numpy(idx).to(qh.device)
    qs, ks, vs, os_ = (t.index_select(2, sel) for t in (qh, kh, vh, oh))
    qk = _nan_if_not_finite(qs.transpose(1, 2) @ ks)  # (heads, s, s)
    vo = _nan_if_not_finite(vs.transpose(1, 2) @ os_)

    qk_diag = (qh * kh).sum(dim=1)  # (heads, hidden): exact diagonals
    vo_diag = (vh * oh).sum(dim=1)
    return HeadMaps(
        qk=qk.cpu().numpy(),
        vo=vo.cpu().numpy(),
        hidden_indices=idx,
        qk_diag_dominance=_dominance(qk_diag.mean(1), qk).cpu().numpy(),
        vo_diag_dominance=_dominance(vo_diag.mean(1), vo).cpu().numpy(),
        qk_trace_sign=_sign(qk_diag),
        vo_trace_sign=_sign(vo_diag),
    )
