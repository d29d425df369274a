"""Error of the estimated statistics against the exact computation, on every matrix of the demo model.

The model table (core/stats/metrics.py) estimates, per tensor:

* the spectrum metrics (σ_max, stable rank, α) when the smaller side exceeds ``exact_side``
  (512): the top ``rank`` eigenvalues by block Krylov (core/stats/spectrum.py). Every demo matrix
  is ≤ 512 on its smaller side, so here estimation is *forced* (``exact_side=0``) and compared
  with the exact float64 Gram spectrum. α is also fitted to the exact top-``rank`` eigenvalues,
  which separates the two sources of its error: fitting the top only, and the Ritz values;
* std and kurtosis of tensors over 2M entries: a stratified sample of 2M, here forced with the
  fraction a 4096×11008 matrix keeps (2M / 45M = 4.4%);
* the row (column) correlation excess of matrices with over 256 rows (columns): a fixed-seed
  subset of 256, compared with all rows (columns). The demo's matrices have 384 or 1536 rows, so
  256 is a larger share than of a 4096-row matrix: a lower bound of the error there.

Measured (this script with its defaults, rank 96 in two blocks of 48, as the table; 40 matrices of
all-MiniLM-L6-v2, 2 CPU cores):

    metric                       n median rel   p90 rel   max rel   max abs  no value
    σ_max (Krylov)              40     0.0013    0.0068     0.019     0.041  0
    stable rank (Krylov)        40     0.0026     0.014     0.039       3.9  0
    α (Krylov top-k fit)        40      0.079      0.29       2.1         6  0
    α (exact top-k fit)         40          0   4.6e-16       2.1       3.3  0
    std (4.4% sample)           40     0.0048     0.025     0.043    0.0024  0
    kurtosis (4.4% sample)      40       0.16       1.1       7.4   1.6e+03  0
    row ρ² excess (256 rows)    38      0.019     0.072       6.4   0.00049  0
    col ρ² excess (256 cols)    39      0.031     0.083       2.7    0.0014  0

σ_max is always low (a Ritz value is a lower bound), so the stable rank is high. The α rows
separate the two sources of error: fitting only the top 96 eigenvalues costs nothing on 39 of
the 40 matrices (their exact tail lies within the top 96); the worst case, 2.1, is the position
embedding, whose exact tail holds 284 eigenvalues. The ρ² excesses are near 0, so their
relative errors mean little: the absolute error is ≤ 0.0014 (the suggestion threshold is 0.01).
Rank 96 covers a quarter of a 384-side spectrum but 2.3% of a 4096-side one; ``--share`` also
runs rank 8 in blocks of 4 (the same share of 384):

    metric                       n median rel   p90 rel   max rel   max abs  no value
    σ_max (Krylov)              40      0.078      0.14      0.17         2  0
    stable rank (Krylov)        40       0.18      0.35      0.46        27  0
    α (Krylov top-k fit)        40       0.45      0.65      0.81        10  0
    α (exact top-k fit)         40       0.23       1.6       1.9       5.5  0

The Ritz rows there are pessimistic (a block of 4 converges far worse than one of 48), but the
last row is the honest warning for 7B-sized matrices: with *exact* eigenvalues, fitting only the
top 2.3% of the spectrum moves α by a median 23% and up to 190%. The estimated α of a 4096-side
matrix tells a heavy tail (α < 4) from a random-like one (α > 6); it is not WeightWatcher's number.

bf16 products (``--bf16``; the table's Krylov estimate of a bf16 matrix on a CPU with AMX or AVX-512 BF16):

    bf16 products, 39 demo matrices in bf16: top-10 Ritz values vs float32 products: median 0.00038, max 0.00072; top Ritz value vs exact λ_max: -0.038 … +0.0007
    4096×11008 Student-t(3): top-10 Ritz values vs float32 products: max 0.001
    4096×11008 Gaussian: top-10 Ritz values vs float32 products: max 7.2e-05

Usage: python benchmarks/check_stats_estimates.py [--rank 128] [--block 64] [--bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.sources import open_source  # noqa: E402
from core.stats.meanfield import mean_field_stats  # noqa: E402
from core.stats.moments import moments_of_sample  # noqa: E402
from core.stats.powerlaw import powerlaw_fit  # noqa: E402
from core.stats.sampling import as_matrix, flat_sample  # noqa: E402
from core.stats.spectrum import (  # noqa: E402
    DEFAULT_RANK,
    KRYLOV_BLOCK,
    gram_eigenvalues,
    spectrum,
    top_eigenvalues,
)
from core.stats.table import select_tensors  # noqa: E402

SAMPLE_FRACTION = 2_000_000 / (4096 * 11008)


def measure(rank: int, block: int) -> dict[str, list[tuple[float, float]]]:
    """metric → (relative error, absolute error) per demo matrix."""
    source = open_source("demo")
    errors: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, estimate: float, exact: float) -> None:
        diff = abs(estimate - exact)
        errors.setdefault(name, []).append((diff / abs(exact) if exact else np.nan, diff))

    for t, _column in select_tensors(source):
        w = as_matrix(source.read(t.name)).float()
        if t.fan_in == 0:
            w = w.T
        exact = spectrum(w, max_side=None)
        est = spectrum(w, exact_side=0, rank=rank)
        if block != KRYLOV_BLOCK:  # the same as spectrum() with another block width
            eig = top_eigenvalues(w, rank=rank, block=block)
            fro2 = float((w.double() ** 2).sum())
            fit = powerlaw_fit(eig)
            est_alpha, est_sigma, est_sr = (fit.alpha if fit else np.nan), float(np.sqrt(eig[0])), fro2 / eig[0]
        else:
            est_alpha, est_sigma, est_sr = est.alpha, float(est.singular_values[0]), est.stable_rank
        add("σ_max (Krylov)", est_sigma, float(exact.singular_values[0]))
        add("stable rank (Krylov)", est_sr, exact.stable_rank)
        add("α (Krylov top-k fit)", est_alpha, exact.alpha)
        top = powerlaw_fit(exact.singular_values[:rank] ** 2)
        add("α (exact top-k fit)", top.alpha if top else np.nan, exact.alpha)
        full = moments_of_sample(flat_sample(w, None))
        sample = moments_of_sample(flat_sample(w, max(1000, int(w.numel() * SAMPLE_FRACTION))))
        add("std (4.4% sample)", sample.std, full.std)
        add("kurtosis (4.4% sample)", sample.excess_kurtosis, full.excess_kurtosis)
        if 256 < max(w.shape) <= 4096:  # all rows of the 30522-row embedding: a 30522² map, skipped
            whole = mean_field_stats(w, max_size=None)
            sub = mean_field_stats(w, max_size=256)
            if w.shape[0] > 256:
                add("row ρ² excess (256 rows)", sub.row_corr_excess, whole.row_corr_excess)
            if w.shape[1] > 256:
                add("col ρ² excess (256 cols)", sub.col_corr_excess, whole.col_corr_excess)
    return errors


def bf16_products() -> None:
    """Ritz values with bf16 products against float32 ones, on the same bf16 matrices (the demo's
    matrices with a side over 96, rounded to bf16, and synthetic 4096×11008 ones), and the top
    one against the exact λ_max of that bf16 matrix."""
    source = open_source("demo")
    diffs, over = [], []
    for t, _column in select_tensors(source):
        w = as_matrix(source.read(t.name)).bfloat16()
        if min(w.shape) <= DEFAULT_RANK:
            continue
        low, high = top_eigenvalues(w, products=torch.bfloat16), top_eigenvalues(w)
        k = min(10, low.size)
        diffs.append(float(np.max(np.abs(low[:k] / high[:k] - 1))))
        over.append(float(low[0] / gram_eigenvalues(w)[0] - 1))
    print(
        f"bf16 products, {len(diffs)} demo matrices in bf16: top-10 Ritz values vs float32 products: "
        f"median {np.median(diffs):.2g}, max {max(diffs):.2g}; top Ritz value vs exact λ_max: "
        f"{min(over):+.2g} … {max(over):+.2g}"
    )
    torch.manual_seed(0)  # the Student-t sampler draws from the global generator
    gen = torch.Generator().manual_seed(0)
    for label, w in (
        ("Student-t(3)", torch.distributions.StudentT(3.0).sample((4096, 11008))),
        ("Gaussian", torch.randn(4096, 11008, generator=gen)),
    ):
        w = (w * 0.02).bfloat16()
        low, high = top_eigenvalues(w, products=torch.bfloat16), top_eigenvalues(w)
        print(
            f"4096×11008 {label}: top-10 Ritz values vs float32 products: max {np.max(np.abs(low[:10] / high[:10] - 1)):.2g}"
        )


def report(errors: dict[str, list[tuple[float, float]]]) -> None:
    head = f"{'metric':<26} {'n':>3} {'median rel':>10} {'p90 rel':>9} {'max rel':>9} {'max abs':>9}  no value"
    print(head)
    for name, errs in errors.items():
        rel, dif = np.array(errs).T
        print(
            f"{name:<26} {len(rel):>3} {np.nanmedian(rel):>10.2g} {np.nanquantile(rel, 0.9):>9.2g} "
            f"{np.nanmax(rel):>9.2g} {np.nanmax(dif):>9.2g}  {int(np.isnan(rel).sum())}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=DEFAULT_RANK, help="Ritz values of the estimate")
    ap.add_argument("--block", type=int, default=KRYLOV_BLOCK, help="Krylov block width")
    ap.add_argument("--share", action="store_true", help="also the rank giving the share 128/4096 of the side")
    ap.add_argument("--bf16", action="store_true", help="only: bf16 products against float32 ones")
    args = ap.parse_args()
    if args.bf16:
        bf16_products()
        return
    print(f"demo model, estimation forced; rank {args.rank}, block {args.block}; threads {torch.get_num_threads()}")
    report(measure(args.rank, args.block))
    if args.share:
        rank = 2 * max(4, round(384 * args.rank / 4096 / 2))  # two blocks, as the default
        print(f"\nrank {rank} of a 384 side (the share rank {args.rank} is of 4096), block {rank // 2}:")
        errors = measure(rank, rank // 2)
        report({k: v for k, v in errors.items() if "α" in k or "σ" in k or "stable" in k})


if __name__ == "__main__":
    main()
