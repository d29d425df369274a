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

**Non-finite entries.** One NaN or ±Inf entry leaves no singular value defined, so a matrix that
has any gets no spectrum: empty singular values, no fit, NaN stable rank, and ``nonfinite`` says
how many entries were NaN/Inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

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

__all__ = [
    "ALPHA_METHODS",
    "DEFAULT_ALPHA_METHOD",
    "DEFAULT_MAX_SIDE",
    "SPECTRAL_NORM_RTOL",
    "PowerLawFit",
    "Spectrum",
    "gram_eigenvalues",
    "powerlaw_fit",
    "singular_values",
    "spectral_norm",
    "spectrum",
    "stable_rank",
]


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Spectral summary of one matrix.

    Attributes:
        singular_values: descending, float64, of the decomposed matrix (empty with NaN/Inf).
        fit: the ESD power-law fit (eigenvalues λ = σ²), or None when too few eigenvalues.
        stable_rank: ‖W‖_F² / ‖W‖_2² of the whole matrix.
        shape: the matrix's shape; used_shape: the shape decomposed (= shape unless both sides
            exceeded the cap; (0, 0) when nothing could be).
        nonfinite: NaN/±Inf entries of the matrix (then nothing spectral is computed).
    """

    singular_values: np.ndarray
    fit: PowerLawFit | None
    stable_rank: float
    shape: tuple[int, int]
    used_shape: tuple[int, int]
    nonfinite: int = 0

    @property
    def alpha(self) -> float:
        return self.fit.alpha if self.fit else math.nan

    @property
    def exact(self) -> bool:
        """True when the whole matrix was decomposed."""
        return self.used_shape == self.shape and not self.nonfinite

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
        top = float(eigh_tridiagonal(np.array(alphas), np.array(betas), eigvals_only=True)[-1]) if j else alphas[0]
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


def spectrum(
    weight,
    *,
    max_side: int | None = DEFAULT_MAX_SIDE,
    alpha_method: str = DEFAULT_ALPHA_METHOD,
    min_tail: int | None = None,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> Spectrum:
    """Singular values, ESD power-law fit and stable rank of a weight matrix.

    Args:
        weight: (out, in) tensor or array; conv kernels flatten to (out, rest).
        max_side: decompose the whole matrix unless both sides exceed this; then a fixed-seed
            subset of this many indices of the smaller side (None: always the whole matrix).
        alpha_method: ``"weightwatcher"`` (default) or ``"csn"`` (see :mod:`core.stats.powerlaw`).
        min_tail: fewest eigenvalues in the tail, for ``"csn"`` (default 10).
        seed: subset seed.
        device: where the products run.
    """
    if alpha_method not in ALPHA_METHODS:
        raise StatsError(f"unknown alpha method {alpha_method!r}; use one of {', '.join(ALPHA_METHODS)}")
    w = as_matrix(weight).to(device)
    shape = (int(w.shape[0]), int(w.shape[1]))
    nonfinite = count_nonfinite(w)
    if nonfinite:
        return Spectrum(np.zeros(0), None, math.nan, shape, (0, 0), nonfinite)
    sub = _cap(w, max_side, seed)
    eig = gram_eigenvalues(sub)
    fro2 = float(row_sum_squares(w).sum())
    top2 = float(eig[0]) if sub is w else spectral_norm(w, seed=seed) ** 2
    return Spectrum(
        singular_values=np.sqrt(eig),
        fit=powerlaw_fit(eig, method=alpha_method, min_tail=min_tail),
        stable_rank=fro2 / top2 if top2 > 0 else math.nan,
        shape=shape,
        used_shape=(int(sub.shape[0]), int(sub.shape[1])),
    )
