"""Correlation maps (planted structure shows) and per-head QKᵀ / VO maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import StatsError
from core.stats import correlation_map, head_maps


def planted(rows=200, cols=600, block=slice(40, 70), strength=0.8, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols))
    factor = rng.standard_normal(cols)
    w[block] = np.sqrt(strength) * factor + np.sqrt(1 - strength) * w[block]
    return w.astype(np.float32)


def test_row_map_matches_numpy_corrcoef_and_shows_the_planted_block():
    w = planted()
    cmap = correlation_map(w, "rows")
    np.testing.assert_allclose(cmap.matrix, np.corrcoef(w), atol=1e-5)
    block = cmap.matrix[40:70, 40:70]
    off = block[~np.eye(30, dtype=bool)]
    assert off.min() > 0.6  # ρ = strength for every pair in the block
    rest = np.delete(np.delete(cmap.matrix, np.s_[40:70], 0), np.s_[40:70], 1)
    assert np.abs(rest[~np.eye(len(rest), dtype=bool)]).max() < 0.25  # noise ~ 1/√600
    assert cmap.null_energy == pytest.approx(1 / 599)
    assert cmap.excess_energy > 0.01


def test_column_map_of_the_transpose_is_the_row_map():
    w = planted()
    np.testing.assert_allclose(correlation_map(w.T, "cols").matrix, correlation_map(w, "rows").matrix, atol=1e-6)


def test_subsampled_map_keeps_original_indices():
    w = planted(rows=1000, block=slice(100, 400))
    cmap = correlation_map(torch.from_numpy(w).to(torch.bfloat16), "rows", max_size=128, seed=5)
    assert cmap.matrix.shape == (128, 128) and len(cmap.indices) == 128
    assert np.all(np.diff(cmap.indices) > 0)
    in_block = (cmap.indices >= 100) & (cmap.indices < 400)
    sub = cmap.matrix[np.ix_(in_block, in_block)]
    assert sub[~np.eye(in_block.sum(), dtype=bool)].mean() > 0.6
    again = correlation_map(torch.from_numpy(w).to(torch.bfloat16), "rows", max_size=128, seed=5)
    np.testing.assert_array_equal(again.indices, cmap.indices)


@pytest.mark.parametrize("order", ["cluster", "spectral"])
def test_orderings_gather_a_scattered_block(order):
    rng = np.random.default_rng(1)
    w = planted(rows=120, block=slice(0, 30))
    perm = rng.permutation(120)
    scattered = w[perm]  # the correlated rows are now spread out
    cmap = correlation_map(scattered, "rows", order=order)
    members = np.isin(perm[cmap.indices], np.arange(30))
    positions = np.flatnonzero(members)
    assert positions.max() - positions.min() == 29  # contiguous in display order
    np.testing.assert_allclose(cmap.matrix, np.corrcoef(scattered)[np.ix_(cmap.indices, cmap.indices)], atol=1e-5)


def test_bad_arguments():
    with pytest.raises(StatsError, match="axis"):
        correlation_map(np.eye(3), "diag")
    with pytest.raises(StatsError, match="order"):
        correlation_map(np.eye(3), order="alphabetical")
    with pytest.raises(StatsError, match="matrix"):
        correlation_map(np.ones(4))


def reference_maps(q, k, v, o, heads, kv_heads, d):
    group = heads // kv_heads
    qk, vo = [], []
    for h in range(heads):
        g = h // group
        qh, kh, vh = q[h * d : (h + 1) * d], k[g * d : (g + 1) * d], v[g * d : (g + 1) * d]
        oh = o[:, h * d : (h + 1) * d]
        qk.append(qh.T @ kh)
        vo.append(vh.T @ oh.T)
    return np.stack(qk), np.stack(vo)


def test_head_maps_match_the_definition_with_gqa():
    rng = np.random.default_rng(2)
    hidden, heads, kv, d = 48, 6, 2, 8
    q = rng.standard_normal((heads * d, hidden))
    k = rng.standard_normal((kv * d, hidden))
    v = rng.standard_normal((kv * d, hidden))
    o = rng.standard_normal((hidden, heads * d))
    maps = head_maps(q, k, v, o, heads, kv, d)
    ref_qk, ref_vo = reference_maps(q, k, v, o, heads, kv, d)
    np.testing.assert_allclose(maps.qk, ref_qk, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(maps.vo, ref_vo, rtol=1e-4, atol=1e-4)
    for h in range(heads):
        off = ~np.eye(hidden, dtype=bool)
        expect = np.diag(ref_qk[h]).mean() / np.abs(ref_qk[h][off]).mean()
        assert maps.qk_diag_dominance[h] == pytest.approx(expect, rel=1e-4)
        assert maps.qk_trace_sign[h] == np.sign(np.trace(ref_qk[h]))


def test_identity_like_heads_are_detected_with_their_sign():
    """Mimetic-style weights: QKᵀ = +I-ish, VO = −I-ish; the scalars say so, random ones don't."""
    rng = np.random.default_rng(3)
    hidden, heads, d = 64, 4, 64
    q = np.concatenate([np.eye(d) + 0.05 * rng.standard_normal((d, hidden)) for _ in range(heads)])
    k = q.copy()
    v = q.copy()
    o = -q.T.copy()
    maps = head_maps(q, k, v, o, heads, max_hidden=32)
    assert maps.qk.shape == (heads, 32, 32)
    assert np.all(maps.qk_diag_dominance > 10) and np.all(maps.qk_trace_sign == 1)
    assert np.all(maps.vo_diag_dominance < -10) and np.all(maps.vo_trace_sign == -1)
    rnd = head_maps(*(rng.standard_normal(s) for s in [(256, 64), (256, 64), (256, 64), (64, 256)]), 4)
    assert np.all(np.abs(rnd.qk_diag_dominance) < 3)


def test_head_maps_on_the_demo_model():
    from core.sources import open_source

    src = open_source("demo")
    p = "encoder.layer.0.attention."
    q, k, v = (src.read(p + f"self.{n}.weight") for n in ("query", "key", "value"))
    o = src.read(p + "output.dense.weight")
    maps = head_maps(q, k, v, o, num_heads=12)
    assert maps.qk.shape == (12, 256, 256) and maps.num_heads == 12
    assert np.isfinite(maps.qk_diag_dominance).all() and np.isfinite(maps.vo_diag_dominance).all()


def test_head_maps_shape_errors():
    with pytest.raises(StatsError, match="heads"):
        head_maps(np.ones((8, 4)), np.ones((8, 4)), np.ones((8, 4)), np.ones((4, 8)), num_heads=3)
