"""The plan as text: what ``graft transfer --dry-run`` prints (sizes, maps, the tensor table)."""

from __future__ import annotations

from core.plan import Plan
from core.sources.trust import shown  # tensor names come from the file: no raw escape sequences


def format_plan(plan: Plan, limit: int | None = None) -> str:
    """A readable text view: sizes, layer map, dimension maps and the tensor table."""
    cross = getattr(plan, "source_family", None)  # a target of another family: say what fed each tensor
    origin = f" (from a {cross} source)" if cross else ""
    lines = [f"family: {plan.family}{origin}   seed: {plan.seed}   target parameters: {plan.num_parameters:,}"]
    lines.append(
        "sizes:  "
        + "  ".join(
            f"{k} {plan.source_sizes[k]}→{v}"
            for k, v in plan.target_sizes.items()
            if k in plan.source_sizes and k not in ("one", "qkv", "two")
        )
    )
    lines.append("layers: " + "  ".join(f"{ln.target}←{ln.source}{'+new' if ln.new else ''}" for ln in plan.layer_map))
    lines.append("dims:")
    for key, m in plan.dims.items():
        if m.method == "fixed":
            continue
        preview = ",".join(map(str, m.index[:12])) + ("…" if len(m.index) > 12 else "")
        lines.append(f"  {key:<14} {m.source_size:>6}→{m.target_size:<6} {m.method:<10} [{preview}]")

    lines.append("tensors:")
    rows = plan.tensors if limit is None else plan.tensors[:limit]
    width = max((len(shown(t.name)) for t in rows), default=10)
    for t in rows:
        src = "×".join(map(str, t.source_shape))
        dst = "×".join(map(str, t.shape))
        flag = " (new)" if t.new_layer else ""
        if t.fallback_from:
            flag += f"  ← {t.fallback_from} cannot: {t.fallback_reason}"
        if cross:  # which source tensor (and role) fed it, before any fallback note
            fed = t.source_role or "none"
            flag = f"  from {fed}" + (f" [{shown(t.source_name)}]" if t.source_name else "") + flag
        lines.append(f"  {shown(t.name):<{width}}  {t.role:<9} {src:>12} → {dst:<12} {t.strategy}{flag}")
    if limit is not None and len(plan.tensors) > limit:
        lines.append(f"  … {len(plan.tensors) - limit} more")
    return "\n".join(lines)
