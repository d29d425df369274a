"""Distribution fits: MLEs against scipy, sampling against the fitted law, model choice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sstats

from core.stats import StudentTFit, fit_all, fit_gaussian, fit_laplace, fit_student_t


@pytest.fixture(scope="module")
def t_data():
    rng = np.random.default_rng(0)
    return (rng.standard_t(3.0, 60_000) * 0.02 + 0.005).astype(np.float64)


def test_gaussian_and_laplace_are_the_closed_form_mles(t_data):
    g = fit_gaussian(t_data)
    assert (g.mu, g.sigma) == (pytest.approx(t_data.mean()), pytest.approx(t_data.std()))
    loc, scale = sstats.laplace.fit(t_data)
    lap = fit_laplace(t_data)
    assert lap.mu == pytest.approx(loc, abs=1e-9) and lap.b == pytest.approx(scale, rel=1e-6)


def test_student_t_matches_scipy_mle(t_data):
    fit = fit_student_t(t_data)
    df, loc, scale = sstats.t.fit(t_data)
    assert fit.nu == pytest.approx(df, rel=0.02)
    assert fit.mu == pytest.approx(loc, abs=2e-4)
    assert fit.sigma == pytest.approx(scale, rel=0.01)
    assert fit.nu == pytest.approx(3.0, abs=0.2)  # the generating ν; SE ≈ 0.05 at n = 60k
    # our optimum is at least as good as scipy's
    ours = fit.logpdf(t_data).sum()
    theirs = sstats.t.logpdf(t_data, df, loc, scale).sum()
    assert ours >= theirs - 1e-3


def test_logpdf_and_pdf_agree_with_scipy_for_numpy_and_torch():
    x = np.linspace(-0.1, 0.1, 7)
    fits = fit_all(np.random.default_rng(1).standard_t(5, 5000) * 0.02)
    refs = {
        "gaussian": lambda f: sstats.norm.logpdf(x, f.mu, f.sigma),
        "laplace": lambda f: sstats.laplace.logpdf(x, f.mu, f.b),
        "student-t": lambda f: sstats.t.logpdf(x, f.nu, f.mu, f.sigma),
    }
    for name, fit in fits.items():
        np.testing.assert_allclose(fit.logpdf(x), refs[name](fit), rtol=1e-10)
        out = fit.pdf(torch.from_numpy(x))
        assert isinstance(out, torch.Tensor)
        np.testing.assert_allclose(out.numpy(), np.exp(refs[name](fit)), rtol=1e-10)
        d = fit.to_dict()
        assert d["name"] == name and all(isinstance(v, (int, float, str)) for v in d.values())


def test_student_t_beats_gaussian_on_heavy_tails_and_not_on_gaussian_data(t_data):
    fits = fit_all(t_data)
    ll = {name: f.mean_loglik(t_data) for name, f in fits.items()}
    assert ll["student-t"] > ll["laplace"] > ll["gaussian"]
    gauss = np.random.default_rng(2).standard_normal(50_000)
    t_fit = fit_student_t(gauss)
    assert t_fit.nu > 30  # ν → ∞ is the Gaussian
    assert abs(t_fit.mean_loglik(gauss) - fit_gaussian(gauss).mean_loglik(gauss)) < 1e-3


@pytest.mark.parametrize(
    "fit",
    [
        fit_gaussian(np.array([0.0, 1.0, 2.0])),
        fit_laplace(np.array([0.0, 1.0, 3.0])),
        StudentTFit(nu=2.5, mu=0.3, sigma=0.7),
    ],
)
def test_sample_follows_the_fitted_law_and_is_seeded(fit):
    draw = fit.sample((200, 300), torch.Generator().manual_seed(7))
    assert draw.shape == (200, 300) and draw.dtype == torch.float32
    assert torch.equal(draw, fit.sample((200, 300), torch.Generator().manual_seed(7)))
    cdf = {
        "gaussian": lambda v: sstats.norm.cdf(v, fit.mu, fit.sigma),
        "laplace": lambda v: sstats.laplace.cdf(v, fit.mu, fit.b),
        "student-t": lambda v: sstats.t.cdf(v, getattr(fit, "nu", 1), fit.mu, getattr(fit, "sigma", 1)),
    }[fit.name]
    result = sstats.kstest(draw.numpy().ravel().astype(np.float64), cdf)
    # 60,000 draws: a wrong sampler gives p ≈ 0; a right one p > 1e-3 with probability 0.999
    assert result.pvalue > 1e-3


def test_bf16_tensor_input():
    x = torch.from_numpy(np.random.default_rng(3).standard_t(4, 20_000).astype(np.float32)).to(torch.bfloat16)
    f = fit_student_t(x)
    assert 3.0 < f.nu < 5.5 and math.isfinite(f.sigma)
