"""Covariance-aware sampling (Trockman, Willmott & Kolter, ICLR 2023; METHODS.md §5).

Matrices: a matrix-normal draw W̃ = μ + A Z Bᵀ, Z i.i.d. N(0, 1), whose row covariance AAᵀ and
column covariance BBᵀ are estimated from the source W (out × in, centred by its mean μ):
U = (W−μ)(W−μ)ᵀ / in and V = (W−μ)ᵀ(W−μ) / out, V normalised to a mean diagonal of 1 so the
entry variances match the source's. Each is shrunk toward its diagonal (``shrinkage``) and
carried to the target size through the dimension maps: Ũ = U[i, i'] for the target's source
indices, so a kept neuron keeps its covariances and a duplicated one gets a duplicated row
(correlated with its original by 1 − shrinkage; ``jitter`` keeps the Cholesky factor defined).
An axis longer than ``max_dim`` (a vocabulary, say) uses its diagonal only.

Conv kernels (4-D, e.g. the ViT patch embedding, out × in × kh × kw): every filter is drawn from
N(μ_taps, Σ_taps), the mean and covariance of the kh·kw spatial taps over all source filters.
A depthwise kernel (C × 1 × k × k, ConvNeXt's 7×7 ``dwconv``) is the case Trockman et al. study:
its C filters are the samples, Σ_taps the k²×k² covariance of their taps (shrunk toward its
diagonal by ``shrinkage``), and each of the target's C̃ channels gets a fresh filter from
N(μ_taps, Σ_taps) — no channel keeps its source filter, whatever the channel map.

Vectors (biases, norms, class tokens) carry no covariance: they are copied through the maps.
Lookup tables (token/position/type embeddings, vocab-axis tensors) are selected through the maps
too unless ``lookups="sample"``: each row stands for one token (see ``core.strategies.distribution``).
Singleton axes (ViT's (1, patches, hidden) position table) are squeezed first.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import StrategyError
from core.params import param
from core.strategies._common import LOOKUP_HELP, LOOKUPS, is_lookup
from core.strategies.base import ValueStrategy, register
from core.strategies.mean_field import RESCALES, fan_in_factor


@dataclass(frozen=True)
class CovarianceParams:
    lookups: str = param("select", help=LOOKUP_HELP, choices=LOOKUPS)
    shrinkage: float = param(
        0.1, help="shrink each covariance toward its diagonal: (1−λ)Σ + λ·diag(Σ)", min=0.0, max=1.0
    )
    jitter: float = param(
        1e-6, help="added to the covariance diagonal (relative to its mean) so the Cholesky works", min=0.0, max=1.0
    )
    max_dim: int = param(
        4096, help="axes longer than this use a diagonal covariance (memory grows as n²)", min=1, max=65536
    )
    rescale: str = param(
        "none", help="fan-in rescaling N→Ñ as in mean_field (none keeps the source's entry variance)", choices=RESCALES
    )


def _shrunk(cov, shrinkage: float):
    import torch

    return (1 - shrinkage) * cov + shrinkage * torch.diag(torch.diagonal(cov))


def _factor(cov, jitter: float):
    """Lower Cholesky factor of ``cov`` + jitter·mean(diag)·I (float64), retried with more jitter."""
    import torch

    n = cov.shape[0]
    scale = float(torch.diagonal(cov).mean()) or 1.0
    eye = torch.eye(n, dtype=cov.dtype)
    eps = max(jitter, 1e-12)
    for _ in range(8):
        factor, info = torch.linalg.cholesky_ex(cov + eps * scale * eye)
        if int(info) == 0:
            return factor
        eps *= 10
    raise StrategyError("the covariance is not positive definite even with jitter; raise the shrinkage")


def _axis_factor(x, axis: int, index, params):
    """Factor of the covariance of ``x`` (2-D, centred, float32) along ``axis``, indexed to the target.

    Only the target's positions are multiplied out: ``x[index] @ x[index]ᵀ`` is ``U[index][:, index]``
    without the full n × n product (a halved axis costs a quarter), accumulated in float32 — the
    Cholesky and shrinkage run in float64 on the small result.

    Returns ``("full", L)`` with L lower-triangular or ``("diag", d)`` with d the std per position
    (both float64).
    """
    import torch

    other = x.shape[1 - axis]
    n = x.shape[axis]
    if n > params.max_dim or (index is not None and index.numel() > params.max_dim):
        var = torch.linalg.vector_norm(x, dim=1 - axis).double() ** 2 / other
        if index is not None:
            var = var[index]
        return "diag", var.clamp_min(0).sqrt()
    sub = x if index is None else x.index_select(axis, index)
    cov = (sub @ sub.T if axis == 0 else sub.T @ sub).double() / other
    # shrink as the full matrix would be, then indexed: copies of one source position keep its variance
    same = torch.eye(cov.shape[0], dtype=torch.bool) if index is None else index[:, None] == index[None, :]
    lam = params.shrinkage
    cov = (1 - lam) * cov + lam * torch.where(same, torch.diagonal(cov)[:, None], torch.zeros((), dtype=cov.dtype))
    return "full", _factor(cov, params.jitter)


#: bytes of float32 temporaries per block of the draw (the target itself is the one full-size buffer).
DRAW_BLOCK_BYTES = 32 << 20


def _draw(kind_a, a, kind_b, b, m: int, n: int, gen):
    """A Z Bᵀ for Z (m, n) i.i.d. N(0, 1), float32, in one target-size buffer.

    Z Bᵀ is formed row block by row block in place; A (lower-triangular) is then applied from the last
    row block up, each block reading only rows at or above it, so no second m × n intermediate exists.
    """
    import torch

    out = torch.randn((m, n), generator=gen, dtype=torch.float32)
    rows = max(1, DRAW_BLOCK_BYTES // (4 * max(n, m, 1)))
    if kind_b == "diag":
        out *= b.to(torch.float32)[None, :]
    else:
        bt = b.T.to(torch.float32)
        for start in range(0, m, rows):
            out[start : start + rows] = out[start : start + rows] @ bt
    if kind_a == "diag":
        out *= a.to(torch.float32)[:, None]
    else:
        a = a.to(torch.float32)
        for end in range(m, 0, -rows):
            start = max(0, end - rows)
            out[start:end] = a[start:end, :end] @ out[:end]
    return out


@register
class Covariance(ValueStrategy):
    name = "covariance"
    summary = "matrix-normal sampling with the source's row and column covariances (spatial taps for convs)"
    Params = CovarianceParams
    default_index = "cyclic"
    can_grow = True

    def fill(self, params, ctx):
        if params.lookups == "select" and is_lookup(ctx.tensor):
            return ctx.gather()
        src_shape, shape = ctx.source_shape, ctx.shape
        if len(src_shape) == 4:
            out = self._conv(params, ctx)
        else:
            live = [a for a, n in enumerate(src_shape) if n != 1]
            if len(live) <= 1:
                return ctx.gather()
            if len(live) > 2 or any(shape[a] != 1 for a in range(len(shape)) if a not in live):
                raise StrategyError(
                    f"covariance sampling handles matrices and 4-D conv kernels, not "
                    f"{ctx.tensor.name} of shape {tuple(src_shape)}; assign it another strategy"
                )
            out = self._matrix(params, ctx, live).reshape(shape)
        factor = fan_in_factor(params.rescale, ctx.fan_in_ratio())
        return out * factor if factor != 1.0 else out

    def _matrix(self, params, ctx, live):
        import torch

        w = ctx.read().reshape(ctx.source_shape[live[0]], ctx.source_shape[live[1]])
        mu = w.mean(dtype=torch.float64)
        x = w.to(torch.float32) - mu.to(torch.float32)  # the one source-size copy
        del w
        rows, cols = ctx.index(live[0]), ctx.index(live[1])
        kind_a, a = _axis_factor(x, 0, rows, params)
        kind_b, b = _axis_factor(x, 1, cols, params)
        del x
        # normalise B so the mean column variance is 1 and A carries the entry scale
        col_mean = (b * b).mean() if kind_b == "diag" else (b * b).sum(1).mean()
        if col_mean > 0:
            b = b / col_mean.sqrt()
        m, n = ctx.shape[live[0]], ctx.shape[live[1]]
        return _draw(kind_a, a, kind_b, b, m, n, ctx.generator("z")).add_(float(mu))

    def _conv(self, params, ctx):
        import torch

        w = ctx.read().to(torch.float64)
        o, i, kh, kw = w.shape
        to, ti, tkh, tkw = ctx.shape
        if (tkh, tkw) != (kh, kw):
            raise StrategyError(
                f"{ctx.tensor.name}: the kernel size changes ({kh}×{kw} → {tkh}×{tkw}); "
                "covariance sampling keeps the spatial taps"
            )
        taps = w.reshape(o * i, kh * kw)
        mu = taps.mean(0)
        x = taps - mu
        cov = _shrunk(x.T @ x / max(x.shape[0] - 1, 1), params.shrinkage)
        factor = _factor(cov, params.jitter)
        z = torch.randn((to * ti, kh * kw), generator=ctx.generator("z"), dtype=torch.float64)
        return (mu + z @ factor.T).reshape(to, ti, kh, kw).to(torch.float32)
