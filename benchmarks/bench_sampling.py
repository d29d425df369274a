"""Issue 17 benchmark: the sampling strategies on a llama-shaped checkpoint, as ratios to ``select``.

Builds a synthetic bf16 llama checkpoint (hidden 2048, ffn 5504, as many layers as ``--gb`` allows)
one shard of ~200 MB at a time, then shrinks it to half hidden, ffn and layers with ``select``,
``mean_field``, ``distribution``, ``covariance`` and ``templates`` (each in a child process, each
strategy's defaults) and prints wall time as a ratio to ``select`` and peak RSS (the child's
VmHWM) against ``select``'s and against the shrink's bound (a quarter of the checkpoint, as in
``bench_transfer.py``). Target (issue 17): the sampling strategies within 2× ``select``'s time and
within the bound. The checkpoint and the exports are deleted at the end.

Usage: python benchmarks/bench_sampling.py [--dir /tmp/graft-bench-sampling] [--gb 1.5]
    [--strategies select,distribution] [--param covariance:samples=512] [--keep]

``--param STRATEGY:KEY=VALUE`` (repeatable) runs that strategy with a parameter changed, as an extra
row after its default one (e.g. to time a sample size against the default). ``--repeat N`` runs the
whole list N times, round-robin, and reports each one's median time and largest peak (a shared
machine's load drifts by tens of percent within a minute: one run per row compares noise).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import llama_config, run_transfer, write_checkpoint  # noqa: E402

STRATEGIES = ("select", "mean_field", "distribution", "covariance", "templates")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "graft-bench-sampling"))
    ap.add_argument("--gb", type=float, default=1.5)
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated; select is always run")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic checkpoint for a later run")
    ap.add_argument(
        "--param", action="append", default=[], help="STRATEGY:KEY=VALUE: also run STRATEGY with that parameter"
    )
    ap.add_argument("--repeat", type=int, default=1, help="run the list this many times, round-robin (medians)")
    args = ap.parse_args()
    work = Path(args.dir)
    src = work / "llama-src"
    hidden, ffn, vocab = 2048, 5504, 32000
    per_layer = 2 * (4 * hidden * hidden - 2 * hidden * (hidden // 2) + 3 * hidden * ffn)
    layers = max(2, round((args.gb * 1e9 - 2 * 2 * vocab * hidden) / per_layer))
    layers -= layers % 2
    if not (src / "model.safetensors.index.json").is_file():
        print(f"writing a synthetic llama checkpoint ({layers} layers) to {src} …", flush=True)
        write_checkpoint(src, llama_config(hidden, layers, 16, 8, ffn, vocab), shard_bytes=200_000_000)
    size = sum(p.stat().st_size for p in src.glob("*.safetensors"))
    print(f"checkpoint: {size / 1e9:.2f} GB, {layers} layers, hidden {hidden}, ffn {ffn}, vocab {vocab}")
    target = {"layers": layers // 2, "hidden": hidden // 2, "ffn": ffn // 2, "heads": 8, "kv_heads": 4}
    print(f"target: {target}")
    wanted = [("select", None), *[(s, None) for s in args.strategies.split(",") if s and s != "select"]]
    for item in args.param:
        strategy, _, pair = item.partition(":")
        wanted.append((strategy, pair))
    bound = size / 4
    print(
        f"memory bound of the shrink (bench_transfer.py): peak RSS under a quarter of the checkpoint, "
        f"{bound / 1e6:.0f} MB (at this size the interpreter and its libraries alone take most of it: "
        "compare the growth over select's too)"
    )
    cache = Path(tempfile.mkdtemp(prefix="graft-hash-cache-"))
    base = None
    try:
        # one untimed select first: the shard-hash cache is warm and the files are in the page cache for all
        run_transfer(src, work / "out", cache, {**target, "strategy": "select"})
        runs: dict[tuple, list[dict]] = {key: [] for key in wanted}
        for _ in range(max(1, args.repeat)):
            for strategy, pair in wanted:
                extra = {"param": pair} if pair else {}
                runs[(strategy, pair)].append(
                    run_transfer(src, work / "out", cache, {**target, "strategy": strategy, **extra})
                )
        for strategy, pair in wanted:
            walls = sorted(r["wall"] for r in runs[(strategy, pair)])
            stats = {"wall": walls[len(walls) // 2], "maxrss": max(r["maxrss"] for r in runs[(strategy, pair)])}
            base = base or stats
            over = stats["maxrss"] - base["maxrss"]
            label = f"{strategy} {pair}" if pair else strategy
            spread = f" (runs {walls[0]:.2f}–{walls[-1]:.2f} s)" if len(walls) > 1 else ""
            print(
                f"{label:>13}: {stats['wall']:7.2f} s = {stats['wall'] / base['wall']:5.2f}× select{spread}; "
                f"peak RSS {stats['maxrss'] / 1e6:6.0f} MB = {stats['maxrss'] / size:4.0%} of the checkpoint "
                f"({'under' if stats['maxrss'] <= bound else 'over'} the bound), "
                f"{stats['maxrss'] / base['maxrss']:4.2f}× select's, {over / 1e6:+5.0f} MB over select's",
                flush=True,
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(work / "out", ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
