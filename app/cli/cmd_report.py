"""``graft report``: PNG figures (drawn offscreen by the app's own plot code) plus a JSON summary.

Figures: one layer × role heat map per table metric (source, and target when a recipe is given),
and for a few tensors the source-vs-target histogram with fitted densities, the row correlation
map, the singular value spectra, and for layer-0 attention the per-head QKᵀ / VO maps of head 0.
Qt is imported only inside :func:`run`, through ``app.render``.

The folder is written like an export (:class:`core.outdir.AtomicFolder`): into a temporary sibling,
moved into place when complete; never the source or the recipe; a non-empty --out needs --force,
which replaces only an earlier report (``report.json`` with ``graft_report``) unless --replace-any.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.cli import command
from app.cli.cmd_transfer import add_replace_args, replace_kwargs
from app.cli.term import TerminalProgress

#: The version of report.json's layout; its key marks a folder as a Graft report.
REPORT_FORMAT = 1
TABLE_METRICS = ("std", "kurtosis", "alpha", "stable_rank", "row_corr_excess", "col_corr_excess", "top1_norm_ratio")


@command("report", help="write PNG figures and a JSON summary of a source's (and a target's) weights")
def arguments(p) -> None:
    p.add_argument("source", help="'demo', a .safetensors file, a model folder, or a hub repo id")
    p.add_argument("--target", metavar="RECIPE", help="a recipe file: also show the target it builds from the source")
    p.add_argument(
        "--out",
        required=True,
        help="folder to write the figures and report.json into (must not exist or be empty, unless --force)",
    )
    add_replace_args(p, "report")
    p.add_argument(
        "--tensor",
        action="append",
        default=[],
        metavar="NAME",
        help="source tensor to draw in detail (repeatable; default: each matrix role of the first layer)",
    )
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: %(default)s)")
    p.set_defaults(func=run)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _pick_tensors(source, labels, wanted: list[str]) -> list[str]:
    if wanted:
        for name in wanted:
            source.info(name)  # raises a SourceError naming the tensor
        return wanted
    matrices = [
        t for t in labels if t.kind == "param" and t.layer is not None and len(source.tensors[t.name].shape) == 2
    ]
    first = min((t.layer for t in matrices), default=None)
    seen, out = set(), []
    for t in matrices:
        if t.layer == first and t.role not in seen:
            seen.add(t.role)
            out.append(t.name)
    return out


def _head_figures(source, labels, render, out: Path) -> dict | None:
    from core.architectures import detect
    from core.errors import ArchitectureError
    from core.stats import head_maps

    try:
        spec, config = detect(source)
        sizes = spec.sizes(config)
    except (ArchitectureError, KeyError):
        return None
    layer0 = {t.role: t.name for t in labels if t.layer == 0 and t.name.endswith("weight")}
    if not all(r in layer0 for r in ("attn.q", "attn.k", "attn.v", "attn.o")) or "heads" not in sizes:
        return None
    q, k, v, o = (source.read(layer0[r]) for r in ("attn.q", "attn.k", "attn.v", "attn.o"))
    maps = head_maps(q, k, v, o, sizes["heads"], sizes.get("kv_heads"), sizes.get("head_dim"))
    render.render_heatmap_png(maps.qk[0], out / "heads_layer0_qk_head0.png", "layer 0, head 0: W_Q W_Kᵀ")
    render.render_heatmap_png(maps.vo[0], out / "heads_layer0_vo_head0.png", "layer 0, head 0: W_V W_O")
    return maps.summary()


def run(args) -> int:
    from core.devices import check_device_available
    from core.outdir import REPORT, AtomicFolder, protected_paths
    from core.sources import open_source
    from core.stats.table import label_tensors

    check_device_available(args.device)
    replacing = replace_kwargs(args)
    source = open_source(args.source)
    labels = label_tensors(source)
    target = None
    protect = list(protected_paths(source))
    if args.target:
        from core.pipeline import plan_recipe
        from core.preview import PlanSource
        from core.recipe import Recipe

        plan, _ = plan_recipe(Recipe.load(args.target), source)
        target = PlanSource(plan, source)
        protect.append(Path(args.target))
    folder = AtomicFolder(args.out, kind=REPORT, protect=protect, **replacing)
    folder.check()  # a refusal must not wait for the tables
    with folder as tmp:
        count = _write_report(args, source, labels, target, tmp)
    print(f"wrote {count} figures and report.json to {folder.out_dir}")
    return 0


def _write_report(args, source, labels, target, out: Path) -> int:
    """Draw every figure and write report.json into ``out``; returns the number of figures."""
    import app.render as render
    from core import __version__
    from core.stats import compare_tensors, correlation_map, model_table, spectrum, tensor_stats

    report: dict = {
        "graft_report": REPORT_FORMAT,
        "graft_version": __version__,
        "source": source.display_name,
        "figures": [],
        "tables": {},
        "tensors": {},
    }

    def figure(path: Path) -> None:
        report["figures"].append(path.name)

    sides = [("source", source, None)] + ([("target", target, target.describe)] if target else [])
    for side, src, describe in sides:
        table = model_table(
            src, TABLE_METRICS, describe=describe, device=args.device, progress=TerminalProgress(f"{side} table")
        )
        report["tables"][side] = table.to_dict()
        if side == "source" and table.nonfinite:
            from app.cli.cmd_stats import nonfinite_line

            print(nonfinite_line(table.nonfinite))
        report["tables"][side]["suggestions"] = [
            {"layer": layer, "role": col, "tensor": name, "suggestions": list(s)}
            for layer, col, name, s in table.suggestions()
        ]
        for metric in TABLE_METRICS:
            path = out / f"table_{side}_{metric}.png"
            render.render_table_heatmap_png(
                table.values[metric], table.row_labels(), table.columns, path, f"{side}: {metric}"
            )
            figure(path)

    by_source = {}
    if target:
        for t in target.plan.tensors:
            by_source.setdefault(t.source_name, t.name)
    for name in _pick_tensors(source, labels, args.tensor):
        w = source.read(name)
        entry = {"stats": tensor_stats(w, name, device=args.device).to_dict()}
        slug = _slug(name)
        target_name = by_source.get(name)
        if target_name and target.tensors[target_name].is_float:
            t = target.read(target_name)
            comparison = compare_tensors(w, t, device=args.device)
            entry["target"] = target_name
            entry["comparison"] = {k: v for k, v in comparison.to_dict().items() if k != "histogram"}
            hist = comparison.histogram
            spectra = (
                {"source": spectrum(w).singular_values, "target": spectrum(t).singular_values} if t.ndim == 2 else None
            )
        else:
            hist = compare_tensors(w, w, device=args.device).histogram
            hist = {
                "edges": hist.edges,
                "series": {"source": hist.source},
                "fits": {k: v for k, v in hist.fits.items() if k.startswith("source")},
            }
            spectra = {"source": spectrum(w).singular_values} if w.ndim == 2 else None
        path = out / f"hist_{slug}.png"
        render.render_histogram_png(hist, path, name)
        figure(path)
        if w.ndim == 2:
            path = out / f"corr_rows_{slug}.png"
            render.render_heatmap_png(
                correlation_map(w, "rows", order="cluster", device=args.device).matrix,
                path,
                f"{name}: row correlations (clustered)",
            )
            figure(path)
            path = out / f"spectrum_{slug}.png"
            render.render_spectrum_png(spectra, path, f"{name}: singular values")
            figure(path)
        report["tensors"][name] = entry
    heads = _head_figures(source, labels, render, out)
    if heads is not None:
        report["heads_layer0"] = heads
        report["figures"] += ["heads_layer0_qk_head0.png", "heads_layer0_vo_head0.png"]
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return len(report["figures"])
