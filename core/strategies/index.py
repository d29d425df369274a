"""Index strategies: which source neurons feed the target's, one draw per named dimension.

* ``first_n`` — the first Ñ indices (Xu et al.'s choice for isotropic transformers).
* ``uniform`` — evenly spaced, Xu et al.'s rule (weight_selection.py): i·(N/Ñ) when Ñ divides N,
  otherwise round(linspace(0, N − 1, Ñ)), both ends kept, computed as their code does
  (:func:`linspace_indices`). ``rule="floor"`` gives Graft's earlier ⌊i·N/Ñ⌋.
* ``random`` — Ñ distinct indices drawn uniformly (seeded), kept in source order.
* ``iid`` — mean-field sampling: Ñ draws from the empirical measure of the N neurons. When
  shrinking (Ñ ≤ N) the draws are *without* replacement by default (``replacement="auto"``): an
  i.i.d. draw of Ñ = N/1.5 neurons repeats some and misses ≈ e^(−1/1.5) ≈ 51% of the source's, so a
  shrunk matrix keeps barely half its rank (duplicated rows add none) — seen in the app's spectra.
  When growing, the draws are i.i.d. with replacement (the target may be wider than the source);
  ``replacement="always"`` gives the i.i.d. draw at every size (Graft 0.2's behaviour).
* ``cyclic`` — i mod N: every source neuron copied equally often (HyperCloning's k-fold clone).
* ``by_norm`` — the mean-field paper's "function-based" sampling: probability ∝ a neuron score
  (its row/column norms), without replacement when shrinking, with replacement when growing.
* ``by_activation`` — Minitron's structured selection: the Ñ neurons with the largest activation
  scores measured on calibration data (:mod:`core.calibration`), in source order; shrink only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import StrategyError
from core.params import param
from core.strategies.base import ExpertOptions, IndexStrategy, register


@register
class FirstN(IndexStrategy):
    name = "first_n"
    summary = "keep the first Ñ neurons of every dimension (weight selection's default)"

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        return list(range(n_target))


def linspace_indices(n_source: int, n_target: int) -> list[int]:
    """round(linspace(0, N − 1, Ñ)): Ñ evenly spaced indices of ``range(N)``, both ends included.

    Computed exactly as weight selection's code does — ``torch.round(torch.linspace(...))`` with
    torch's default float32 linspace on the CPU, rounding half to even — because at .5 ties
    (j·(N − 1)/(Ñ − 1) = k + ½, or within float32 resolution of it, e.g. 3611.49983 for
    11008 → 3000) the float error of the linspace, not the exact value, decides the side: numpy's
    float64 linspace and exact rational rounding pick the other neighbour at some index for 4% and
    2% of the pairs with N < 1200 (torch 2.13). Same torch, same indices.
    """
    import torch

    if n_target <= 1:
        return [0] * n_target
    return torch.round(torch.linspace(0, n_source - 1, n_target, dtype=torch.float32, device="cpu")).long().tolist()


@dataclass(frozen=True)
class UniformParams(ExpertOptions):
    rule: str = param(
        "linspace",
        choices=("linspace", "floor"),
        help="linspace: weight selection's rule, i·(N/Ñ) when Ñ divides N, else "
        "round(linspace(0, N−1, Ñ)); floor: ⌊i·N/Ñ⌋ always (Graft 0.1.0's rule)",
    )


@register
class Uniform(IndexStrategy):
    name = "uniform"
    summary = "keep evenly spaced neurons: i·N/Ñ, or round(linspace(0, N−1, Ñ)) (weight selection's rule)"
    Params = UniformParams

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        # The reference's divisible branch, i·(N/Ñ), is also what the floor rule gives there.
        if params.rule == "floor" or n_source % n_target == 0:
            return [i * n_source // n_target for i in range(n_target)]
        return linspace_indices(n_source, n_target)


@register
class Random(IndexStrategy):
    name = "random"
    summary = "keep Ñ distinct neurons drawn uniformly at random (seeded)"

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        import torch

        return sorted(torch.randperm(n_source, generator=gen)[:n_target].tolist())


REPLACEMENT = ("auto", "always")


@dataclass(frozen=True)
class IidParams(ExpertOptions):
    keep_order: bool = param(True, help="sort the drawn indices so neurons keep their source order")
    replacement: str = param(
        "auto",
        choices=REPLACEMENT,
        help="auto: without replacement when shrinking (no neuron lost twice over), "
        "i.i.d. with replacement when growing; always: i.i.d. at every size",
    )


@register
class Iid(IndexStrategy):
    name = "iid"
    summary = "mean-field sampling: Ñ draws from the source's neurons (without replacement when shrinking)"
    Params = IidParams
    can_grow = True

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        import torch

        if params.replacement == "auto" and n_target <= n_source:
            idx = torch.randperm(n_source, generator=gen)[:n_target]
        else:
            idx = torch.randint(0, n_source, (n_target,), generator=gen)
        return sorted(idx.tolist()) if params.keep_order else idx.tolist()


@register
class Cyclic(IndexStrategy):
    name = "cyclic"
    summary = "i mod N: every neuron copied equally often (exact k-fold clone when Ñ = kN)"
    can_grow = True

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        return [i % n_source for i in range(n_target)]


@dataclass(frozen=True)
class ByNormParams(ExpertOptions):
    power: float = param(1.0, help="probability ∝ score**power (0 = uniform, large = top neurons)", min=0.0, max=8.0)
    keep_order: bool = param(True, help="sort the drawn indices so neurons keep their source order")


@register
class ByNorm(IndexStrategy):
    name = "by_norm"
    summary = "function-based sampling: probability ∝ the neuron's weight norms"
    Params = ByNormParams
    can_grow = True
    needs_scores = True

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        import torch

        if scores is None:
            weights = torch.ones(n_source, dtype=torch.float64)
        else:
            weights = torch.as_tensor(scores, dtype=torch.float64).clamp_min(0) ** params.power
            if not torch.isfinite(weights).all() or weights.sum() <= 0:
                weights = torch.ones(n_source, dtype=torch.float64)
        grow = n_target > n_source
        idx = torch.multinomial(weights, n_target, replacement=grow, generator=gen)
        return sorted(idx.tolist()) if params.keep_order else idx.tolist()


ACTIVATION_RULES = ("auto", "magnitude", "reconstruction")


def activation_rule(rule: str, family: str) -> str:
    """The rule ``auto`` stands for in ``family`` (its spec's ``activation_rule``): see :class:`ByActivation`."""
    if rule != "auto":
        return rule
    from core.architectures import FAMILIES

    return FAMILIES.get(family).activation_rule


@dataclass(frozen=True)
class ByActivationParams(ExpertOptions):
    dataset: str = param(
        "", help="calibration data: a registered data set or a text path (empty: the task's own, pydoc text or digits)"
    )
    samples: int = param(64, help="calibration rows (sequences or images) from the training split", min=1)
    seq_len: int = param(128, help="tokens per calibration sequence (capped at the model's positions)", min=8)
    rule: str = param(
        "auto",
        choices=ACTIVATION_RULES,
        help="magnitude: mean |activation| (Minitron); reconstruction: the neurons that best reconstruct "
        "each reader's output, chosen greedily (hidden, ffn, MLP widths; heads by magnitude); "
        "auto: reconstruction for the generic MLP, magnitude for transformers (the benchmarks' winners)",
    )


@register
class ByActivation(IndexStrategy):
    """Data-aware selection: the Ñ neurons that matter most on calibration data.

    The scores come from :mod:`core.calibration` (one pass of the source, cached); the kept
    indices are returned in source order, ties going to the lower index, so the draw is
    deterministic and needs no random generator.

    The default rule, ``auto``, is the benchmarks' winner per kind of network. On the digits MLP
    64→512→512→10 shrunk to width 32, ``reconstruction`` (a greedy order of the neurons that best
    reproduce each reader's output) keeps 84.7% of the source's zero-shot accuracy against 18.9%
    for Minitron's mean |activation| (``magnitude``) and 43.6% for ``by_norm``
    (``benchmarks/bench_by_activation_mlp.py``, 3 seeds): ranking neurons one by one keeps
    redundant ones. On the demo → 4/256/8/1024 masked LM (``benchmarks/bench_strategies.py``) the
    two start level, but ``magnitude`` trains clearly better (eval loss 3.24 against 3.51 at step
    200): the residual stream's channels are read by every layer, and the ones active everywhere
    matter more than the best reconstruction of any one reader. So ``auto`` means
    ``reconstruction`` for the generic MLP and ``magnitude`` for transformers.
    """

    name = "by_activation"
    summary = "keep the Ñ neurons that matter most on calibration data (activations; Minitron)"
    Params = ByActivationParams
    needs_scores = True

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        import torch

        if scores is None:
            raise StrategyError(
                "by_activation needs the source's activation scores; plan through "
                "core.pipeline.plan_recipe, or pass score_fn=core.calibration.activation_score_fn(...)"
            )
        s = torch.as_tensor(scores, dtype=torch.float64).nan_to_num(nan=-math.inf)
        if s.numel() != n_source:
            raise StrategyError(f"by_activation got {s.numel()} scores for a dimension of {n_source} neurons")
        order = sorted(range(n_source), key=lambda i: (-float(s[i]), i))
        return sorted(order[:n_target])


def most_used(scores, n_source: int, n_target: int) -> list[int]:
    """The ``experts=usage`` map (:class:`core.strategies.base.ExpertOptions`) of one MoE layer.

    Fewer experts: the Ñ with the highest usage scores, in source order (ties to the lower index),
    as by_activation keeps neurons. More: every source expert once, in order, then copies of the
    most used first (cycling through them by usage when Ñ > 2N), so Ñ = kN copies each k times.
    """
    import torch

    s = torch.as_tensor(scores, dtype=torch.float64).nan_to_num(nan=-math.inf)
    if s.numel() != n_source:
        raise StrategyError(f"experts=usage got {s.numel()} scores for a layer of {n_source} experts")
    order = sorted(range(n_source), key=lambda i: (-float(s[i]), i))
    if n_target <= n_source:
        return sorted(order[:n_target])
    return list(range(n_source)) + [order[i % n_source] for i in range(n_target - n_source)]
