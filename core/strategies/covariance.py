"""Covariance-aware sampling (Trockman, Willmott & Kolter, ICLR 2023; METHODS.md §5).

Matrices: a matrix-normal draw W̃ = μ + A Z Bᵀ, Z i.i.d. N(0, 1), whose row covariance AAᵀ and
column covariance BBᵀ are estimated from the source W (out × in, centred by its mean μ):
U = (W−μ)(W−μ)ᵀ / in and V = (W−μ)ᵀ(W−μ) / out, V normalised to a mean diagonal of 1 so the
entry variances match the source's. Each is shrunk toward its diagonal (``shrinkage``) and
carried to the target size through the dimension maps: Ũ = U[i, i'] for the target's source
indices, so a kept neuron keeps its covariances and a duplicated one gets a duplicated row (the
draw is made for the distinct source neurons and gathered through the maps: copies are equal).
An axis longer than ``max_dim`` (a vocabulary, say) uses its diagonal only.

Estimated from what the target keeps (issue 17): only the kept rows' kept columns X of W are read
(the bytes ``select`` reads), so the diagonals are each kept row's variance over the kept columns and
each kept column's over the kept rows — the entries the target has; with every row and column kept
(same size, growth) that is all of W. The correlations between rows are estimated on at most
``samples`` spread kept columns, those between columns on at most ``samples`` spread kept rows (all
of them when there are no more: then U and V are exactly the above). Nothing n × n is formed or
factorised: with the kept positions' centred values X (rows × sampled columns, each row scaled so
its squared norm is (1−λ)·its variance) and d its remaining variance λ·Uᵢᵢ, A = [X, diag(√d)]
gives AAᵀ = (1−λ)Û + λ·diag(U) exactly, and likewise B. W̃ = A Z Bᵀ with Z of shape
(samples + rows) × (samples + columns) is then an exact draw of that matrix normal, in row blocks
written into one preallocated float32 output (on ``device``): its cost is 2·rows·columns·(k + k′)
multiply-adds instead of the rows³ and columns³ of covariance products and Cholesky factors
(a llama-shaped 1 GB shrink spent 80% of its time there). On the Llama-2-7B shape
(``benchmarks/bench_7b.py``, 2 CPU cores) reading every source value for the variances made it 3.7×
``select``'s time; reading the kept block only, 2.5–2.8× at 512 samples: what is left is the draw, the
products with the 2 × ``samples`` sampled columns and one normal per output value.

Two things make the draw cheaper (issue 17). The product runs in bfloat16 where that is several
times faster (``products="auto"``: a CPU with AMX or AVX-512 BF16, a GPU with bf16 tensor cores; see
:func:`_draw`), each value then within ~2⁻⁹ of its low-rank part, the precision of a bf16
checkpoint. The normals (rows·columns plus the factors' noise: 1.8–2.2 per output value) are
drawn in four fixed parts on two threads (:func:`core.strategies._common.fill_normal`; torch's CPU
normal generator is single-threaded). On the Llama-2-7B shape at 1024 samples: 3.3× ``select``
before, 2.0–2.4× after (25–28 s against select's 10–13 s, ``bench_7b.py``); the normals are now
the largest cost of their own (7.1–7.5 s of CPU of ~31–39 s in all threads). A transfer reads the
next tensor's kept block while this one is drawn (:meth:`Covariance.reads`,
:class:`core.sources.prefetch.Prefetcher`): on a 2-core Zen 5 VM (bf16 products), cold, output to
/dev/shm, 13.9–14.4 s against 16.5–19.5 s without (``GRAFT_PREFETCH=0``), 1.7× ``select``.
Without fast bf16 products the draw is float32. On an AMD CPU with AVX-512 its products then go
through oneDNN (:class:`core.devices.RightProduct`; MKL, torch's BLAS, runs AVX2 kernels there): on
that Zen 5 with ``--param products=float32``, 2.03× ``select`` against 2.59× through MKL (medians of
two interleaved rounds of ``bench_7b.py``: 22.2 s and 28.2 s, select 10.9 s). The MKL figure is what
a CPU with AVX2 alone (and no bf16) can expect at these 2 cores: there the two libraries run alike.

The default of 1024 samples is chosen by the validation loss, not the speed: on the demo (MiniLM-L6
→ 4 layers / 256 / 8 heads / 1024, ``benchmarks/bench_strategies.py``) 512 samples took 80 steps to
reach the baseline's final loss (3.8×), final 4.53, and every row and column (what 1024 is there:
no kept axis is longer) 40 steps (7.5×), final 4.42. The sampled covariances differ from the full
ones by 33–44% (Frobenius) at 512 and 17–23% at 1024. ``--param samples=512`` (or 256) trades the
estimate for speed.

Those figures move with the draw itself. When the normals came to be filled in parts (above), the
demo's MLP matrices got another draw from the same distribution (their factor noise is over 1M
values; every other tensor stayed within 4e-7). The same benchmark then took 80 steps (3.8×),
final 4.54, against 40 steps before — with float32 and bf16 products alike (80 and 80 steps, final
4.540 and 4.541). The masked-LM head's calibrated scale moved from 0.5 to 0.3 with it. Seeds 1 and
2 (``--seed``: other draws and other batches) gave 50 steps (6.0×, head scale 0.5) and 120 steps
(2.5×, head scale 0.2): on this benchmark covariance is 2.5–7.5× the baseline, and the head's
calibrated scale moves with it. One draw on one seed does not rank the strategies.

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

from core.devices import PRODUCT_PRECISIONS, RightProduct, product_dtype
from core.errors import StrategyError
from core.params import param
from core.strategies._common import LOOKUP_HELP, LOOKUPS, device_generator, fill_normal, is_lookup
from core.strategies.base import ValueStrategy, gather_reads, register
from core.strategies.mean_field import RESCALES, fan_in_factor


@dataclass(frozen=True)
class CovarianceParams:
    lookups: str = param("select", help=LOOKUP_HELP, choices=LOOKUPS)
    shrinkage: float = param(
        0.1, help="shrink each covariance toward its diagonal: (1−λ)Σ + λ·diag(Σ)", min=0.0, max=1.0
    )
    jitter: float = param(
        1e-6,
        help="added to the diagonal (relative to its mean): keeps the conv taps' Cholesky defined, and gives "
        "every kept matrix row this much variance of its own",
        min=0.0,
        max=1.0,
    )
    max_dim: int = param(
        4096, help="axes longer than this use a diagonal covariance (their correlations are not kept)", min=1, max=65536
    )
    samples: int = param(
        1024,
        help="the correlations between rows are estimated on at most this many spread kept columns, those "
        "between columns on at most this many spread kept rows (the variances use every kept value; the draw "
        "costs about rows·columns·2·samples multiply-adds)",
        min=16,
        max=65536,
    )
    rescale: str = param(
        "none", help="fan-in rescaling N→Ñ as in mean_field (none keeps the source's entry variance)", choices=RESCALES
    )
    products: str = param(
        "auto",
        help="dtype of the draw's big product: bfloat16 (factors rounded to bf16, float32 accumulation: each value "
        "within ~2⁻⁹ of its low-rank part, 4–6× faster with AMX or AVX-512 BF16), float32, or auto (bfloat16 on a CPU with AMX or AVX-512 BF16 "
        "or a GPU with bf16 tensor cores, else float32)",
        choices=PRODUCT_PRECISIONS,
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


#: bytes of float32 source rows per block of the streamed pass, and of float32 noise per block of the draw.
BLOCK_BYTES = 16 << 20


def _spread(n: int, k: int, gen):
    """``k`` sorted positions of ``range(n)``, one at a seeded offset in each of k equal strata (all when k ≥ n)."""
    import torch

    if k >= n:
        return torch.arange(n)
    lo = torch.arange(k) * n // k
    hi = torch.arange(1, k + 1) * n // k
    return lo + (torch.rand(k, generator=gen, dtype=torch.float64) * (hi - lo)).long()


def _distinct(index, n: int):
    """The distinct source positions an axis's target positions read, and how to gather them back.

    Returns:
        ``(positions, inverse)``: ``positions`` in target order when there are no repeats
        (``inverse`` None), else sorted and unique with ``positions[inverse]`` = ``index``.
    """
    import torch

    if index is None:
        return torch.arange(n), None
    if torch.unique(index).numel() == index.numel():
        return index, None
    positions, inverse = torch.unique(index, return_inverse=True)
    return positions, inverse


def _kept(ctx, live):
    """:func:`_distinct` of the matrix's two axes (``live``: their positions in the source shape)."""
    return tuple(_distinct(ctx.index(axis), ctx.source_shape[axis]) for axis in live)


class _Kept:
    """The statistics of the kept block X = W[kept rows][:, kept columns] (float32, kr × kc) that
    the draw needs: its mean, each kept row's and column's sums, and the two correlation samples.

    ``rows_at_cols``: every kept row at ``cols`` (spread positions among the kept columns);
    ``cols_at_rows``: ``rows`` (spread positions among the kept rows) at every kept column; either
    is None for an axis drawn with a diagonal covariance. The sums go a block of rows at a time
    through one reused float32 buffer of squares, as matrix-vector products (BLAS: a column sum by
    torch's reduction is a strided pass), accumulated in float64.
    """

    def __init__(self, x, cols, rows):
        import torch

        n_rows, n_cols = x.shape
        f64 = torch.float64
        self.row_sum, self.row_sq = torch.zeros(n_rows, dtype=f64), torch.zeros(n_rows, dtype=f64)
        self.col_sum, self.col_sq = torch.zeros(n_cols, dtype=f64), torch.zeros(n_cols, dtype=f64)
        block = min(n_rows, max(1, BLOCK_BYTES // (4 * max(n_cols, 1))))
        squares = torch.empty(block, n_cols)
        ones_cols, ones_rows = torch.ones(n_cols), torch.ones(block)
        for lo in range(0, n_rows, block):
            hi = min(n_rows, lo + block)
            xb, sq = x[lo:hi], squares[: hi - lo]
            torch.mul(xb, xb, out=sq)
            self.row_sum[lo:hi], self.row_sq[lo:hi] = torch.mv(xb, ones_cols), torch.mv(sq, ones_cols)
            self.col_sum += torch.mv(xb.T, ones_rows[: hi - lo])
            self.col_sq += torch.mv(sq.T, ones_rows[: hi - lo])
        self.mean = float(self.row_sum.sum()) / max(n_rows * n_cols, 1)
        self.rows_at_cols = None if cols is None else x.index_select(1, cols)
        self.cols_at_rows = None if rows is None else x.index_select(0, rows)

    def variances(self, sums, squares, count: int):
        """Σ(x − μ)² / count per row or column, from the sums (float64)."""
        mu = self.mean
        return ((squares - 2 * mu * sums + count * mu * mu) / count).clamp_min(0)


def _sample_factor(sample, variance, shrinkage: float, jitter: float):
    """``(X, d)`` with XXᵀ + diag(d) the shrunk covariance of the rows of ``sample`` (centred, float32).

    Each row of X is the sample row scaled so its squared norm is (1 − λ)·its variance, and d holds
    the rest, λ·variance (the whole variance for a row whose sample is all zero): the diagonal is the
    full-data variance whatever the sample, the correlations the sample's.

    Args:
        sample: (n, k) centred values of the n positions at k sampled positions of the other axis.
        variance: (n,) float64, each position's variance over all of the other axis.
    """
    import torch

    norms = torch.linalg.vector_norm(sample, dim=1).double() ** 2
    target = (1 - shrinkage) * variance
    scale = torch.where(norms > 0, (target / norms.clamp_min(1e-300)).sqrt(), torch.zeros((), dtype=torch.float64))
    x = sample * scale.to(torch.float32)[:, None]
    rest = torch.where(norms > 0, variance - target, variance)
    rest = rest + jitter * float(variance.mean())
    return x, rest.clamp_min(0).sqrt()


def _draw(p, dr, q, dc, mean: float, gen, device, products=None):
    """μ + A Z Bᵀ, float32 (rows × columns), for A = [P, diag(dr)], B = [Q, diag(dc)], Z i.i.d. N(0, 1).

    With Z = [[Z11, Z12], [Z21, Z22]] split like A's and B's columns,
    A Z Bᵀ = dr ⊙ Z22 ⊙ dc + [dr ⊙ Z21, P] [Qᵀ; Z11 Qᵀ + Z12 ⊙ dc]: the right factor (with a row of μ
    under it, and a column of ones on the left, to add the mean) is formed once; the rows are then
    drawn in blocks straight into the one output — Z22 into it, Z21 into the left factor — and
    finished by one product each. The draws come in a fixed order: the same generator gives the
    same values on any machine of that device. P or Q may be None (a diagonal covariance).

    ``products`` (default float32) is the dtype of the low-rank product: with bfloat16 both
    factors are rounded to it (the mean row is left out and added in float32) and the product,
    accumulated in float32 by the BLAS, is added to the float32 block — each drawn value then differs
    from the float32 product by about 2⁻⁹ of the low-rank part, the precision of a bf16 checkpoint,
    for a product 4–6× faster on a CPU with AMX or AVX-512 BF16 (see :func:`core.devices.bf16_products_fast`).
    """
    import torch

    m, n = dr.numel(), dc.numel()
    kq = 0 if q is None else q.shape[1]
    kp = 0 if p is None else p.shape[1]
    dr, dc = dr.to(device, torch.float32), dc.to(device, torch.float32)
    low = products is not None and products != torch.float32
    right = torch.empty((kq + kp + 1, n), device=device)
    if q is not None:
        right[:kq] = q.T
    if p is not None:
        z = fill_normal(torch.empty((kp, kq + n), device=device), gen)
        torch.mul(z[:, kq:], dc, out=right[kq:-1])
        if q is not None and low:
            right[kq:-1].add_(z[:, :kq].to(products) @ right[:kq].to(products))
        elif q is not None:
            RightProduct(right[:kq], device).add_to(right[kq:-1], z[:, :kq])
        del z
    right[-1] = mean
    # float32: the mean rides in the product (a row of μ, a column of ones); bf16: the factors
    # without them, the left one made in bf16 (no float32 copy), the mean added in float32
    left = torch.empty((m, kq + kp + (0 if low else 1)), device=device, dtype=products if low else torch.float32)
    if p is not None:
        left[:, kq : kq + kp] = p
    if low:
        right = right[:-1].to(products)
    else:
        left[:, -1] = 1.0
        product = RightProduct(right, device)
    out = torch.empty((m, n), device=device)
    rows = min(m, max(1, BLOCK_BYTES // (4 * max(n, kq))))
    noise = torch.empty((rows, kq), device=device)  # reused: a fresh buffer per block costs page faults
    for lo in range(0, m, rows):
        hi = min(m, lo + rows)
        block, scale = out[lo:hi], dr[lo:hi, None]
        fill_normal(block, gen)
        block.mul_(dc).mul_(scale)
        if q is not None:
            z21 = fill_normal(noise[: hi - lo], gen)
            torch.mul(z21, scale, out=left[lo:hi, :kq])  # rounded to bf16 here when low
        if not low:
            product.add_to(block, left[lo:hi])
            continue
        if kq + kp:
            block.add_(left[lo:hi] @ right)
        block.add_(mean)
    return out


@register
class Covariance(ValueStrategy):
    name = "covariance"
    summary = "matrix-normal sampling with the source's row and column covariances (spatial taps for convs)"
    Params = CovarianceParams
    default_index = "cyclic"
    can_grow = True

    @staticmethod
    def _kind(params, ctx) -> tuple[str, list[int]]:
        """How :meth:`fill` makes this tensor (``"gather"``, ``"conv"`` or ``"matrix"``), and for a
        matrix the positions of its two axes longer than 1 in the source shape."""
        if params.lookups == "select" and is_lookup(ctx.tensor):
            return "gather", []
        src_shape, shape = ctx.source_shape, ctx.shape
        if len(src_shape) == 4:
            return "conv", []
        live = [a for a, n in enumerate(src_shape) if n != 1]
        if len(live) <= 1:
            return "gather", []
        if len(live) > 2 or any(shape[a] != 1 for a in range(len(shape)) if a not in live):
            raise StrategyError(
                f"covariance sampling handles matrices and 4-D conv kernels, not "
                f"{ctx.tensor.name} of shape {tuple(src_shape)}; assign it another strategy"
            )
        return "matrix", live

    def reads(self, params, ctx):
        try:
            kind, live = self._kind(params, ctx)
        except StrategyError:  # fill says so
            return []
        if kind == "gather":
            return gather_reads(ctx)
        if kind == "matrix" and len(ctx.source_shape) == 2:
            (keep_rows, _), (keep_cols, _) = _kept(ctx, live)
            return [(ctx.tensor.source_name, keep_rows.numpy(), keep_cols.numpy())]
        return []

    def fill(self, params, ctx):
        kind, live = self._kind(params, ctx)
        if kind == "gather":
            return ctx.gather()
        if kind == "conv":
            out = self._conv(params, ctx)
        else:
            out = self._matrix(params, ctx, live).reshape(ctx.shape)
        factor = fan_in_factor(params.rescale, ctx.fan_in_ratio())
        return out.mul_(factor) if factor != 1.0 else out

    def _matrix(self, params, ctx, live):
        shape = (ctx.source_shape[live[0]], ctx.source_shape[live[1]])
        name = ctx.tensor.source_name
        index = (ctx.index(live[0]), ctx.index(live[1]))
        full = [
            not (n > params.max_dim or (idx is not None and idx.numel() > params.max_dim))
            for n, idx in zip(shape, index)
        ]
        (keep_rows, inv_rows), (keep_cols, inv_cols) = _kept(ctx, live)
        if len(ctx.source_shape) == 2:  # only the kept rows' kept columns are read, as select reads them
            x = ctx.source.read_gather(name, keep_rows.numpy(), keep_cols.numpy()).float()
        else:  # singleton axes around the matrix: a small table, read whole
            whole = ctx.source.read(name).reshape(shape).float()
            x = whole.index_select(0, keep_rows).index_select(1, keep_cols)
        kr, kc = x.shape
        cols = _spread(kc, params.samples, ctx.generator("sample-cols")) if full[0] else None
        rows = _spread(kr, params.samples, ctx.generator("sample-rows")) if full[1] else None
        data = _Kept(x, cols, rows)
        del x
        mu = data.mean
        row_var = data.variances(data.row_sum, data.row_sq, kc)
        col_var = data.variances(data.col_sum, data.col_sq, kr)
        lam = params.shrinkage
        p = q = None
        if full[0]:
            p, dr = _sample_factor(data.rows_at_cols - mu, row_var, lam, params.jitter)
        else:
            dr = row_var.sqrt()
        if full[1]:
            q, dc = _sample_factor((data.cols_at_rows - mu).T.contiguous(), col_var, lam, params.jitter)
        else:
            dc = col_var.sqrt()
        del data
        # normalise B so the mean column variance (over the target's columns) is 1: A carries the scale
        col_mean = col_var.mean() if inv_cols is None else col_var[inv_cols].mean()
        if col_mean > 0:
            norm = float(col_mean.sqrt())
            dc = dc / norm
            q = None if q is None else q / norm
        out = _draw(
            p, dr, q, dc, float(mu), device_generator(ctx, "z"), ctx.device, product_dtype(params.products, ctx.device)
        )
        if inv_rows is not None:
            out = out.index_select(0, inv_rows.to(out.device))
        if inv_cols is not None:
            out = out.index_select(1, inv_cols.to(out.device))
        return out

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
