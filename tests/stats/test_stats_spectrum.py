"""Singular values against numpy, the ESD exponent α on matrices with a known tail, stable rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.stats import powerlaw_fit, singular_values, spectrum, stable_rank


def planted_spectrum(alpha: float, n=500, m=700, seed=0):
    """A matrix whose eigenvalues of WWᵀ are Pareto draws: p(λ) ∝ λ^(−alpha), λ ≥ 1."""
    rng = np.random.default_rng(seed)
    lam = rng.pareto(alpha - 1, n) + 1.0
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((m, n)))
    return (u * np.sqrt(lam)) @ v.T, lam


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_singular_values_match_numpy(method):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((120, 300)).astype(np.float32) * np.linspace(0.1, 3, 300, dtype=np.float32)
    ref = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    got = singular_values(w, method=method)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * ref[0])
    np.testing.assert_allclose(singular_values(w.T, method=method), ref, rtol=1e-5, atol=1e-6 * ref[0])


def test_bf16_singular_values_are_those_of_the_stored_values():
    w = torch.randn(64, 96, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    ref = np.linalg.svd(w.float().double().numpy(), compute_uv=False)
    np.testing.assert_allclose(singular_values(w), ref, rtol=1e-9)


@pytest.mark.parametrize("alpha", [2.0, 2.5, 3.5])
def test_alpha_recovers_a_planted_power_law(alpha):
    """Tolerance: 3 standard errors of the MLE, (α − 1)/√n_tail (n_tail ≈ 300–800 here,
    so 0.05–0.3); the fit is deterministic for a fixed seed."""
    w, lam = planted_spectrum(alpha)
    s = spectrum(w, max_side=None)
    np.testing.assert_allclose(np.sort(s.singular_values**2), np.sort(lam), rtol=1e-8)
    assert s.fit.n_tail >= 100
    assert abs(s.alpha - alpha) < 3 * s.fit.stderr
    direct = powerlaw_fit(lam)
    assert direct.alpha == pytest.approx(s.alpha, rel=1e-6)


def test_alpha_of_heavy_tailed_entries_and_of_a_gaussian_matrix():
    """Entries with tail index μ < 2 give an ESD tail λ^−(1+μ/2) (Martin & Mahoney 2021);
    Cauchy entries (μ = 1) → α ≈ 1.5. A Gaussian matrix has a Marchenko–Pastur bulk and no
    power-law tail: its fitted α is large (WeightWatcher's "random-like" reading, α > 6)."""
    rng = np.random.default_rng(2)
    cauchy = rng.standard_cauchy((400, 800))
    assert abs(spectrum(cauchy).alpha - 1.5) < 0.15
    assert spectrum(rng.standard_normal((400, 800))).alpha > 6


def test_a_subset_is_taken_only_when_both_sides_exceed_the_cap():
    rng = np.random.default_rng(3)
    w = rng.standard_cauchy((1200, 600))
    full, capped = spectrum(w, max_side=None), spectrum(w, max_side=300)
    assert full.exact and spectrum(w, max_side=600).used_shape == (1200, 600)
    assert capped.used_shape == (1200, 300) and not capped.exact  # the smaller side is subsampled
    assert abs(capped.alpha - full.alpha) < 0.2  # an estimate for heavy-tailed entries


def test_stable_rank_matches_numpy_with_and_without_subsampling():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((600, 300)) @ np.diag(np.linspace(0.2, 2.0, 300))
    sv = np.linalg.svd(w, compute_uv=False)
    ref = (sv**2).sum() / sv[0] ** 2
    assert spectrum(w, max_side=None).stable_rank == pytest.approx(ref, rel=1e-9)
    assert spectrum(w, max_side=200).stable_rank == pytest.approx(ref, rel=1e-3)  # Lanczos ‖W‖₂
    assert stable_rank(torch.from_numpy(w).float()) == pytest.approx(ref, rel=1e-3)


def test_degenerate_spectra():
    assert powerlaw_fit([1.0, 2.0, 3.0], method="csn") is None  # fewer than min_tail eigenvalues
    assert powerlaw_fit([1e-6, 1e-7]) is None  # nothing above WeightWatcher's 1e-5 threshold
    assert spectrum(np.ones((4, 5)), alpha_method="csn").fit is None  # rank 1: one positive eigenvalue
    assert spectrum(np.ones((4, 5))).fit is None  # WeightWatcher's fit fails on a lone eigenvalue
    assert spectrum(np.ones((4, 5))).stable_rank == pytest.approx(1.0)
