"""Checkpoint compare: distances between the tensors of two checkpoints, one pair at a time.

``diff_checkpoints(a, b)`` pairs the tensors of two opened sources (:mod:`core.stats.pairing`:
by name, then — when names differ but both are the same family — by layer and role) and, for
each pair, reads A's tensor and B's tensor, measures them and drops both before the next pair:
peak memory is the largest pair (plus fp64 blocks of at most 1M entries), never a model.

Per pair (A is the reference):

- **KS** and **Wasserstein-1** of the two value distributions (:func:`core.stats.distances.ks_and_wasserstein`),
  on fixed-seed stratified samples of at most ``max_distance_elements`` entries per side (2^18 by
  default, as in the preview): exact when a tensor has no more entries (``n_a == numel``), an
  estimate otherwise (sampling error of KS ≈ 0.0024 at 2^18).
- **moments** (mean, std, …) of each side, on at most 2M entries (:mod:`core.stats.moments`), and
  their ``std_ratio`` = std_B / std_A.
- **relative Frobenius** ‖A − B‖_F / ‖A‖_F, the absolute ‖A − B‖_F and max |A − B|: exact, over
  every entry, in float64 (inf when ‖A‖ = 0 and B differs).
- **row cosines** for tensors of 2 or more axes (rows = the first axis, the rest flattened): the
  mean and the minimum over rows of cos(a_i, b_i), exact, in float64. A row that is zero on
  both sides counts as cosine 1 (identical), zero on one side only as 0.

Elementwise metrics need the same shape: a pair whose shapes differ (a shrunk export against
its source) gets the distribution metrics only, and ``note = "shape differs"``; no alignment is
invented. NaN/±Inf entries are left out of KS, W1 and the moments; elementwise metrics of a pair
with any are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.stats.distances import ks_and_wasserstein
from core.stats.histogram import HistogramPair, histogram_pair
from core.stats.moments import Moments, moments_of_sample
from core.stats.pairing import Pairing, TensorPair, pair_tensors
from core.stats.sampling import (
    DEFAULT_MAX_DISTANCE_ELEMENTS,
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_SEED,
    finite_values,
    flat_sample,
    to_float32,
)
from core.stats.spectrum import DEFAULT_MAX_SIDE, singular_values
from core.stats.table import ROLE_ORDER, ModelTable, TensorRow, assemble_table

#: What the heat map and the table can show, in order, with a short label each.
DIFF_METRICS: dict[str, str] = {
    "rel_frobenius": "‖A−B‖/‖A‖",
    "cos_mean": "cos rows (mean)",
    "cos_min": "cos rows (min)",
    "ks": "KS",
    "w1": "W1",
    "std_ratio": "std B/A",
    "max_abs_diff": "max |A−B|",
}
SHAPE_DIFFERS = "shape differs"
BLOCK_ELEMENTS = 1 << 20  # fp64 working blocks of the elementwise metrics: 8 MB per side


@dataclass(frozen=True)
class PairDiff:
    """The distances of one tensor pair (see the module docstring); NaN where a metric does not apply."""

    pair: TensorPair
    ks: float
    w1: float
    rel_frobenius: float
    frobenius: float
    max_abs_diff: float
    cos_mean: float
    cos_min: float
    moments_a: Moments
    moments_b: Moments
    n_a: int  # finite entries of A used for KS/W1 (= numel_a when exact)
    n_b: int
    distances_exact: bool  # KS and W1 used every entry of both tensors (no subsample)
    note: str = ""

    @property
    def name(self) -> str:
        return self.pair.name_a

    @property
    def std_ratio(self) -> float:
        sa, sb = self.moments_a.std, self.moments_b.std
        return sb / sa if sa > 0 else math.nan

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))

    def to_dict(self) -> dict:
        out = {**self.pair.to_dict(), "note": self.note, "distances_exact": self.distances_exact}
        for metric in ("ks", "w1", "rel_frobenius", "frobenius", "max_abs_diff", "cos_mean", "cos_min", "std_ratio"):
            out[metric] = _num(self.value(metric))
        out["n_a"], out["n_b"] = self.n_a, self.n_b
        out["moments_a"] = {k: _num(v) for k, v in asdict(self.moments_a).items()}
        out["moments_b"] = {k: _num(v) for k, v in asdict(self.moments_b).items()}
        return out


@dataclass(frozen=True, eq=False)
class CheckpointDiff:
    """Every pair's distances, and what could not be paired or compared."""

    a: str
    b: str
    pairing: Pairing
    pairs: list[PairDiff]
    max_distance_elements: int | None
    seed: int

    def pair(self, name: str) -> PairDiff:
        """The pair whose A (or B) tensor is ``name``."""
        for p in self.pairs:
            if name in (p.pair.name_a, p.pair.name_b):
                return p
        raise KeyError(name)

    def table(self) -> ModelTable:
        """The pairs by layer (rows) × role (columns), one matrix per metric of :data:`DIFF_METRICS`."""
        rows = [
            TensorRow(p.name, p.pair.layer, p.pair.column, {m: p.value(m) for m in DIFF_METRICS}) for p in self.pairs
        ]
        table = assemble_table(rows, tuple(DIFF_METRICS))
        # Columns: in layers first, then by role (attention, MLP, norms), each weight before its bias.
        first: dict[str, tuple] = {}
        rank = {role: i for i, role in enumerate(ROLE_ORDER)}
        for k, p in enumerate(self.pairs):
            bias = p.pair.column.startswith(p.pair.role + " bias")
            first.setdefault(p.pair.column, (p.pair.layer is None, rank.get(p.pair.role, len(rank)), bias, k))
        order = sorted(range(len(table.columns)), key=lambda j: first[table.columns[j]])
        return replace(
            table,
            columns=tuple(table.columns[j] for j in order),
            values={m: v[:, order] for m, v in table.values.items()},
            names=table.names[:, order],
        )

    def summary(self) -> dict:
        same = [p for p in self.pairs if p.note != SHAPE_DIFFERS]
        identical = [p for p in same if p.frobenius == 0.0]
        changed = [p for p in same if math.isfinite(p.rel_frobenius)]
        worst = max(changed, key=lambda p: p.rel_frobenius, default=None)
        return {
            "compared": len(self.pairs),
            "identical": len(identical),
            "shape_differs": len(self.pairs) - len(same),
            "only_a": len(self.pairing.only_a),
            "only_b": len(self.pairing.only_b),
            "not_compared": len(self.pairing.not_compared),
            "largest_rel_frobenius": None if worst is None else {"name": worst.name, "value": worst.rel_frobenius},
        }

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "family_a": self.pairing.family_a,
            "family_b": self.pairing.family_b,
            "max_distance_elements": self.max_distance_elements,
            "seed": self.seed,
            "exact": "rel_frobenius, frobenius, max_abs_diff, cos_mean, cos_min: always (every entry); "
            "ks, w1: when distances_exact (tensors of at most max_distance_elements entries); "
            "moments: on at most 2,000,000 entries per side",
            "summary": self.summary(),
            "pairs": [p.to_dict() for p in self.pairs],
            "only_a": list(self.pairing.only_a),
            "only_b": list(self.pairing.only_b),
            "not_compared": dict(self.pairing.not_compared),
        }


def _num(x):
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def elementwise(a: torch.Tensor, b: torch.Tensor, *, block_elements: int = BLOCK_ELEMENTS) -> dict[str, float]:
    """‖A−B‖_F, ‖A−B‖_F/‖A‖_F, max |A−B| and (2+ axes) the mean and min row cosine of two same-shape tensors.

    Rows are the first axis (the rest flattened); float64 throughout, a block of rows at a time.
    """
    rows_a = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(1, -1)
    rows_b = b.reshape(rows_a.shape)
    step = max(1, block_elements // max(1, rows_a.shape[1]))
    diff2 = norm2 = 0.0
    max_abs = 0.0
    cosines = []
    for x, y in zip(rows_a.split(step), rows_b.split(step)):
        x, y = to_float32(x).double(), to_float32(y).double()
        d = x - y
        diff2 += float(d.square().sum())
        max_abs = max(max_abs, float(d.abs().max())) if d.numel() else max_abs
        na, nb = x.square().sum(1), y.square().sum(1)
        norm2 += float(na.sum())
        if a.ndim >= 2:
            cosines.append(_row_cosines(x, y, na, nb))
    if not math.isfinite(diff2):
        max_abs = math.nan
    frob = math.sqrt(diff2) if math.isfinite(diff2) else math.nan
    if norm2 > 0:
        rel = frob / math.sqrt(norm2)
    else:
        rel = 0.0 if frob == 0.0 else (math.inf if math.isfinite(frob) else math.nan)
    out = {"frobenius": frob, "rel_frobenius": rel, "max_abs_diff": max_abs, "cos_mean": math.nan, "cos_min": math.nan}
    if cosines:
        cos = torch.cat(cosines)
        out["cos_mean"], out["cos_min"] = float(cos.mean()), float(cos.min())
    return out


def _row_cosines(x: torch.Tensor, y: torch.Tensor, na: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    denom = (na * nb).sqrt()
    cos = (x * y).sum(1) / torch.where(denom > 0, denom, 1.0)
    cos = torch.where(denom > 0, cos, torch.where((na == 0) & (nb == 0), 1.0, 0.0))
    return cos.clamp(-1.0, 1.0)


def diff_tensors(
    a: torch.Tensor,
    b: torch.Tensor,
    pair: TensorPair,
    *,
    max_distance_elements: int | None = DEFAULT_MAX_DISTANCE_ELEMENTS,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    seed: int = DEFAULT_SEED,
) -> PairDiff:
    """The distances of one pair of tensors (A the reference); see the module docstring."""
    ma = moments_of_sample(flat_sample(a, max_elements, seed=seed))
    mb = moments_of_sample(flat_sample(b, max_elements, seed=seed))
    da = finite_values(flat_sample(a, max_distance_elements, seed=seed))
    db = finite_values(flat_sample(b, max_distance_elements, seed=seed))
    ks, w1 = ks_and_wasserstein(da, db)
    if tuple(a.shape) == tuple(b.shape):
        elem, note = elementwise(a, b), ""
    else:
        nan = math.nan
        elem = {"frobenius": nan, "rel_frobenius": nan, "max_abs_diff": nan, "cos_mean": nan, "cos_min": nan}
        note = SHAPE_DIFFERS
    cap = max_distance_elements
    exact = cap is None or max(a.numel(), b.numel()) <= cap
    return PairDiff(
        pair,
        ks,
        w1,
        moments_a=ma,
        moments_b=mb,
        n_a=da.numel(),
        n_b=db.numel(),
        distances_exact=exact,
        note=note,
        **elem,
    )


def iter_diffs(
    a,
    b,
    pairing: Pairing,
    *,
    max_distance_elements: int | None = DEFAULT_MAX_DISTANCE_ELEMENTS,
    seed: int = DEFAULT_SEED,
) -> Iterator[PairDiff]:
    """One :class:`PairDiff` per pair, reading each pair's two tensors and dropping them after."""
    for pair in pairing.pairs:
        ta = a.read(pair.name_a)
        tb = b.read(pair.name_b)
        yield diff_tensors(ta, tb, pair, max_distance_elements=max_distance_elements, seed=seed)
        del ta, tb


def diff_checkpoints(
    a,
    b,
    *,
    names: list[str] | None = None,
    max_distance_elements: int | None = DEFAULT_MAX_DISTANCE_ELEMENTS,
    seed: int = DEFAULT_SEED,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> CheckpointDiff:
    """Compare every paired tensor of two opened sources.

    Args:
        a, b: opened :class:`core.sources.Source` objects (A is the reference of the relative metrics).
        names: compare only these tensors (A's or B's names); None: every pair.
        max_distance_elements: entries per side for KS/W1 (None: every entry, exact).
        seed: the subsample seed.
        progress: ``progress(fraction, tensor name)``, by bytes read.
        cancel: checked before each pair; raises ``Cancelled``.

    Returns:
        The :class:`CheckpointDiff`.

    Raises:
        StatsError: ``names`` holds a name neither checkpoint pairs.
    """
    pairing = pair_tensors(a, b)
    if names is not None:
        pairing = pairing.only(names)
    total = sum(p.numel_a + p.numel_b for p in pairing.pairs)
    done = 0
    out: list[PairDiff] = []
    progress(0.0, "")
    stream = iter_diffs(a, b, pairing, max_distance_elements=max_distance_elements, seed=seed)
    for pair in pairing.pairs:
        cancel.check()
        out.append(next(stream))
        done += pair.numel_a + pair.numel_b
        progress(done / max(total, 1), pair.name_a)
    return CheckpointDiff(a.display_name, b.display_name, pairing, out, max_distance_elements, seed)


@dataclass(frozen=True, eq=False)
class PairDetail:
    """What the app draws for one pair: its distances, both histograms on shared bins, both spectra.

    ``histogram``'s ``source`` side is A and ``target`` side B; the spectra are the singular values
    (descending) of A and B, empty for tensors of fewer than 2 axes or with NaN/Inf entries.
    """

    diff: PairDiff
    histogram: HistogramPair
    spectrum_a: np.ndarray
    spectrum_b: np.ndarray


def pair_detail(
    a,
    b,
    name: str,
    *,
    max_distance_elements: int | None = DEFAULT_MAX_DISTANCE_ELEMENTS,
    seed: int = DEFAULT_SEED,
) -> PairDetail:
    """Distances, overlaid histograms and spectra of the pair holding ``name`` (A's or B's name).

    Raises:
        StatsError: no pair holds ``name``.
    """
    pair = pair_tensors(a, b).only([name]).pairs[0]
    ta, tb = a.read(pair.name_a), b.read(pair.name_b)
    diff = diff_tensors(ta, tb, pair, max_distance_elements=max_distance_elements, seed=seed)
    hist = histogram_pair(ta, tb, seed=seed)
    return PairDetail(diff, hist, _singular_values(ta, seed), _singular_values(tb, seed))


def _singular_values(x: torch.Tensor, seed: int) -> np.ndarray:
    if x.ndim < 2 or min(x.shape[0], x[0].numel()) < 2:
        return np.zeros(0)
    return singular_values(x, max_side=DEFAULT_MAX_SIDE, seed=seed)
