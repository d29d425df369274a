"""Issue 3 benchmark: the zero-shot MLP case of the mean-field paper, on scikit-learn's digits.

A source MLP 64→512→512→10 (ReLU) is trained on digits (fixed split and seed, Adam) and saved as
safetensors with ``nn.Sequential`` names. Graft's plan/transfer then resizes both hidden layers to
32, 128 and 1024 with every index strategy (first_n, uniform, random, iid, by_norm; cyclic only
when growing — shrinking it equals first_n; shrink-only strategies skip 1024) and every fan-in
rescaling rule of the ``mean_field`` value strategy (none, mean_field = N/Ñ, variance = √(N/Ñ)).
Each target is scored on the test set at zero steps and after one epoch of Adam (lr 1e-3, batch 64), against the
``baseline`` init (PyTorch's default), averaged over 3 seeds (the seed draws the maps and the
training order). Target: at 1024 (grown) and 128 (shrunk) the best rule's zero-shot accuracy is
≥ 90% of the source's.

Usage: python benchmarks/bench_mean_field_mlp.py [--seeds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.plan import TargetSizes, make_plan  # noqa: E402
from core.sources import open_source  # noqa: E402
from core.strategies.scores import score_fn  # noqa: E402
from core.transfer import build_state_dict  # noqa: E402

WIDTHS = (32, 128, 1024)
INDEXES = ("first_n", "uniform", "random", "iid", "by_norm", "cyclic")
SHRINK_ONLY = ("first_n", "uniform", "random")
RESCALES = ("none", "mean_field", "variance")
SOURCE_WIDTH = 512


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return f(xtr), torch.tensor(ytr), f(xte), torch.tensor(yte)


def mlp(width: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(64, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 10),
    )


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train(model, x, y, epochs: int, seed: int, lr: float = 1e-3, batch: int = 64) -> None:
    gen = torch.Generator().manual_seed(seed)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):  # older torch without fused CPU Adam
        opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            b = order[i : i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()


def evaluate(source, width: int, values: dict, index: dict | None, seed: int, data, scores=None):
    xtr, ytr, xte, yte = data
    plan = make_plan(source, TargetSizes(hidden=width), values=values, index=index, seed=seed, score_fn=scores)
    model = mlp(width)
    model.load_state_dict(build_state_dict(plan, source))
    zero = accuracy(model, xte, yte)
    train(model, xtr, ytr, 1, seed=1000 + seed)
    return zero, accuracy(model, xte, yte)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--source-epochs", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    data = digits()
    torch.manual_seed(0)
    source_model = mlp(SOURCE_WIDTH)
    train(source_model, data[0], data[1], args.source_epochs, seed=0, batch=32)
    source_acc = accuracy(source_model, data[2], data[3])
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "source.safetensors"
        save_file(
            {k: v.contiguous() for k, v in source_model.state_dict().items()},
            str(path),
            metadata={"format": "pt", "graft.mlp.activation": "relu"},
        )
        source = open_source(path)
        scores = score_fn(source)
        for width in WIDTHS:
            runs = [("baseline", "-", {"default": {"method": "baseline"}}, None)]
            for idx in INDEXES:
                if (width > SOURCE_WIDTH and idx in SHRINK_ONLY) or (width < SOURCE_WIDTH and idx == "cyclic"):
                    continue
                for rescale in RESCALES:
                    runs.append(
                        (
                            idx,
                            rescale,
                            {"default": {"method": "mean_field", "params": {"rescale": rescale}}},
                            {"method": idx},
                        )
                    )
            for idx, rescale, values, index in runs:
                zs, ones = [], []
                for seed in range(args.seeds):
                    z, o = evaluate(source, width, values, index, seed, data, scores if idx == "by_norm" else None)
                    zs.append(z)
                    ones.append(o)
                results.append(
                    {
                        "width": width,
                        "index": idx,
                        "rescale": rescale,
                        "zero_shot": sum(zs) / len(zs),
                        "one_epoch": sum(ones) / len(ones),
                        "zero_shot_min": min(zs),
                        "zero_shot_max": max(zs),
                    }
                )
    elapsed = time.time() - start
    print(
        f"source MLP 64→{SOURCE_WIDTH}→{SOURCE_WIDTH}→10, test accuracy {source_acc:.4f} "
        f"({args.source_epochs} epochs); {args.seeds} seeds; {elapsed:.0f} s"
    )
    print(f"{'width':>5}  {'index':<8} {'rescale':<10} {'zero-shot':>9} {'(min–max)':>13} {'1 epoch':>8}")
    for r in results:
        print(
            f"{r['width']:>5}  {r['index']:<8} {r['rescale']:<10} {r['zero_shot']:>9.4f} "
            f"({r['zero_shot_min']:.3f}–{r['zero_shot_max']:.3f}) {r['one_epoch']:>8.4f}"
        )
    ok = True
    print("best zero-shot rule per width (target ≥ 90% of the source's accuracy at 128 and 1024):")
    for width in WIDTHS:
        best = max(
            (r for r in results if r["width"] == width and r["index"] != "baseline"), key=lambda r: r["zero_shot"]
        )
        ratio = best["zero_shot"] / source_acc
        passed = ratio >= 0.9
        if width in (128, 1024):
            ok &= passed
        print(
            f"  {width:>5}: {best['index']}/{best['rescale']} {best['zero_shot']:.4f} = {ratio:.1%} of the source"
            + ("" if width == 32 else ("  ok" if passed else "  BELOW TARGET"))
        )
    by_rule = {}
    for r in results:
        if r["index"] != "baseline":
            by_rule.setdefault(r["rescale"], []).append(r["zero_shot"])
    print(
        "mean zero-shot over all widths and index strategies: "
        + ", ".join(f"{k} {sum(v) / len(v):.4f}" for k, v in by_rule.items())
    )
    if args.json:
        args.json.write_text(
            json.dumps({"source_accuracy": source_acc, "seconds": elapsed, "results": results}, indent=1)
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
