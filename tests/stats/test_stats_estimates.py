"""Issue 17: estimated metrics stay within their stated error bounds, and tables say which are estimated."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.sources import open_source
from core.stats import model_table, spectrum
from core.stats.metrics import METRICS, TensorView
from core.stats.sampling import count_nonfinite, row_sum_squares
from core.stats.spectrum import BF16_RITZ_ERROR, DEFAULT_EXACT_SIDE, DEFAULT_RANK, KRYLOV_ERRORS, top_eigenvalues

DEMO_MATRICES = (
    "encoder.layer.0.intermediate.dense.weight",  # 1536×384
    "encoder.layer.3.output.dense.weight",  # 384×1536
    "encoder.layer.5.attention.output.dense.weight",  # 384×384
    "pooler.dense.weight",  # 384×384, the flattest spectrum of the demo
)


@pytest.mark.parametrize("name", DEMO_MATRICES)
def test_forced_estimates_of_demo_matrices_are_within_the_stated_bounds(name):
    w = open_source("demo").read(name)
    exact = spectrum(w, max_side=None)
    est = spectrum(w, exact_side=0)
    assert exact.exact and exact.method == "exact"
    assert not est.exact and est.method == "krylov" and est.used_shape == (DEFAULT_RANK, max(w.shape))
    sigma = float(est.singular_values[0]) / float(exact.singular_values[0]) - 1
    assert -KRYLOV_ERRORS["sigma_max"] <= sigma <= 1e-6  # Ritz values are lower bounds
    assert abs(est.stable_rank / exact.stable_rank - 1) <= KRYLOV_ERRORS["stable_rank"]
    assert abs(est.alpha / exact.alpha - 1) <= KRYLOV_ERRORS["alpha"]


def test_ritz_values_are_deterministic_lower_bounds_of_the_top_eigenvalues():
    w = open_source("demo").read("encoder.layer.2.output.dense.weight")
    ev = np.linalg.eigvalsh((w.double() @ w.double().T).numpy())[::-1]
    a, b = top_eigenvalues(w), top_eigenvalues(w)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (DEFAULT_RANK,)
    assert np.all(a <= ev[: a.size] * (1 + 1e-5))
    assert a[0] == pytest.approx(ev[0], rel=2 * KRYLOV_ERRORS["sigma_max"])
    assert not np.array_equal(a, top_eigenvalues(w, seed=1))  # the seed is the start block's


@pytest.mark.parametrize("name", DEMO_MATRICES)
def test_bf16_products_move_the_ritz_values_by_less_than_the_stated_bound(name):
    w = open_source("demo").read(name).bfloat16()  # a bf16 matrix: the products use it as stored
    low, high = top_eigenvalues(w, products=torch.bfloat16), top_eigenvalues(w)
    assert not np.array_equal(low, high)  # the bf16 path did run
    np.testing.assert_allclose(low[:10], high[:10], rtol=BF16_RITZ_ERROR)
    np.testing.assert_array_equal(low, top_eigenvalues(w, products=torch.bfloat16))  # deterministic
    exact = np.linalg.eigvalsh((w.double() @ w.double().T).numpy())[::-1]
    assert low[0] <= exact[0] * (1 + BF16_RITZ_ERROR)
    # a float32 matrix is never rounded: bf16 products are for matrices stored in bf16
    w32 = w.float()
    np.testing.assert_array_equal(top_eigenvalues(w32, products=torch.bfloat16), top_eigenvalues(w32))


def test_the_exact_side_threshold_decides():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.standard_t(4, (300, 700)).astype(np.float32))
    assert spectrum(w, exact_side=300).exact
    est = spectrum(w, exact_side=299)
    assert est.method == "krylov" and est.singular_values.size == DEFAULT_RANK
    assert est.to_dict()["method"] == "krylov" and est.to_dict()["exact"] is False
    view = TensorView(w, exact_side=299)
    assert METRICS.get("alpha").is_estimated(view) and not METRICS.get("top1_norm_ratio").is_estimated(view)
    assert not METRICS.get("alpha").is_estimated(TensorView(w))  # 300 ≤ DEFAULT_EXACT_SIDE
    side = DEFAULT_EXACT_SIDE + 1  # just above the default threshold: estimated without being told
    wide = torch.from_numpy(rng.standard_t(4, (side, side + 7)).astype(np.float32))
    assert METRICS.get("alpha").is_estimated(TensorView(wide))


def _checkpoint(folder):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "model.layers.0.mlp.up_proj.weight": (torch.randn(600, 520, generator=g) * 0.02).to(torch.bfloat16),
        "model.layers.0.self_attn.q_proj.weight": (torch.randn(64, 64, generator=g) * 0.02).to(torch.bfloat16),
        "model.layers.1.mlp.up_proj.weight": (torch.randn(300, 200, generator=g) * 0.02).to(torch.bfloat16),
    }
    save_file(tensors, str(folder / "model.safetensors"))
    return open_source(folder / "model.safetensors")


def test_the_table_says_which_metrics_are_estimated(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    src = _checkpoint(tmp_path)
    metrics = ("std", "alpha", "stable_rank", "row_corr_excess", "top1_norm_ratio")
    table = model_table(src, metrics, max_elements=50_000)
    big = tuple(np.argwhere(table.names == "model.layers.0.mlp.up_proj.weight")[0])
    small = tuple(np.argwhere(table.names == "model.layers.0.self_attn.q_proj.weight")[0])
    mid = tuple(np.argwhere(table.names == "model.layers.1.mlp.up_proj.weight")[0])
    est = table.estimated
    assert est["alpha"][big] and est["stable_rank"][big]  # 520 > 512: Krylov
    assert not est["alpha"][small] and not est["alpha"][mid]
    assert est["std"][big] and est["std"][mid] and not est["std"][small]  # over 50k entries: sampled
    assert est["row_corr_excess"][big] and est["row_corr_excess"][mid] and not est["row_corr_excess"][small]
    assert not est["top1_norm_ratio"].any()
    assert "estimated for 1 of the 3 tensors" in table.descriptions["alpha"]
    assert "exact for every tensor" in table.descriptions["top1_norm_ratio"]
    out = json.loads(json.dumps(table.to_dict()))
    i, j = (int(k) for k in big)
    assert out["estimated"]["alpha"][i][j] is True and out["estimated"]["top1_norm_ratio"][i][j] is False
    empty = np.argwhere(table.names == "")
    if len(empty):
        assert out["estimated"]["alpha"][int(empty[0][0])][int(empty[0][1])] is None

    # the same flags from the cache (a second open reads no tensor)
    monkeypatch.setattr(type(src), "read", lambda self, name: pytest.fail("read on a cache hit"))
    again = model_table(open_source(tmp_path / "model.safetensors"), metrics, max_elements=50_000)
    for m in metrics:
        np.testing.assert_array_equal(again.estimated[m], est[m])
        np.testing.assert_array_equal(again.values[m], table.values[m])


@pytest.mark.parametrize("products", ["float32", "bfloat16"])
def test_the_estimate_of_the_table_matches_the_spectrum_function(tmp_path, products):
    src = _checkpoint(tmp_path)
    table = model_table(src, ("alpha", "stable_rank", "sigma_max"), cache=False, products=products)
    w = src.read("model.layers.0.mlp.up_proj.weight")
    assert w.dtype == torch.bfloat16
    ref = spectrum(w, exact_side=DEFAULT_EXACT_SIDE, products=getattr(torch, products))
    big = tuple(np.argwhere(table.names == "model.layers.0.mlp.up_proj.weight")[0])
    assert table.values["alpha"][big] == pytest.approx(ref.alpha, rel=1e-6)
    assert table.values["stable_rank"][big] == pytest.approx(ref.stable_rank, rel=1e-5)
    assert table.values["sigma_max"][big] == pytest.approx(float(ref.singular_values[0]), rel=1e-6)


def test_help_texts_state_exactness_and_measured_bounds():
    for name in ("alpha", "stable_rank", "sigma_max"):
        text = METRICS.get(name).help
        assert "exact when" in text and "estimated" in text and "measured" in text and "TBD" not in text
    for name in ("std", "kurtosis", "row_corr_excess", "col_corr_excess"):
        assert "measured" in METRICS.get(name).help
    assert "exact" in METRICS.get("top1_norm_ratio").help


def test_fast_row_norms_and_nonfinite_count_of_bf16():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(700, 3000, generator=g).to(torch.bfloat16)
    ref = w.double().square().sum(1)
    np.testing.assert_allclose(row_sum_squares(w).numpy(), ref.numpy(), rtol=3e-6)  # float32 sums
    np.testing.assert_allclose(row_sum_squares(w.float()).numpy(), ref.numpy(), rtol=3e-6)
    np.testing.assert_array_equal(row_sum_squares(w.double()).numpy(), ref.numpy())
    assert count_nonfinite(w) == 0
    w[5, 7], w[600, 2999] = float("nan"), float("-inf")
    assert count_nonfinite(w) == 2
    view = TensorView(w)
    assert math.isnan(METRICS.get("stable_rank")(view)) and view.nonfinite == 2
