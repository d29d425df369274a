"""Index strategies: which source neurons feed the target's, one draw per named dimension.

* ``first_n`` — the first Ñ indices (Xu et al.'s choice for isotropic transformers).
* ``uniform`` — evenly spaced, Xu et al.'s rule (weight_selection.py): i·(N/Ñ) when Ñ divides N,
  otherwise round(linspace(0, N − 1, Ñ)), both ends kept, computed as their code does
  (:func:`linspace_indices`). ``rule="floor"`` gives Graft's earlier ⌊i·N/Ñ⌋.
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
class UniformParams:
    rule: str = param("linspace", choices=("linspace", "floor"),
                      help="linspace: weight selection's rule, i·(N/Ñ) when Ñ divides N, else "
                           "round(linspace(0, N−1, Ñ)); floor: ⌊i·N/Ñ⌋ always (Graft 0.1.0's rule)")


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
