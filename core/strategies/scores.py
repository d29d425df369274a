"""Neuron scores for the ``by_norm`` index strategy (the mean-field paper's function-based sampling).

A neuron i of a named dimension is row i of every matrix that *writes* the dimension and column
i of every matrix that *reads* it (its fan-in axis). Its score combines the two:

    out_i = sqrt(Σ_writers ‖row_i‖²),  in_i = sqrt(Σ_readers ‖col_i‖²)
    score_i = out_i · in_i   (``combine="product"``)   or   out_i + in_i   (``"sum"``)

(a neuron only written, or only read, uses the side it has). Lookups (embeddings) count as
writers of their hidden axis. On a composite axis (heads × head_dim, GPT-2's qkv × heads × head_dim)
the entries of the other atomic dimensions are summed in, so a head's score covers its whole block;
on a concatenated axis (Phi-3's [Q;K;V]) each part that carries the dimension adds its own.
Tensors are read one at a time; per-layer dimensions read only that layer's tensors. Families
without grouped-query attention carry no ``kv_heads`` axis; their kv_heads scores are the heads'.

Pass ``score_fn(source)`` as ``make_plan(..., score_fn=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

from core.architectures.spec import axis_atoms, is_concat


def _axis_norms(tensor, axis: int, atoms: tuple[str, ...], dim: str, sizes: dict[str, int]):
    """Squared norms per index of ``dim`` inside (composite) ``axis`` of ``tensor``: shape (N,)."""
    import torch

    t = tensor.to(torch.float64).movedim(axis, 0)
    t = t.reshape(*[sizes[a] for a in atoms], -1)
    sq = t * t
    keep = atoms.index(dim)
    others = [i for i in range(sq.dim()) if i != keep]
    return sq.sum(dim=others) if others else sq


def _concat_norms(tensor, axis: int, parts, dim: str, sizes: dict[str, int]):
    """:func:`_axis_norms` summed over the parts of a concatenated axis that carry ``dim`` (Phi-3's [Q;K;V])."""
    import math

    total, start = None, 0
    for part in parts:
        n = math.prod(sizes[a] for a in part)
        if dim in part:
            sq = _axis_norms(tensor.narrow(axis, start, n), axis, tuple(part), dim, sizes)
            total = sq if total is None else total + sq
        start += n
    if start != tensor.shape[axis]:
        raise RuntimeError("the parts do not fill the axis")
    return total


def neuron_scores(source, dim: str, source_layer: int | None, *, combine: str = "product"):
    """Scores (N,) of the neurons of ``dim`` (at ``source_layer`` for per-layer dimensions).

    Args:
        source: an opened :class:`core.sources.Source`.
        dim: an atomic dimension name (``hidden``, ``ffn``, ``heads``, ``kv_heads``, ``head_dim``, ``h0`` …).
        source_layer: the source layer for per-layer dimensions, None for global ones.
        combine: ``product`` or ``sum`` of the writer and reader norms.

    Returns:
        A float64 tensor of N non-negative scores (ones if no matrix carries the dimension).
    """
    import torch

    from core.architectures import describe, detect

    spec, config = detect(source)
    sizes = spec.sizes(config)
    n = sizes[dim]
    out_sq = torch.zeros(n, dtype=torch.float64)
    in_sq = torch.zeros(n, dtype=torch.float64)
    seen_out = seen_in = False
    per_layer = spec.per_layer(dim)
    for t in describe(source, spec):
        if t.kind != "param" or len(t.shape) < 2 or (per_layer and t.layer != source_layer):
            continue
        hits = [a for a, atoms in enumerate(t.axes) if dim in axis_atoms(atoms)]
        if not hits:
            continue
        data = source.read(t.name)
        for a in hits:
            try:
                if is_concat(t.axes[a]):
                    sq = _concat_norms(data, a, t.axes[a], dim, sizes)
                else:
                    sq = _axis_norms(data, a, tuple(t.axes[a]), dim, sizes)
            except RuntimeError:  # an axis whose size does not follow the config: skip it
                continue
            if sq.numel() != n:
                continue
            if t.fan_in is not None and a == t.fan_in:
                in_sq += sq
                seen_in = True
            else:
                out_sq += sq
                seen_out = True
        del data
    if not (seen_in or seen_out):
        if dim == "kv_heads" and sizes.get("heads") == n:
            # multi-head families name no kv axis; the plan draws their heads through kv_heads
            return neuron_scores(source, "heads", source_layer, combine=combine)
        return torch.ones(n, dtype=torch.float64)
    out_n, in_n = out_sq.sqrt(), in_sq.sqrt()
    if combine == "sum":
        return out_n + in_n
    if seen_in and seen_out:
        return out_n * in_n
    return out_n if seen_out else in_n


def score_fn(source, combine: str = "product") -> Callable[[str, int | None], object]:
    """``(dim, source_layer) -> scores`` for :func:`core.plan.make_plan`'s ``score_fn``."""

    def scores(dim: str, source_layer: int | None):
        return neuron_scores(source, dim, source_layer, combine=combine)

    return scores
