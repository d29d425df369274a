"""Moments of a tensor's entries: mean, std, skewness, excess kurtosis and tail fractions.

Conventions match ``scipy.stats`` defaults so the numbers can be checked against it: ``std`` is
the population standard deviation (ddof=0), ``skewness`` and ``excess_kurtosis`` are the biased
moment ratios m3/m2^1.5 and m4/m2² − 3 (``scipy.stats.skew(x)``, ``scipy.stats.kurtosis(x)``).
A Gaussian has skewness 0 and excess kurtosis 0; Laplace 3; Student-t with ν > 4 degrees of
freedom 6/(ν − 4). Computed (fp32 elementwise, float64 sums) on a fixed-seed stratified sample of at most
``max_elements`` entries (see :mod:`core.stats.sampling`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED, flat_sample


@dataclass(frozen=True)
class Moments:
    """Summary of one tensor's value distribution (computed on ``n`` sampled entries)."""

    n: int
    mean: float
    std: float
    skewness: float
    excess_kurtosis: float
    frac_beyond_3sigma: float  # share of entries with |x − mean| > 3·std (Gaussian: 0.0027)
    frac_beyond_6sigma: float  # Gaussian: 2.0e-9
    min: float
    max: float

    def to_dict(self) -> dict:
        return asdict(self)


def moments_of_sample(x: torch.Tensor) -> Moments:
    """Moments of a 1-D sample: elementwise work in fp32, every sum accumulated in float64."""
    x = x.reshape(-1)
    x = x.float() if x.dtype != torch.float64 else x
    n = x.numel()
    mean = float(x.sum(dtype=torch.float64)) / n
    d = x - mean
    d2 = d * d
    m2 = float(d2.sum(dtype=torch.float64)) / n
    # dot products accumulate in the BLAS; for fp32 inputs that is fp32 pairwise-blocked sums,
    # accurate to ~1e-6 relative for 2M entries (checked against scipy in tests/stats).
    m3 = float(torch.dot(d2.double(), d.double()) if x.dtype == torch.float64 else torch.dot(d2, d)) / n
    m4 = float(torch.dot(d2, d2)) / n
    std = m2**0.5
    skew = m3 / m2**1.5 if m2 > 0 else math.nan
    kurt = m4 / m2**2 - 3.0 if m2 > 0 else math.nan
    absd = d.abs()
    lo, hi = torch.aminmax(x)
    return Moments(
        n=int(n),
        mean=mean,
        std=std,
        skewness=skew,
        excess_kurtosis=kurt,
        frac_beyond_3sigma=int(torch.count_nonzero(absd > 3 * std)) / n,
        frac_beyond_6sigma=int(torch.count_nonzero(absd > 6 * std)) / n,
        min=float(lo),
        max=float(hi),
    )

def moments(
    x,
    *,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> Moments:
    """Moments of the entries of ``x`` (any shape), on a sample of at most ``max_elements``.

    Args:
        x: tensor or array; bf16/fp16 are widened first.
        max_elements: sample cap (None: every entry).
        seed: subsample seed.
        device: "cpu" or "cuda".
    """
    return moments_of_sample(flat_sample(x, max_elements, seed=seed, device=device))
