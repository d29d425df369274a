"""Error of the estimated statistics against the exact computation, on every matrix of the demo model.

Which numbers of the model table are exact and which estimated (core/stats/metrics.py says the same):

* exact: the spectrum and α whenever a side of the matrix is ≤ ``max_side`` (2048; every matrix of
  the demo model and of hidden-2048 llamas), stable rank and σ_max from the same eigenvalues;
* ‖W‖_2 for the stable rank when both sides exceed the cap (7B: 4096×4096, 4096×11008): Lanczos,
  within ``SPECTRAL_NORM_RTOL`` (1e-5);
* α when both sides exceed the cap: the spectrum of a fixed-seed subset of ``max_side`` indices
  of the smaller side (here forced with max_side = half the smaller side, as 2048 is of 4096);
* std and kurtosis of tensors over 2M entries: a stratified sample of 2M (here forced with the
  same fraction a 4096×11008 matrix keeps, 2M / 45M = 4.4%).

Measured (this script, 40 matrices of all-MiniLM-L6-v2, 2 CPU cores):

    metric                    max rel. error  median rel. error  max abs. error  no value
    ‖W‖_2 (Lanczos)                  1.2e-06            3.9e-08         2.5e-06  0
    stable rank (Lanczos)            2.4e-06            7.8e-08         0.00024  0
    α (half-side subset)             1.8e+00            1.7e-01             5.4  1
    std (4.4% sample)                4.3e-02            4.8e-03          0.0024  0
    kurtosis (4.4% sample)           7.4e+00            1.6e-01         1.6e+03  0

α of a subset is a different matrix's α (the aspect ratio changes), hence its large error; one
subset had no fit at all. Kurtosis's relative error is large where the excess kurtosis is near 0
or dominated by a few outliers the sample misses.

Usage: python benchmarks/check_stats_estimates.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.sources import open_source  # noqa: E402
from core.stats.moments import moments_of_sample  # noqa: E402
from core.stats.sampling import as_matrix, flat_sample  # noqa: E402
from core.stats.spectrum import spectral_norm, spectrum  # noqa: E402
from core.stats.table import select_tensors  # noqa: E402

SAMPLE_FRACTION = 2_000_000 / (4096 * 11008)


def main() -> None:
    source = open_source("demo")
    errors: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, estimate: float, exact: float) -> None:
        errors.setdefault(name, []).append((abs(estimate - exact) / abs(exact), abs(estimate - exact)))

    for t, _column in select_tensors(source):
        w = as_matrix(source.read(t.name)).float()
        w64 = w.double().numpy()
        norm = float(np.linalg.norm(w64, 2))
        add("‖W‖_2 (Lanczos)", spectral_norm(w), norm)
        fro2 = float((w64**2).sum())
        exact = spectrum(w, max_side=None)
        capped = spectrum(w, max_side=min(w.shape) // 2)
        add("stable rank (Lanczos)", capped.stable_rank, fro2 / norm**2)
        add("α (half-side subset)", capped.alpha, exact.alpha)
        full = moments_of_sample(flat_sample(w, None))
        sample = moments_of_sample(flat_sample(w, max(1000, int(w.numel() * SAMPLE_FRACTION))))
        add("std (4.4% sample)", sample.std, full.std)
        add("kurtosis (4.4% sample)", sample.excess_kurtosis, full.excess_kurtosis)
    n = len(next(iter(errors.values())))
    print(f"{n} matrices of the demo model; threads {torch.get_num_threads()}")
    print(f"{'metric':<24} {'max rel. error':>15} {'median rel. error':>18} {'max abs. error':>15}  no value")
    for name, errs in errors.items():
        rel, dif = np.array(errs).T
        print(
            f"{name:<24} {np.nanmax(rel):>15.1e} {np.nanmedian(rel):>18.1e} {np.nanmax(dif):>15.2g}  {np.isnan(rel).sum()}"
        )


if __name__ == "__main__":
    main()
