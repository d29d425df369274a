"""The mean-field rule on planted cases, and its null values against simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sstats

from core.stats import mean_field_stats, suggest
from core.stats.meanfield import (
    SUGGEST_COLS,
    SUGGEST_IID,
    SUGGEST_NORM,
    SUGGEST_ROWS,
    SUGGEST_TAILS,
    chi2_isf,
    chi2_sf,
    null_top_share,
    top_norm_share,
)


def test_iid_gaussian_matrix_is_close_to_exchangeable():
    w = np.random.default_rng(0).standard_normal((512, 384)).astype(np.float32)
    s = mean_field_stats(w)
    assert s.suggestions == (SUGGEST_IID,)
    assert s.row_corr_energy == pytest.approx(s.row_corr_null, rel=0.05)
    assert s.col_corr_energy == pytest.approx(s.col_corr_null, rel=0.05)
    assert abs(s.excess_kurtosis) < 0.1
    assert 0.7 < s.norm_concentration < 1.3


def test_correlated_rows_are_flagged():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((512, 384))
    w += 0.5 * rng.standard_normal((512, 1)) * rng.standard_normal((1, 384))  # one shared direction
    s = mean_field_stats(w)
    assert SUGGEST_ROWS in s.suggestions
    assert s.row_corr_excess > 0.01


def test_correlated_columns_are_flagged_alone():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((512, 384))
    w[:, :200] = rng.standard_normal((512, 1)) + 0.5 * w[:, :200]  # columns 0–199 share a factor
    s = mean_field_stats(w)
    assert SUGGEST_COLS in s.suggestions


def test_heavy_tails_are_flagged():
    w = np.random.default_rng(3).standard_t(5, (512, 384))  # excess kurtosis 6
    s = mean_field_stats(w)
    assert s.suggestions == (SUGGEST_TAILS,)


def test_norm_concentration_is_flagged():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((1000, 256))
    w[:10] *= 4.0  # the top 1% rows carry 16× the energy of the others
    s = mean_field_stats(w)
    assert SUGGEST_NORM in s.suggestions
    assert s.top1_norm_share == pytest.approx(160 / (160 + 990), rel=0.05)


@pytest.mark.parametrize(("rows", "length"), [(400, 64), (1000, 512)])
def test_null_top_share_matches_simulation(rows, length):
    rng = np.random.default_rng(5)
    sims = [top_norm_share(rng.standard_normal((rows, length)).astype(np.float32)) for _ in range(20)]
    assert np.mean(sims) == pytest.approx(null_top_share(rows, length), rel=0.03)


def test_rule_reads_plain_metric_values():
    assert suggest({}) == (SUGGEST_IID,)
    assert suggest({"kurtosis": float("nan"), "row_corr_excess": 0.02}) == (SUGGEST_ROWS,)
    assert suggest({"kurtosis": 3.0, "top1_norm_ratio": 5.0}) == (SUGGEST_TAILS, SUGGEST_NORM)
    assert suggest({"kurtosis": 0.99, "top1_norm_ratio": 2.9, "col_corr_excess": 0.009}) == (SUGGEST_IID,)


@pytest.mark.parametrize("dof", [2, 3, 64, 1000, 4096, 11008, 131072])
def test_chi2_tail_without_scipy_matches_scipy(dof):
    for p in (0.5, 0.01, 1 / 3000, 1e-6):
        q = chi2_isf(p, dof)
        assert q == pytest.approx(sstats.chi2(dof).isf(p), rel=1e-9)
        assert chi2_sf(q, dof + 2) == pytest.approx(sstats.chi2(dof + 2).sf(q), rel=1e-9)
