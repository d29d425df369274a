"""Where the whole-model statistics table spends its time: each step of each matrix, timed in order.

The table (``graft stats``, the app's "Analyse the source") reads every matrix once, the next one
read in a thread meanwhile (``core.stats.table._read_ahead``), and computes per matrix, each at
most once (``core.stats.metrics.TensorView``): the float32 widening (where needed), the row norms, the NaN/Inf
count, the 2M-entry sample, its moments, the spectrum (block Krylov above 512 on the smaller
side) and the mean-field correlations. This script does the same steps in the same order and
prints the seconds of each, and its share of the total, so a change aimed at one step can be
judged against the whole. The matrix products alone of the spectrum estimate are timed by
``benchmarks/bench_7b.py --only stats_products``.

One tensor at a time here; the table measures one per core, each on one torch thread:
``--threads 1`` times the steps as one of its workers runs them.

Usage: python benchmarks/stats_steps.py SOURCE [--threads N]   (a model folder, a .safetensors file or 'demo')
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = ("matrix_for_statistics", "row_sq", "nonfinite", "raw_sample", "moments", "spectrum", "mean_field")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from core.sources import open_source
    from core.stats.metrics import TensorView, Workspace
    from core.stats.table import _read_ahead

    source = open_source(args.source)
    names = [n for n, t in source.tensors.items() if len(t.shape) == 2 and min(t.shape) >= 2]
    workspace, spent = Workspace(), Counter()
    start = time.perf_counter()
    for tensor in _read_ahead(source, names):
        view = TensorView(tensor, workspace=workspace)
        for step in STEPS:
            t = time.perf_counter()
            getattr(view, step)
            spent[step] += time.perf_counter() - t
    total = time.perf_counter() - start
    print(f"{len(names)} matrices of {source.display_name}: {total:.2f} s in all")
    for step in STEPS:
        print(f"  {step:<12} {spent[step]:8.2f} s  {spent[step] / total:6.1%}")
    waited = total - sum(spent.values())
    print(f"  {'reads':<12} {waited:8.2f} s  {waited / total:6.1%}  (waiting for the read-ahead, and the loop)")


if __name__ == "__main__":
    main()
