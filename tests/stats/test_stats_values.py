"""Moments, histograms and distances against numpy/scipy on the same data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sstats

from core.errors import StatsError
from core.stats import (
    compare_tensors,
    distances,
    histogram_kl,
    histogram_pair,
    ks_and_wasserstein,
    moments,
)
from core.stats.sampling import flat_sample


@pytest.fixture
def heavy():
    rng = np.random.default_rng(0)
    return (rng.standard_t(4, size=(300, 500)) * 0.02 + 0.001).astype(np.float32)


def test_moments_match_scipy(heavy):
    m = moments(heavy, max_elements=None)
    x = heavy.ravel().astype(np.float64)
    assert m.n == x.size
    assert m.mean == pytest.approx(x.mean(), rel=1e-6)
    assert m.std == pytest.approx(x.std(), rel=1e-6)
    assert m.skewness == pytest.approx(sstats.skew(x), rel=1e-4, abs=1e-6)
    assert m.excess_kurtosis == pytest.approx(sstats.kurtosis(x), rel=1e-4)
    dev = np.abs(x - x.mean())
    assert m.frac_beyond_3sigma == pytest.approx(np.mean(dev > 3 * x.std()), abs=1e-6)
    assert m.frac_beyond_6sigma == pytest.approx(np.mean(dev > 6 * x.std()), abs=1e-6)
    assert (m.min, m.max) == (pytest.approx(x.min()), pytest.approx(x.max()))


def test_bf16_is_widened_and_matches_scipy_on_the_same_values(heavy):
    t = torch.from_numpy(heavy).to(torch.bfloat16)
    m = moments(t, max_elements=None)
    x = t.float().numpy().astype(np.float64).ravel()
    assert m.std == pytest.approx(x.std(), rel=1e-6)
    assert m.excess_kurtosis == pytest.approx(sstats.kurtosis(x), rel=1e-4)


def test_subsample_is_deterministic_stratified_and_close():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1000, 3000)).astype(np.float32))
    s1, s2 = flat_sample(x, 200_000, seed=3), flat_sample(x, 200_000, seed=3)
    assert torch.equal(s1, s2) and s1.numel() == 200_000
    assert not torch.equal(s1, flat_sample(x, 200_000, seed=4))
    # one draw per block of 15 consecutive entries: every row band is represented
    rows_hit = np.unique(torch.nonzero(torch.isin(x.reshape(-1), s1))[:, 0].numpy() // 3000)
    assert len(rows_hit) == 1000
    full, sub = moments(x, max_elements=None), moments(x, max_elements=200_000)
    assert sub.std == pytest.approx(full.std, rel=0.01)
    assert abs(sub.excess_kurtosis - full.excess_kurtosis) < 0.05  # sampling SD √(24/n) ≈ 0.011


def test_histogram_pair_matches_numpy_histogram(heavy):
    rng = np.random.default_rng(2)
    target = (rng.standard_normal((100, 200)) * 0.03).astype(np.float32)
    h = histogram_pair(heavy, target, bins=64, clip_sigma=None, max_elements=None)
    lo = min(heavy.min(), target.min())
    hi = max(heavy.max(), target.max())
    ref_s, ref_edges = np.histogram(heavy, bins=64, range=(float(lo), float(hi)))
    ref_t, _ = np.histogram(target, bins=64, range=(float(lo), float(hi)))
    np.testing.assert_allclose(h.edges, ref_edges, rtol=1e-6, atol=1e-9)
    # float rounding may move a value sitting on an edge into the neighbouring bin
    assert np.abs(h.source - ref_s).sum() <= 2 and np.abs(h.target - ref_t).sum() <= 2
    assert h.source.sum() == heavy.size and h.target.sum() == target.size
    assert h.source_outside == h.target_outside == 0
    width = np.diff(h.edges)
    assert np.sum(h.source_density * width) == pytest.approx(1.0)
    assert np.sum(h.target_density * width) == pytest.approx(1.0)


def test_clipped_histogram_keeps_outside_counts_and_overlays_fits(heavy):
    h = histogram_pair(heavy, heavy * 0.5, bins=50, clip_sigma=3.0, fit=("gaussian", "student-t"))
    inside = np.sum(h.source_density * np.diff(h.edges))
    assert h.source_outside > 0
    assert inside == pytest.approx(1 - h.source_outside / h.n_source)
    assert set(h.fits) == {"source gaussian", "source student-t", "target gaussian", "target student-t"}
    x, pdf = h.fits["source student-t"]
    np.testing.assert_allclose(x, h.centres)
    # the Student-t pdf follows the histogram density better than the Gaussian one
    err_t = np.abs(pdf - h.source_density).sum()
    err_g = np.abs(h.fits["source gaussian"][1] - h.source_density).sum()
    assert err_t < err_g


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ks_and_wasserstein_match_scipy(dtype):
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.standard_t(3, 4000).astype(np.float32)).to(dtype).float()
    b = torch.from_numpy((rng.standard_normal(2500) * 1.2 + 0.1).astype(np.float32)).to(dtype).float()
    ks, w1 = ks_and_wasserstein(a, b)
    assert ks == pytest.approx(sstats.ks_2samp(a.numpy(), b.numpy()).statistic, abs=1e-12)
    assert w1 == pytest.approx(sstats.wasserstein_distance(a.numpy(), b.numpy()), rel=1e-6)


def test_distances_on_subsamples_approach_the_full_values():
    rng = np.random.default_rng(4)
    a = rng.standard_t(4, size=(1000, 1000)).astype(np.float32)
    b = (rng.standard_normal((500, 2000)) * 1.3).astype(np.float32)
    exact = distances(a, b, max_elements=None)
    approx = distances(a, b)  # 2^18 per side
    assert approx.n_source == 1 << 18
    assert abs(approx.ks - exact.ks) < 0.01
    assert approx.wasserstein1 == pytest.approx(exact.wasserstein1, rel=0.03)
    assert exact.ks == pytest.approx(sstats.ks_2samp(a.ravel(), b.ravel()).statistic, abs=1e-9)


def test_histogram_kl_is_zero_for_equal_and_finite_for_disjoint():
    assert histogram_kl([5, 0, 3], [5, 0, 3]) == pytest.approx(0.0)
    kl = histogram_kl([10, 0], [0, 10])
    p = np.array([10.5, 0.5]) / 11
    q = p[::-1]
    assert kl == pytest.approx(np.sum(p * np.log(p / q)))


def test_compare_tensors_bundle(heavy):
    target = torch.from_numpy(heavy[:150]).to(torch.bfloat16)
    c = compare_tensors(heavy, target)
    assert c.source.n == heavy.size and c.target.n == target.numel()
    assert c.distances.kl_hist is not None and c.distances.kl_hist >= 0
    assert set(c.source_fits) == {"gaussian", "laplace", "student-t"}
    assert c.histogram.fits and set(c.to_dict()) >= {"histogram", "distances", "source", "target"}
    same = compare_tensors(heavy, heavy)
    assert same.distances.ks == 0 and same.distances.wasserstein1 == 0


def test_integer_tensors_are_refused():
    with pytest.raises(StatsError, match="floating-point"):
        moments(torch.arange(10))
