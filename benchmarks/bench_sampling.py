"""Issue 17 benchmark: the sampling strategies on a llama-shaped checkpoint, as ratios to ``select``.

Builds a synthetic bf16 llama checkpoint (hidden 2048, ffn 5504, as many layers as ``--gb`` allows)
one shard of ~200 MB at a time, then shrinks it to half hidden, ffn and layers with ``select``,
``mean_field``, ``distribution``, ``covariance`` and ``templates`` (each in a child process, each
strategy's defaults) and prints wall time as a ratio to ``select`` and peak RSS (the child's
VmHWM) against ``select``'s and against the shrink's bound (a quarter of the checkpoint, as in
``bench_transfer.py``). Target (issue 17): the sampling strategies within 2× ``select``'s time and
within the bound. The checkpoint and the exports are deleted at the end.

Usage: python benchmarks/bench_sampling.py [--dir /tmp/graft-bench-sampling] [--gb 1.5]
    [--strategies select,distribution] [--keep]
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
    wanted = ["select", *[s for s in args.strategies.split(",") if s and s != "select"]]
    cache = Path(tempfile.mkdtemp(prefix="graft-hash-cache-"))
    base = None
    try:
        # one untimed select first: the shard-hash cache is warm and the files are in the page cache for all
        run_transfer(src, work / "out", cache, {**target, "strategy": "select"})
        for strategy in wanted:
            stats = run_transfer(src, work / "out", cache, {**target, "strategy": strategy})
            base = base or stats
            print(
                f"{strategy:>13}: {stats['wall']:7.2f} s = {stats['wall'] / base['wall']:5.2f}× select; "
                f"peak RSS {stats['maxrss'] / 1e6:6.0f} MB = {stats['maxrss'] / base['maxrss']:4.2f}× select's, "
                f"{(stats['maxrss'] - base['maxrss']) / 1e6:+5.0f} MB over select's",
                flush=True,
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(work / "out", ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
