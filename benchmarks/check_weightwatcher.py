"""Issue 12 check: Graft's α against the WeightWatcher package itself, matrix by matrix.

WeightWatcher is not a Graft dependency (it pulls in pandas and matplotlib), so this script is a
check to run by hand, not a test. Install it somewhere and put it on the path, e.g.:

    pip install --target /tmp/wwpkgs weightwatcher powerlaw pandas matplotlib   # + their deps
    PYTHONPATH=/tmp/wwpkgs MPLBACKEND=Agg python benchmarks/check_weightwatcher.py

Every matrix becomes the weight of one ``torch.nn.Linear`` layer of a small model, and
``WeightWatcher(model).analyze()`` runs with its defaults (CPU: float64 SVD, EVALS_THRESH 1e-5,
its own power-law fit); Graft's ``spectrum(W)`` runs with its defaults (whole matrix — every
matrix here has a side ≤ 2048 —, alpha_method="weightwatcher"). The matrices: the demo model's
38 weight matrices (all-MiniLM-L6-v2, including the 30522×384 word embeddings) and synthetic
ones (Gaussian, Cauchy, Student-t, tall, wide, planted power laws, a small-n one). WeightWatcher
skips layers with fewer than 8 eigenvalues, so none is smaller. Prints |Δα| per matrix, and the
maximum; also the pre-issue-12 figures (CSN two-sided KS with a tail of ≥ 10, and 1024 rows of
taller matrices) for comparison. Exit status 1 when max |Δα| > 1e-10.

Usage: PYTHONPATH=<weightwatcher> python benchmarks/check_weightwatcher.py [--no-demo]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.stats import spectrum  # noqa: E402
from core.stats.sampling import index_subset  # noqa: E402


def synthetic() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)

    def planted(alpha: float, n: int, m: int) -> np.ndarray:
        lam = rng.pareto(alpha - 1, n) + 1.0
        u, _ = np.linalg.qr(rng.standard_normal((n, n)))
        v, _ = np.linalg.qr(rng.standard_normal((m, n)))
        return (u * np.sqrt(lam)) @ v.T

    matrices = {
        "gaussian 300x500": rng.standard_normal((300, 500)),
        "gaussian 384x384 ×0.05": rng.standard_normal((384, 384)) * 0.05,
        "cauchy 400x800": rng.standard_cauchy((400, 800)),
        "student-t(3) 256x1024": rng.standard_t(3, (256, 1024)),
        "tall student-t(3) 3000x200": rng.standard_t(3, (3000, 200)),
        "wide cauchy 150x2500": rng.standard_cauchy((150, 2500)),
        "tall planted α=2.5 2500x300": planted(2.5, 300, 2500).T,
        "planted α=3.5 500x700": planted(3.5, 500, 700),
        "small n student-t(3) 12x40": rng.standard_t(3, (12, 40)),
        "small n cauchy 19x60": rng.standard_cauchy((19, 60)),
        "gaussian 64x200 ×2.2e-4 (threshold)": rng.standard_normal((64, 200)) * 2.2e-4,
    }
    # nn.Linear holds fp32: both sides see the same fp32 values.
    return {k: w.astype(np.float32).astype(np.float64) for k, w in matrices.items()}


def demo_matrices() -> dict[str, np.ndarray]:
    from core.sources import open_source

    source = open_source("demo")
    return {
        name: source.read(name).float().numpy().astype(np.float64)
        for name, info in source.tensors.items()
        if info.is_float and len(info.shape) == 2 and min(info.shape) >= 8
    }


def weightwatcher_alphas(matrices: dict[str, np.ndarray]) -> list[float]:
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    layers = []
    for w in matrices.values():
        layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
        layers.append(layer)
    model = torch.nn.Sequential(*layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = ww.WeightWatcher(model=model).analyze(plot=False, randomize=False, mp_fit=False)
    if len(details) != len(layers):
        raise SystemExit(f"weightwatcher analysed {len(details)} of {len(layers)} layers")
    return [float(a) for a in details["alpha"]]


def old_graft_alpha(w: np.ndarray) -> float:
    """Graft before issue 12: 1024 rows of taller matrices, CSN two-sided KS, tails of ≥ 10."""
    idx = index_subset(w.shape[0], 1024)
    return spectrum(w[idx], max_side=None, alpha_method="csn").alpha


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-demo", action="store_true", help="synthetic matrices only")
    args = parser.parse_args()
    matrices = synthetic() if args.no_demo else {**synthetic(), **demo_matrices()}
    t0 = time.perf_counter()
    theirs = weightwatcher_alphas(matrices)
    t_ww = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = [spectrum(w).alpha for w in matrices.values()]
    t_ours = time.perf_counter() - t0
    old = [old_graft_alpha(w) for w in matrices.values()]
    print(f"{'matrix':55s} {'shape':>11s} {'WeightWatcher':>13s} {'Graft':>10s} {'|Δα|':>8s} {'old Graft':>10s}")
    deltas, old_deltas = [], []
    for (name, w), a_ww, a, a_old in zip(matrices.items(), theirs, ours, old):
        deltas.append(abs(a - a_ww))
        old_deltas.append(abs(a_old - a_ww))
        print(
            f"{name[:55]:55s} {'×'.join(map(str, w.shape)):>11s} {a_ww:13.6f} {a:10.6f} {deltas[-1]:8.1e} {a_old:10.4f}"
        )
    n_old = sum(d > 1e-8 for d in old_deltas)
    print(
        f"\n{len(matrices)} matrices: max |Δα| = {max(deltas):.2e} (Graft now vs WeightWatcher {_version()});"
        f" before issue 12: max {max(old_deltas):.3g}, {n_old} of {len(matrices)} off by > 1e-8"
    )
    print(f"time: WeightWatcher analyze {t_ww:.1f} s, Graft spectrum {t_ours:.1f} s (same matrices, this machine)")
    return 0 if max(deltas) <= 1e-10 else 1


def _version() -> str:
    import weightwatcher

    return getattr(weightwatcher, "__version__", "?")


if __name__ == "__main__":
    sys.exit(main())
