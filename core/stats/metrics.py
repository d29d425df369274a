"""Per-tensor scalar metrics by name: one registry for the model table, the CLI and the app.

A metric reads a :class:`TensorView`, which computes each intermediate (the flat sample, the
moments, the spectrum, the mean-field measurements) at most once per tensor, so asking for
``std``, ``kurtosis`` and ``skewness`` samples the tensor once, and ``alpha`` with
``stable_rank`` decomposes it once. Adding a metric is one :func:`register_metric` call (into :data:`METRICS`, a
:class:`core.registry.Registry`).

Exact and estimated: the spectrum metrics (``alpha``, ``stable_rank``, ``sigma_max``) are exact
whenever a side of the matrix is ≤ ``max_side`` (2048): the float64 Gram matrix of the smaller side
and all its eigenvalues. When both sides exceed it, ``alpha`` and ``sigma_max`` describe a fixed-seed
subset of 2048 indices of the smaller side (an estimate), and ``stable_rank`` takes ‖W‖_2 of the
whole matrix from Lanczos (within :data:`core.stats.spectrum.SPECTRAL_NORM_RTOL`, 1e-5). Value metrics
(``std``, ``kurtosis``, …) read a stratified sample of 2M entries of larger tensors. The errors of
each estimate, measured against the exact computation on every matrix of the demo model, are in
``benchmarks/check_stats_estimates.py`` (‖W‖_2: max 1.2e-6; α from a half-side subset: median
relative 0.17, max 1.8; std from a 4.4% sample: median 4.8e-3, max 4.3e-2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

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
)
from core.stats.spectrum import DEFAULT_MAX_SIDE, Spectrum, spectrum


class TensorView:
    """One tensor and its lazily computed intermediates.

    NaN/±Inf entries are counted (``nonfinite``, over the whole tensor) and left out of the
    value statistics (``sample`` holds finite entries only); the matrix statistics of a tensor
    that has any are NaN (see :mod:`core.stats.sampling`).

    Args:
        tensor: the tensor (stored dtype; widened where needed).
        fan_in: the axis summed over in the forward pass (1 for PyTorch (out, in) weights, 0 for
            GPT-2's Conv1D (in, out)): matrices are oriented so rows are output neurons.
        device, seed, max_elements, max_side, max_size: passed to the statistics.
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
    ) -> None:
        self.tensor = as_tensor(tensor, tensor.device if isinstance(tensor, torch.Tensor) else "cpu")
        self.fan_in = fan_in
        self.device = device
        self.seed = seed
        self.max_elements = max_elements
        self.max_side = max_side
        self.max_size = max_size

    @property
    def is_matrix(self) -> bool:
        return self.tensor.ndim >= 2 and min(self.tensor.shape[0], self.tensor[0].numel()) >= 2

    @cached_property
    def matrix(self) -> torch.Tensor:
        if not self.is_matrix:
            raise StatsError(f"a tensor of shape {tuple(self.tensor.shape)} is not a matrix")
        w = as_matrix(self.tensor)
        return w.T if self.fan_in == 0 and self.tensor.ndim == 2 else w

    @cached_property
    def nonfinite(self) -> int:
        """NaN/±Inf entries of the whole tensor."""
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
        return spectrum(self.matrix, max_side=self.max_side, seed=self.seed, device=self.device)

    @cached_property
    def mean_field(self) -> MeanFieldStats:
        return mean_field_stats(
            self.matrix,
            max_size=self.max_size,
            seed=self.seed,
            device=self.device,
            kurtosis=self.moments.excess_kurtosis,
        )


@dataclass(frozen=True)
class Metric:
    """A named scalar of one tensor; ``matrix_only`` metrics are NaN for vectors."""

    name: str
    help: str
    compute: Callable[[TensorView], float]
    matrix_only: bool = False

    def __call__(self, view: TensorView) -> float:
        if self.matrix_only and not view.is_matrix:
            return math.nan
        return float(self.compute(view))


#: Every metric by name; ``METRICS.get(name)`` raises StatsError naming the known ones.
METRICS: Registry[Metric] = Registry("metric", StatsError)


def register_metric(name: str, help: str, compute: Callable[[TensorView], float], *, matrix_only: bool = False) -> None:
    """Add a metric to :data:`METRICS` (names are unique)."""
    METRICS.add(name, Metric(name, help, compute, matrix_only))


register_metric(
    "nonfinite", "NaN/±Inf entries of the whole tensor (left out of the other metrics)", lambda v: v.nonfinite
)
register_metric("mean", "mean of the entries", lambda v: v.moments.mean)
register_metric(
    "std", "standard deviation of the entries (ddof=0; a 2M-entry sample of larger tensors)", lambda v: v.moments.std
)
register_metric("skewness", "skewness of the entries", lambda v: v.moments.skewness)
register_metric("kurtosis", "excess kurtosis of the entries (Gaussian 0)", lambda v: v.moments.excess_kurtosis)
register_metric("frac_3sigma", "share of entries beyond 3σ (Gaussian 0.0027)", lambda v: v.moments.frac_beyond_3sigma)
register_metric("frac_6sigma", "share of entries beyond 6σ (Gaussian 2e-9)", lambda v: v.moments.frac_beyond_6sigma)
register_metric("abs_max", "largest |entry| in the sample", lambda v: max(abs(v.moments.min), abs(v.moments.max)))
register_metric(
    "alpha",
    "ESD power-law exponent (2–4 well trained, >6 random-like; estimated from a subset when both sides exceed 2048)",
    lambda v: v.spectrum.alpha,
    matrix_only=True,
)
register_metric(
    "stable_rank",
    "‖W‖_F² / ‖W‖_2² (‖W‖_2 by Lanczos, within 1e-5, when both sides exceed 2048)",
    lambda v: v.spectrum.stable_rank,
    matrix_only=True,
)
register_metric(
    "sigma_max",
    "largest singular value (of the subset when both sides exceed the cap)",
    lambda v: float(v.spectrum.singular_values[0]) if v.spectrum.singular_values.size else math.nan,
    matrix_only=True,
)
register_metric(
    "row_corr_excess",
    "mean ρ² of rows beyond the i.i.d. null (0 if within noise)",
    lambda v: v.mean_field.as_metrics()["row_corr_excess"],
    matrix_only=True,
)
register_metric(
    "col_corr_excess",
    "mean ρ² of columns beyond the i.i.d. null (0 if within noise)",
    lambda v: v.mean_field.as_metrics()["col_corr_excess"],
    matrix_only=True,
)
register_metric(
    "top1_norm_share", "share of Σ‖row‖² in the top 1% rows", lambda v: v.mean_field.top1_norm_share, matrix_only=True
)
register_metric(
    "top1_norm_ratio",
    "top-1% norm share / its i.i.d. null",
    lambda v: v.mean_field.norm_concentration,
    matrix_only=True,
)

#: What the mean-field rule reads (see core.stats.meanfield.suggest).
MEAN_FIELD_METRICS = ("row_corr_excess", "col_corr_excess", "kurtosis", "top1_norm_ratio")
DEFAULT_METRICS = ("std", "kurtosis", "alpha", "stable_rank")
