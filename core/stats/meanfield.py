"""Mean-field validity: how far a weight matrix's neurons are from exchangeable i.i.d. draws.

The mean-field (row–column) ansatz treats the neurons of a dimension as i.i.d. draws from one
distribution; fit-and-sample and i.i.d. neuron resampling are exact only when that holds. Three
measurements per matrix (rows = output neurons of a PyTorch (out, in) weight; columns = inputs),
each compared with the null of a matrix with i.i.d. Gaussian entries of the same shape:

1. **Correlation energy** of rows (and of columns): the mean squared Pearson correlation over
   distinct pairs (on ≤256 fixed-seed rows; see :mod:`core.stats.correlation`). Its null value
   is 1/(m − 1) for vectors of length m; the *excess* over it is shared structure. Threshold
   ``CORR_EXCESS = 0.01``: an RMS correlation of 0.1 beyond chance — the same energy as one
   common direction holding 10% of every neuron's variance (rows = √s·f + √(1−s)·noise give
   ρ = s, ρ² = s²). Under the null, the mean of ρ² over P pairs has standard deviation ≈ √(2/P)/m
   (≈ 2e-6 for 256 rows of length 4096), so the threshold is far above sampling noise; we also
   require the excess to exceed 5 such standard deviations for tiny matrices.
2. **Excess kurtosis** of the entries. Threshold ``KURTOSIS = 1.0``: Student-t with ν = 10 has
   excess kurtosis 1, and there a Gaussian of the same variance underestimates P(|x| > 4σ) 19-fold
   (1.2e-3 vs 6.3e-5). The sampling noise of the estimate is √(24/n): 0.003 at n = 2M entries.
3. **Top-1% norm share**: the share of Σ‖row‖² held by the ⌈1%·rows⌉ rows of largest norm. Null:
   ‖row‖²/σ² ~ χ²_m, whose top-p share is 1 − F_{χ²_{m+2}}(F⁻¹_{χ²_m}(1 − p)) (from
   x·f_m(x) = m·f_{m+2}(x)): 1.06% for m = 4096, 1.5% for m = 64. Threshold
   ``NORM_CONCENTRATION = 3.0`` times the null: the top 1% of neurons then carry three times the
   norm an exchangeable population gives them; i.i.d. sampling would treat them as ordinary
   draws and lose them in 99% of draws of a 1%-sized target, while by-norm ("function-based")
   sampling keeps them.

The rule (:func:`suggest`) emits every suggestion whose condition holds, in this order, or the
"close to exchangeable" one when none does:

- rows (or columns) correlation excess ≥ 0.01 → "rows strongly correlated: prefer selection or
  covariance-aware sampling over i.i.d. fitting";
- excess kurtosis ≥ 1 → "heavy tails: prefer Student-t or empirical-quantile fits over Gaussian";
- top-1% norm share ≥ 3× null → "a few neurons hold a large share of the norm: prefer by-norm
  (function-based) sampling";
- otherwise → "close to exchangeable: i.i.d. mean-field sampling is reasonable".

A matrix with NaN/±Inf entries has NaN correlation energies and norm share (its kurtosis is that
of the finite entries), and the model table gives it no suggestion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from core.stats.correlation import correlation_map
from core.stats.moments import moments
from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED, as_matrix, row_sum_squares

CORR_EXCESS = 0.01
KURTOSIS = 1.0
NORM_CONCENTRATION = 3.0
TOP_FRACTION = 0.01

SUGGEST_ROWS = "rows strongly correlated: prefer selection or covariance-aware sampling over i.i.d. fitting"
SUGGEST_COLS = "columns strongly correlated: prefer selection or covariance-aware sampling over i.i.d. fitting"
SUGGEST_TAILS = "heavy tails: prefer Student-t or empirical-quantile fits over Gaussian"
SUGGEST_NORM = "a few neurons hold a large share of the norm: prefer by-norm (function-based) sampling"
SUGGEST_IID = "close to exchangeable: i.i.d. mean-field sampling is reasonable"


@dataclass(frozen=True)
class MeanFieldStats:
    """Exchangeability measurements of one matrix and the suggestions they lead to."""

    shape: tuple[int, int]
    row_corr_energy: float
    row_corr_null: float
    row_corr_noise: float  # null standard deviation of row_corr_energy
    col_corr_energy: float
    col_corr_null: float
    col_corr_noise: float
    excess_kurtosis: float
    top1_norm_share: float
    top1_norm_null: float

    @property
    def row_corr_excess(self) -> float:
        return self.row_corr_energy - self.row_corr_null

    @property
    def col_corr_excess(self) -> float:
        return self.col_corr_energy - self.col_corr_null

    @property
    def norm_concentration(self) -> float:
        return self.top1_norm_share / self.top1_norm_null

    @property
    def suggestions(self) -> tuple[str, ...]:
        """The rule's suggestions; none when a measurement is NaN (NaN/Inf entries)."""
        measured = (self.row_corr_energy, self.col_corr_energy, self.top1_norm_share)
        return () if any(math.isnan(x) for x in measured) else suggest(self.as_metrics())

    def as_metrics(self) -> dict[str, float]:
        """The values :func:`suggest` reads, under the model table's metric names."""

        def beyond_noise(excess: float, noise: float) -> float:
            # NaN (a matrix with NaN/Inf entries) stays NaN: "not computable", not "no excess".
            return excess if math.isnan(excess) or excess > 5 * noise else 0.0

        return {
            "row_corr_excess": beyond_noise(self.row_corr_excess, self.row_corr_noise),
            "col_corr_excess": beyond_noise(self.col_corr_excess, self.col_corr_noise),
            "kurtosis": self.excess_kurtosis,
            "top1_norm_ratio": self.norm_concentration,
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **self.as_metrics(), "suggestions": list(self.suggestions)}


def suggest(values: Mapping[str, float]) -> tuple[str, ...]:
    """The documented rule: metric values (``row_corr_excess``, ``col_corr_excess``,
    ``kurtosis``, ``top1_norm_ratio``; missing or NaN ones are ignored) → suggestions."""

    def over(key: str, threshold: float) -> bool:
        value = values.get(key)
        return value is not None and not math.isnan(value) and value >= threshold

    out = []
    if over("row_corr_excess", CORR_EXCESS):
        out.append(SUGGEST_ROWS)
    if over("col_corr_excess", CORR_EXCESS):
        out.append(SUGGEST_COLS)
    if over("kurtosis", KURTOSIS):
        out.append(SUGGEST_TAILS)
    if over("top1_norm_ratio", NORM_CONCENTRATION):
        out.append(SUGGEST_NORM)
    return tuple(out) or (SUGGEST_IID,)


def null_top_share(rows: int, length: int, fraction: float = TOP_FRACTION) -> float:
    """Expected share of Σ‖row‖² in the top ⌈fraction·rows⌉ rows of an i.i.d. Gaussian matrix."""
    p = math.ceil(fraction * rows) / rows
    if p >= 1.0:
        return 1.0
    return chi2_sf(chi2_isf(p, length), length + 2)


def chi2_sf(x: float, dof: int) -> float:
    """P(χ²_dof > x): the regularised upper incomplete gamma Q(dof/2, x/2) (float64)."""
    half = torch.tensor([dof / 2, x / 2], dtype=torch.float64)
    return float(torch.special.gammaincc(half[:1], half[1:]))


def chi2_isf(p: float, dof: int) -> float:
    """The x with P(χ²_dof > x) = p, by bisection on :func:`chi2_sf` to float64 resolution."""
    lo, hi = 0.0, float(dof) + 10.0 * math.sqrt(2.0 * dof) + 100.0
    while chi2_sf(hi, dof) > p:  # p so small the first bracket is short
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if chi2_sf(mid, dof) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def top_norm_share(weight, fraction: float = TOP_FRACTION, *, row_sq: torch.Tensor | None = None) -> float:
    """Share of Σ‖row‖² held by the ⌈fraction·rows⌉ rows of largest norm (``row_sq``: the
    squared row norms when the caller already has them)."""
    norms = row_sum_squares(as_matrix(weight)) if row_sq is None else row_sq
    k = math.ceil(fraction * norms.numel())
    total = float(norms.sum())
    return float(torch.topk(norms, k).values.sum()) / total if math.isfinite(total) and total > 0 else math.nan


def _null_noise(k: int, m: int) -> float:
    pairs = k * (k - 1) / 2
    return math.sqrt(2.0 / pairs) / max(m - 1, 1) if pairs else math.inf


def mean_field_stats(
    weight,
    *,
    max_size: int | None = 256,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
    kurtosis: float | None = None,
    row_sq: torch.Tensor | None = None,
) -> MeanFieldStats:
    """Measure a (out, in) matrix against the i.i.d. null (see the module docstring).

    Args:
        weight: the matrix; rows are the neurons whose norm share is measured.
        max_size: rows/columns used for each correlation energy.
        max_elements: entries sampled for the kurtosis.
        seed: subsample seed.
        device: where the products run.
        kurtosis: an already computed excess kurtosis (skips recomputing it).
        row_sq: the squared row norms, already computed (skips a pass over the matrix).
    """
    w = as_matrix(weight)
    rows = correlation_map(w, "rows", max_size=max_size, seed=seed, device=device)
    cols = correlation_map(w, "cols", max_size=max_size, seed=seed, device=device)
    if kurtosis is None:
        kurtosis = moments(w, max_elements=max_elements, seed=seed, device=device).excess_kurtosis
    return MeanFieldStats(
        shape=(int(w.shape[0]), int(w.shape[1])),
        row_corr_energy=rows.offdiag_energy,
        row_corr_null=rows.null_energy,
        row_corr_noise=_null_noise(len(rows.indices), rows.vector_length),
        col_corr_energy=cols.offdiag_energy,
        col_corr_null=cols.null_energy,
        col_corr_noise=_null_noise(len(cols.indices), cols.vector_length),
        excess_kurtosis=float(kurtosis),
        top1_norm_share=top_norm_share(w.to(device), row_sq=row_sq),
        top1_norm_null=null_top_share(int(w.shape[0]), int(w.shape[1])),
    )
