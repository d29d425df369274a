"""Mean-field neuron sampling (Chen et al., "A Mean Field Ansatz for Zero-Shot Weight Transfer").

The index strategy (``iid`` by default: Ñ i.i.d. draws from the empirical measure of the N
source neurons) picks the neurons; this value strategy copies every tensor through those shared
maps and rescales the weights that *read* a resized dimension (the fan-in axis), because a sum
over that dimension now has Ñ terms instead of N:

* ``none`` — plain copy (what weight selection does);
* ``mean_field`` — × N/Ñ: keeps the *mean* of the sum (a layer computing (1/N)Σ_i …);
* ``variance`` — × sqrt(N/Ñ): keeps its variance when the terms are independent.

The default, ``auto``, is ``none`` where a transformer shrinks and ``mean_field`` elsewhere (the
generic MLP, and growth, where duplicated neurons must share their weight for a sum to stay an
average) — each the winner of the benchmark that measured it. On the demo → 4/256/8/1024 masked LM
(``benchmarks/bench_strategies.py``, 300 steps) ``none`` reaches the baseline's final eval loss at
step 20 and ends at 3.39, against step 80 and 4.41 with × N/Ñ (the baseline ends at 4.94): every
sum there feeds a LayerNorm, which undoes a constant scale anyway, while × 1.5 on every fan-in
inflates the residual branches against the embeddings' and the learned norms' scale. On the digits
MLP benchmark (``benchmarks/bench_mean_field_mlp.py``, 64→512→512→10 resized to 32/128/1024, every
index strategy, 3 seeds) the three rules are within 0.5 points at zero steps (mean over all runs:
none 0.687, mean_field 0.696, variance 0.701 — with ReLU a fan-in factor only rescales the logits
up to the biases), but after one epoch mean_field is clearly best (0.892 vs 0.871 variance, 0.779
none): its sums keep the source's scale, so the learning rate tuned for the source fits the target.
With replacement, duplicated neurons are exact copies; ``noise`` breaks the symmetry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.params import param
from core.strategies._common import add_noise
from core.strategies.base import ValueStrategy, gather_reads, register

RESCALES = ("none", "mean_field", "variance")


@dataclass(frozen=True)
class MeanFieldParams:
    rescale: str = param(
        "auto",
        help="fan-in rescaling when a summed dimension changes width (source N → target Ñ): none, "
        "mean_field (× source width ÷ target width, N/Ñ), variance (× its square root), or auto (none when a transformer shrinks — its norms undo "
        "a scale —, mean_field otherwise)",
        choices=("auto", *RESCALES),
    )
    noise: float = param(
        0.0, help="symmetry-breaking noise on duplicated neurons, std relative to the tensor's std", min=0.0, max=1.0
    )


def resolve_rescale(rescale: str, family: str, ratio: float) -> str:
    """The rule ``auto`` stands for in ``family`` for a fan-in of ratio N/Ñ (module docstring):
    ``none`` when a family whose blocks normalise (its spec's ``normalised``: the transformers)
    shrinks, ``mean_field`` otherwise (the MLP; any growth, where the copies of a duplicated neuron
    must share its weight for the sum to stay an average)."""
    if rescale != "auto":
        return rescale
    from core.architectures import FAMILIES

    return "none" if FAMILIES.get(family).normalised and ratio > 1 else "mean_field"


def fan_in_factor(rescale: str, ratio: float) -> float:
    """The multiplier of the fan-in weights for ``ratio`` = N/Ñ."""
    if rescale == "mean_field":
        return ratio
    if rescale == "variance":
        return math.sqrt(ratio)
    return 1.0


@register
class MeanField(ValueStrategy):
    name = "mean_field"
    summary = (
        "mean-field sampling: copy the drawn neurons; rescale the inputs they read by source width ÷ "
        "target width (N/Ñ), its square root, or not"
    )
    Params = MeanFieldParams
    default_index = "iid"
    can_grow = True

    def reads(self, params, ctx):
        return gather_reads(ctx)

    def fill(self, params, ctx):
        data = ctx.gather()
        if data.is_floating_point():
            ratio = ctx.fan_in_ratio()
            factor = fan_in_factor(resolve_rescale(params.rescale, ctx.plan.family, ratio), ratio)
            if factor != 1.0:
                data = data * factor
            data = add_noise(ctx, data, params.noise)
        return data
