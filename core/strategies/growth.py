"""Function-preserving growth (Net2Net's Net2WiderNet / Net2DeeperNet; HyperCloning).

Wider: each target neuron copies a source neuron through the shared dimension maps (incoming
rows copied), and each fan-in column is divided by how many target neurons copy its source
(``ctx.fan_in_counts()``), so the next layer's input is unchanged. Deeper: in an inserted block
the tensors that write the residual stream (o_proj, down_proj and their biases) are zero, so a
pre-LN block adds nothing.

The default index is ``cyclic`` (i mod N): when Ñ = kN every neuron is cloned exactly k times,
which keeps the mean and variance over a grown *hidden* vector, so LayerNorm / RMSNorm see the
same statistics and the grown network is exactly the source function (HyperCloning). A
non-multiple hidden size keeps the MLP layers exact but not normalised residual streams; a map
that misses source neurons (``iid``, ``by_norm``, any shrink) drops their contribution, so growth
is exact only with a surjective map — ``cyclic`` with Ñ ≥ N. Other dimensions (ffn, heads, and
head_dim without rotary embeddings) may grow by any amount.

Attention with a grown head_dim: a head of size d̃ whose dims copy source dim i c_i times computes
Σ_i c_i q_i k_i / √d̃ instead of Σ_i q_i k_i / √d. Queries and keys are both multiplied by
s_i = (d̃/d)^¼ / √c_i, so that c_i s_i² = √(d̃/d) and every attention logit equals the source's
(for a k-fold clone s = k^(-¼) on both, HyperCloning's OPT rule). With q/k norms over head_dim
(Qwen3) the factor goes on the norm weights, which the projections' scale cannot pass. Rotary
embeddings make a cloned head_dim inexact (their frequencies depend on head_dim), so the plan
refuses it unless ``allow_inexact``, as it refuses depth growth of post-LN blocks (BERT): see
``_growth_checks.py`` for why, and for the only exact constructions there are. Gemma scales its embeddings
by √hidden; a grown embedding is divided by √(Ñ/N) to keep the residual stream's scale (after any
strategy: ``core.transfer.embedding_divisor``). GPT-2
with ``scale_attn_by_inverse_layer_idx`` divides layer j's logits by j + 1; a source block moved
from l to j by inserted blocks gets √((j + 1)/(l + 1)) on its queries and keys.

Noise (HyperCloning's symmetry breaking): for each input neuron copied c times, its copies'
fan-in columns get +ε and −ε in pairs (ε drawn per row, std ``noise`` × the tensor's std), so the
pair adds ε·x − ε·x = 0 and the function is kept while the copies' weights differ; with an odd c
the last copy is left as it is. Tensors without a duplicated fan-in (embeddings, norms, biases)
get none: their copies must stay equal.

Limitation — tied embeddings: a tied LM head reads the hidden dimension with the embedding
matrix itself, which is copied (it writes the hidden vector) and cannot also be divided. The
plan unties such a head when growth widens hidden; a head kept tied (filled by another strategy)
makes logits k× the source's, and the plan warns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from core.architectures.spec import LM_HEAD_MARKERS, axis_atoms, is_concat
from core.params import param
from core.strategies._common import add_paired_noise, along
from core.strategies._growth_checks import growth_exactness
from core.strategies.base import ValueStrategy, gather_reads, register

__all__ = ["Growth", "GrowthParams", "growth_exactness", "tied_growth_warning"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrowthParams:
    noise: float = param(
        0.0,
        help="symmetry-breaking noise, std relative to the tensor's std, added as ± pairs on the "
        "copies of each duplicated input neuron so the function is kept (HyperCloning)",
        min=0.0,
        max=1.0,
    )
    allow_inexact: bool = param(
        False,
        help="grow where growth cannot keep the function (post-LN depth, rotary "
        "head_dim) instead of refusing; the plan warns",
    )


def tied_growth_warning(plan) -> str | None:
    """A sentence when growth cannot be exact because the LM head is tied to a grown embedding."""
    from core.architectures.spec import FAMILIES

    cfg = plan.target_config or {}
    spec = FAMILIES.find(plan.family)
    # tied_head_for: None where the tied head does not read hidden (OPT's project_out space).
    tied = spec is not None and spec.is_tied(cfg) and spec.tied_head_for(cfg) is not None
    arch = (cfg.get("architectures") or [""])[0]
    lm_head = any(k in arch for k in LM_HEAD_MARKERS)
    src, tgt = plan.source_sizes.get("hidden"), plan.target_sizes.get("hidden")
    if tied and lm_head and src and tgt and tgt > src:
        # A Gemma embedding is also divided by √(Ñ/N) (core.transfer.embedding_divisor): the tied head reads that.
        factor = math.sqrt(tgt / src) if cfg.get("model_type") in spec.sqrt_hidden_embedding else tgt / src
        return (
            f"the LM head is tied to the embeddings and hidden grows {src}→{tgt}: logits scale by about "
            f"{factor:.4g}; set tie_word_embeddings to false in the target to keep the function exactly"
        )
    return None


def _axis_with(t, dim: str) -> int | None:
    """The output axis of ``t`` that carries ``dim`` (not the fan-in), or None."""
    return next((a for a, keys in enumerate(t.axes) if dim in axis_atoms(keys) and a != t.fan_in), None)


def _has_qk_norm(plan, t) -> bool:
    """Whether ``t`` (a q or k projection) feeds a norm over head_dim in its layer (Qwen3's q_norm / k_norm)."""
    which = "q_norm" if t.role == "attn.q" else "k_norm"
    return any(
        o.layer == t.layer and o.role == "norm" and o.axes == [["head_dim"]] and which in o.name for o in plan.tensors
    )


def qk_scale(ctx):
    """(axis, factors) that make every attention logit of the grown model equal the source's, or None.

    Applies to the queries and keys (GPT-2's q and k blocks of ``c_attn``) and to q/k norms over
    head_dim, which then carry the factor instead. Factors, on q and on k alike:

    * a grown head_dim: s = (d̃/d)^¼ / √c per target dim, c the number of copies of its source dim;
    * GPT-2 with ``scale_attn_by_inverse_layer_idx``, whose logits are divided by the layer
      number + 1: √((j + 1)/(l + 1)) for source layer l moved to target layer j by inserted blocks.
    """
    import torch

    plan, t = ctx.plan, ctx.tensor
    if t.role in ("attn.q", "attn.k", "attn.qkv"):
        if t.role != "attn.qkv" and _has_qk_norm(plan, t):
            return None
    elif not (t.role == "norm" and t.axes == [["head_dim"]]):
        return None
    axis = _axis_with(t, "head_dim")
    m = plan.dims.get("head_dim")
    layer = 1.0
    if plan.target_config.get("scale_attn_by_inverse_layer_idx") and t.layer is not None and not t.new_layer:
        layer = math.sqrt((t.layer + 1) / (t.source_layer + 1))
    if axis is None or ((m is None or m.is_identity) and layer == 1.0):
        return None
    keys = t.axes[axis]
    if is_concat(keys):  # Phi-3's [Q;K;V]: the q and k parts take the factors, the v part keeps its values
        q, k, v = (_qk_grid(plan, list(part), m, layer).reshape(-1) for part in keys)
        return axis, torch.cat([q, k, torch.ones_like(v)])
    sizes = [plan.dims[k].target_size for k in keys]
    grid = _qk_grid(plan, keys, m, layer)
    if "qkv" in keys:  # GPT-2's fused q|k|v: the v block keeps its values
        qkv = keys.index("qkv")
        is_v = (torch.arange(sizes[qkv]) == 2).reshape([-1 if i == qkv else 1 for i in range(len(keys))])
        grid = torch.where(is_v, torch.ones((), dtype=torch.float64), grid)
    return axis, grid.reshape(-1)


def _qk_grid(plan, keys: list[str], m, layer: float):
    """The factors of :func:`qk_scale` over the grid of ``keys`` (one composite axis): shape (sizes of keys)."""
    import torch

    grid = torch.full([plan.dims[k].target_size for k in keys], layer, dtype=torch.float64)
    if m is not None and not m.is_identity:
        counts = torch.bincount(torch.tensor(m.index), minlength=m.source_size).to(torch.float64)
        per_dim = (m.target_size / m.source_size) ** 0.25 / counts[torch.tensor(m.index)].sqrt()
        grid = grid * per_dim.reshape([-1 if k == "head_dim" else 1 for k in keys])
    return grid


@register
class Growth(ValueStrategy):
    name = "growth"
    summary = "function-preserving growth: clone neurons, split their fan-out, zero new blocks' outputs"
    Params = GrowthParams
    default_index = "cyclic"
    can_grow = True

    def reads(self, params, ctx):
        t = ctx.tensor
        return [] if t.new_layer and t.writes_residual else gather_reads(ctx)

    def fill(self, params, ctx):
        import torch

        t = ctx.tensor
        if t.new_layer and t.writes_residual:
            return torch.zeros(ctx.shape, dtype=torch.float32)
        if "growth_tied_warned" not in ctx.cache:
            ctx.cache["growth_tied_warned"] = True
            message = tied_growth_warning(ctx.plan)
            if message:
                log.warning(message)
        data = ctx.gather()
        if not data.is_floating_point():
            return data
        counts = ctx.fan_in_counts()
        if counts is not None and bool((counts != 1).any()):
            data = data / along(counts.to(data.device, data.dtype), t.fan_in, data.dim())
        data = add_paired_noise(ctx, data, params.noise)
        scale = qk_scale(ctx)
        if scale is not None:
            axis, factors = scale
            data = data.to(torch.promote_types(data.dtype, torch.float32))
            data = data * along(factors.to(data.device, data.dtype), axis, data.dim())
        return data  # a Gemma embedding is divided by √(Ñ/N) after every strategy (core.transfer)
