"""Per-tensor scalar metrics by name: one registry for the model table, the CLI and the app.

A metric reads a :class:`TensorView`, which computes each intermediate (the flat sample, the
moments, the spectrum, the mean-field measurements) at most once per tensor, so asking for
``std``, ``kurtosis`` and ``skewness`` samples the tensor once, and ``alpha`` with
``stable_rank`` decomposes it once. Adding a metric is one :func:`register_metric` call (into :data:`METRICS`, a
:class:`core.registry.Registry`).

Exact and estimated: every metric says, per tensor, whether its value is exact or an estimate
(:meth:`Metric.is_estimated`; the model table carries it as ``ModelTable.estimated`` and in its
JSON). The rules, and the errors of each estimate measured against the exact computation with
estimation forced on every matrix of the demo model (``benchmarks/check_stats_estimates.py``,
numbers in :data:`MEASURED_ERRORS`, repeated in each metric's help):

- spectrum metrics (``alpha``, ``stable_rank``, ``sigma_max``): exact (float64 Gram of the
  smaller side, every eigenvalue) when the smaller side is ≤ ``exact_side`` (512); above it the
  top 96 eigenvalues are estimated by a fixed-seed block Krylov method in float32, or with
  bf16 products for a bf16 matrix where those are fast (a CPU with AMX or AVX-512 BF16: Ritz values within
  0.2% of float32's; :func:`core.stats.spectrum.top_eigenvalues`); ‖W‖_F is always exact;
- value metrics (``std``, ``kurtosis``, …): exact up to 2M entries; larger tensors use a
  stratified fixed-seed sample of 2M entries;
- ``row_corr_excess`` / ``col_corr_excess``: exact up to 256 rows (columns); above, a fixed-seed
  subset of 256 rows (columns), each correlated over its full length;
- ``top1_norm_share``, ``top1_norm_ratio``, ``nonfinite``: always exact (every row norm, every
  entry).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.devices import product_dtype
from core.errors import StatsError
from core.registry import Registry
from core.stats.meanfield import MeanFieldStats, mean_field_stats
from core.stats.moments import Moments, moments_of_sample
from core.stats.sampling import (
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_SEED,
    as_matrix,
    as_tensor,
    count_nonfinite,
    finite_values,
    flat_sample,
    row_sum_squares,
    to_float32,
)
from core.stats.spectrum import DEFAULT_EXACT_SIDE, DEFAULT_MAX_SIDE, DEFAULT_RANK, Spectrum, spectrum


class cached_property:  # noqa: N801 - used as functools.cached_property is
    """``functools.cached_property`` without its lock: on Python 3.11 that lock is the class's, not
    the instance's, so the table's workers, each measuring its own :class:`TensorView`, waited for
    one another's spectra (the 7B table used 1.3 of 2 cores). Each view belongs to one thread."""

    def __init__(self, func) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


class TensorView:
    """One tensor and its lazily computed intermediates.

    NaN/±Inf entries are counted (``nonfinite``, over the whole tensor) and left out of the
    value statistics (``sample`` holds finite entries only); the matrix statistics of a tensor
    that has any are NaN (see :mod:`core.stats.sampling`).

    A matrix is read as stored, or widened to float32 on ``device`` once where the spectrum
    estimate needs it (``matrix_for_statistics``); its row norms (``row_sq``) are taken once and
    serve ‖W‖_F, the top-1% norm share and the NaN/Inf check.

    Args:
        tensor: the tensor (stored dtype; widened where needed).
        fan_in: the axis summed over in the forward pass (1 for PyTorch (out, in) weights, 0 for
            GPT-2's Conv1D (in, out)): matrices are oriented so rows are output neurons.
        device, seed, max_elements, max_side, max_size: passed to the statistics.
        exact_side, rank: spectra of matrices whose smaller side exceeds ``exact_side`` are
            estimated from their top ``rank`` eigenvalues (None: never; see
            :mod:`core.stats.spectrum`).
        workspace: a :class:`Workspace` to widen bf16/fp16 matrices into (None: a new tensor).
        products: a :data:`core.devices.PRODUCT_PRECISIONS` choice for the spectrum estimate's
            products: with bfloat16 (``"auto"``: on a CPU with AMX or AVX-512 BF16, or a recent GPU) a bf16
            matrix's estimate multiplies the matrix as stored (see
            :func:`core.stats.spectrum.top_eigenvalues`).
    """

    def __init__(
        self,
        tensor,
        *,
        fan_in: int | None = 1,
        device: str | torch.device = "cpu",
        seed: int = DEFAULT_SEED,
        max_elements: int | None = DEFAULT_MAX_ELEMENTS,
        max_side: int | None = DEFAULT_MAX_SIDE,
        max_size: int | None = 256,
        exact_side: int | None = DEFAULT_EXACT_SIDE,
        rank: int = DEFAULT_RANK,
        workspace: Workspace | None = None,
        products: str = "auto",
    ) -> None:
        self.tensor = as_tensor(tensor, tensor.device if isinstance(tensor, torch.Tensor) else "cpu")
        self.fan_in = fan_in
        self.device = device
        self.seed = seed
        self.max_elements = max_elements
        self.max_side = max_side
        self.max_size = max_size
        self.exact_side = exact_side
        self.rank = rank
        self.workspace = workspace
        self.products = products

    @property
    def is_matrix(self) -> bool:
        return self.tensor.ndim >= 2 and min(self.tensor.shape[0], self.tensor[0].numel()) >= 2

    @property
    def sampled(self) -> bool:
        """True when the value statistics read a sample rather than every entry."""
        return self.max_elements is not None and self.tensor.numel() > self.max_elements

    @cached_property
    def matrix(self) -> torch.Tensor:
        if not self.is_matrix:
            raise StatsError(f"a tensor of shape {tuple(self.tensor.shape)} is not a matrix")
        w = as_matrix(self.tensor)
        return w.T if self.fan_in == 0 and self.tensor.ndim == 2 else w

    @cached_property
    def matrix_here(self) -> torch.Tensor:
        """The matrix as stored, on ``device``."""
        return self.matrix.to(self.device)

    @cached_property
    def matrix32(self) -> torch.Tensor:
        """The matrix in float32 (float64 kept) on ``device``, widened whole (into the workspace)."""
        w = self.matrix_here
        if self.workspace is not None and w.dtype in (torch.bfloat16, torch.float16):
            return self.workspace.widen(w)
        return to_float32(w)

    @cached_property
    def krylov_products(self) -> torch.dtype | None:
        """The dtype of the spectrum estimate's products (None: the spectrum is exact, no estimate)."""
        if self.exact_side is None or min(self.matrix.shape) <= self.exact_side:
            return None
        return product_dtype(self.products, self.device)

    @cached_property
    def matrix_for_statistics(self) -> torch.Tensor:
        """The matrix the row norms, correlations and spectrum read: widened whole only when the
        spectrum estimate multiplies it in float32 (a 16-bit matrix with bf16 products, an exact
        spectrum or none at all is read as stored, a block or a subset widened at a time: a
        whole-matrix widening was 11 s of the Llama-2-7B-shape table's 73 s of CPU). The values are
        the same either way."""
        w = self.matrix_here
        float32_estimate = self.krylov_products is not None and not (
            self.krylov_products == torch.bfloat16 and w.dtype == torch.bfloat16
        )
        return self.matrix32 if float32_estimate and w.dtype in (torch.bfloat16, torch.float16) else w

    @cached_property
    def row_sq(self) -> torch.Tensor:
        """(rows,) float64 Σ_j w_ij² of the matrix (non-finite where a row has NaN/Inf)."""
        return row_sum_squares(self.matrix_for_statistics)

    @cached_property
    def nonfinite(self) -> int:
        """NaN/±Inf entries of the whole tensor."""
        row_sq = self.__dict__.get("row_sq")
        if row_sq is not None and bool(torch.isfinite(row_sq).all()):
            return 0  # finite row norms prove every entry finite: no second pass
        return count_nonfinite(self.tensor)

    @cached_property
    def raw_sample(self) -> torch.Tensor:
        return flat_sample(self.tensor, self.max_elements, seed=self.seed, device=self.device)

    @cached_property
    def sample(self) -> torch.Tensor:
        """The finite entries of the (stratified, seeded) sample."""
        return finite_values(self.raw_sample)

    @cached_property
    def moments(self) -> Moments:
        return moments_of_sample(self.raw_sample)

    @cached_property
    def spectrum(self) -> Spectrum:
        row_sq = self.row_sq
        nonfinite = self.nonfinite
        return spectrum(
            self.matrix_for_statistics,
            max_side=self.max_side,
            exact_side=self.exact_side,
            rank=self.rank,
            seed=self.seed,
            device=self.device,
            fro2=float(row_sq.sum()) if not nonfinite else None,
            nonfinite=nonfinite,
            products=self.krylov_products,
        )

    @cached_property
    def mean_field(self) -> MeanFieldStats:
        return mean_field_stats(
            self.matrix_for_statistics,
            max_size=self.max_size,
            seed=self.seed,
            device=self.device,
            kurtosis=self.moments.excess_kurtosis,
            row_sq=self.row_sq,
        )


class Workspace:
    """One float32 buffer that consecutive :class:`TensorView` s widen their bf16/fp16 matrices
    into (the model table passes one along its tensors).

    A fresh 180 MB float32 copy of a 4096×11008 bf16 matrix costs ~0.2 s of CPU in page faults on
    this kind of machine, more than the widening itself; the buffer is allocated once at the
    largest size seen and reused. It is only valid until the next view widens into it.
    """

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def widen(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` as a contiguous float32 tensor in the buffer (grown when too small)."""
        n = w.numel()
        if self._buffer is None or self._buffer.numel() < n or self._buffer.device != w.device:
            self._buffer = None  # drop the old one before allocating its successor
            self._buffer = torch.empty(n, dtype=torch.float32, device=w.device)
        out = self._buffer[:n].view(w.shape)
        out.copy_(w)
        return out


@dataclass(frozen=True)
class Metric:
    """A named scalar of one tensor; ``matrix_only`` metrics are NaN for vectors.

    ``estimated(view)`` is True when the tensor's value is an estimate rather than exact (None:
    always exact); the help says when and how far off, as measured; ``estimate`` says how, in a
    few words, for a table's legend or a cell's tooltip ("block Krylov, top 96 eigenvalues").
    """

    name: str
    help: str
    compute: Callable[[TensorView], float]
    matrix_only: bool = False
    estimated: Callable[[TensorView], bool] | None = None
    estimate: str = ""

    def __call__(self, view: TensorView) -> float:
        if self.matrix_only and not view.is_matrix:
            return math.nan
        return float(self.compute(view))

    def is_estimated(self, view: TensorView) -> bool:
        """Whether this tensor's value is an estimate (False where the metric has no value)."""
        if self.estimated is None or (self.matrix_only and not view.is_matrix):
            return False
        return bool(self.estimated(view))


#: Every metric by name; ``METRICS.get(name)`` raises StatsError naming the known ones.
METRICS: Registry[Metric] = Registry("metric", StatsError)


def register_metric(
    name: str,
    help: str,
    compute: Callable[[TensorView], float],
    *,
    matrix_only: bool = False,
    estimated: Callable[[TensorView], bool] | None = None,
    estimate: str = "",
) -> None:
    """Add a metric to :data:`METRICS` (names are unique); ``estimate``: how its estimates are
    made, in a few words (required with ``estimated``)."""
    if estimated is not None and not estimate:
        raise ValueError(f"metric {name!r}: say how it is estimated (estimate=...)")
    METRICS.add(name, Metric(name, help, compute, matrix_only, estimated, estimate))


#: Errors of the estimates against the exact values, measured with estimation forced on every
#: matrix of the demo model (40 matrices of all-MiniLM-L6-v2; benchmarks/check_stats_estimates.py):
#: metric → text quoted in its help. Relative errors unless said otherwise.
MEASURED_ERRORS = {
    "sample": "measured error of std on a 4.4% sample: median 0.5%, worst 4.3%",
    "kurtosis": "measured on a 4.4% sample: median 16%, 90th percentile 110%, worst 7.4× where a few outliers dominate",
    "alpha": "measured: median 8%, 90th percentile 29%, worst 220% where the exact tail is longer than 96; "
    "a rough reading on 4096-side matrices",
    "sigma_max": "measured low by median 0.13%, worst 2.0%; by 9% on an i.i.d. Gaussian 4096×11008 matrix",
    "stable_rank": "measured high by median 0.26%, worst 4.0%; by 21% on an i.i.d. Gaussian 4096×11008 matrix",
    "corr": "measured absolute error of the excess ≤ 0.0014",
}


def _sampled(v: TensorView) -> bool:
    return v.sampled


def _spectrum_estimated(v: TensorView) -> bool:
    return v.spectrum.method != "exact"


def _rows_subset(v: TensorView) -> bool:
    return v.max_size is not None and v.matrix.shape[0] > v.max_size


def _cols_subset(v: TensorView) -> bool:
    return v.max_size is not None and v.matrix.shape[1] > v.max_size


_SAMPLE = f"estimated from a 2M-entry sample of larger tensors ({MEASURED_ERRORS['sample']})"
#: How each kind of estimate is made, in a few words (at the table's defaults).
_BY_SAMPLE = "2M-entry sample"
_BY_KRYLOV = f"block Krylov, top {DEFAULT_RANK} eigenvalues"
_SPECTRUM = (
    f"exact when the smaller side is ≤ {DEFAULT_EXACT_SIDE}, else estimated from the top {DEFAULT_RANK} "
    "eigenvalues by block Krylov"
)

register_metric(
    "nonfinite", "NaN/±Inf entries of the whole tensor (left out of the other metrics; exact)", lambda v: v.nonfinite
)


def _sampled_metric(name: str, description: str, fn) -> None:
    """A value metric read from the 2M-entry sample of larger tensors (estimated there)."""
    register_metric(name, description, fn, estimated=_sampled, estimate=_BY_SAMPLE)


_sampled_metric("mean", f"mean of the entries; {_SAMPLE}", lambda v: v.moments.mean)
_sampled_metric("std", f"standard deviation of the entries (ddof=0); {_SAMPLE}", lambda v: v.moments.std)
_sampled_metric("skewness", f"skewness of the entries; {_SAMPLE}", lambda v: v.moments.skewness)
_sampled_metric(
    "kurtosis",
    "excess kurtosis of the entries (Gaussian 0); estimated from a 2M-entry sample of larger tensors "
    f"({MEASURED_ERRORS['kurtosis']})",
    lambda v: v.moments.excess_kurtosis,
)
_sampled_metric(
    "frac_3sigma",
    "share of entries beyond 3σ (Gaussian 0.0027); estimated from a 2M-entry sample of larger tensors",
    lambda v: v.moments.frac_beyond_3sigma,
)
_sampled_metric(
    "frac_6sigma",
    "share of entries beyond 6σ (Gaussian 2e-9); estimated from a 2M-entry sample of larger tensors",
    lambda v: v.moments.frac_beyond_6sigma,
)
_sampled_metric(
    "abs_max",
    "largest |entry| (of a 2M-entry sample of larger tensors: a lower bound there)",
    lambda v: max(abs(v.moments.min), abs(v.moments.max)),
)
register_metric(
    "alpha",
    f"ESD power-law exponent (WeightWatcher's fit; 2–4 well trained, >6 random-like); {_SPECTRUM}, "
    f"fitted to those {DEFAULT_RANK} only ({MEASURED_ERRORS['alpha']})",
    lambda v: v.spectrum.alpha,
    matrix_only=True,
    estimated=_spectrum_estimated,
    estimate=_BY_KRYLOV,
)
register_metric(
    "stable_rank",
    f"‖W‖_F² / ‖W‖_2² (‖W‖_F exact); ‖W‖_2 {_SPECTRUM} ({MEASURED_ERRORS['stable_rank']})",
    lambda v: v.spectrum.stable_rank,
    matrix_only=True,
    estimated=_spectrum_estimated,
    estimate=_BY_KRYLOV,
)
register_metric(
    "sigma_max",
    f"largest singular value ‖W‖_2; {_SPECTRUM} ({MEASURED_ERRORS['sigma_max']})",
    lambda v: float(v.spectrum.singular_values[0]) if v.spectrum.singular_values.size else math.nan,
    matrix_only=True,
    estimated=_spectrum_estimated,
    estimate=_BY_KRYLOV,
)
register_metric(
    "row_corr_excess",
    "mean ρ² of rows beyond the i.i.d. null (0 if within noise); exact up to 256 rows, else on a "
    f"fixed-seed subset of 256 ({MEASURED_ERRORS['corr']})",
    lambda v: v.mean_field.as_metrics()["row_corr_excess"],
    matrix_only=True,
    estimated=_rows_subset,
    estimate="256-row subset",
)
register_metric(
    "col_corr_excess",
    "mean ρ² of columns beyond the i.i.d. null (0 if within noise); exact up to 256 columns, else on a "
    f"fixed-seed subset of 256 ({MEASURED_ERRORS['corr']})",
    lambda v: v.mean_field.as_metrics()["col_corr_excess"],
    matrix_only=True,
    estimated=_cols_subset,
    estimate="256-column subset",
)
register_metric(
    "top1_norm_share",
    "share of Σ‖row‖² in the top 1% rows (exact: every row norm)",
    lambda v: v.mean_field.top1_norm_share,
    matrix_only=True,
)
register_metric(
    "top1_norm_ratio",
    "top-1% norm share / its i.i.d. null (exact: every row norm)",
    lambda v: v.mean_field.norm_concentration,
    matrix_only=True,
)

#: What the mean-field rule reads (see core.stats.meanfield.suggest).
MEAN_FIELD_METRICS = ("row_corr_excess", "col_corr_excess", "kurtosis", "top1_norm_ratio")
DEFAULT_METRICS = ("std", "kurtosis", "alpha", "stable_rank")
