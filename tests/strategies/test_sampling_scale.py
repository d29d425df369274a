"""Issue 17: the sampling strategies' fast paths agree with the full-precision, full-size computation,
and their fits read a bounded sample of the source."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from strategy_sources import save_tensors

from core.plan import TargetSizes, make_plan
from core.stats.student_t import student_t_mle
from core.strategies._common import NORMAL_PARTS, NORMAL_SPLIT_MIN, fill_normal, read_sample, spread_blocks
from core.strategies.covariance import _draw, _sample_factor, _spread
from core.strategies.fits import student_t_float32, student_t_torch
from core.strategies.templates import assemble, learn_templates, scalers_and_error, scalers_of
from core.transfer import fill_tensor


def _shrunk_reference(x, index, shrinkage):
    """The full-data estimator: (1 − λ)·XXᵀ/n + λ·diag, shrunk on the source positions, then indexed."""
    u = x @ x.T / x.shape[1]
    u = (1 - shrinkage) * u + shrinkage * torch.diag(torch.diagonal(u))
    return u[index][:, index]


def test_covariance_factor_from_every_column_is_the_full_estimate_and_its_diagonal_always_is():
    g = torch.Generator().manual_seed(0)
    w = (
        torch.randn(96, 300, generator=g, dtype=torch.float64)
        * torch.linspace(0.5, 2, 96, dtype=torch.float64)[:, None]
    )
    x = w - w.mean()
    index = torch.tensor([5, 1, 40, 95, 7, 60])
    variance = (x * x).sum(1) / x.shape[1]
    reference = _shrunk_reference(x, index, 0.1)
    p, d = _sample_factor(x[index].float(), variance[index], 0.1, 0.0)
    torch.testing.assert_close((p @ p.T).double() + torch.diag(d.double() ** 2), reference, rtol=1e-5, atol=1e-7)
    # from 60 spread columns of the 300: the variances (the diagonal) stay the full data's
    cols = _spread(300, 60, torch.Generator().manual_seed(1))
    assert cols.tolist() == sorted(set(cols.tolist())) and len(cols) == 60
    p, d = _sample_factor(x[index][:, cols].float(), variance[index], 0.1, 0.0)
    estimate = (p @ p.T).double() + torch.diag(d.double() ** 2)
    torch.testing.assert_close(torch.diagonal(estimate), torch.diagonal(reference), rtol=1e-5, atol=0)
    assert (estimate - reference).norm() < 0.5 * reference.norm()


def test_factor_draw_has_the_factors_covariances():
    """μ + A Z Bᵀ with A = [P, diag(dr)], B = [Q, diag(dc)]: rows co-vary as AAᵀ·mean(diag BBᵀ), columns as BBᵀ·…"""
    g = torch.Generator().manual_seed(3)
    p, dr = torch.randn(6, 3, generator=g), torch.rand(6, generator=g) + 0.2
    q, dc = torch.randn(5, 2, generator=g) * 0.5, torch.rand(5, generator=g) + 0.5
    u = (p @ p.T + torch.diag(dr**2)).double()
    v = (q @ q.T + torch.diag(dc**2)).double()
    draws = torch.stack([_draw(p, dr, q, dc, 0.25, torch.Generator().manual_seed(i), "cpu") for i in range(4000)])
    assert draws.shape == (4000, 6, 5)
    x = draws.double() - 0.25
    assert abs(float(x.mean())) < 0.02
    row_cov = torch.einsum("sic,sjc->ij", x, x) / (x.shape[0] * 5)
    col_cov = torch.einsum("sri,srj->ij", x, x) / (x.shape[0] * 6)
    torch.testing.assert_close(row_cov, u * torch.diagonal(v).mean(), rtol=0.1, atol=0.05)
    torch.testing.assert_close(col_cov, v * torch.diagonal(u).mean(), rtol=0.1, atol=0.05)
    # the same generator gives the same draw; the diagonal-only sides (None) work too
    torch.testing.assert_close(
        _draw(p, dr, q, dc, 0.0, torch.Generator().manual_seed(9), "cpu"),
        _draw(p, dr, q, dc, 0.0, torch.Generator().manual_seed(9), "cpu"),
        rtol=0,
        atol=0,
    )
    assert _draw(None, dr, None, dc, 1.0, torch.Generator().manual_seed(9), "cpu").shape == (6, 5)


def test_a_draw_with_bf16_products_is_the_float32_draw_to_bf16_precision():
    """Same generator, same noise: the bf16 product differs from the float32 one by the rounding of its
    factors (~2⁻⁹ of the low-rank part), and the mean and the diagonal noise are added in float32."""
    g = torch.Generator().manual_seed(5)
    m, n, kp, kq = 300, 2000, 64, 48
    p, dr = torch.randn(m, kp, generator=g) * 0.1, torch.rand(m, generator=g) * 0.3 + 0.1
    q, dc = torch.randn(n, kq, generator=g) * 0.1, torch.rand(n, generator=g) * 0.3 + 0.1
    high = _draw(p, dr, q, dc, 0.5, torch.Generator().manual_seed(9), "cpu")
    low = _draw(p, dr, q, dc, 0.5, torch.Generator().manual_seed(9), "cpu", torch.bfloat16)
    assert low.dtype == high.dtype == torch.float32 and low.shape == high.shape == (m, n)
    diff = (low - high).double()
    assert 0 < float(diff.abs().max()) < 0.05 * float((high - 0.5).std())
    assert float(diff.std()) < 2**-7 * float((high - 0.5).std())
    assert abs(float(diff.mean())) < 1e-4  # the mean is not rounded
    torch.testing.assert_close(low, _draw(p, dr, q, dc, 0.5, torch.Generator().manual_seed(9), "cpu", torch.bfloat16))
    only_mean = _draw(None, dr, None, dc, 0.5, torch.Generator().manual_seed(9), "cpu", torch.bfloat16)
    torch.testing.assert_close(only_mean, _draw(None, dr, None, dc, 0.5, torch.Generator().manual_seed(9), "cpu"))


@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN: its float32 draw is the BLAS one"
)
def test_a_float32_draw_through_onednn_is_the_blas_draw_to_float32_precision(monkeypatch):
    """On an AMD CPU the float32 products run through oneDNN (core.devices.onednn_products): the same
    noise, the same values but for the order of the sums, and the same bytes on every run."""
    g = torch.Generator().manual_seed(5)
    m, n, kp, kq = 300, 700, 64, 48
    p, dr = torch.randn(m, kp, generator=g) * 0.1, torch.rand(m, generator=g) * 0.3 + 0.1
    q, dc = torch.randn(n, kq, generator=g) * 0.1, torch.rand(n, generator=g) * 0.3 + 0.1
    draws = {}
    for gemm in ("blas", "onednn", "onednn"):
        monkeypatch.setenv("GRAFT_FLOAT32_GEMM", gemm)
        out = _draw(p, dr, q, dc, 0.5, torch.Generator().manual_seed(9), "cpu")
        if gemm in draws:
            torch.testing.assert_close(out, draws[gemm], rtol=0, atol=0)
        draws[gemm] = out
    torch.testing.assert_close(draws["onednn"], draws["blas"], rtol=1e-5, atol=1e-6)
    assert float((draws["blas"] - 0.5).std()) > 0.1


@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN: its products are the BLAS ones"
)
def test_the_spectrum_estimate_through_onednn_is_the_blas_estimate(monkeypatch):
    from core.stats.spectrum import top_eigenvalues

    g = torch.Generator().manual_seed(2)
    u, _ = torch.linalg.qr(torch.randn(700, 400, generator=g))
    v, _ = torch.linalg.qr(torch.randn(400, 400, generator=g))
    w = (u * 0.97 ** torch.arange(400.0)) @ v.T  # σ_i = 0.97^i
    estimates = {}
    for gemm in ("blas", "onednn"):
        monkeypatch.setenv("GRAFT_FLOAT32_GEMM", gemm)
        estimates[gemm] = top_eigenvalues(w, rank=64, block=16)
    np.testing.assert_allclose(estimates["onednn"], estimates["blas"], rtol=1e-4)
    np.testing.assert_allclose(estimates["blas"][:8], 0.97 ** (2 * np.arange(8)), rtol=1e-3)


def test_the_normal_fill_in_parts_is_standard_normal_and_the_same_on_any_number_of_threads():
    n = 3 * NORMAL_SPLIT_MIN + 5  # parts of unequal length
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = fill_normal(torch.empty(n), torch.Generator().manual_seed(1))
        torch.set_num_threads(1)
        one = fill_normal(torch.empty(n), torch.Generator().manual_seed(1))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, two, rtol=0, atol=0)
    assert stats.kstest(two[:: n // 20_000].double().numpy(), "norm").pvalue > 1e-3
    assert abs(float(two.double().mean())) < 5 / math.sqrt(n) and abs(float(two.double().std()) - 1) < 1e-3
    quarter = n // NORMAL_PARTS  # the parts are independent streams, not one stream repeated
    assert abs(float(torch.corrcoef(torch.stack([two[:quarter], two[quarter : 2 * quarter]]))[0, 1])) < 0.01
    assert not torch.equal(two, fill_normal(torch.empty(n), torch.Generator().manual_seed(2)))
    small = fill_normal(torch.empty(1000), torch.Generator().manual_seed(1))  # one part: the generator itself
    torch.testing.assert_close(small, torch.empty(1000).normal_(generator=torch.Generator().manual_seed(1)))


def test_streamed_templates_error_matches_the_explicit_reconstruction():
    g = torch.Generator().manual_seed(1)
    layers = {f"w{i}": torch.randn(64, 48, generator=g) for i in range(3)}
    templates = learn_templates(layers.__getitem__, list(layers), 4, 4, 6)
    for w in layers.values():
        scalers, error = scalers_and_error(w, templates)
        exact = scalers_of(w.double(), templates)
        torch.testing.assert_close(scalers.double(), exact, rtol=0, atol=1e-5)
        recon = assemble(exact, templates)
        assert abs(error - float((w.double() - recon).norm() / w.double().norm())) < 1e-5


def test_templates_assemble_only_the_mapped_blocks_and_report_their_error(llama):
    name = "model.layers.0.mlp.down_proj.weight"  # (32, 64) → (16, 32)
    plan = make_plan(
        llama,
        TargetSizes(hidden=16, ffn=32, heads=2),
        index={"method": "uniform"},
        values={"default": {"method": "select"}, "mlp": {"method": "templates", "params": {"k": 3, "t1": 4, "t2": 4}}},
    )
    cache: dict = {}
    out = fill_tensor(plan, plan.tensor(name), llama, cache=cache).double()
    templates = cache["wave_templates"][name]
    w = llama.read(name).double()
    rows = torch.tensor(plan.dims["hidden"].index)[::4] // 4
    cols = torch.tensor(plan.dims["ffn@0"].index)[::4] // 4
    scalers = scalers_of(w, templates)[:, rows][:, :, cols]
    torch.testing.assert_close(out, assemble(scalers, templates), rtol=0, atol=1e-5)
    used = w.reshape(8, 4, 16, 4)[rows][:, :, cols]  # the source blocks the target is built from
    recon = assemble(scalers, templates).reshape(len(rows), 4, len(cols), 4)
    error = float((used - recon).norm() / used.norm())
    assert cache["wave_error"][name] == pytest.approx(error, rel=1e-5)


def test_float32_student_t_draw_is_student_t_and_seeded():
    for df in (0.3, 3.0, 8.0, 200.0):
        x = student_t_float32(df, 200_000, torch.Generator().manual_seed(2))
        assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())  # ν = 0.3: the heaviest tail a fit gives
        assert stats.kstest(x.double().numpy(), "t", args=(df,)).pvalue > 1e-3
        torch.testing.assert_close(x, student_t_float32(df, 200_000, torch.Generator().manual_seed(2)), rtol=0, atol=0)


def test_the_gpus_student_t_construction_is_student_t():
    """The torch construction a CUDA generator uses, checked here on the CPU (no GPU in the tests)."""
    for df in (3.0, 30.0):
        x = student_t_torch(df, 300_000, torch.Generator().manual_seed(6), loc=0.5, scale=2.0)
        assert x.dtype == torch.float32 and x.shape == (300_000,)
        assert stats.kstest((x.double().numpy() - 0.5) / 2.0, "t", args=(df,)).pvalue > 1e-3


def test_student_t_draw_does_not_depend_on_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = student_t_float32(5.0, 3_000_000, torch.Generator().manual_seed(4), loc=0.1, scale=0.02)
        torch.set_num_threads(2)
        two = student_t_float32(5.0, 3_000_000, torch.Generator().manual_seed(4), loc=0.1, scale=0.02)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(one, two, rtol=0, atol=0)
    assert float(one.mean()) == pytest.approx(0.1, abs=1e-4)
    assert float(one.std()) == pytest.approx(0.02 * math.sqrt(5 / 3), rel=0.01)


@pytest.mark.parametrize("data", ["t3", "t8", "gaussian", "laplace", "small"])
def test_student_t_mle_matches_scipys_fit(data):
    from scipy import stats

    from core.stats.fits import StudentTFit, fit_student_t

    rng = np.random.default_rng(5)
    x = {
        "t3": rng.standard_t(3, 30_000) * 0.02 + 0.001,
        "t8": rng.standard_t(8, 30_000) * 0.05,
        "gaussian": rng.standard_normal(30_000) * 0.02,
        "laplace": rng.laplace(0.0, 1.0, 30_000),
        "small": rng.standard_t(4, 300),
    }[data]
    nu, mu, sigma = student_t_mle(x)
    ref_nu, ref_mu, ref_sigma = stats.t.fit(x)  # Nelder–Mead on scipy's own likelihood
    ref_nu = min(ref_nu, 1000.0)  # our ν is bounded to [0.3, 1000]
    # the same maximum: never a worse likelihood than scipy's, the same parameters where identified
    ours = float(stats.t.logpdf(x, nu, mu, sigma).mean())
    assert ours >= float(stats.t.logpdf(x, ref_nu, ref_mu, ref_sigma).mean()) - 1e-9
    assert 1 / nu == pytest.approx(1 / ref_nu, abs=2e-3)
    assert mu == pytest.approx(ref_mu, abs=1e-3 * ref_sigma)
    assert sigma == pytest.approx(ref_sigma, rel=1e-3)
    # the histograms' fit (a torch tensor in, its default sample size) reaches scipy's maximum too,
    # and its density is scipy's
    fit = fit_student_t(torch.from_numpy(x))
    assert 1 / fit.nu == pytest.approx(1 / ref_nu, abs=2e-3)
    assert fit.mu == pytest.approx(ref_mu, abs=1e-3 * ref_sigma)
    assert fit.sigma == pytest.approx(ref_sigma, rel=1e-3)
    np.testing.assert_allclose(
        StudentTFit(nu, mu, sigma).logpdf(x), stats.t.logpdf(x, nu, mu, sigma), rtol=1e-10, atol=1e-11
    )


def test_spread_blocks_cover_every_stratum_in_order():
    ranges = spread_blocks(10_000, 640, torch.Generator().manual_seed(0), align=4)
    assert len(ranges) == 64
    assert all(lo % 4 == 0 and hi % 4 == 0 and lo < hi for lo, hi in ranges)
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))  # sorted, disjoint
    assert sum(hi - lo for lo, hi in ranges) >= 640
    edges = [round(i * 2500 / 64) * 4 for i in range(65)]  # 64 equal strata of the 2500 aligned units
    assert all(edges[i] <= lo and hi <= edges[i + 1] for i, (lo, hi) in enumerate(ranges))
    assert spread_blocks(100, 500, torch.Generator().manual_seed(0)) == [(0, 100)]
    assert ranges == spread_blocks(10_000, 640, torch.Generator().manual_seed(0), align=4)


class _Counting:
    """A source that counts the rows it hands out."""

    def __init__(self, source):
        self.source, self.rows, self.gathered = source, 0, []

    def __getattr__(self, name):
        return getattr(self.source, name)

    def read(self, name):
        out = self.source.read(name)
        self.rows += out.shape[0]
        return out

    def read_slice(self, name, index):
        out = self.source.read_slice(name, index)
        self.rows += out.shape[0]
        return out

    def read_gather(self, name, rows, cols):
        out = self.source.read_gather(name, rows, cols)
        self.rows += out.shape[0]
        self.gathered += [] if rows is None else [int(r) for r in rows]
        return out


def _rows_of_growing_scale(path, rows: int, cols: int, top: float):
    """A two-layer MLP source whose first weight's rows have std 0.01 … ``top``."""
    g = torch.Generator().manual_seed(0)
    scales = torch.linspace(0.01, top, rows)[:, None]
    return save_tensors(
        {
            "0.weight": torch.randn(rows, cols, generator=g) * scales,
            "0.bias": torch.zeros(rows),
            "2.weight": torch.randn(4, rows, generator=g) * 0.02,
            "2.bias": torch.zeros(4),
        },
        path,
    )


def test_a_distribution_fit_reads_a_sample_of_rows_not_the_tensor(tmp_path):
    rows, cols = 8192, 256  # 2M values: more than the fit's read
    source = _rows_of_growing_scale(tmp_path / "big.safetensors", rows, cols, 0.03)
    counting = _Counting(source)
    sample = read_sample(counting, "0.weight", 1 << 19, torch.Generator().manual_seed(1))
    assert sample.shape == (2048, cols) and counting.rows == 2048
    plan = make_plan(
        source,
        TargetSizes(hidden=4096),
        values={"default": {"method": "distribution", "params": {"family": "gaussian", "max_samples": 20_000}}},
    )
    counting.rows = 0
    cache: dict = {}
    out = fill_tensor(plan, plan.tensor("0.weight"), counting, cache=cache)
    assert counting.rows <= rows // 4  # a quarter of the rows, spread over all of them
    fitted = cache["fits"]["0.weight"]
    assert fitted["n"] == 20_000
    # the fit on the sample is the full tensor's up to sampling noise (rows of different scales)
    full = source.read("0.weight").double()
    assert fitted["std"] == pytest.approx(float(full.std()), rel=0.02)
    assert abs(fitted["mean"]) < 3 * float(full.std()) / math.sqrt(fitted["n"])
    assert out.shape == (4096, cols) and float(out.std()) == pytest.approx(fitted["std"], rel=0.01)


def test_covariance_reads_only_the_kept_block_and_keeps_its_row_scales(tmp_path):
    source = _rows_of_growing_scale(tmp_path / "cov.safetensors", 2048, 256, 0.05)
    plan = make_plan(source, TargetSizes(hidden=1024), values={"default": {"method": "covariance"}})
    counting = _Counting(source)
    out = fill_tensor(plan, plan.tensor("0.weight"), counting)
    kept = plan.dims["h0"].index
    assert counting.rows == 1024 and sorted(counting.gathered) == sorted(kept)  # the kept rows, each once
    full = source.read("0.weight")[torch.tensor(kept)]
    # each target row has its kept source row's scale (the draw's noise: ~√(2/256) per row)
    ratio = out.std(1) / full.std(1)
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.02)
    assert float(torch.corrcoef(torch.stack([out.std(1), full.std(1)]))[0, 1]) > 0.95
