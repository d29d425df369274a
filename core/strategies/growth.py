"""Function-preserving growth (Net2Net's Net2WiderNet / Net2DeeperNet; HyperCloning).

Wider: each target neuron copies a source neuron through the shared dimension maps (incoming
rows copied), and each fan-in column is divided by how many target neurons copy its source
(``ctx.fan_in_counts()``), so the next layer's input is unchanged. Deeper: in an inserted block
the tensors that write the residual stream (o_proj, down_proj and their biases) are zero, so the
block adds nothing.

The default index is ``cyclic`` (i mod N): when Ñ = kN every neuron is cloned exactly k times,
which keeps the mean and variance over a grown *hidden* vector, so LayerNorm / RMSNorm see the
same statistics and the grown network is exactly the source function (HyperCloning). A
non-multiple width keeps the MLP layers exact but not normalised residual streams; a map that
misses source neurons (``iid``, ``by_norm``, any shrink) drops their contribution, so growth is
exact only with a surjective map — ``cyclic`` with Ñ ≥ N.

Limitation — tied embeddings: a tied LM head reads the hidden dimension with the embedding
matrix itself, which is copied (it writes the hidden vector) and cannot also be divided. With a
grown hidden size and ``tie_word_embeddings`` true, logits come out k× the source's (for a k-fold
clone); untie the head in the target config to stay exact. A warning is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.strategies._common import add_noise, along
from core.strategies.base import ValueStrategy, param, register

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrowthParams:
    noise: float = param(0.0, help="symmetry-breaking noise on duplicated neurons, std relative to the tensor's std "
                         "(0 keeps the function exactly)", min=0.0, max=1.0)


def tied_growth_warning(plan) -> str | None:
    """A sentence when growth cannot be exact because the LM head is tied to a grown embedding."""
    from core.architectures import all_families

    cfg = plan.target_config or {}
    spec = all_families().get(plan.family)
    tied = spec is not None and spec.is_tied(cfg)
    arch = (cfg.get("architectures") or [""])[0]
    lm_head = any(k in arch for k in ("LMHead", "ForCausalLM", "ForMaskedLM", "ForPreTraining"))
    src, tgt = plan.source_sizes.get("hidden"), plan.target_sizes.get("hidden")
    if tied and lm_head and src and tgt and tgt > src:
        return (f"the LM head is tied to the embeddings and hidden grows {src}→{tgt}: logits scale by about "
                f"{tgt / src:g}; set tie_word_embeddings to false in the target to keep the function exactly")
    return None


@register
class Growth(ValueStrategy):
    name = "growth"
    summary = "function-preserving growth: clone neurons, split their fan-out, zero new blocks' outputs"
    Params = GrowthParams
    default_index = "cyclic"
    can_grow = True

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
        return add_noise(ctx, data, params.noise)
