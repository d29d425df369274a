"""Power-law fits p(λ) ∝ λ^(−α), λ ≥ λ_min, of the top of an eigenvalue spectrum.

Two rules, both the continuous maximum-likelihood α = 1 + n / Σ ln(λ_i/λ_min) over the n
eigenvalues λ_i ≥ λ_min, with λ_min chosen by a Kolmogorov–Smirnov distance D between the tail's
empirical CDF and the fitted one (Clauset, Shalizi & Newman 2009). They differ in the details:

``"weightwatcher"`` (the default): WeightWatcher 0.7.7's fit (``WW_powerlaw.WWFit``, called by
``WeightWatcher.fit_powerlaw`` with its default settings), reproduced to ~1e-13 on the same
eigenvalues (tests/stats/test_stats_alpha_reference.py; benchmarks/check_weightwatcher.py runs
the package itself):

- eigenvalues ≤ 1e-5 are dropped first (an absolute threshold, WeightWatcher's ``EVALS_THRESH``
  on a CPU; with CUDA present it uses 1e-4);
- every eigenvalue but the largest is a candidate λ_min, so a tail may hold just 2;
- D = max_k |F(λ_(k)) − k/n|, k = 0…n−1: the empirical CDF on the left of each step only (the
  ``powerlaw`` package's and Clauset's ``plfit`` convention), the first minimum of D wins;
- with fewer than 20 eigenvalues: the bias-corrected α = 1 + (n − 1)/Σ ln(λ_i/λ_min), only
  tails of at least 8, the first minimum of D again (the whole spectrum when no tail has 8; no
  fit for a single eigenvalue, where WeightWatcher reports a failed fit). Their small-n code
  also ranks the candidates by D − 0.868/√n, but ``WWFit``'s constructor then re-picks by D
  alone and reports that, so we do too (checked against the package, benchmarks/).

``"csn"``: Graft's stricter variant — the exact KS distance (the sup over both sides of every
step, max(|F − k/n|, |F − (k+1)/n|)), tails of at least ``min_tail`` (10) eigenvalues, and only
numerically-zero eigenvalues (below 1e-12·λ_max) dropped. It resists the 2–5-eigenvalue tails the
one-sided D sometimes picks, but its α differs from WeightWatcher's (by up to 6 on our test
matrices), so it is opt-in.

Why WeightWatcher's rule is the default: α is read against WeightWatcher's calibration (2–4 well
trained, > 6 random-like; Martin & Mahoney 2021), so the number must be the one their tool
prints for the same matrix. The standard error of either fit is (α − 1)/√n_tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import StatsError

ALPHA_METHODS = ("weightwatcher", "csn")
DEFAULT_ALPHA_METHOD = "weightwatcher"
#: WeightWatcher's EVALS_THRESH (CPU): eigenvalues at or below it are not fitted.
WW_EVALS_THRESH = 1e-5
#: WeightWatcher switches to its small-n fit below this many eigenvalues.
WW_SMALL_N = 20
WW_SMALL_N_MIN_TAIL = 8
CSN_MIN_TAIL = 10


@dataclass(frozen=True)
class PowerLawFit:
    """A power-law fit of the top of a spectrum: p(λ) ∝ λ^(−alpha) for λ ≥ xmin."""

    alpha: float
    xmin: float
    ks: float
    n_tail: int
    method: str = DEFAULT_ALPHA_METHOD

    @property
    def stderr(self) -> float:
        return (self.alpha - 1.0) / math.sqrt(self.n_tail) if self.n_tail else math.nan


def powerlaw_fit(eigenvalues, *, method: str = DEFAULT_ALPHA_METHOD, min_tail: int | None = None) -> PowerLawFit | None:
    """Fit p(λ) ∝ λ^(−α) to the top of a spectrum (see the module docstring for the rules).

    Args:
        eigenvalues: any order; non-finite values are ignored.
        method: ``"weightwatcher"`` or ``"csn"``.
        min_tail: fewest eigenvalues in a tail, for ``"csn"`` only (default 10).

    Returns:
        The fit, or None when there are too few eigenvalues to fit (weightwatcher: none above
        1e-5; csn: fewer than ``min_tail``).
    """
    if method not in ALPHA_METHODS:
        raise StatsError(f"unknown alpha method {method!r}; use one of {', '.join(ALPHA_METHODS)}")
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    lam = np.sort(lam[np.isfinite(lam)])
    if method == "csn":
        return _csn_fit(lam, CSN_MIN_TAIL if min_tail is None else int(min_tail))
    if min_tail is not None:
        raise StatsError("min_tail is a setting of the 'csn' alpha method; WeightWatcher's rule has none")
    return _ww_fit(lam[lam > WW_EVALS_THRESH])


def _ww_fit(x: np.ndarray) -> PowerLawFit | None:
    """WWFit on ascending eigenvalues ``x`` (already thresholded), vectorised over candidates."""
    n = x.size
    if n == 0:
        return None
    logs = np.log(x)
    if n < WW_SMALL_N:
        return _ww_small_n(x, logs)
    count = n - 1
    tails = (n - np.arange(count)).astype(np.float64)
    # One np.sum per candidate, as their loop does: the same pairwise summation, so α agrees to
    # the last bits rather than to a cumulative sum's 1e-13.
    sums = np.array([np.sum(logs[i:]) for i in range(count)])
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1 + tails / (sums - tails * logs[:count])
    ds = np.ones(count)
    valid = np.nonzero(alphas > 1)[0]
    for chunk in np.array_split(valid, max(1, len(valid) * n // 4_000_000 + 1)):
        if chunk.size:
            ds[chunk] = _one_sided_ks(x, chunk, alphas[chunk], tails[chunk])
    i = int(np.argmin(ds))
    return PowerLawFit(float(alphas[i]), float(x[i]), float(ds[i]), int(n - i), "weightwatcher")


def _one_sided_ks(x: np.ndarray, starts: np.ndarray, alphas: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """max_k |1 − (x_{i+k}/x_i)^(1−α) − k/n| for each candidate i in ``starts`` (WWFit's D)."""
    j = np.arange(x.size)[None, :]
    i = starts[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        model = 1 - (x[None, :] / x[starts][:, None]) ** (-alphas[:, None] + 1)
        dev = np.abs(model - (j - i) / tails[:, None])
    return np.where(j >= i, dev, 0.0).max(axis=1)


def _ww_small_n(x: np.ndarray, logs: np.ndarray) -> PowerLawFit | None:
    """WWFit with fewer than 20 eigenvalues, as weightwatcher 0.7.7 runs it.

    ``fit_powerlaw_smallN`` gives each candidate with a tail of ≥ 8 the bias-corrected α and its
    D (the others keep D = 1, α = 0), and picks by D − 0.868/√n; but ``WWFit.__init__`` then
    re-picks the first minimum of D over all candidates, and that is what it reports. When no
    candidate has a tail of 8, the smallest eigenvalue's α and D (whole spectrum) are filled in.
    """
    n_all = x.size
    if n_all < 2:
        return None  # their argmin over no candidate raises: WeightWatcher reports a failed fit
    alphas, ds = np.zeros(n_all - 1), np.ones(n_all - 1)
    computed = False
    for i in range(n_all - 1):
        n = n_all - i
        if n < WW_SMALL_N_MIN_TAIL:
            continue
        s = np.sum(logs[i:]) - n * logs[i]
        if s <= 1e-12:
            continue
        alphas[i] = 1.0 + (n - 1.0) / s
        if alphas[i] <= 1.0:
            continue
        ds[i] = np.max(np.abs(np.arange(n, dtype=np.float64) / n - (1.0 - (x[i:] / x[i]) ** (1.0 - alphas[i]))))
        computed = True
    if not computed:
        s = np.sum(logs) - n_all * logs[0]
        if s > 1e-12:
            alphas[0] = 1.0 + (n_all - 1.0) / s
            ds[0] = np.max(np.abs(np.arange(n_all, dtype=np.float64) / n_all - (1.0 - (x / x[0]) ** (1.0 - alphas[0]))))
    i = int(np.argmin(ds))
    return PowerLawFit(float(alphas[i]), float(x[i]), float(ds[i]), int(n_all - i), "weightwatcher")


def _csn_fit(lam: np.ndarray, min_tail: int) -> PowerLawFit | None:
    """Exact two-sided KS over candidates leaving ≥ ``min_tail`` eigenvalues (ascending ``lam``)."""
    lam = lam[lam > 1e-12 * lam[-1]] if lam.size and lam[-1] > 0 else lam[:0]
    n = lam.size
    if n < max(min_tail, 2):
        return None
    logs = np.log(lam)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = Σ_{j≥i} ln λ_j
    best: tuple[float, int, float] | None = None
    candidates = np.arange(0, n - min_tail + 1)
    for chunk in np.array_split(candidates, max(1, len(candidates) * n // 4_000_000 + 1)):
        i = chunk[:, None]
        n_tail = (n - chunk)[:, None].astype(np.float64)
        denom = suffix[chunk][:, None] - n_tail * logs[chunk][:, None]
        alpha = 1.0 + n_tail / np.where(denom > 0, denom, np.nan)
        j = np.arange(n)[None, :]
        model = 1.0 - np.exp((1.0 - alpha) * (logs[None, :] - logs[chunk][:, None]))
        rank = (j - i).astype(np.float64)
        dev = np.maximum(np.abs(model - rank / n_tail), np.abs(model - (rank + 1) / n_tail))
        ks = np.where(j >= i, dev, 0.0).max(axis=1)
        ks = np.where(np.isfinite(alpha[:, 0]), ks, np.inf)
        k = int(np.argmin(ks))
        if best is None or ks[k] < best[0]:
            best = (float(ks[k]), int(chunk[k]), float(alpha[k, 0]))
    ks_best, i_best, alpha_best = best
    if not math.isfinite(ks_best):
        return None
    return PowerLawFit(alpha_best, float(lam[i_best]), ks_best, int(n - i_best), "csn")
