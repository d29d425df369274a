"""The Student-t maximum-likelihood fit: ν, μ, σ by Newton's method, without scipy.

One estimator for the whole app: the histograms' fitted densities (:mod:`core.stats.fits`) and the
``distribution`` strategy's single-group fits (:mod:`core.strategies.fits`) both call
:func:`student_t_mle`, so what the preview overlays is what a transfer samples from. Newton's
method with the analytic Hessian takes a few passes over the values in numpy; scipy's L-BFGS,
which this replaced, needed scipy (a second to import, on the app's way to its first preview)
and woke a threaded BLAS at every step (issue 17). Checked against ``scipy.stats.t.fit`` in the
tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: the bounds of ν: ν → ∞ is the Gaussian, ν ≤ 2 has infinite variance
NU_BOUNDS = (0.3, 1000.0)


def _t_terms(theta, z, order: int):
    """Mean negative log-likelihood of standardised ``z`` under t(ν, μ, σ), θ = (1/ν, μ, log σ), with
    its gradient (``order`` ≥ 1) and Hessian (``order`` 2) in θ.

    1/ν rather than ν or log ν: near the Gaussian end the likelihood goes as 1/ν, so in 1/ν it is
    smooth up to its bound and Newton's steps converge there too.
    """
    eta, mu, log_s = (float(v) for v in theta)
    nu, s = 1.0 / eta, math.exp(log_s)
    r = (z - mu) / s
    r2 = r * r
    log_q = np.log1p(r2 * eta)
    const = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - log_s
    nll = -const + (nu + 1) / 2 * float(log_q.mean())
    if order == 0:
        return nll, None, None
    half = torch.tensor([(nu + 1) / 2, nu / 2], dtype=torch.float64)
    psi = torch.special.digamma(half).tolist()
    inv_q = 1.0 / (nu + r2)
    a, b = r * inv_q, r2 * inv_q  # r/q, r²/q
    m_a, m_b = float(a.mean()), float(b.mean())
    # ∂/∂ν, ∂/∂μ, ∂/∂log σ of the mean NLL
    d_nu = -0.5 * psi[0] + 0.5 * psi[1] + 0.5 / nu + 0.5 * float(log_q.mean()) - (nu + 1) / 2 * m_b / nu
    d_mu, d_s = -(nu + 1) * m_a / s, 1.0 - (nu + 1) * m_b
    grad = np.array([-nu * nu * d_nu, d_mu, d_s])
    if order == 1:
        return nll, grad, None
    tri = torch.special.polygamma(1, half).tolist()
    a_q, b_q = a * inv_q, b * inv_q  # r/q², r²/q²
    m_aq, m_bq = float(a_q.mean()), float(b_q.mean())
    m_r3q2, m_r4q2, m_q2 = float((a_q * r2).mean()), float((b_q * r2).mean()), float((inv_q * inv_q).mean())
    h_mm = (nu + 1) * (nu * m_q2 - m_bq) / (s * s)
    h_ms = 2 * (nu + 1) * nu * m_aq / s
    h_ss = 2 * (nu + 1) * nu * m_bq
    h_num = -(m_r3q2 - m_aq) / s
    h_nus = -(m_r4q2 - m_bq)
    # ∂²/∂ν²; per value the last terms are −r²/(2qν) + r²(ν² + ν + q)/(2q²ν²)
    h_nunu = -0.25 * tri[0] + 0.25 * tri[1] - 0.5 / nu**2 - m_b / (2 * nu)
    h_nunu += ((nu * nu + nu) * m_bq + m_b) / (2 * nu * nu)
    n2 = nu * nu
    hess = np.array(
        [
            [n2 * n2 * h_nunu + 2 * n2 * nu * d_nu, -n2 * h_num, -n2 * h_nus],
            [-n2 * h_num, h_mm, h_ms],
            [-n2 * h_nus, h_ms, h_ss],
        ]
    )
    return nll, grad, hess


def student_t_mle(values) -> tuple[float, float, float]:
    """Maximum-likelihood (ν, μ, σ) of a Student-t, ν bounded to :data:`NU_BOUNDS`.

    Started from the median, the MAD and ν from the kurtosis (ν = 4 + 6/κ for excess kurtosis
    κ > 0), solved by a damped Newton method with the analytic Hessian in
    (1/ν, μ, log σ), projected on the bounds of ν: a few steps, each a few passes over the values in
    numpy (single-threaded: no BLAS or OpenMP thread start-up per step on a busy machine). More
    than 4 × :data:`COARSE_FIT` values are first fitted on an even subsample of about that many,
    then finished by one Newton step on all of them (from there its error is about the square of
    the subsample's, far below the standard error).

    Args:
        values: 1-D float64 numpy array of finite values.

    Returns:
        ``(ν, μ, σ)``.
    """
    coarse = values[:: values.size // COARSE_FIT] if values.size > 4 * COARSE_FIT else values
    # standardised by the (sub)sample's median and MAD: only the conditioning, the maximum is the same
    center = float(np.median(coarse))
    mad = float(np.median(np.abs(coarse - center))) * 1.4826
    scale = mad if mad > 0 else max(float(coarse.std()), 1e-30)
    z = (coarse - center) / scale
    kurt = float(((z - z.mean()) ** 4).mean() / max(z.var() ** 2, 1e-300)) - 3.0
    nu0 = float(np.clip(4 + 6 / kurt if kurt > 0.05 else 100.0, 1.0, 500.0))
    theta = _t_newton(z, np.array([1 / nu0, 0.0, 0.0]), steps=100)
    if coarse is not values:
        theta = _t_newton((values - center) / scale, theta, steps=1)
    eta, mu, log_s = theta
    return 1 / eta, center + scale * mu, scale * math.exp(log_s)


#: see :func:`student_t_mle`
COARSE_FIT = 1 << 15


def _t_newton(z, theta, steps: int):
    """Up to ``steps`` damped, bound-projected Newton steps on the mean NLL of :func:`_t_terms`."""
    lo, hi = 1 / NU_BOUNDS[1], 1 / NU_BOUNDS[0]
    f, g, h = _t_terms(theta, z, 2)
    for step_no in range(steps):
        # 1/ν at a bound it pushes against stays there: Newton on (μ, log σ) alone
        pinned = (theta[0] <= lo and g[0] > 0) or (theta[0] >= hi and g[0] < 0)
        free = np.array([not pinned, True, True])
        hf, gf = h[np.ix_(free, free)], g[free]
        damping, chol = 0.0, None
        for _ in range(80):  # Levenberg: add to the diagonal until the Hessian is positive definite
            try:
                chol = np.linalg.cholesky(hf + damping * np.eye(len(gf)))
                break
            except np.linalg.LinAlgError:
                damping = max(4 * damping, 1e-8 * max(1.0, float(np.abs(np.diag(hf)).max())))
        if chol is None:  # pragma: no cover - no finite damping made it positive definite
            break
        step = np.zeros(3)
        step[free] = -np.linalg.solve(chol.T, np.linalg.solve(chol, gf))
        decrement = -float(g @ step)  # twice the decrease a Newton step promises
        if decrement < 1e-13:
            break
        t, accepted = 1.0, False
        for _ in range(60):  # backtracking (Armijo) line search, inside the bounds
            new = theta + t * step
            new[0] = min(max(new[0], lo), hi)
            new[2] = min(max(new[2], -30.0), 30.0)
            f_new = _t_terms(new, z, 0)[0]
            if f_new <= f - 1e-4 * t * decrement:
                accepted = True
                break
            t /= 2
        if not accepted:
            break
        theta = new
        if step_no + 1 < steps:
            f, g, h = _t_terms(theta, z, 2)
    return theta
