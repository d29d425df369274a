"""The target seen before it is written: one tensor filled in memory and compared with its source.

Two readers share this: the GUI's live preview (:func:`compute_preview`, run on a worker thread, which
reduces tensors to small numpy snapshots — never whole tensors — before they cross to the GUI thread)
and ``graft report --target`` (:class:`PlanSource`, a plan's target tensors read like a source).
Numbers: maps show at most 64 rows/columns; a matrix large on both sides decomposes at most 1024 rows
(~0.2 s, not ~2 s); each histogram keeps one fitted density per side (student-t, else gaussian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from core.stats.summary import read_source_rows

MAX_MAP = 64  # rows/columns shown in a correlation or head map
#: a live preview decomposes at most this many rows of a matrix large on both sides (~0.2 s, not ~2 s)
PREVIEW_MAX_SIDE = 1024
PREVIEW_FIT = "student-t"  # the fitted density drawn over each histogram (gaussian as fallback)
#: the roles whose weights, with the query's, make one layer's attention (W_Q W_Kᵀ and W_V W_O maps)
ATTENTION_PEERS = ("attn.k", "attn.v", "attn.o")


@dataclass
class PreviewData:
    """Everything the preview panel draws for one target tensor (plain numbers only)."""

    tensor: str
    role: str
    strategy: str
    source_name: str | None
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    histogram: object | None = None  # core.stats.HistogramPair, fits narrowed to one per side
    row_corr: dict[str, np.ndarray] = field(default_factory=dict)  # "source"/"target" → (k, k)
    col_corr: dict[str, np.ndarray] = field(default_factory=dict)
    spectrum: dict[str, np.ndarray] = field(default_factory=dict)  # singular values
    # Per-head maps of an attention query weight's layer: "source"/"target" → (heads, k, k), and
    # each head's diagonal dominance (mean diagonal / mean |off-diagonal|): side → (heads,).
    heads_qk: dict[str, np.ndarray] = field(default_factory=dict)  # W_Q W_Kᵀ
    heads_vo: dict[str, np.ndarray] = field(default_factory=dict)  # W_V W_O
    dominance_qk: dict[str, np.ndarray] = field(default_factory=dict)
    dominance_vo: dict[str, np.ndarray] = field(default_factory=dict)
    stats: list[tuple[str, float, float]] = field(default_factory=list)  # metric, source, target
    suggestions: tuple[str, ...] = ()  # mean-field reading of the source matrix


#: the distribution strategy's families → the density the preview draws for them (None: no parametric
#: density; the quantile and KDE draws follow the source's histogram itself).
STRATEGY_FITS = {"gaussian": "gaussian", "laplace": "laplace", "student_t": "student-t", "quantile": None, "kde": None}


def preview_fit(tensor) -> str | None:
    """The density drawn over a tensor's histograms: the distribution strategy's own family where it fills
    the tensor (a Laplace draw is compared with a Laplace fit), else :data:`PREVIEW_FIT`."""
    if tensor.strategy == "distribution":
        return STRATEGY_FITS.get(tensor.params.get("family", "student_t"), PREVIEW_FIT)
    return PREVIEW_FIT


def _narrow_fits(hist, preferred: str | None = PREVIEW_FIT):
    """Keep one fitted density per side (``preferred``, else the Gaussian; none for None), so the plot stays readable."""
    fits = {}
    for side in ("source", "target"):
        for name in (preferred, "gaussian") if preferred else ():
            key = f"{side} {name}"
            if key in hist.fits:
                fits[key] = hist.fits[key]
                break
    return replace(hist, fits=fits)


def _matrix(x):
    return x.reshape(x.shape[0], -1) if x is not None and x.dim() >= 2 else None


def compute_preview(
    plan, source, name: str, *, device: str = "cpu", cache: dict | None = None, cancel=None
) -> PreviewData:
    """Fill target tensor ``name`` with its strategy and compare it with its source.

    Args:
        plan: a ``core.plan.Plan``; source: its opened ``Source``.
        name: a target tensor name from the plan.
        cache: shared by the previews of one plan (strategies keep fitted parameters there).
        cancel: a ``CancelToken`` checked between the steps.
    """
    from core import stats
    from core.transfer import fill_tensor

    cache = cache if cache is not None else {}
    check = cancel.check if cancel is not None else (lambda: None)
    tensor = plan.tensor(name)
    target = fill_tensor(plan, tensor, source, device=device, cache=cache).float()
    check()
    src = read_source_rows(source, tensor.source_name).float() if tensor.source_name is not None else None
    data = PreviewData(
        name, tensor.role, tensor.strategy, tensor.source_name, tuple(tensor.source_shape), tuple(tensor.shape)
    )
    if not target.is_floating_point():
        return data
    comparison = stats.compare_tensors(src if src is not None else target, target, device=device)
    data.histogram = _narrow_fits(comparison.histogram, preview_fit(tensor))
    if src is None:  # nothing to compare with: show the target alone
        data.histogram = replace(
            data.histogram,
            source=np.zeros_like(data.histogram.source),
            fits={k: v for k, v in data.histogram.fits.items() if k.startswith("target")},
        )
    s, t = comparison.source, comparison.target
    for label in ("mean", "std", "skewness", "excess_kurtosis", "min", "max"):
        data.stats.append(
            (label.replace("_", " "), getattr(s, label) if src is not None else math.nan, getattr(t, label))
        )
    d = comparison.distances
    for label, value in (("KS distance", d.ks), ("Wasserstein-1", d.wasserstein1), ("KL (histogram)", d.kl_hist)):
        data.stats.append((label, math.nan, math.nan if value is None else value))
    data.stats.append(("elements", float(math.prod(tensor.source_shape)), float(math.prod(tensor.shape))))
    check()
    for label, x in (("source", _matrix(src)), ("target", _matrix(target))):
        if x is None or min(x.shape) < 2:
            continue
        data.row_corr[label] = stats.correlation_map(x, "rows", max_size=MAX_MAP, device=device).matrix
        data.col_corr[label] = stats.correlation_map(x, "cols", max_size=MAX_MAP, device=device).matrix
        check()
        spec = stats.spectrum(x, device=device, max_side=PREVIEW_MAX_SIDE)
        data.spectrum[label] = spec.singular_values
        data.stats.append(
            (
                f"stable rank ({label})",
                spec.stable_rank if label == "source" else math.nan,
                spec.stable_rank if label == "target" else math.nan,
            )
        )
        check()
    data.stats = _merge_side_rows(data.stats)
    if src is not None and src.dim() == 2 and min(src.shape) >= 8:
        data.suggestions = tuple(stats.mean_field_stats(src).suggestions)
    for side, maps in _head_maps(plan, source, tensor, target, device, cache).items():
        data.heads_qk[side], data.heads_vo[side] = maps.qk, maps.vo
        data.dominance_qk[side], data.dominance_vo[side] = maps.qk_diag_dominance, maps.vo_diag_dominance
    return data


def _merge_side_rows(rows: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Fold "x (source)" and "x (target)" rows into one "x" row."""
    out: dict[str, list[float]] = {}
    order: list[str] = []
    for label, s, t in rows:
        base = label.replace(" (source)", "").replace(" (target)", "")
        if base not in out:
            out[base] = [s, t]
            order.append(base)
        else:
            out[base] = [s if not math.isnan(s) else out[base][0], t if not math.isnan(t) else out[base][1]]
    return [(k, out[k][0], out[k][1]) for k in order]


def attention_peers(plan, tensor) -> list | None:
    """The key, value and output weights (``TensorPlan``) of an attention query weight's layer.

    Returns:
        ``[k, v, o]``, or None when ``tensor`` is not a query weight with a source, or when any peer is
        missing or has no source tensor (a fused qkv layout, a new layer).
    """
    if tensor.role != "attn.q" or tensor.source_name is None or not tensor.name.endswith("weight"):
        return None

    def peer(role: str):
        return next(
            (t for t in plan.tensors if t.layer == tensor.layer and t.role == role and t.name.endswith("weight")), None
        )

    peers = [peer(r) for r in ATTENTION_PEERS]
    return None if any(p is None or p.source_name is None for p in peers) else peers


def _head_maps(plan, source, tensor, target_q, device: str, cache: dict) -> dict:
    """Every head's QKᵀ and VO maps on a hidden subset (``core.stats.HeadMaps``), source and
    target, when ``tensor`` is an attention query weight; else nothing."""
    peers = attention_peers(plan, tensor)
    if peers is None:
        return {}
    from core.stats import head_maps
    from core.transfer import fill_tensor

    sizes = {"source": plan.source_sizes, "target": plan.target_sizes}
    tensors = {
        "source": [source.read(tensor.source_name).float()] + [source.read(p.source_name).float() for p in peers],
        "target": [target_q] + [fill_tensor(plan, p, source, device=device, cache=cache).float() for p in peers],
    }
    out = {}
    for side, (q, k, v, o) in tensors.items():
        try:
            out[side] = head_maps(
                q,
                k,
                v,
                o,
                num_heads=sizes[side]["heads"],
                num_kv_heads=sizes[side].get("kv_heads"),
                head_dim=sizes[side].get("head_dim"),
                max_hidden=MAX_MAP,
                device=device,
            )
        except Exception:  # a layout head_maps does not know (fused qkv, …): no map, the rest stays
            return {}
    return out


@dataclass(frozen=True)
class _PlannedInfo:
    shape: tuple[int, ...]
    is_float: bool


class PlanSource:
    """A plan's target tensors seen as a source: ``read`` materialises one tensor on demand.

    Enough of the ``Source`` interface for ``core.stats.model_table`` (``tensors``, ``read``,
    ``display_name``) plus ``describe``, the target's labelled tensors for the table's rows.
    """

    def __init__(self, plan, source) -> None:
        self.plan, self.source, self._cache = plan, source, {}
        self.tensors = {t.name: _PlannedInfo(tuple(t.shape), t.dtype.startswith(("F", "BF"))) for t in plan.tensors}
        self.display_name = "target"

    def read(self, name: str):
        from core.transfer import fill_tensor

        return fill_tensor(self.plan, self.plan.tensor(name), self.source, cache=self._cache).cpu()

    def describe(self, _source=None):
        from core.stats.table import LabelledTensor

        return [LabelledTensor(t.name, t.role, t.layer, t.fan_in, t.kind) for t in self.plan.tensors]
