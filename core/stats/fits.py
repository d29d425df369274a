"""Maximum-likelihood fits of a tensor's value distribution: Gaussian, Laplace, Student-t.

Each ``fit_*`` function takes a tensor or array (any shape; its entries are the sample) and
returns a small frozen dataclass with ``pdf(x)``, ``logpdf(x)`` (numpy in → numpy out, torch in →
torch out), ``sample(shape, generator)`` (a float32 torch tensor drawn with a
``torch.Generator``: deterministic for a seeded generator), ``mean_loglik(x)`` and ``to_dict()``.
The transfer strategies reuse these to fit-and-sample; the stats overlay their pdfs on the
histograms.

- Gaussian: μ = mean, σ = population std (the MLE).
- Laplace: μ = median, b = mean |x − μ| (the MLE).
- Student-t (location μ, scale σ, degrees of freedom ν): the MLE of all three, by L-BFGS-B on
  the exact negative log-likelihood with its analytic gradient, in (log ν, μ, log σ), on a
  fixed-seed subsample of at most 100,000 entries (ν's standard error at ν≈3 is then ≈0.03).
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
from scipy import optimize, special

from core.errors import StatsError
from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED, finite_values, flat_sample

NU_BOUNDS = (0.3, 1000.0)
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


def _t_nll_and_grad(params: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of standardised data ``z`` under t(ν, μ, σ) and its gradient
    in (log ν, μ, log σ)."""
    log_nu, mu, log_s = params
    nu, s = math.exp(log_nu), math.exp(log_s)
    r = (z - mu) / s
    r2 = r * r
    q = nu + r2
    log1p = np.log1p(r2 / nu)
    nll = (
        -(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - log_s)
        + (nu + 1) / 2 * log1p.mean()
    )
    d_mu = -float(((nu + 1) * r / (s * q)).mean())
    d_log_s = 1.0 - float(((nu + 1) * r2 / q).mean())
    d_nu = (
        -(0.5 * special.digamma((nu + 1) / 2) - 0.5 * special.digamma(nu / 2) - 0.5 / nu)
        + 0.5 * log1p.mean()
        - (nu + 1) / 2 * float((r2 / (nu * q)).mean())
    )
    return float(nll), np.array([d_nu * nu, d_mu, d_log_s])


def fit_student_t(x, *, max_elements: int | None = 100_000, seed: int = DEFAULT_SEED) -> StudentTFit:
    """Student-t MLE of (ν, μ, σ) on a fixed-seed subsample of at most ``max_elements`` entries.

    The data are first standardised by their median and MAD (for conditioning); the start point
    is ν from the sample kurtosis (ν = 4 + 6/κ for excess kurtosis κ > 0) and the robust scale.
    """
    s = _sample64(x, max_elements, seed)
    center = float(np.median(s))
    mad = float(np.median(np.abs(s - center))) * 1.4826
    scale = mad if mad > 0 else max(float(s.std()), 1e-30)
    z = (s - center) / scale
    kurt = float(((z - z.mean()) ** 4).mean() / max(z.var() ** 2, 1e-300)) - 3.0
    nu0 = float(np.clip(4 + 6 / kurt if kurt > 0.05 else 100.0, 1.0, 500.0))
    lo, hi = math.log(NU_BOUNDS[0]), math.log(NU_BOUNDS[1])
    result = optimize.minimize(
        _t_nll_and_grad,
        np.array([math.log(nu0), 0.0, 0.0]),
        args=(z,),
        jac=True,
        method="L-BFGS-B",
        bounds=[(lo, hi), (None, None), (-30.0, 30.0)],
    )
    log_nu, mu, log_s = result.x
    return StudentTFit(float(math.exp(log_nu)), center + scale * float(mu), scale * float(math.exp(log_s)))


FITTERS = {"gaussian": fit_gaussian, "laplace": fit_laplace, "student-t": fit_student_t}


def fit_all(x, names=tuple(FITTERS), *, seed: int = DEFAULT_SEED) -> dict[str, Fit]:
    """Every requested fit by name (``gaussian``, ``laplace``, ``student-t``)."""
    return {name: FITTERS[name](x, seed=seed) for name in names}
