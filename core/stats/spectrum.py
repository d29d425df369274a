"""Singular values, the power-law exponent α of the empirical spectral density, stable rank.

Eigenvalues λ of WᵀW (the squared singular values) come from the Gram matrix of W's smaller side,
built in float64 and diagonalised with LAPACK (numpy's ``eigvalsh`` on CPU, torch's on CUDA). On
this 2-core CPU that is far faster than ``torch.linalg.svdvals`` for LLM-sized matrices (measured
for 1024×5632: 9 s for ``svdvals``, 0.15 s for Gram + ``eigvalsh``), and float64 keeps the
relative error of λ near 1e-15·λ_max, so singular values down to ~1e-7·σ_max are exact to display
precision. ``method="svd"`` uses ``torch.linalg.svdvals`` in fp32 instead.

**α (WeightWatcher's heavy-tail measure)**: a power-law fit p(λ) ∝ λ^(−α) of the top of the
spectrum, by WeightWatcher's rule by default (``alpha_method="weightwatcher"``) or Graft's
stricter CSN variant (``"csn"``); :mod:`core.stats.powerlaw` states both rules and why the
first is the default. Martin & Mahoney read α ≈ 2–4 as well-trained layers and α > 6 as close
to random (a Marchenko–Pastur bulk has no power-law tail, so the fitted α is large); α < 2 as
very heavy-tailed.

**The whole matrix.** The spectrum of a (N, M) matrix needs only the min(N, M)² Gram of its
smaller side, whatever the larger side is, so every row and column is used: a tall 30522×384
embedding costs a 384×384 eigendecomposition. (Graft used to keep 1024 rows of taller matrices;
that changes the aspect ratio and so the spectrum: it moved α by 0.46 on the demo model's
layer-3 MLP and by up to 0.56 on synthetic tall matrices.) Only when *both* sides exceed
``max_side`` (default 2048) is a fixed-seed subset of ``max_side`` indices of the smaller side
kept, because the eigendecomposition grows as min(N, M)³ (measured here: ≈2 s at 2048, ≈30 s at
4096); α of such a subset is an estimate, and ``Spectrum.exact`` says so. Pass
``max_side=None`` for the exact spectrum of any matrix.

**Stable rank** = ‖W‖_F² / ‖W‖_2² of the *whole* matrix (between 1 and rank): the Frobenius norm
is exact; ‖W‖_2 comes from the computed spectrum when nothing was dropped (exact), otherwise from
Lanczos on the whole matrix (:func:`spectral_norm`: ~70 fp32 mat-vecs, within
:data:`SPECTRAL_NORM_RTOL` = 1e-5 relative; it replaced ARPACK's ``eigsh``, which took 70% of a
whole-model table; a randomised block power iteration, ``torch.svd_lowrank``, was tried and is
off by 0.5–2% on a Marchenko–Pastur top edge).

**Estimated spectra (the model table).** With ``exact_side`` set (the model table sets
:data:`DEFAULT_EXACT_SIDE`, 512), a matrix whose *smaller* side exceeds it is not decomposed at
all: a Gram eigendecomposition of a 4096-side matrix takes minutes on two cores, while the table
must cost about as much as reading the checkpoint (issue 17). Instead :func:`top_eigenvalues`
runs a block Krylov method (randomised range finder + block Lanczos with full
re-orthogonalisation, Musco & Musco 2015) in float32 where W lives (bf16 products of a bf16
matrix where they are fast: see :func:`top_eigenvalues`), from a fixed-seed Gaussian
start block so the table is deterministic: two blocks of :data:`KRYLOV_BLOCK` (48) columns, four
passes of a 48-column product over W. The 96 Ritz values of that subspace are lower bounds of
the top eigenvalues λ_1 ≥ … ≥ λ_96 of WᵀW; the top ones are accurate, the lower ones less so.
From them:

- σ_max = √(top Ritz value), a lower bound;
- stable rank = ‖W‖_F² (exact: float32 squares summed per row) / σ_max², so an upper bound;
- α = WeightWatcher's fit to the 96 Ritz values alone: λ_min is chosen among the top 96 only,
  where the exact fit chooses among every eigenvalue. Where the exact fit's tail is within the
  top 96 and the Ritz values are right, the two agree exactly (α and the KS distance of a
  candidate depend only on the eigenvalues above it); on a 4096-side matrix the exact tail is
  often longer, so α is a rough estimate: it tells "heavy-tailed" from "random-like", not the
  second decimal.

Measured errors (benchmarks/check_stats_estimates.py, estimation forced on the demo model's 40
matrices, whose 384-side spectra the 96 Ritz values cover a quarter of): σ_max median −0.13%,
worst −2.0%; stable rank median +0.26%, worst +4.0%; α median 7.9%, 90th percentile 29%, worst
220% (:data:`KRYLOV_ERRORS`). On synthetic 4096×11008 matrices against their exact float64
spectra: Student-t(3) entries σ_max −0.6%; i.i.d. Gaussian entries (a flat Marchenko–Pastur
edge, the worst case for any Krylov method, and what a random-initialised checkpoint is) σ_max
−9%, so stable rank +21%.

``Spectrum.method`` says which was done (``"exact"``, ``"subset"``, ``"krylov"``) and
``Spectrum.exact`` whether the numbers are the whole matrix's.

**Non-finite entries.** One NaN or ±Inf entry leaves no singular value defined, so a matrix that
has any gets no spectrum: empty singular values, no fit, NaN stable rank, and ``nonfinite`` says
how many entries were NaN/Inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.devices import onednn_matmul, onednn_products
from core.errors import StatsError
from core.stats.powerlaw import ALPHA_METHODS, DEFAULT_ALPHA_METHOD, PowerLawFit, powerlaw_fit
from core.stats.sampling import (
    DEFAULT_SEED,
    as_matrix,
    count_nonfinite,
    index_subset,
    row_sum_squares,
    to_float32,
)

#: Spectra are exact unless both sides of the matrix exceed this (see the module docstring).
DEFAULT_MAX_SIDE = 2048
#: The model table's threshold: spectra of matrices whose smaller side exceeds it are estimated
#: (:func:`top_eigenvalues`). Measured on 2 cores for (side, 4·side) matrices
#: (benchmarks/bench_stats.py --sides): the exact float64 Gram + eigvalsh costs 1.1× the CPU of
#: the rank-96 estimate at a side of 384, 1.4× at 512, 4.6× at 768 and 5.3× at 1024.
DEFAULT_EXACT_SIDE = 512
#: Rank of the estimated spectrum (Ritz values kept) and the Krylov block width: two blocks of 48,
#: four passes over W. Chosen by measurement (2 cores, 4096×11008 fp32): rank 64 in blocks of 32
#: costs ~0.42 s of CPU, 96 in 48s ~0.48 s, 128 in 64s ~0.63 s, 64 in 16s ~0.95 s (narrow
#: products are slow here); on the demo's matrices 96/48 halves 64/32's σ_max error (max 1.9%
#: vs 3.6%) and its α error (90th percentile 29% vs 53%).
DEFAULT_RANK = 96
KRYLOV_BLOCK = 48
#: The largest relative errors of the Krylov estimates measured against the exact spectra of the
#: demo model's 40 matrices, estimation forced (benchmarks/check_stats_estimates.py; median and
#: 90th percentile in :data:`core.stats.metrics.MEASURED_ERRORS`). σ_max is always low (a Ritz
#: value), so the stable rank is high. α's worst case is the position embedding, whose exact tail
#: holds 284 eigenvalues, beyond the top 96.
KRYLOV_ERRORS = {"sigma_max": 0.02, "stable_rank": 0.04, "alpha": 2.2}
#: The largest relative difference of a top-10 Ritz value with bf16 products from the float32
#: one, same bf16 matrix (benchmarks/check_stats_estimates.py --bf16): the demo's 39 matrices of
#: side > 96 in bf16, median 3.8e-4, max 7.2e-4; 4096×11008 Student-t(3) 1.0e-3, Gaussian 7.2e-5.
#: The top Ritz value may then exceed λ_max by as much (seen: 7.0e-4), so it is a lower bound only to
#: within this.
BF16_RITZ_ERROR = 2e-3

__all__ = [
    "ALPHA_METHODS",
    "DEFAULT_ALPHA_METHOD",
    "DEFAULT_EXACT_SIDE",
    "DEFAULT_MAX_SIDE",
    "DEFAULT_RANK",
    "KRYLOV_BLOCK",
    "BF16_RITZ_ERROR",
    "KRYLOV_ERRORS",
    "SPECTRAL_NORM_RTOL",
    "PowerLawFit",
    "Spectrum",
    "gram_eigenvalues",
    "powerlaw_fit",
    "singular_values",
    "spectral_norm",
    "spectrum",
    "stable_rank",
    "top_eigenvalues",
]


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Spectral summary of one matrix.

    Attributes:
        singular_values: descending, float64, of the decomposed matrix (empty with NaN/Inf).
        fit: the ESD power-law fit (eigenvalues λ = σ²), or None when too few eigenvalues.
        stable_rank: ‖W‖_F² / ‖W‖_2² of the whole matrix.
        shape: the matrix's shape; used_shape: the shape decomposed (= shape unless both sides
            exceeded the cap; (rank, larger side) for a Krylov estimate, the projection QᵀW whose
            singular values are kept; (0, 0) when nothing could be).
        nonfinite: NaN/±Inf entries of the matrix (then nothing spectral is computed).
        method: ``"exact"`` (the whole Gram), ``"subset"`` (a subset of the smaller side) or
            ``"krylov"`` (the top ``rank`` Ritz values; see the module docstring).
    """

    singular_values: np.ndarray
    fit: PowerLawFit | None
    stable_rank: float
    shape: tuple[int, int]
    used_shape: tuple[int, int]
    nonfinite: int = 0
    method: str = "exact"

    @property
    def alpha(self) -> float:
        return self.fit.alpha if self.fit else math.nan

    @property
    def exact(self) -> bool:
        """True when the whole matrix was decomposed."""
        return self.method == "exact" and self.used_shape == self.shape and not self.nonfinite

    def to_dict(self) -> dict:
        def num(x: float | None) -> float | None:
            return float(x) if x is not None and math.isfinite(x) else None

        return {
            "singular_values": self.singular_values.tolist(),
            "alpha": num(self.alpha),
            "alpha_method": self.fit.method if self.fit else None,
            "alpha_xmin": self.fit.xmin if self.fit else None,
            "alpha_ks": self.fit.ks if self.fit else None,
            "alpha_n_tail": self.fit.n_tail if self.fit else None,
            "stable_rank": num(self.stable_rank),
            "shape": list(self.shape),
            "used_shape": list(self.used_shape),
            "exact": self.exact,
            "method": self.method,
            "nonfinite": self.nonfinite,
        }


def gram_eigenvalues(w: torch.Tensor) -> np.ndarray:
    """Eigenvalues of WᵀW (= σ² of W), descending, float64, from the smaller Gram matrix."""
    x = w.double()
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    # On CPU LAPACK through numpy is ~2× faster than torch's eigvalsh for these sizes.
    eig = np.linalg.eigvalsh(gram.numpy()) if gram.device.type == "cpu" else torch.linalg.eigvalsh(gram).cpu().numpy()
    return np.clip(eig[::-1], 0.0, None)


def singular_values(
    weight,
    *,
    method: str = "gram",
    max_side: int | None = None,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Singular values of a matrix, descending (float64); empty when it has NaN/Inf entries.

    Args:
        weight: (out, in) tensor or array.
        method: ``"gram"`` (float64 Gram + eigvalsh, fast) or ``"svd"`` (fp32 ``svdvals``).
        max_side: when both sides exceed it, keep a fixed-seed subset of this many indices of
            the smaller side (None: the whole matrix).
        seed: subset seed.
        device: where the decomposition runs.
    """
    if method not in ("gram", "svd"):
        raise StatsError(f"unknown singular value method {method!r}; use 'gram' or 'svd'")
    w = as_matrix(weight)
    if count_nonfinite(w):
        return np.zeros(0)
    w = _cap(w, max_side, seed).to(device)
    if method == "gram":
        return np.sqrt(gram_eigenvalues(w))
    return torch.linalg.svdvals(to_float32(w).float()).cpu().double().numpy()


def _cap(w: torch.Tensor, max_side: int | None, seed: int) -> torch.Tensor:
    """``w``, or a fixed-seed subset of ``max_side`` indices of its smaller side when both sides exceed it."""
    if max_side is None or min(w.shape) <= max_side:
        return w
    axis = 0 if w.shape[0] <= w.shape[1] else 1
    idx = torch.from_numpy(index_subset(w.shape[axis], max_side, seed=seed)).to(w.device)
    return w.index_select(axis, idx)


#: Lanczos stops when an iteration raises the top Ritz value λ by less than this relative amount.
LANCZOS_STEP_TOL = 1e-6
#: The relative accuracy :func:`spectral_norm` promises for ‖W‖_2: the largest error measured is
#: 1.2e-6 on the demo model's matrices (benchmarks/check_stats_estimates.py) and below 1e-6 on random
#: and low-rank matrices (tests/stats/test_stats_spectral_norm.py).
SPECTRAL_NORM_RTOL = 1e-5


def _top_eigenvalue_tridiagonal(diagonal: list[float], off: list[float]) -> float:
    """The largest eigenvalue of the symmetric tridiagonal matrix (at most a few hundred wide)."""
    t = np.diag(np.asarray(diagonal, dtype=np.float64))
    if off:
        b = np.asarray(off, dtype=np.float64)
        t += np.diag(b, 1) + np.diag(b, -1)
    return float(np.linalg.eigvalsh(t)[-1])


def spectral_norm(w: torch.Tensor, *, seed: int = DEFAULT_SEED, max_iter: int = 200) -> float:
    """‖W‖_2 of the whole matrix by Lanczos on the smaller of WWᵀ / WᵀW, applied as two fp32
    mat-vecs where W lives (CPU or CUDA), with full re-orthogonalisation.

    The top Ritz value is a lower bound of λ_max = ‖W‖_2² that grows with each step; iteration
    stops when a step raises it by less than :data:`LANCZOS_STEP_TOL` (relative), which leaves
    ‖W‖_2 within :data:`SPECTRAL_NORM_RTOL` of the exact value (typically 20–40 steps, about
    70 mat-vecs: a few passes over W instead of a decomposition). Matrices with a side ≤ 64
    get the exact norm. NaN when W has NaN/Inf entries.
    """
    x = to_float32(w).float()
    if count_nonfinite(x):
        return math.nan
    n = min(x.shape)
    if n <= 64:
        return float(torch.linalg.matrix_norm(x.double(), ord=2))

    def op(v: torch.Tensor) -> torch.Tensor:
        return x @ (x.T @ v) if x.shape[0] <= x.shape[1] else x.T @ (x @ v)

    steps = min(max_iter, n)
    basis = torch.empty(steps + 1, n, dtype=x.dtype, device=x.device)
    start = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    basis[0] = (start / start.norm()).to(basis)
    alphas: list[float] = []
    betas: list[float] = []
    theta = 0.0
    for j in range(steps):
        v = op(basis[j])
        alphas.append(float(v @ basis[j]))
        for _ in range(2):  # full re-orthogonalisation, twice: fp32 Lanczos loses orthogonality fast
            v -= basis[: j + 1].T @ (basis[: j + 1] @ v)
        beta = float(v.norm())
        top = _top_eigenvalue_tridiagonal(alphas, betas) if j else alphas[0]
        if j >= 2 and top - theta <= LANCZOS_STEP_TOL * top or beta <= 1e-7 * top:
            theta = top
            break
        theta = top
        betas.append(beta)
        basis[j + 1] = v / beta
    return math.sqrt(max(theta, 0.0))


def stable_rank(weight, *, seed: int = DEFAULT_SEED, device: str | torch.device = "cpu") -> float:
    """‖W‖_F² / ‖W‖_2² of the whole matrix (NaN with NaN/Inf entries)."""
    w = as_matrix(weight).to(device)
    fro2 = float(row_sum_squares(w).sum())
    top = spectral_norm(w, seed=seed)
    return fro2 / top**2 if top > 0 else math.nan


def _orthonormal(y: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the columns of the tall ``y`` (n × k), in ``y``'s dtype.

    Cholesky QR, twice (CholeskyQR2): the k × k Gram in float64, its Cholesky factor, a
    triangular solve; the second pass restores orthogonality to working precision. Householder
    QR (``torch.linalg.qr``) right after a oneDNN product stalls on this 2-core CPU (a 4096 × 48 QR:
    2.5 ms alone, ~15 ms inside the Krylov loop; CholeskyQR2 ~1 ms). A Gram whose Cholesky fails
    (y nearly rank-deficient) falls back to Householder.
    """
    q = y
    for _ in range(2):
        q64 = q.double()
        factor, info = torch.linalg.cholesky_ex(q64.T @ q64)
        if int(info):
            return torch.linalg.qr(y).Q
        q = torch.linalg.solve_triangular(factor, q64.T, upper=False).T.to(y.dtype)
    return q.contiguous()


def top_eigenvalues(
    w: torch.Tensor,
    *,
    rank: int = DEFAULT_RANK,
    block: int = KRYLOV_BLOCK,
    seed: int = DEFAULT_SEED,
    products: torch.dtype | None = None,
) -> np.ndarray:
    """Estimates of the ``rank`` largest eigenvalues of WᵀW (σ² of W), descending, float64.

    Block Krylov (see the module docstring) on the smaller side, in float32 where ``w`` lives:
    Y = WΩ for a fixed-seed Gaussian Ω of ``block`` columns, then alternately Z_j = WᵀQ_j and
    Y = WZ_j, each new block orthogonalised (twice) against the earlier ones and QR-normalised,
    ``rank / block`` blocks in all (2·rank/block passes over W). The Ritz values are the
    eigenvalues of ZᵀZ = QᵀWWᵀQ with Z = [Z_0 … Z_d]: lower bounds of the true λ_i.

    With ``products=torch.bfloat16`` and a bf16 ``w`` (a bf16 checkpoint's matrix, used as
    stored: nothing of W is rounded), the products run in bf16: each block is orthonormalised
    in float32 and rounded to bf16 for its product with W, and the product (float32 accumulation)
    comes back rounded to bf16. The subspace is then spanned by the rounded blocks, and each Ritz
    value moves by the rounding of Z's entries, which averages over their length: within
    :data:`BF16_RITZ_ERROR` of the float32 products' (measured), far below the Krylov estimate's
    own error, for products 3–5× faster on a CPU with AMX or AVX-512 BF16. Any other combination runs in float32.

    Args:
        w: (n, m) float32 matrix (bf16/fp16 are widened unless kept for bf16 products; fp64 is
            kept), any device.
        rank: Ritz values returned (at most min(n, m)).
        block: Krylov block width.
        seed: the start block's seed.
        products: ``torch.bfloat16`` for bf16 products of a bf16 ``w``; None: float32.

    Returns:
        Shape ``(min(rank, n, m),)``.
    """
    low = products == torch.bfloat16 and w.dtype == torch.bfloat16
    x = w if low else to_float32(w)
    if x.shape[0] > x.shape[1]:
        x = x.T  # work on the smaller side: the products are the same, the basis is shorter
    n, m = x.shape
    rank = min(rank, n)
    block = max(1, min(block, rank))
    generator = torch.Generator().manual_seed(seed)
    work = torch.float32 if low else x.dtype  # the dtype of the basis and of what the products return

    # float32 on an AMD CPU with AVX-512: oneDNN's products, 2–3× torch's BLAS there, the estimate
    # 1.6× (core.devices.onednn_products)
    onednn = x.dtype == torch.float32 and x.device.type == "cpu" and min(n, m) > 0 and onednn_products(x.device)

    def times(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # a is x or x.T; the BLAS is 1.5–2.5× faster (bf16 and float32 alike, measured here) with
        # the big operand row-major on the right than transposed on the left: Aᵀb = (bᵀA)ᵀ
        b = b.to(x.dtype)
        if onednn:
            out = onednn_matmul(a, b)
        else:
            out = a @ b if a.is_contiguous() else (b.T.contiguous() @ a.T).T
        return out.to(work).contiguous()

    omega = torch.randn(m, block, generator=generator, dtype=torch.float32).to(device=x.device, dtype=work)
    y = times(x, omega)
    basis = torch.empty(n, 0, dtype=work, device=x.device)
    zs = []
    while basis.shape[1] < rank:
        for _ in range(2):  # block Gram–Schmidt, twice: float32 loses orthogonality fast
            y = y - basis @ (basis.T @ y)
        q = _orthonormal(y[:, : rank - basis.shape[1]])
        if low:
            q = q.to(x.dtype).to(work)  # the block the product sees, kept as the subspace's basis
        basis = torch.cat([basis, q], 1)
        z = times(x.T, q)
        zs.append(z)
        if basis.shape[1] < rank:
            y = times(x, z)
    z = torch.cat(zs, 1).double()
    gram = z.T @ z
    # numpy's LAPACK on CPU: torch's eigvalsh of a 96×96 matrix stalls for ~0.2 s at times here.
    ritz = np.linalg.eigvalsh(gram.numpy()) if gram.device.type == "cpu" else torch.linalg.eigvalsh(gram).cpu().numpy()
    return np.clip(ritz[::-1], 0.0, None)


def spectrum(
    weight,
    *,
    max_side: int | None = DEFAULT_MAX_SIDE,
    exact_side: int | None = None,
    rank: int = DEFAULT_RANK,
    alpha_method: str = DEFAULT_ALPHA_METHOD,
    min_tail: int | None = None,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
    fro2: float | None = None,
    nonfinite: int | None = None,
    products: torch.dtype | None = None,
) -> Spectrum:
    """Singular values, ESD power-law fit and stable rank of a weight matrix.

    Args:
        weight: (out, in) tensor or array; conv kernels flatten to (out, rest).
        max_side: decompose the whole matrix unless both sides exceed this; then a fixed-seed
            subset of this many indices of the smaller side (None: always the whole matrix).
        exact_side: when set and the smaller side exceeds it, estimate the top ``rank``
            eigenvalues instead (:func:`top_eigenvalues`; ``max_side`` is then unused). None:
            never estimate.
        rank: Ritz values of an estimate.
        alpha_method: ``"weightwatcher"`` (default) or ``"csn"`` (see :mod:`core.stats.powerlaw`).
        min_tail: fewest eigenvalues in the tail, for ``"csn"`` (default 10).
        seed: subset / start block seed.
        device: where the products run.
        fro2: ‖W‖_F² when the caller already has it (the model table sums its row norms once).
        nonfinite: the NaN/±Inf count when the caller already has it.
        products: ``torch.bfloat16``: a Krylov estimate of a bf16 matrix runs its products in
            bf16 (:func:`top_eigenvalues`); None: float32.
    """
    if alpha_method not in ALPHA_METHODS:
        raise StatsError(f"unknown alpha method {alpha_method!r}; use one of {', '.join(ALPHA_METHODS)}")
    w = as_matrix(weight).to(device)
    shape = (int(w.shape[0]), int(w.shape[1]))
    nonfinite = count_nonfinite(w) if nonfinite is None else nonfinite
    if nonfinite:
        return Spectrum(np.zeros(0), None, math.nan, shape, (0, 0), nonfinite)
    fro2 = float(row_sum_squares(w).sum()) if fro2 is None else fro2
    if exact_side is not None and min(shape) > exact_side:
        eig = top_eigenvalues(w, rank=rank, seed=seed, products=products)
        return Spectrum(
            singular_values=np.sqrt(eig),
            fit=powerlaw_fit(eig, method=alpha_method, min_tail=min_tail),
            stable_rank=fro2 / float(eig[0]) if eig[0] > 0 else math.nan,
            shape=shape,
            used_shape=(eig.size, max(shape)),
            method="krylov",
        )
    sub = _cap(w, max_side, seed)
    eig = gram_eigenvalues(sub)
    top2 = float(eig[0]) if sub is w else spectral_norm(w, seed=seed) ** 2
    return Spectrum(
        singular_values=np.sqrt(eig),
        fit=powerlaw_fit(eig, method=alpha_method, min_tail=min_tail),
        stable_rank=fro2 / top2 if top2 > 0 else math.nan,
        shape=shape,
        used_shape=(int(sub.shape[0]), int(sub.shape[1])),
        method="exact" if sub is w else "subset",
    )
