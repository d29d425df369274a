"""Issue 17 benchmark: the GPU path. The same jobs on the CPU and, where torch finds one, on CUDA.

Jobs, each timed in this process after an untimed start on the CPU that does each job's lazy
imports (one tensor, or a 1-step validation), so neither device pays them; on CUDA one untimed
warm-up run first (context, kernels, cuBLAS handles); ``torch.cuda.synchronize`` before every
clock read:

* ``transfer:<strategy>``: the sampling strategies (``distribution``, ``covariance``, ``templates``,
  ``mean_field``; ``select`` as the reference) materialising a shrink of a synthetic llama-shaped
  bf16 checkpoint (``bench_transfer.write_checkpoint``) to half hidden, ffn and layers, every tensor
  filled on the device and brought back to the CPU as an export does (``core.transfer.materialize``,
  what ``graft transfer --device`` runs; the plan is made once, outside the clock);
* ``stats table``: the whole-model statistics table of that checkpoint (``core.stats.model_table``,
  what ``graft stats SRC --device`` prints, with its metrics; the table cache is off);
* ``validate``: a short validation run, ``graft validate EXPORT --steps N --device``, of a small
  export of the bundled demo (transferred arm and baseline, in this process through the CLI).

Prints seconds per job and device and the cuda/cpu ratio (below 1: CUDA is faster); without CUDA
the cuda column is "n/a". The checkpoint and the exports are deleted at the end.

Usage: python benchmarks/bench_gpu.py [--gb 1.0] [--hidden 2048] [--steps 50] [--repeats 1]
    [--strategies select,distribution,covariance,templates,mean_field] [--jobs transfer,stats,validate]
    [--devices cpu,cuda] [--dir /tmp/graft-bench-gpu] [--keep]
A CPU-only smoke run (about 2 minutes on 2 busy cores): --gb 0.1 --hidden 1024 --vocab 8000 --steps 10
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from bench_transfer import llama_config, write_checkpoint  # noqa: E402

STRATEGIES = ("select", "distribution", "covariance", "templates", "mean_field")
JOBS = ("transfer", "stats", "validate")
DEMO_TARGET = {"layers": 2, "hidden": 128, "heads": 4, "ffn": 512}


def sync(device: str) -> None:
    """Wait for the device's queued work, so the clock measures it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(job: Callable[[str], object], device: str, *, warmup: int, repeats: int) -> float:
    """The best of ``repeats`` wall times of ``job(device)`` after ``warmup`` untimed runs."""
    for _ in range(warmup):
        job(device)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        job(device)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def transfer_job(src: Path, target: dict, strategy: str) -> Callable[[str], object]:
    """Materialise ``strategy``'s shrink of ``src`` on a device: every target tensor filled there and brought back."""
    from core.plan.from_recipe import plan_recipe
    from core.recipe import Recipe
    from core.transfer import materialize

    plan, source = plan_recipe(Recipe(source=str(src), target=dict(target)).with_strategy(strategy))
    next(materialize(plan, source), None)  # untimed: the strategy's lazy imports, on the first tensor

    def run(device: str) -> int:
        return sum(t.numel() for _, t in materialize(plan, source, device=device))

    return run


def stats_job(src: Path) -> Callable[[str], object]:
    """The whole-model statistics table, ``graft stats SRC --device``'s metrics, not cached."""
    from app.cli.cmd_stats import TABLE_METRICS
    from core.sources import open_source
    from core.stats import model_table
    from core.stats.table import iter_tensor_metrics

    source = open_source(src)
    next(iter_tensor_metrics(source, TABLE_METRICS), None)  # untimed: the metrics' lazy imports, on one tensor

    def run(device: str) -> object:
        return model_table(source, TABLE_METRICS, device=device, cache=False)

    return run


def quiet_cli(argv: list[str]) -> None:
    """``graft ARGV`` in this process, its output swallowed; a non-zero exit raises RuntimeError."""
    from app.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"graft {' '.join(argv)} failed ({rc}):\n{out.getvalue()[-2000:]}")


def validate_job(work: Path, steps: int) -> Callable[[str], object]:
    """``graft validate EXPORT --steps N --device D`` on a small export of the demo."""
    export = work / "demo-export"
    flags = [f"--{k}={v}" for k, v in DEMO_TARGET.items()]
    quiet_cli(["transfer", "demo", *flags, "--out", str(export), "--force"])
    small = ["--batch-size", "8", "--seq-len", "64", "--warmup", "2"]

    def run(device: str, steps: int = steps) -> None:
        runs = work / f"validation-{device.replace(':', '-')}"
        argv = ["validate", str(export), "--steps", str(steps), "--eval-every", str(steps), *small]
        quiet_cli([*argv, "--device", device, "--out", str(runs)])

    run("cpu", 1)  # untimed: transformers' model code and the tokenizer imported, the data prepared once
    return run


def devices(wanted: str) -> tuple[list[str], dict[str, str]]:
    """The devices to run on here, and why each one asked for but missing is left out."""
    from core.devices import device_availability

    have = device_availability()
    run, missing = [], {}
    for name in (d.strip() for d in wanted.split(",") if d.strip()):
        why = have.get(name.partition(":")[0], f"{name} is not a device Graft knows")
        if why is None:
            run.append(name)
        else:
            missing[name] = why
    return run, missing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "graft-bench-gpu"))
    ap.add_argument("--gb", type=float, default=1.0, help="checkpoint size (at least 2 layers)")
    ap.add_argument("--hidden", type=int, default=2048, help="hidden size (ffn 2.6875×, 16 heads, 8 kv heads)")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--steps", type=int, default=50, help="optimizer steps of the validation run")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per job and device (the best is shown)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated: {', '.join(JOBS)}")
    ap.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu, cuda, cuda:N")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic checkpoint for a later run")
    args = ap.parse_args()
    cache = None if "GRAFT_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="graft-bench-gpu-cache-")
    if cache:  # shard hashes and calibration data of this run only, not the user's cache
        os.environ["GRAFT_CACHE_DIR"] = cache

    work = Path(args.dir)
    hidden, vocab = args.hidden, args.vocab
    ffn = round(hidden * 2.6875 / 64) * 64
    per_layer = 2 * (4 * hidden * hidden - 2 * hidden * (hidden // 2) + 3 * hidden * ffn)
    layers = max(2, round((args.gb * 1e9 - 2 * 2 * vocab * hidden) / per_layer))
    layers -= layers % 2
    src = work / f"llama-h{hidden}-l{layers}-v{vocab}"  # a kept checkpoint is reused only at its shape
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    if ("transfer" in jobs or "stats" in jobs) and not (src / "model.safetensors.index.json").is_file():
        print(f"writing a synthetic llama checkpoint ({layers} layers) to {src} …", flush=True)
        write_checkpoint(src, llama_config(hidden, layers, 16, 8, ffn, vocab), shard_bytes=200_000_000)
    size = sum(p.stat().st_size for p in src.glob("*.safetensors"))
    target = {"layers": layers // 2, "hidden": hidden // 2, "ffn": ffn // 2, "heads": 8, "kv_heads": 4}
    run_on, missing = devices(args.devices)
    print(
        f"checkpoint: {size / 1e9:.2f} GB, {layers} layers, hidden {hidden}, ffn {ffn}, vocab {vocab}; target {target}"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; devices: {', '.join(run_on)}")
    for name, why in missing.items():
        print(f"  {name}: n/a ({why})")

    table: list[tuple[str, dict[str, float | None]]] = []

    def measure(label: str, job: Callable[[str], object]) -> None:
        row: dict[str, float | None] = {}
        for device in run_on:
            warmup = 1 if device.startswith("cuda") else 0
            try:
                row[device] = timed(job, device, warmup=warmup, repeats=args.repeats)
            except Exception as exc:  # a path that fails on one device: say so, measure the rest
                row[device] = None
                print(f"  {label} on {device} failed: {type(exc).__name__}: {exc}", flush=True)
        table.append((label, row))
        print(f"  {label}: " + ", ".join(f"{d} {_seconds(s)} s" for d, s in row.items()), flush=True)

    try:
        if "transfer" in jobs:
            for strategy in (s.strip() for s in args.strategies.split(",") if s.strip()):
                measure(f"transfer:{strategy}", transfer_job(src, target, strategy))
        if "stats" in jobs:
            measure("stats table", stats_job(src))
        if "validate" in jobs:
            measure(f"validate ({args.steps} steps)", validate_job(work, args.steps))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        if cache:
            shutil.rmtree(cache, ignore_errors=True)

    gpu = next((d for d in run_on if d.startswith("cuda")), None)
    print()
    print(f"{'job':<24} {'cpu s':>10} {(gpu or 'cuda') + ' s':>10} {'cuda/cpu':>9}")
    for label, row in table:
        cpu, cuda = row.get("cpu"), row.get(gpu) if gpu else None
        ratio = f"{cuda / cpu:.2f}" if cpu and cuda else "n/a"
        print(f"{label:<24} {_seconds(cpu, 'cpu' in row):>10} {_seconds(cuda, gpu in row):>10} {ratio:>9}")


def _seconds(value: float | None, ran: bool = True) -> str:
    """Seconds, "failed" for a job that raised, "n/a" for a device not run."""
    return f"{value:.2f}" if value is not None else "failed" if ran else "n/a"


if __name__ == "__main__":
    main()
