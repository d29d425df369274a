"""α against an independent re-implementation of WeightWatcher's power-law fit.

WeightWatcher 0.7.7 (CalculatedContent/WeightWatcher, ``weightwatcher.py: fit_powerlaw`` and
``WW_powerlaw.py: WWFit``), default settings on a CPU: the eigenvalues are σ² of the whole matrix
(float64 SVD, no normalisation), those ≤ 1e-5 are dropped, and then for every candidate x_min =
x_i but the largest, α_i = 1 + n/(Σ ln x_j − n ln x_i) and D_i = max_k |1 − (x_{i+k}/x_i)^(1−α_i) − k/n|
(one-sided: the empirical CDF k/n at the left of each step); the first minimum of D wins. With
fewer than 20 eigenvalues it switches to a small-n rule (bias-corrected α, tails of ≥ 8, again the
first minimum of D: ``WWFit.__init__`` re-picks by D whatever the small-n code ranked by). Written
out below as the loops their code is, on eigenvalues from ``np.linalg.svd``; benchmarks/
check_weightwatcher.py compares with the package itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.stats import powerlaw_fit, spectrum, stable_rank


def ww_eigenvalues(w: np.ndarray) -> np.ndarray:
    sv = np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False)
    evals = np.sort(sv * sv)
    return evals[evals > 1e-5]


def ww_fit(evals: np.ndarray) -> tuple[float, float, float]:
    """(alpha, xmin, D) the way WWFit computes them."""
    data = np.sort(np.asarray(evals, dtype=np.float64))
    n_all = len(data)
    logs = np.log(data)
    if n_all < 20:  # fit_powerlaw_smallN fills alphas/Ds, then WWFit.__init__ takes argmin(Ds)
        alphas, ds = np.zeros(n_all - 1), np.ones(n_all - 1)
        js = np.full(n_all - 1, np.inf)
        for i in range(n_all - 1):
            n = n_all - i
            if n < 8:
                continue
            s = np.sum(logs[i:]) - n * logs[i]
            if s <= 1e-12:
                continue
            alphas[i] = 1.0 + (n - 1.0) / s
            if alphas[i] <= 1.0:
                continue
            ds[i] = np.max(np.abs(np.arange(n) / n - (1.0 - (data[i:] / data[i]) ** (1.0 - alphas[i]))))
            js[i] = ds[i] - 0.868 / np.sqrt(n)
        if not np.isfinite(js).any():
            s = np.sum(logs) - n_all * logs[0]
            if s > 1e-12:
                alphas[0] = 1.0 + (n_all - 1.0) / s
                ds[0] = np.max(np.abs(np.arange(n_all) / n_all - (1.0 - (data / data[0]) ** (1.0 - alphas[0]))))
        i = int(np.argmin(ds))
        return alphas[i], data[i], ds[i]
    alphas, ds = np.zeros(n_all - 1), np.ones(n_all - 1)
    for i in range(n_all - 1):
        n = float(n_all - i)
        alphas[i] = 1 + n / (np.sum(logs[i:]) - n * logs[i])
        if alphas[i] > 1:
            ds[i] = np.max(np.abs(1 - (data[i:] / data[i]) ** (-alphas[i] + 1) - np.arange(n) / n))
    i = int(np.argmin(ds))
    return alphas[i], data[i], ds[i]


def _planted(alpha: float, n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lam = rng.pareto(alpha - 1, n) + 1.0
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((m, n)))
    return (u * np.sqrt(lam)) @ v.T


def _matrices():
    rng = np.random.default_rng(11)
    return {
        "gaussian 300x500": rng.standard_normal((300, 500)),
        "gaussian scaled like a layer": rng.standard_normal((384, 384)) * 0.05,
        "cauchy 400x800": rng.standard_cauchy((400, 800)),
        "student-t(3) 256x1024": rng.standard_t(3, (256, 1024)),
        "tall student-t(3) 3000x200": rng.standard_t(3, (3000, 200)),
        "wide cauchy 150x2500": rng.standard_cauchy((150, 2500)),
        "tall planted alpha=2.5 2500x300": _planted(2.5, 300, 2500, 1).T,
        "planted alpha=3.5 500x700": _planted(3.5, 500, 700, 2),
        "small n 15x40": rng.standard_t(3, (15, 40)),
        "smaller n 6x40 (no tail of 8)": rng.standard_t(3, (6, 40)),
        "tiny scale (the 1e-5 threshold drops some)": rng.standard_normal((64, 200)) * 2.2e-4,
    }


@pytest.mark.parametrize("name", list(_matrices()))
def test_default_alpha_is_weightwatchers_on_the_whole_matrix(name):
    for w in (_matrices()[name], _matrices()[name].astype(np.float32)):
        alpha, xmin, d = ww_fit(ww_eigenvalues(w))
        s = spectrum(torch.from_numpy(w))
        assert s.alpha == pytest.approx(alpha, rel=1e-10, abs=1e-10)
        assert s.fit.xmin == pytest.approx(xmin, rel=1e-10)
        assert s.fit.ks == pytest.approx(d, rel=1e-8, abs=1e-12)
        assert s.exact and s.used_shape == w.shape


def test_weightwatcher_rule_on_given_eigenvalues():
    rng = np.random.default_rng(5)
    for _ in range(20):
        lam = rng.pareto(rng.uniform(0.8, 3.0), int(rng.integers(20, 400))) + rng.uniform(0.01, 2)
        alpha, xmin, d = ww_fit(lam)
        fit = powerlaw_fit(lam, method="weightwatcher")
        assert (fit.alpha, fit.xmin, fit.ks) == (pytest.approx(alpha, rel=1e-10), pytest.approx(xmin), pytest.approx(d))


def test_csn_mode_keeps_the_exact_two_sided_ks_and_a_tail_of_ten():
    w = _matrices()["cauchy 400x800"]
    lam = ww_eigenvalues(w)
    csn = powerlaw_fit(lam, method="csn")
    assert csn.method == "csn" and csn.n_tail >= 10
    assert spectrum(w, alpha_method="csn").alpha == pytest.approx(csn.alpha, rel=1e-10)
    x = np.sort(lam)[-csn.n_tail :]
    model = 1 - (x / x[0]) ** (1 - csn.alpha)
    k = np.arange(csn.n_tail)
    assert csn.ks == pytest.approx(
        np.max(np.maximum(np.abs(model - k / csn.n_tail), np.abs(model - (k + 1) / csn.n_tail)))
    )


def test_spectrum_is_exact_unless_both_sides_exceed_the_cap():
    rng = np.random.default_rng(9)
    tall = rng.standard_t(3, (5000, 64))
    s = spectrum(tall)
    assert s.exact and s.used_shape == (5000, 64) and s.singular_values.size == 64
    capped = spectrum(rng.standard_normal((300, 260)), max_side=200)
    assert not capped.exact and capped.used_shape == (300, 200)


def test_stable_rank_and_spectral_norm_stay_exact():
    rng = np.random.default_rng(4)
    for shape in ((1500, 300), (300, 1500), (260, 300)):
        w = rng.standard_normal(shape) @ np.diag(np.linspace(0.2, 2.0, shape[1]))
        sv = np.linalg.svd(w, compute_uv=False)
        ref = (sv**2).sum() / sv[0] ** 2
        assert spectrum(w).stable_rank == pytest.approx(ref, rel=1e-9)
        assert spectrum(w, max_side=200).stable_rank == pytest.approx(ref, rel=1e-5)  # Lanczos ‖W‖₂
        assert stable_rank(torch.from_numpy(w).float()) == pytest.approx(ref, rel=1e-5)
