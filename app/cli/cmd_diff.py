"""``graft diff A B``: per tensor, how far checkpoint B is from checkpoint A (core.stats.diff)."""

from __future__ import annotations

import json
import math

from app.cli import command
from app.cli.term import TerminalProgress, ctrl_c_cancels, format_table

#: the text table's metric columns: (header, PairDiff attribute)
COLUMNS = (
    ("‖A−B‖/‖A‖", "rel_frobenius"),
    ("cos mean", "cos_mean"),
    ("cos min", "cos_min"),
    ("KS", "ks"),
    ("W1", "w1"),
    ("std B/A", "std_ratio"),
)
SHOWN_NAMES = 4  # names listed per "only in A/B" line


@command(
    "diff",
    help="compare two checkpoints tensor by tensor: KS, W1, relative Frobenius, row cosines",
    description="Pair the tensors of A and B by name (or, within one family, by layer and role) and "
    "measure each pair, one pair in memory at a time. A is the reference: ‖A−B‖/‖A‖. Tensors whose "
    "shapes differ get the distribution metrics only.",
)
def arguments(p) -> None:
    p.add_argument("a", metavar="A", help="'demo', a .safetensors file, a model folder, or a hub repo id")
    p.add_argument("b", metavar="B", help="the checkpoint compared with A (same kinds)")
    p.add_argument("--tensor", metavar="NAME", help="this tensor only, with both sides' moments")
    p.add_argument("--exact", action="store_true", help="KS and W1 on every entry (default: ≤262,144 per side)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return "0"
    return f"{value:.4g}"


def shape_text(pair) -> str:
    a = "×".join(map(str, pair.shape_a)) or "scalar"
    b = "×".join(map(str, pair.shape_b)) or "scalar"
    return a if a == b else f"{a} → {b}"


def run(args) -> int:
    from core.errors import StatsError
    from core.progress import CancelToken
    from core.sources import open_source
    from core.stats.diff import diff_checkpoints

    a, b = open_source(args.a), open_source(args.b)
    cancel = CancelToken()
    with ctrl_c_cancels(cancel):
        result = diff_checkpoints(
            a,
            b,
            names=[args.tensor] if args.tensor else None,
            max_distance_elements=None if args.exact else 1 << 18,
            progress=TerminalProgress("diff"),
            cancel=cancel,
        )
    if not result.pairs:
        raise StatsError(
            f"{a.display_name} and {b.display_name} share no tensor (by name, or by layer and role within one "
            "family); compare checkpoints of the same model family"
        )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"A: {result.a} ({result.pairing.family_a or 'no known family'})")
    print(f"B: {result.b} ({result.pairing.family_b or 'no known family'})")
    if args.tensor:
        _one(result.pairs[0])
        return 0
    _table(result)
    return 0


def _table(result) -> None:
    s = result.summary()
    rows = []
    for p in result.pairs:
        name = p.name if p.pair.name_b == p.name else f"{p.name} ⇄ {p.pair.name_b}"
        note = p.note or ("" if p.distances_exact else "KS/W1 sampled")
        rows.append((name, shape_text(p.pair), *(fmt(p.value(attr)) for _, attr in COLUMNS), note))
    print()
    print(format_table(("tensor", "shape", *(h for h, _ in COLUMNS), "note"), rows))
    print()
    changed = s["compared"] - s["identical"] - s["shape_differs"]
    print(
        f"{s['compared']} pairs: {s['identical']} identical, {changed} changed, {s['shape_differs']} of another shape "
        "(distribution metrics only)."
    )
    worst = s["largest_rel_frobenius"]
    if worst and worst["value"] > 0:
        print(f"largest ‖A−B‖/‖A‖: {fmt(worst['value'])} in {worst['name']}")
    cap = result.max_distance_elements
    sampled = "on every entry" if cap is None else f"exact up to {cap:,} entries, sampled (seed {result.seed}) above"
    print(f"‖A−B‖, max |A−B| and row cosines (rows = first axis) are exact; KS and W1 {sampled}.")
    for label, names in (("only in A", result.pairing.only_a), ("only in B", result.pairing.only_b)):
        if names:
            shown = ", ".join(names[:SHOWN_NAMES])
            more = f" and {len(names) - SHOWN_NAMES} more (--json lists them all)" if len(names) > SHOWN_NAMES else ""
            print(f"{label} ({len(names)}): {shown}{more}")
    for name, why in result.pairing.not_compared.items():
        print(f"not compared: {name}: {why}")


def _one(p) -> None:
    pair = p.pair
    print()
    print(f"A {pair.name_a}  {pair.dtype_a}  {shape_text(pair).split(' → ')[0]}")
    print(f"B {pair.name_b}  {pair.dtype_b}  {'×'.join(map(str, pair.shape_b)) or 'scalar'}")
    print(f"layer {pair.layer if pair.layer is not None else '—'}, role {pair.role}, paired by {pair.matched_by}")
    if p.note:
        print(f"note: {p.note}: elementwise metrics need the same shape")
    print()
    metrics = (
        ("‖A−B‖/‖A‖", p.rel_frobenius),
        ("‖A−B‖", p.frobenius),
        ("max |A−B|", p.max_abs_diff),
        ("cos rows mean", p.cos_mean),
        ("cos rows min", p.cos_min),
        ("KS", p.ks),
        ("W1", p.w1),
        ("std B/A", p.std_ratio),
    )
    print(format_table(("metric", "value"), [(k, fmt(v)) for k, v in metrics]))
    print()
    sides = (("A", p.moments_a), ("B", p.moments_b))
    print(
        format_table(
            ("side", "entries", "mean", "std", "skewness", "excess kurtosis", "min", "max"),
            [
                (side, f"{m.n:,}", fmt(m.mean), fmt(m.std), fmt(m.skewness), fmt(m.excess_kurtosis))
                + (fmt(m.min), fmt(m.max))
                for side, m in sides
            ],
        )
    )
    exact = "on every entry" if p.distances_exact else f"on {p.n_a:,} / {p.n_b:,} sampled entries"
    print(f"\nKS and W1 {exact}; the moments on at most 2,000,000 entries per side.")
