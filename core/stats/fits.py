"""Maximum-likelihood fits of a tensor's value distribution: Gaussian, Laplace, Student-t.

Each ``fit_*`` function takes a tensor or array (any shape; its entries are the sample) and
returns a small frozen dataclass with ``pdf(x)``, ``logpdf(x)`` (numpy in → numpy out, torch in →
torch out), ``sample(shape, generator)`` (a float32 torch tensor drawn with a
``torch.Generator``: deterministic for a seeded generator), ``mean_loglik(x)`` and ``to_dict()``.
The transfer strategies reuse these to fit-and-sample; the stats overlay their pdfs on the
histograms.

- Gaussian: μ = mean, σ = population std (the MLE).
- Laplace: μ = median, b = mean |x − μ| (the MLE).
- Student-t (location μ, scale σ, degrees of freedom ν): the MLE of all three, by Newton's method
  on the exact negative log-likelihood (:func:`core.stats.student_t.student_t_mle`, the estimator
  the ``distribution`` strategy uses too), on a fixed-seed subsample of at most 100,000 entries
  (ν's standard error at ν≈3 is then ≈0.03).
  ν is bounded to [0.3, 1000]: ν → ∞ is the Gaussian, ν ≤ 2 has infinite variance (samples
  then contain extreme values; strategies may want to clamp ν).

NaN and ±Inf entries are left out of every fit (a tensor with no finite entry raises
:class:`~core.errors.StatsError`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from core.errors import StatsError
from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED, finite_values, flat_sample
from core.stats.student_t import student_t_mle

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _xp(x):
    return torch if isinstance(x, torch.Tensor) else np


def _asarray(x):
    return x if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


class _Fit:
    """Shared helpers; subclasses define ``name``, ``logpdf`` and ``sample``."""

    name = ""

    def pdf(self, x):
        xp = _xp(x)
        return xp.exp(self.logpdf(x))

    def mean_loglik(self, x) -> float:
        """Average log-likelihood per entry of ``x`` (higher is a better fit)."""
        sample = finite_values(flat_sample(x, DEFAULT_MAX_ELEMENTS)).double()
        return float(self.logpdf(sample).mean())

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class GaussianFit(_Fit):
    mu: float
    sigma: float
    name = "gaussian"

    def logpdf(self, x):
        x = _asarray(x)
        z = (x - self.mu) / self.sigma
        return -0.5 * z * z - math.log(self.sigma) - _LOG_SQRT_2PI

    def sample(self, shape, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mu + self.sigma * torch.randn(shape, generator=generator)


@dataclass(frozen=True)
class LaplaceFit(_Fit):
    mu: float
    b: float
    name = "laplace"

    def logpdf(self, x):
        x = _asarray(x)
        xp = _xp(x)
        return -xp.abs(x - self.mu) / self.b - math.log(2 * self.b)

    def sample(self, shape, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64) - 0.5
        u = u.clamp(-0.5 + 1e-16, 0.5 - 1e-16)
        return (self.mu - self.b * torch.sign(u) * torch.log1p(-2 * u.abs())).float()


@dataclass(frozen=True)
class StudentTFit(_Fit):
    nu: float
    mu: float
    sigma: float
    name = "student-t"

    def logpdf(self, x):
        x = _asarray(x)
        xp = _xp(x)
        nu = self.nu
        const = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(self.sigma)
        z = (x - self.mu) / self.sigma
        return const - (nu + 1) / 2 * xp.log1p(z * z / nu)

    def sample(self, shape, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bailey's polar method: only uniform draws, so a seeded generator fixes the result."""
        n = math.prod(shape) if shape else 1
        out = torch.empty(0, dtype=torch.float64)
        while out.numel() < n:
            need = n - out.numel()
            uv = torch.rand((2, int(need * 1.3) + 16), generator=generator, dtype=torch.float64) * 2 - 1
            w = uv[0] ** 2 + uv[1] ** 2
            keep = (w < 1) & (w > 0)
            u, w = uv[0][keep], w[keep]
            t = u * torch.sqrt(self.nu * (w ** (-2.0 / self.nu) - 1) / w)
            out = torch.cat([out, t[:need]])
        return (self.mu + self.sigma * out).float().reshape(shape)


Fit = GaussianFit | LaplaceFit | StudentTFit


def _sample64(x, max_elements, seed) -> np.ndarray:
    """The finite entries of a seeded sample, float64 (NaN/±Inf entries are not fitted)."""
    s = finite_values(flat_sample(x, max_elements, seed=seed)).double().numpy()
    if s.size == 0:
        raise StatsError("the tensor has no finite entries to fit a distribution to")
    return s


def fit_gaussian(x, *, max_elements: int | None = DEFAULT_MAX_ELEMENTS, seed: int = DEFAULT_SEED) -> GaussianFit:
    """Gaussian MLE: mean and population std of the entries (sampled when over ``max_elements``)."""
    s = _sample64(x, max_elements, seed)
    return GaussianFit(float(s.mean()), max(float(s.std()), 1e-30))


def fit_laplace(x, *, max_elements: int | None = DEFAULT_MAX_ELEMENTS, seed: int = DEFAULT_SEED) -> LaplaceFit:
    """Laplace MLE: median and mean absolute deviation from it."""
    s = _sample64(x, max_elements, seed)
    mu = float(np.median(s))
    return LaplaceFit(mu, max(float(np.abs(s - mu).mean()), 1e-30))


def fit_student_t(x, *, max_elements: int | None = 100_000, seed: int = DEFAULT_SEED) -> StudentTFit:
    """Student-t MLE of (ν, μ, σ) on a fixed-seed subsample of at most ``max_elements`` entries.

    Newton's method on the exact likelihood (:func:`core.stats.student_t.student_t_mle`): started
    from the median, the MAD and ν from the sample kurtosis, ν bounded to :data:`core.stats.student_t.NU_BOUNDS`.
    """
    nu, mu, sigma = student_t_mle(_sample64(x, max_elements, seed))
    return StudentTFit(float(nu), float(mu), float(sigma))


FITTERS = {"gaussian": fit_gaussian, "laplace": fit_laplace, "student-t": fit_student_t}


def fit_all(x, names=tuple(FITTERS), *, seed: int = DEFAULT_SEED) -> dict[str, Fit]:
    """Every requested fit by name (``gaussian``, ``laplace``, ``student-t``)."""
    return {name: FITTERS[name](x, seed=seed) for name in names}
