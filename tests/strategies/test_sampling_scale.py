"""Issue 17: the sampling strategies' fast paths agree with the full-precision, full-size computation."""

from __future__ import annotations

import torch
from scipy import stats

from core.strategies.covariance import CovarianceParams, _axis_factor, _factor, _shrunk
from core.strategies.fits import student_t_float32
from core.strategies.templates import assemble, learn_templates, scalers_and_error, scalers_of


def test_indexed_float32_covariance_factor_matches_the_full_float64_one():
    g = torch.Generator().manual_seed(0)
    w = (
        torch.randn(96, 300, generator=g, dtype=torch.float64)
        * torch.linspace(0.5, 2, 96, dtype=torch.float64)[:, None]
    )
    x = w - w.mean()
    index = torch.tensor([5, 1, 1, 40, 95, 7, 60, 5])  # duplicates, as growth makes them
    params = CovarianceParams()
    kind, fast = _axis_factor(x.float(), 0, index, params)
    reference = _factor(_shrunk(x @ x.T / x.shape[1], params.shrinkage)[index][:, index], params.jitter)
    assert kind == "full"
    torch.testing.assert_close(fast @ fast.T, reference @ reference.T, rtol=1e-4, atol=1e-7)


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


def test_float32_student_t_draw_is_student_t_and_seeded():
    for df in (3.0, 8.0, 200.0):
        x = student_t_float32(df, 200_000, torch.Generator().manual_seed(2))
        assert x.dtype == torch.float32
        assert stats.kstest(x.double().numpy(), "t", args=(df,)).pvalue > 1e-3
        torch.testing.assert_close(x, student_t_float32(df, 200_000, torch.Generator().manual_seed(2)), rtol=0, atol=0)
