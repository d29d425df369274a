"""Distribution fit and sample (METHODS.md §4; the weight-distribution-transfer seed).

Fit a distribution to the source values and draw a tensor of the target shape from it. The fit
is per ``tensor``, per ``row`` (slices along axis 0), per ``column`` (slices along axis 1) or
pooled per ``role`` across every source layer of the same tensor rule. Row and column fits follow
the dimension maps: target row r is drawn from the fit of source row ``index(0)[r]`` — the
row–column ansatz with each neuron's marginal kept and the structure between entries lost.
Vectors (biases, norms) and tensors whose rows/columns hold fewer than 3 values use the tensor
scope. A pooled role fit reads the layers one at a time and keeps at most ``max_samples``
values in all (an evenly shared, seeded subsample); it is computed once per run (``ctx.cache``).

Cost (issue 17): a tensor or role fit sees at most ``max_samples`` seeded positions (drawn with
replacement, O(max_samples)), picked from a fixed-size sample of whole rows — :data:`READ_FACTOR` ×
``max_samples`` values (at least :data:`MIN_READ`) in 64 runs spread over the tensor, the only bytes
read (:func:`core.strategies._common.read_sample`). The single-group maximum likelihood is solved
by Newton's method without scipy (:mod:`core.stats.student_t`), and Student-t values are drawn by
Bailey's polar method, two uniforms per value (:func:`core.strategies.fits.student_t_float32`).
The target is drawn in float32 blocks of about a million
values written into one preallocated output, on ``device`` (a CUDA recipe draws on the GPU), so peak
memory follows the tensor. A 1 GB llama-shaped shrink then takes about 1.4× ``select``'s time
(``benchmarks/bench_sampling.py``; it took 2.9× reading every tensor whole and fitting by scipy's
L-BFGS, whose every step woke a threaded BLAS). A per-row or per-column fit reads every value, and a
per-row or per-column Student-t fits every row at once by ECM (about a hundred passes over the
tensor): the slow path on large embeddings.

The default family, Student-t per tensor, was chosen by ``benchmarks/bench_strategies.py`` (demo →
4/256/8/1024 masked LM; eval loss at step 30 of the 300-step schedule: student_t 5.19, gaussian
5.28, gaussian per row 5.28, quantile per row 5.39; at step 300 4.66 against 4.78, the baseline's
final loss reached at step 110 instead of 140): trained weights have heavier tails than a Gaussian,
and the fit keeps them.

Lookup tables — the token, position and type embeddings, and any tensor with a vocab axis — are
selected through the maps by default (``lookups="select"``): row v of an embedding *is* token v, and
an i.i.d. draw erases which token each row stands for, so the model starts by relearning its
vocabulary (``benchmarks/bench_strategies.py`` measures both; ``lookups="sample"`` is Graft 0.2).

The fitted parameters are recorded as a plain dict in ``ctx.cache["fits"][target name]``
(see :meth:`core.strategies.fits.GroupFit.to_dict`): scalars for one group, mean/min/max over
the groups of a row/column fit, 21 quantiles for the non-parametric families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import StrategyError
from core.params import param
from core.strategies import base as registry
from core.strategies._common import LOOKUP_HELP, LOOKUPS, device_generator, is_lookup, read_sample
from core.strategies.base import ValueStrategy, register
from core.strategies.fits import FAMILIES, GroupFit, fit

SCOPES = ("tensor", "row", "column", "role")


@dataclass(frozen=True)
class DistributionParams:
    lookups: str = param("select", help=LOOKUP_HELP, choices=LOOKUPS)
    family: str = param(
        "student_t",
        help="distribution fitted to the source values (student_t: heavy tails, the benchmark's best)",
        choices=FAMILIES,
    )
    scope: str = param(
        "tensor", help="fit per tensor, per row, per column, or pooled over the role's layers", choices=SCOPES
    )
    max_samples: int = param(
        200_000,
        help="at most this many source values per tensor/role fit (a seeded subsample above it, picked from "
        "spread rows: only those are read)",
        min=1000,
        max=100_000_000,
    )


#: values drawn per block: the float64 temporaries of a draw stay ~25 MB whatever the tensor's size.
DRAW_BLOCK = 1 << 20
#: a fit's sample is picked from spread rows holding this many times its size …
READ_FACTOR = 2
#: … and at least this many values (a vector or a small matrix is read whole).
MIN_READ = 1 << 19


def _subsample(values, limit: int, gen):
    """``limit`` seeded positions of ``values`` (with replacement), as float64.

    Not a permutation of all of them: a 45M-element matrix took 72% of a 7B ``distribution`` shrink in
    ``randperm`` (issue 17); ``randint`` costs O(limit). The values are picked in numpy from the
    stored dtype (bfloat16 widened by a bit shift) and only the picked ones are converted: torch's
    parallel gather and casts of these few hundred thousand values stalled ~10 ms each on a busy
    machine.
    """
    import numpy as np
    import torch

    flat = values.reshape(-1)
    if flat.numel() <= limit:
        return flat.to(torch.float64)
    pick = torch.randint(0, flat.numel(), (limit,), generator=gen).numpy()
    if flat.dtype == torch.bfloat16:
        bits = flat.view(torch.int16).numpy()[pick].astype(np.uint16).astype(np.uint32) << 16
        picked = bits.view(np.float32)
    else:
        picked = flat.numpy()[pick]
    return torch.from_numpy(picked.astype(np.float64))


def _draw(fitted, groups, k: int, gen):
    """``fitted.sample(groups, k, gen)`` in blocks of about :data:`DRAW_BLOCK` values into one float32 tensor."""
    import torch

    m = int(groups.numel())
    if m * k <= DRAW_BLOCK or (m == 1 and fitted.family == "student_t"):  # that one draws in blocks itself
        return fitted.sample(groups, k, gen)
    out = torch.empty((m, k), dtype=torch.float32, device=gen.device)
    if m == 1:
        for start in range(0, k, DRAW_BLOCK):
            end = min(k, start + DRAW_BLOCK)
            out[:, start:end] = fitted.sample(groups, end - start, gen)
        return out
    rows = max(1, DRAW_BLOCK // max(k, 1))
    for start in range(0, m, rows):
        out[start : start + rows] = fitted.sample(groups[start : start + rows], k, gen)
    return out


def _sample(source, name: str, limit: int, rows_gen, pick_gen):
    """``limit`` seeded values of source tensor ``name`` (float64): picked from spread rows of it.

    The rows read hold :data:`READ_FACTOR` × ``limit`` values (at least :data:`MIN_READ`), so the
    pick sees many rows — rows differ in scale in trained weights, and a fit on a few whole rows
    would follow the ones it got.
    """
    rows = read_sample(source, name, max(limit * READ_FACTOR, MIN_READ), rows_gen)
    return _subsample(rows, limit, pick_gen)


def fit_for(params, ctx) -> tuple[GroupFit, int | None, str]:
    """The fit used for ``ctx.tensor``, the axis its groups run along (None: one group) and the scope used."""
    import torch

    scope = params.scope
    if scope in ("row", "column"):
        axis = 0 if scope == "row" else 1
        shape = ctx.source_shape
        if len(shape) < 2 or math.prod(shape) // shape[axis] < 3:
            scope = "tensor"
        else:
            source = ctx.read().cpu().to(torch.float64)
            groups = source.movedim(axis, 0).reshape(source.shape[axis], -1)
            return fit(params.family, groups), axis, scope
    if scope == "role":
        names = ctx.same_role_sources() or [ctx.tensor.source_name]
        key = ("distribution", params.family, params.max_samples, tuple(names))
        fits = ctx.cache.setdefault("distribution_pooled", {})
        if key not in fits:
            per = max(params.max_samples // len(names), 1)
            seed = ctx.plan.seed
            pooled = [
                _sample(
                    ctx.source, n, per, registry.generator(seed, "pool-rows", n), registry.generator(seed, "pool", n)
                )
                for n in names
            ]
            fits[key] = fit(params.family, torch.cat(pooled)[None, :])
            fits[key].extra["pooled_over"] = len(names)
        return fits[key], None, scope
    name = ctx.tensor.source_name
    if name is None:
        raise StrategyError(f"{ctx.tensor.name} has no source tensor to fit; use mimetic or baseline for it")
    values = _sample(ctx.source, name, params.max_samples, ctx.generator("sample-rows"), ctx.generator("subsample"))
    return fit(params.family, values[None, :]), None, scope


@register
class Distribution(ValueStrategy):
    name = "distribution"
    summary = "fit a distribution (Gaussian, Laplace, Student-t, quantile, KDE) to the source and sample"
    Params = DistributionParams
    default_index = "cyclic"
    can_grow = True

    def fill(self, params, ctx):
        import torch

        if ctx.tensor.source_name is None:
            raise StrategyError(f"{ctx.tensor.name} has no source tensor to fit; use mimetic or baseline for it")
        if params.lookups == "select" and is_lookup(ctx.tensor):
            return ctx.gather()
        fitted, axis, scope = fit_for(params, ctx)
        ctx.cache.setdefault("fits", {})[ctx.tensor.name] = {"scope": scope, **fitted.to_dict()}
        shape = ctx.shape
        gen = device_generator(ctx, "sample")
        if axis is None:
            n = 1
            for s in shape:
                n *= s
            return _draw(fitted, torch.zeros(1, dtype=torch.long), n, gen).reshape(shape)
        idx = ctx.index(axis)
        if idx is None:
            idx = torch.arange(shape[axis])
        moved = (shape[axis], *[s for i, s in enumerate(shape) if i != axis])
        k = 1
        for s in moved[1:]:
            k *= s
        draw = _draw(fitted, idx, k, gen).reshape(moved)
        return draw.movedim(0, axis).contiguous()


def fitted_params(params, ctx) -> dict:
    """The recipe entry of the fit for ``ctx.tensor`` without drawing (for previews)."""
    fitted, _, scope = fit_for(params, ctx)
    return {"scope": scope, **fitted.to_dict()}
