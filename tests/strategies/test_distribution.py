"""Distribution fit and sample: each family reproduces its fit; Student-t wins on heavy tails."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from strategy_sources import save_tensors

from core.plan import TargetSizes, make_plan
from core.strategies.fits import fit
from core.transfer import FillContext, fill_tensor

N = 256


def _draw(family: str, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if family == "gaussian":
        return 0.02 * torch.randn(n, generator=g) + 0.01
    if family == "laplace":
        u = torch.rand(n, generator=g) - 0.5
        return 0.01 - 0.02 * u.sign() * torch.log1p(-2 * u.abs())
    if family == "student_t":
        import numpy as np

        return torch.from_numpy(0.02 * np.random.default_rng(seed).standard_t(4, n)).float()
    # bimodal: only the non-parametric families can follow it
    half = n // 2
    return torch.cat([0.01 * torch.randn(half, generator=g) - 0.05, 0.01 * torch.randn(n - half, generator=g) + 0.05])


def _source(tmp_path, values: torch.Tensor):
    g = torch.Generator().manual_seed(3)
    return save_tensors(
        {
            "0.weight": values.reshape(N, N),
            "0.bias": torch.randn(N, generator=g),
            "2.weight": torch.randn(10, N, generator=g),
            "2.bias": torch.zeros(10),
        },
        tmp_path / "src.safetensors",
    )


def _plan(source, family, scope="tensor", hidden=N, **kw):
    return make_plan(
        source,
        TargetSizes(hidden=hidden),
        seed=kw.pop("seed", 0),
        values={"default": {"method": "distribution", "params": {"family": family, "scope": scope}}},
        **kw,
    )


@pytest.mark.parametrize(
    "family,data",
    [
        ("gaussian", "gaussian"),
        ("laplace", "laplace"),
        ("student_t", "student_t"),
        ("quantile", "bimodal"),
        ("kde", "bimodal"),
    ],
)
def test_sample_matches_its_fit(tmp_path, family, data):
    values = _draw(data, N * N)
    source = _source(tmp_path, values)
    plan = _plan(source, family)
    cache: dict = {}
    out = fill_tensor(plan, plan.tensor("0.weight"), source, cache=cache)
    assert out.shape == (N, N)
    recorded = cache["fits"]["0.weight"]
    assert recorded["family"] == family and recorded["scope"] == "tensor"
    x = out.reshape(-1).double()
    if family == "gaussian":
        assert x.mean().item() == pytest.approx(recorded["mean"], abs=3e-4)
        assert x.std().item() == pytest.approx(recorded["std"], rel=0.02)
    elif family == "laplace":
        assert x.median().item() == pytest.approx(recorded["loc"], abs=5e-4)
        assert (x - recorded["loc"]).abs().mean().item() == pytest.approx(recorded["scale"], rel=0.02)
    elif family == "student_t":
        assert recorded["df"] == pytest.approx(4.0, rel=0.15)
        assert recorded["scale"] == pytest.approx(0.02, rel=0.05)
    ks = stats.ks_2samp(values.numpy(), out.reshape(-1).numpy()).statistic
    assert ks < 0.02, ks


def test_student_t_fits_heavy_tails_better_than_gaussian():
    x = _draw("student_t", 20000)[None, :]
    assert fit("student_t", x).log_likelihood(x) > fit("gaussian", x).log_likelihood(x) + 0.05
    g = _draw("gaussian", 20000)[None, :]  # and on Gaussian data it is no worse (ν → large)
    assert fit("student_t", g).params["df"].item() > 10
    assert fit("student_t", g).log_likelihood(g) == pytest.approx(fit("gaussian", g).log_likelihood(g).item(), abs=1e-3)


def test_row_scope_follows_the_row_map(tmp_path):
    scales = torch.linspace(0.001, 0.1, N)
    values = torch.randn(N, N, generator=torch.Generator().manual_seed(0)) * scales[:, None]
    source = _source(tmp_path, values.reshape(-1))
    plan = _plan(source, "gaussian", scope="row", hidden=96, index={"method": "uniform"})
    out = fill_tensor(plan, plan.tensor("0.weight"), source)
    rows = torch.tensor(plan.dims["h0"].index)
    corr = torch.corrcoef(torch.stack([out.std(1), scales[rows]]))[0, 1]
    assert out.shape == (96, N) and corr > 0.99


def test_column_scope_and_growth(tmp_path):
    scales = torch.linspace(0.001, 0.1, N)
    values = torch.randn(N, N, generator=torch.Generator().manual_seed(0)) * scales[None, :]
    source = _source(tmp_path, values.reshape(-1))
    plan = _plan(source, "laplace", scope="column", hidden=300, index={"method": "iid"})
    out = fill_tensor(plan, plan.tensor("2.weight"), source)  # (10, 300): columns follow the h0 map
    assert out.shape == (10, 300)
    first = fill_tensor(plan, plan.tensor("0.weight"), source)  # (300, 256): input axis not resized
    assert first.shape == (300, N)
    assert torch.corrcoef(torch.stack([first.std(0), scales]))[0, 1] > 0.95


def test_role_scope_pools_layers_once(llama):
    plan = make_plan(
        llama,
        TargetSizes(hidden=16, ffn=32, heads=2),
        values={"default": {"method": "distribution", "params": {"family": "student_t", "scope": "role"}}},
    )
    cache: dict = {}
    for t in plan.tensors:
        fill_tensor(plan, t, llama, cache=cache)
    fits = cache["fits"]
    q0, q1 = fits["model.layers.0.self_attn.q_proj.weight"], fits["model.layers.1.self_attn.q_proj.weight"]
    assert q0 == q1 and q0["pooled_over"] == 2 and q0["scope"] == "role"
    assert set(q0) >= {"df", "loc", "scale", "n"}


def test_vectors_fall_back_to_tensor_scope(tmp_path):
    source = _source(tmp_path, _draw("gaussian", N * N))
    plan = _plan(source, "kde", scope="row")
    cache: dict = {}
    bias = fill_tensor(plan, plan.tensor("0.bias"), source, cache=cache)
    assert bias.shape == (N,) and cache["fits"]["0.bias"]["scope"] == "tensor"
    assert "quantiles" in cache["fits"]["0.bias"] and "bandwidth" in cache["fits"]["0.bias"]


def test_fitted_params_without_sampling(tmp_path):
    from core.strategies import make_params
    from core.strategies.distribution import fitted_params

    source = _source(tmp_path, _draw("gaussian", N * N))
    plan = _plan(source, "gaussian")
    ctx = FillContext(plan, plan.tensor("0.weight"), source)
    entry = fitted_params(make_params("distribution", {"family": "gaussian"}), ctx)
    assert entry["std"] == pytest.approx(0.02, rel=0.02)
