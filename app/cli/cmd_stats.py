"""``graft stats``: per-tensor statistics, or the model's layer × role table with mean-field advice."""

from __future__ import annotations

import argparse
import json
import math
import textwrap

from app.cli import command
from app.cli.term import TerminalProgress, format_table
from core.devices import PRODUCT_PRECISIONS

TABLE_METRICS = ("std", "kurtosis", "alpha", "stable_rank", "row_corr_excess", "col_corr_excess", "top1_norm_ratio")
#: Marks a value that is an estimate rather than exact (in the table, and in --tensor's spectrum).
ESTIMATED = "≈"
#: Where the measured error of each estimate is written down, for the legends.
BOUNDS = "measured error bounds: graft stats --help"


@command("stats", help="weight statistics: one tensor in detail, or a layer × role table of the model")
def arguments(p) -> None:
    p.add_argument("source", help="'demo', a .safetensors file, a model folder, or a hub repo id")
    p.add_argument("--tensor", metavar="NAME", help="statistics of this tensor only (names: graft inspect)")
    p.add_argument(
        "--metrics", default=",".join(TABLE_METRICS), help="comma-separated table metrics (default: %(default)s)"
    )
    p.add_argument("--roles", help="comma-separated roles to keep in the table (default: all matrices)")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: %(default)s)")
    p.add_argument(
        "--products",
        choices=PRODUCT_PRECISIONS,
        default="auto",
        help="dtype of the spectrum estimate's products for bf16 matrices: bfloat16 (on a CPU with AMX or AVX-512 BF16 3–5× "
        "faster, Ritz values within 0.2%% of float32's), float32, or auto (bfloat16 where it is fast; default)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _metrics_help()
    p.set_defaults(func=run)


def _metrics_help() -> str:
    """Every table metric with the registry's help: what it measures, when it is estimated (marked
    ≈ in the table) and how far off that was measured to be."""
    from core.stats.metrics import METRICS

    lines = [f"metrics (what each measures; when it is estimated, marked {ESTIMATED}, and its measured error):"]
    for name in METRICS.names():
        lines += textwrap.wrap(METRICS.get(name).help, 88, initial_indent=f"  {name}: ", subsequent_indent="      ")
    return "\n".join(lines)


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_marked(value, estimated: bool) -> str:
    """:func:`fmt` with :data:`ESTIMATED` before an estimated value (never before "—")."""
    text = fmt(value)
    return ESTIMATED + text if estimated and text != "—" else text


def nonfinite_line(counts: dict[str, int]) -> str | None:
    """ "3 NaN/Inf in 1 tensor, first: NAME" for tensor name → count (None when there are none)."""
    counts = {name: n for name, n in counts.items() if n}
    if not counts:
        return None
    total, first = sum(counts.values()), next(iter(counts))
    return f"{total:,} NaN/Inf in {len(counts)} tensor{'s' if len(counts) > 1 else ''}, first: {first}"


def run(args) -> int:
    from core.devices import check_device_available
    from core.sources import open_source

    check_device_available(args.device)
    source = open_source(args.source)
    if args.tensor:
        return _tensor(source, args)
    return _table(source, args)


def _fan_in(source, name: str) -> int | None:
    from core.errors import ArchitectureError

    try:
        from core.architectures import describe

        return next((r.fan_in for r in describe(source) if r.name == name), 1)
    except ArchitectureError:
        return 1


def _tensor(source, args) -> int:
    from core.stats import tensor_stats

    info = source.info(args.tensor)
    if not info.is_float:
        from core.errors import StatsError

        raise StatsError(f"{args.tensor} holds {info.dtype} values; statistics need a floating-point tensor")
    stats = tensor_stats(source.read(args.tensor), args.tensor, fan_in=_fan_in(source, args.tensor), device=args.device)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
        return 0
    m = stats.moments
    print(f"{stats.name}  {stats.dtype}  {'×'.join(map(str, stats.shape))}  (sample of {m.n:,} entries)")
    line = nonfinite_line({stats.name: stats.nonfinite})
    if line:
        print(f"{line} (moments and fits use the finite entries; no spectrum)")
    print()
    print(
        format_table(
            ("mean", "std", "skewness", "excess kurtosis", "beyond 3σ", "beyond 6σ", "min", "max"),
            [
                (
                    fmt(m.mean),
                    fmt(m.std),
                    fmt(m.skewness),
                    fmt(m.excess_kurtosis),
                    fmt(m.frac_beyond_3sigma),
                    fmt(m.frac_beyond_6sigma),
                    fmt(m.min),
                    fmt(m.max),
                )
            ],
        )
    )
    print()
    rows = []
    for name, fit in stats.fits.items():
        params = ", ".join(f"{k}={fmt(v)}" for k, v in fit.to_dict().items() if k != "name")
        rows.append((name, params, fmt(stats.fit_loglik[name])))
    print(format_table(("fit", "parameters", "mean log-likelihood"), rows))
    if stats.spectrum is not None:
        s, f = stats.spectrum, stats.spectrum.fit
        est = not s.exact and not s.nonfinite
        print()
        print(
            format_table(
                ("σ max", "stable rank", "ESD α", "α ± (SE)", "λ_min", "tail size", "decomposed"),
                [
                    (
                        fmt_marked(float(s.singular_values[0]) if s.singular_values.size else None, est),
                        fmt_marked(s.stable_rank, est),
                        fmt_marked(s.alpha, est),
                        fmt(f.stderr if f else None),
                        fmt(f.xmin if f else None),
                        fmt(f.n_tail if f else None),
                        _decomposed(s),
                    )
                ],
            )
        )
        if est:
            print(f"{ESTIMATED} {_spectrum_estimate(s)}; {BOUNDS}")
    if stats.mean_field is not None:
        mf = stats.mean_field
        print()
        print(
            format_table(
                ("", "measured", "i.i.d. null"),
                [
                    ("row correlation energy", fmt(mf.row_corr_energy), fmt(mf.row_corr_null)),
                    ("column correlation energy", fmt(mf.col_corr_energy), fmt(mf.col_corr_null)),
                    ("top-1% rows' norm share", fmt(mf.top1_norm_share), fmt(mf.top1_norm_null)),
                    ("excess kurtosis", fmt(mf.excess_kurtosis), "0"),
                ],
            )
        )
        print()
        for line in mf.suggestions:
            print(f"mean-field: {line}")
    return 0


def _decomposed(s) -> str:
    """What the spectrum was computed from, for --tensor's "decomposed" column."""
    if s.nonfinite:
        return "—"
    if s.exact:
        return "whole matrix"
    if s.method == "krylov":
        return f"top {s.used_shape[0]} eigenvalues (block Krylov)"
    return "×".join(map(str, s.used_shape)) + " subset"


def _spectrum_estimate(s) -> str:
    """One line on how an estimated spectrum was estimated."""
    from core.stats.spectrum import DEFAULT_EXACT_SIDE

    if s.method == "krylov":
        return (
            f"estimated from the top {s.used_shape[0]} eigenvalues by block Krylov (smaller side {min(s.shape)} > "
            f"{DEFAULT_EXACT_SIDE}; σ max reads low, stable rank high)"
        )
    return f"estimated from a fixed-seed {'×'.join(map(str, s.used_shape))} subset (both sides > {min(s.used_shape)})"


def _metric_cells(table, metric: str) -> list[list[str]]:
    """One metric's values as text, row by row, estimated ones marked; where the metric has any
    estimate, exact values get a space in the mark's place so the digits line up."""
    flags = table.estimated.get(metric)
    pad = " " if table.estimated_count(metric) else ""
    return [
        [
            fmt_marked(float(v), True) if flags is not None and flags[i, j] else pad + fmt(float(v))
            for j, v in enumerate(row)
        ]
        for i, row in enumerate(table.values[metric])
    ]


def _table(source, args) -> int:
    from core.stats import model_table
    from core.stats.metrics import MEAN_FIELD_METRICS

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    roles = tuple(r.strip() for r in args.roles.split(",")) if args.roles else None
    progress = TerminalProgress("stats") if not args.json else (lambda f, m: None)
    table = model_table(source, metrics, roles, device=args.device, products=args.products, progress=progress)
    advice = table.suggestions() if all(m in metrics for m in MEAN_FIELD_METRICS) else []
    line = nonfinite_line(table.nonfinite)
    if args.json:
        out = table.to_dict()
        out["source"] = source.display_name
        out["suggestions"] = [
            {"layer": layer, "role": col, "tensor": name, "suggestions": list(s)} for layer, col, name, s in advice
        ]
        print(json.dumps(out, indent=2))
        return 0
    print(f"{source.display_name}: {sum(1 for _ in table.cells())} matrices")
    if line:
        print(f"{line} (value metrics use the finite entries; matrix metrics are —)")
    labels = table.row_labels()
    matrices = sum(1 for _ in table.cells())
    for metric in table.metrics:
        print()
        print(f"{metric}")
        rows = [[label] + cells for label, cells in zip(labels, _metric_cells(table, metric))]
        print(format_table(("",) + table.columns, rows))
        n = table.estimated_count(metric)
        if n:
            method = table.estimate_methods.get(metric, "see --help")
            print(f"{ESTIMATED} estimated ({method}): {n} of {matrices} matrices; {BOUNDS}")
    if advice:
        print()
        print("mean-field suggestions (rule and thresholds: core/stats/meanfield.py)")
        grouped: dict[str, dict[str, list[str]]] = {}
        for layer, col, _name, lines in advice:
            for line in lines:
                grouped.setdefault(col, {}).setdefault(line, []).append("other" if layer is None else str(layer))
        rows = []
        for col, by_line in grouped.items():
            for k, (line, layers) in enumerate(by_line.items()):
                rows.append((col if k == 0 else "", line, ", ".join(layers)))
        print(format_table(("role", "suggestion", "layers"), rows))
    return 0
