"""A target of another family: a bert source filling a llama-shaped model (the distribution-transfer seed).

The target's tensors come from the target family's own model for the target config (built on the
``meta`` device: names and shapes, no memory), matched by the target family's spec; never from the
source's names. Each target tensor is then fed by the source tensor of the same role in the source
layer the layer map names, with the same named dimensions on its axes (a source's kv heads are its
heads). Where several source tensors fit, the k-th feeds the k-th: a block's norms map by position
(llama's ``input_layernorm`` ← bert's ``attention.output.LayerNorm``, ``post_attention_layernorm`` ←
``output.LayerNorm``), and so do global norms before and after the blocks. What the source lacks:

* a role in :data:`NEAREST` takes the nearest role's tensor: ``mlp.gate`` ← ``mlp.up``'s statistics
  (a copying strategy such as ``select`` falls back to ``distribution`` fitted to ``mlp.up``, stated),
  an LM head ← the token embedding (the source ties its head to it, or has none: the tied start);
* anything else (a final norm, position embeddings the target has and the source lacks) gets the
  target family's default init (``baseline``), stated in the plan's warnings and table.

Source tensors the target has no place for (bert's position and token-type embeddings, its
embedding LayerNorm) are not used. The target config is the target family's transformers config
class defaults plus the sizes, the source's vocabulary and positions, and token ids read from the
source's tokenizer files; the export copies those files, so the target keeps the source's tokenizer.
``growth`` is refused: function preservation across families is meaningless.
"""

from __future__ import annotations

import math
from dataclasses import replace

from core.architectures.spec import axis_atoms, axis_parts, is_concat
from core.errors import PlanError
from core.plan.cross_target import SHARED_SIZES, cross_sizes, target_config, target_spec, target_tensors
from core.plan.maps import make_dim_maps, make_layer_map
from core.plan.model import TensorPlan
from core.plan.sizes import growing_dims

#: target role → the source role that stands in for it when the source has none.
NEAREST = {"mlp.gate": "mlp.up", "head": "embed"}
#: roles whose stand-in gives values (the tied head *is* the embedding), not only statistics.
VALUES_FROM_NEAREST = frozenset({"head"})
#: strategies that use only a source tensor's statistics (they may fill from a stand-in of the same layout).
STATISTICAL = frozenset({"distribution", "covariance"})
#: strategies that read no source tensor at all.
SOURCELESS = frozenset({"mimetic", "baseline"})
#: what a copying strategy falls back to where the source has only a stand-in's statistics.
STATISTICS_FALLBACK = "distribution"
#: a dimension another family names differently: the source's kv heads are its heads.
SAME_DIM = {"kv_heads": "heads"}


def _side(spec, m) -> str:
    """Where a global tensor sits: before the blocks (``head``) or after them (``tail``)."""
    order = {r: i for i, r in enumerate(spec.rules)}
    first = min((i for r, i in order.items() if "{L}" in r.pattern), default=0)
    return "head" if order[m.rule] < first else "tail"


def _signature(rule, leaf: str) -> tuple:
    return (leaf, tuple(tuple(SAME_DIM.get(d, d) for d in axis_atoms(axis)) for axis in rule.axes))


def _unordered(sig: tuple) -> tuple:
    return (sig[0], "any order", tuple(sorted(sig[1])))


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def match_sources(spec, matched_src: dict, tgt_spec, targets: list, layer_map) -> dict:
    """Target name → ``(source MatchedTensor or None, source role used, note)``.

    Same role, same place (source layer through the layer map, or the same side of the blocks),
    same named dimensions and the same leaf (weight/bias); the k-th candidate feeds the k-th target
    tensor of its kind. A role the source lacks takes its :data:`NEAREST` role's tensor.
    """
    src_groups: dict[tuple, list] = {}
    for m in sorted(matched_src.values(), key=lambda m: (spec.rules.index(m.rule), m.name)):
        if m.rule.kind != "param":
            continue
        place = m.layer if m.layer is not None else _side(spec, m)
        sig = _signature(m.rule, _leaf(m.name))
        src_groups.setdefault((place, m.rule.role, sig), []).append(m)
        # stored in another axis order (gpt2's Conv1D is (in, out)): found too, but only its statistics are used
        src_groups.setdefault((place, m.rule.role, _unordered(sig)), []).append(m)
    seen: dict[tuple, int] = {}
    out = {}
    for name, m in targets:
        if m.rule.kind != "param":
            out[name] = (None, None, "")
            continue
        place = layer_map[m.layer].source if m.layer is not None else _side(tgt_spec, m)
        sig = _signature(m.rule, _leaf(name))
        key = (place, m.rule.role, sig)
        k = seen.get(key, 0)
        seen[key] = k + 1
        found, note = src_groups.get(key, []), ""
        if not found:
            found, note = src_groups.get((place, m.rule.role, _unordered(sig)), []), "reordered"
        if k < len(found):
            out[name] = (found[k], m.rule.role, note)
            continue
        near = NEAREST.get(m.rule.role)
        places = [place] if m.layer is not None else ["head", "tail"]  # a tied head reads the input embedding
        stand_in = [s for p in places for s in src_groups.get((p, near, sig), [])] if near else []
        if stand_in:
            kind = "values" if m.rule.role in VALUES_FROM_NEAREST else "statistics"
            out[name] = (stand_in[min(k, len(stand_in) - 1)], near, kind)
        else:
            where = "in its blocks" if m.layer is not None else f"{'before' if place == 'head' else 'after'} its blocks"
            out[name] = (None, None, where)
    return out


def source_dtype(source, matched_src: dict) -> str:
    """The source's most common floating-point dtype (the dtype of tensors it has no counterpart for)."""
    counts: dict[str, int] = {}
    for name in matched_src:
        dtype = source.tensors[name].dtype
        if dtype.startswith(("F", "BF")):
            counts[dtype] = counts.get(dtype, 0) + 1
    return max(sorted(counts), key=lambda d: counts[d]) if counts else "F32"


def tensor_rows(source, spec, tgt_spec, matched_src, targets, sources, layer_map, dims, values, resolve) -> list:
    """One :class:`TensorPlan` per target tensor (``resolve(values, role)`` picks its strategy)."""
    from core.plan.tensors import _axis_key

    links = {link.target: link for link in layer_map}
    dtype = source_dtype(source, matched_src)
    rows = []
    for name, m, shape in targets:
        j = m.layer
        axes = []
        for dims_on_axis in m.rule.axes:
            parts = [[_axis_key(d, j) for d in part] for part in axis_parts(dims_on_axis)]
            axes.append(parts if is_concat(dims_on_axis) else parts[0])
        src_m, src_role, note = sources[name]
        if src_m is None:
            src_role, note = None, f"none {note}".strip()
        method, params = ("select", {}) if m.rule.kind == "buffer" else resolve(values, m.rule.role)
        row = TensorPlan(
            name=name,
            source_name=src_m.name if src_m else None,
            role=m.rule.role,
            kind=m.rule.kind,
            layer=j,
            source_layer=src_m.layer if src_m else None,
            axes=axes,
            fan_in=m.rule.fan_in,
            shape=list(shape),
            source_shape=list(source.tensors[src_m.name].shape) if src_m else list(shape),
            dtype=source.tensors[src_m.name].dtype if src_m else dtype,
            strategy=method,
            params=params,
            new_layer=bool(j is not None and links[j].new),
            writes_residual=m.rule.writes_residual,
            source_role=(src_role if note in ("", "reordered") else f"{src_role} {note}") if src_m else note,
        )
        if src_m is not None and (note == "reordered" or not _fits(row, dims)):
            row.source_role = f"{src_role} statistics (another layout: {'×'.join(map(str, row.source_shape))})"
        rows.append(row)
    return rows


def _fits(row: TensorPlan, dims: dict) -> bool:
    """Whether the source tensor's axes are the target's named dimensions at their source sizes (so it can be
    gathered through the maps), rather than another layout (gpt2's transposed Conv1D, a fused qkv)."""
    if len(row.source_shape) != len(row.shape):
        return False
    for a, axis in enumerate(row.axes):
        size = 0
        for part in axis_parts(axis):
            if all(dims.get(k) is None for k in part):
                size = None
                break
            size += math.prod(dims[k].source_size for k in part if k in dims)
        if (row.shape[a] if size is None else size) != row.source_shape[a]:
            return False
    return True


def settle(rows: list, values: dict, spec, tgt_spec, explicit) -> list[str]:
    """Give every row the source can only partly feed its stated strategy; returns the warnings.

    No source tensor: ``baseline`` (the target family's default init). A stand-in's statistics (or a
    source tensor of another layout): a copying strategy falls back to :data:`STATISTICS_FALLBACK`
    (a strategy the user set for that role explicitly is refused instead).
    """
    baseline, statistics = [], {}
    for t in rows:
        if t.kind == "buffer":
            if t.source_name is None:
                t.strategy, t.params = "baseline", {}
            continue
        if t.source_name is None:
            if t.strategy not in SOURCELESS:
                if explicit(values, t.role):
                    raise PlanError(
                        f"the {spec.family} source has no {t.role} for {t.name}, so {t.strategy} cannot fill it; "
                        f"give {t.role} mimetic or baseline, or leave it to the default"
                    )
                where = (t.source_role or "none").removeprefix("none").strip()
                t.fallback_from, t.fallback_reason = (
                    t.strategy,
                    f"the {spec.family} source has no {t.role} {where}".strip(),
                )
                t.strategy, t.params = "baseline", {}
            t.source_role = f"{t.source_role or 'none'}: {tgt_spec.family} default init"
            baseline.append(t.name)
            continue
        partial = "statistics" in (t.source_role or "")
        if partial and t.strategy not in STATISTICAL | SOURCELESS:
            if explicit(values, t.role):
                raise PlanError(
                    f"{t.strategy} copies values, but the {spec.family} source has only {t.source_role} for "
                    f"{t.name}; give {t.role} distribution or covariance, or leave it to the default"
                )
            t.fallback_from, t.fallback_reason = t.strategy, f"only {t.source_role} to copy from"
            t.strategy, t.params = STATISTICS_FALLBACK, {"scope": "tensor"}
            statistics.setdefault(t.role, []).append(t.name)
        elif partial and t.strategy == "covariance" and "layout" in t.source_role:
            t.strategy, t.params = STATISTICS_FALLBACK, {"scope": "tensor"}
            statistics.setdefault(t.role, []).append(t.name)
    notes = []
    for role, names in statistics.items():
        stand_in = next(t.source_role for t in rows if t.name == names[0])
        notes.append(
            f"{role} ← {stand_in}: the {spec.family} source has no {role} to copy in this layout, so {len(names)} tensor(s) "
            f"({_shown(names)}) are drawn by {STATISTICS_FALLBACK} from those statistics"
        )
    if baseline:
        notes.append(
            f"{len(baseline)} tensor(s) have no {spec.family} counterpart and get the {tgt_spec.family} default "
            f"init ({_shown(baseline)})"
        )
    return notes


def _in_block(name: str, layer: int) -> str:
    """A block tensor's module path inside its block (``attention.output.LayerNorm``)."""
    return name.partition(f".{layer}.")[2].rsplit(".", 1)[0]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def unused_sources(spec, matched_src: dict, rows: list) -> list[str]:
    """Source tensors (params) no target tensor reads: bert's position and token-type embeddings …"""
    used = {t.source_name for t in rows}
    return [n for n, m in matched_src.items() if m.rule.kind == "param" and n not in used and m.layer in (None, 0)]


def make_cross_plan(
    source,
    spec,
    config: dict,
    family: str,
    sizes,
    *,
    values: dict,
    index: dict,
    index_strategy,
    index_params,
    layers,
    seed: int,
    score_fn,
    layer_scores,
    overrides: dict,
    chosen,
):
    """The plan of a transfer onto a target of family ``family`` (see the module docstring).

    Raises:
        PlanError: an unknown or unrelated family, growth, impossible sizes, or a copying strategy the
            user set for a role the source can only feed with statistics.
    """
    from core.plan.config_set import apply_overrides, split_overrides
    from core.plan.make import GROWING_HINT
    from core.plan.model import DimMap, Plan
    from core.plan.tensors import _explicit, apply_fallbacks, check_roles, resolve_value_strategy

    tgt_spec = target_spec(family, spec)
    methods = sorted({c["method"] for c in values.values()})
    if "growth" in methods:
        raise PlanError(
            f"growth keeps the source's function, which a {tgt_spec.family} model cannot compute from a "
            f"{spec.family} one; use select, distribution, covariance or mimetic across families"
        )
    src = spec.sizes(config)
    sizes, extra = split_overrides(tgt_spec, sizes, overrides or {})
    tgt = cross_sizes(spec, tgt_spec, src, sizes)
    grows = growing_dims(src, tgt, set(SHARED_SIZES))
    if grows:
        blocked = sorted(m for m in methods if not chosen[m].can_grow)
        if blocked:
            what = ", ".join(f"{d} {src[d]}→{tgt[d]}" for d in grows)
            raise PlanError(
                f"strategy {', '.join(blocked)} can only shrink, but the target is larger ({what}); use {GROWING_HINT}"
            )
    base = target_config(source, spec, config, tgt_spec, tgt)
    tgt_all = {**tgt_spec.sizes(base), **tgt}
    shared_src = {k: src[k] for k in SHARED_SIZES if k in src}
    layer_map = make_layer_map(src["layers"], tgt["layers"], layers, layer_scores)
    map_spec = replace(tgt_spec, rotary=spec.rotary and tgt_spec.rotary)
    dims = make_dim_maps(map_spec, shared_src, tgt_all, layer_map, index_strategy, index_params, seed, score_fn)
    for fixed in ("qkv", "two"):
        if fixed in tgt_all:
            dims.setdefault(fixed, DimMap(fixed, tgt_all[fixed], tgt_all[fixed], list(range(tgt_all[fixed])), "fixed"))

    matched_src = spec.ensure_matches(list(source.tensors))
    targets = []
    for name, shape in target_tensors(tgt_spec, base):
        m = tgt_spec.match(name)
        if m is None:
            raise PlanError(f"the {tgt_spec.family} model holds {name}, which its spec does not describe")
        if m.rule.kind != "drop":
            targets.append((name, m, shape))
    sources = match_sources(spec, matched_src, tgt_spec, [(n, m) for n, m, _ in targets], layer_map)
    rows = tensor_rows(
        source, spec, tgt_spec, matched_src, targets, sources, layer_map, dims, values, resolve_value_strategy
    )
    notes = apply_fallbacks(values, rows, chosen, grows=bool(grows))
    notes += settle(rows, values, spec, tgt_spec, _explicit)
    check_roles(values, rows, tgt_spec, chosen)
    if any(link.new for link in layer_map):
        blocked = sorted({t.strategy for t in rows if t.new_layer and not chosen[t.strategy].can_grow})
        if blocked:
            raise PlanError(f"strategy {', '.join(blocked)} cannot fill inserted layers; use {GROWING_HINT}")
    norms = [t for t in rows if t.role == "norm" and t.layer == 0 and t.source_name and t.name.endswith("weight")]
    notes.insert(
        0,
        f"{spec.family} → {tgt_spec.family}: roles map by name and layer; a block's k-th norm takes the source "
        f"block's k-th ("
        + ", ".join(f"{_in_block(t.name, 0)} ← {_in_block(t.source_name, t.source_layer)}" for t in norms)
        + ")",
    )
    unused = unused_sources(spec, matched_src, rows)
    if unused:
        notes.append(f"not used by a {tgt_spec.family} model: {_shown(unused)}")
    carried = {dim for m in matched_src.values() for axis in m.rule.axes for dim in axis_atoms(axis)}
    plan = Plan(
        family=tgt_spec.family,
        seed=seed,
        source_sizes=src,
        target_sizes=tgt_all,
        target_config=apply_overrides(tgt_spec, base, dict(base), carried, tgt_all, extra),
        layer_map=layer_map,
        dims=dims,
        tensors=rows,
        index=index,
        values=values,
        warnings=notes,
        source_family=spec.family,
    )
    return plan
