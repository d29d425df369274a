"""Index strategies: which source neurons feed the target's, one draw per named dimension.

* ``first_n`` — the first Ñ indices (Xu et al.'s choice for isotropic transformers).
* ``uniform`` — evenly spaced, i·N/Ñ.
* ``random`` — Ñ distinct indices drawn uniformly (seeded), kept in source order.
* ``iid`` — mean-field sampling: Ñ i.i.d. draws from the empirical measure of the N neurons,
  with replacement, so the target may be wider than the source.
* ``cyclic`` — i mod N: every source neuron copied equally often (HyperCloning's k-fold clone).
* ``by_norm`` — the mean-field paper's "function-based" sampling: probability ∝ a neuron score
  (its row/column norms), without replacement when shrinking, with replacement when growing.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.strategies.base import IndexStrategy, param, register


@register
class FirstN(IndexStrategy):
    name = "first_n"
    summary = "keep the first Ñ neurons of every dimension (weight selection's default)"

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        return list(range(n_target))


@register
class Uniform(IndexStrategy):
    name = "uniform"
    summary = "keep evenly spaced neurons, i·N/Ñ"

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        return [i * n_source // n_target for i in range(n_target)]


@register
class Random(IndexStrategy):
    name = "random"
    summary = "keep Ñ distinct neurons drawn uniformly at random (seeded)"

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        import torch

        return sorted(torch.randperm(n_source, generator=gen)[:n_target].tolist())


@dataclass(frozen=True)
class IidParams:
    keep_order: bool = param(True, help="sort the drawn indices so neurons keep their source order")


@register
class Iid(IndexStrategy):
    name = "iid"
    summary = "mean-field sampling: Ñ i.i.d. draws with replacement (target may be wider)"
    Params = IidParams
    can_grow = True

    def draw(self, params, n_source, n_target, *, gen, scores=None):
        import torch

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
class ByNormParams:
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
