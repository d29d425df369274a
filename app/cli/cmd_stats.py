"""``graft stats``: per-tensor statistics, or the model's layer × role table with mean-field advice."""

from __future__ import annotations

import json
import math

from app.cli import command
from app.cli.term import TerminalProgress, format_table

TABLE_METRICS = ("std", "kurtosis", "alpha", "stable_rank", "row_corr_excess", "col_corr_excess", "top1_norm_ratio")


@command("stats", help="weight statistics: one tensor in detail, or a layer × role table of the model")
def arguments(p) -> None:
    p.add_argument("source", help="'demo', a .safetensors file, a model folder, or a hub repo id")
    p.add_argument("--tensor", metavar="NAME", help="statistics of this tensor only (names: graft inspect)")
    p.add_argument(
        "--metrics", default=",".join(TABLE_METRICS), help="comma-separated table metrics (default: %(default)s)"
    )
    p.add_argument("--roles", help="comma-separated roles to keep in the table (default: all matrices)")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
        used = "whole matrix" if s.exact else "—" if s.nonfinite else "×".join(map(str, s.used_shape)) + " subset"
        print()
        print(
            format_table(
                ("σ max", "stable rank", "ESD α", "α ± (SE)", "λ_min", "tail size", "decomposed"),
                [
                    (
                        fmt(float(s.singular_values[0]) if s.singular_values.size else None),
                        fmt(s.stable_rank),
                        fmt(s.alpha),
                        fmt(f.stderr if f else None),
                        fmt(f.xmin if f else None),
                        fmt(f.n_tail if f else None),
                        used,
                    )
                ],
            )
        )
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


def _table(source, args) -> int:
    from core.stats import model_table
    from core.stats.metrics import MEAN_FIELD_METRICS

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    roles = tuple(r.strip() for r in args.roles.split(",")) if args.roles else None
    progress = TerminalProgress("stats") if not args.json else (lambda f, m: None)
    table = model_table(source, metrics, roles, device=args.device, progress=progress)
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
    for metric in table.metrics:
        print()
        print(f"{metric}")
        rows = [[labels[i]] + [fmt(float(v)) for v in table.values[metric][i]] for i in range(len(labels))]
        print(format_table(("",) + table.columns, rows))
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
