"""``make_plan``: source spec + target sizes + strategy choices → a :class:`~core.plan.Plan`.

The steps, in order: resolve the sizes (:mod:`core.plan.sizes`), refuse what the memory budget
cannot hold, draw the layer and dimension maps (:mod:`core.plan.maps`), build the tensor table
(:mod:`core.plan.tensors`), write the target config. No tensor data is read, except neuron scores
when an index strategy asks for them.
"""

from __future__ import annotations

from core.architectures import detect
from core.architectures.check import check_source
from core.budget import check_memory, estimate
from core.errors import PlanError
from core.plan.config_set import apply_overrides, split_overrides
from core.plan.maps import make_dim_maps, make_layer_map, make_staged_layer_map
from core.plan.model import DimMap, LayerLink, Plan, TargetSizes
from core.plan.sizes import growing_dims, resolve_sizes
from core.plan.tensors import (
    apply_fallbacks,
    check_roles,
    resolve_value_strategy,
    tensor_table,
    untie_for_growth,
)
from core.strategies import base as strategies
from core.strategies.growth import growth_exactness

GROWING_HINT = "growth (function-preserving), mean_field with i.i.d. sampling, or a distribution fit"


def make_plan(
    source,
    sizes: TargetSizes,
    *,
    values: dict | None = None,
    index: dict | None = None,
    layers: str | list[int] = "first_n",
    seed: int = 0,
    score_fn=None,
    layer_scores=None,
    overrides: dict | None = None,
    target_family: str | None = None,
) -> Plan:
    """Compute the plan of a transfer (no tensor data is read unless ``score_fn`` is used).

    Args:
        source: an opened :class:`core.sources.Source`.
        sizes: the target sizes asked for.
        values: value strategy per role prefix, e.g. ``{"default": {"method": "select"},
            "attn": {"method": "mimetic", "params": {...}}}``.
        index: ``{"method": "first_n", "params": {}}``; defaults to the default value
            strategy's preferred index strategy.
        layers: one of :data:`LAYER_MAPS` or an explicit list of source layers.
        seed: decides every random draw.
        score_fn: ``(dim, source_layer) -> Tensor[N]`` neuron scores, for score-based indexing.
        layer_scores: Block Influence per source layer (or a callable giving it), for ``by_influence``.
        overrides: target config fields (``--set``, the recipe's ``config``): those of a target size
            join ``sizes``, the others are written into the target config (:mod:`core.plan.config_set`).
        target_family: a family other than the source's for the target (:mod:`core.plan.cross`); None or
            the source's own family plans as usual.

    Raises:
        PlanError: impossible sizes, or a strategy that cannot produce this target.
    """
    values = values or {"default": {"method": "select"}}
    chosen = Chosen()  # every strategy this plan uses, each asked of the registry once
    default_method, _ = resolve_value_strategy(values, "__default__")
    for choice in values.values():
        strategies.make_params(choice["method"], choice.get("params"))  # validates names/params
    index = index or {"method": chosen[default_method].default_index, "params": {}}
    index_params = strategies.make_params(index["method"], index.get("params"))

    spec, config = detect(source)
    check_source(source, spec, config)
    if target_family is not None and target_family != spec.family:
        from core.plan.cross import make_cross_plan

        return make_cross_plan(
            source, spec, config, target_family, sizes, values=values, index=index,
            index_strategy=chosen[index["method"]], index_params=index_params, layers=layers, seed=seed,
            score_fn=score_fn, layer_scores=layer_scores, overrides=overrides or {}, chosen=chosen,
        )  # fmt: skip
    src = spec.sizes(config)
    sizes, extra = split_overrides(spec, sizes, overrides or {})
    tgt = resolve_sizes(spec, src, sizes, extra)
    check_memory(estimate(spec, source, tgt))  # before any map or table is built for absurd sizes
    # More experts are copies of experts (any strategy copies through the experts map; see core.plan.maps).
    grows = growing_dims(src, tgt, (spec.resizable - {"experts"}) | {"layers"})
    if grows:
        blocked = sorted({c["method"] for c in values.values() if not chosen[c["method"]].can_grow})
        if blocked:
            what = ", ".join(f"{d} {src[d]}→{tgt[d]}" for d in grows)
            raise PlanError(
                f"strategy {', '.join(blocked)} can only shrink, but the target is larger ({what}); use {GROWING_HINT}"
            )

    layer_map = (
        (
            make_staged_layer_map(src, tgt, layers, layer_scores)
            if "stages" in src
            else make_layer_map(src["layers"], tgt["layers"], layers, layer_scores)
        )
        if spec.layered
        else [LayerLink(j, j) for j in range(src["layers"])]
    )
    dims = make_dim_maps(spec, src, tgt, layer_map, chosen[index["method"]], index_params, seed, score_fn)
    for fixed in ("qkv", "two"):
        if fixed in src:
            dims.setdefault(fixed, DimMap(fixed, src[fixed], src[fixed], list(range(src[fixed])), "fixed"))

    matched = spec.ensure_matches(list(source.tensors))
    tensors = tensor_table(source, spec, matched, layer_map, dims, values, tgt)
    untie = untie_for_growth(spec, config, values, src, tgt, tensors, matched)
    fallback_notes = apply_fallbacks(values, tensors, chosen, grows=bool(grows))
    check_roles(values, tensors, spec, chosen)
    if any(link.new for link in layer_map):
        blocked = sorted({t.strategy for t in tensors if t.new_layer and not chosen[t.strategy].can_grow})
        if blocked:
            raise PlanError(f"strategy {', '.join(blocked)} cannot fill inserted layers; use {GROWING_HINT}")

    plan = Plan(
        family=spec.family,
        seed=seed,
        source_sizes=src,
        target_sizes=tgt,
        target_config=apply_overrides(
            spec, config, _target_config(spec, config, src, tgt, layer_map, untie), _carried(matched), tgt, extra
        ),
        layer_map=layer_map,
        dims=dims,
        tensors=tensors,
        index=index,
        values=values,
    )
    plan.warnings = fallback_notes + growth_exactness(
        plan, spec
    )  # growth raises PlanError where it cannot keep the function
    plan.warnings += spec.plan_warnings(plan)
    return plan


def _carried(matched: dict) -> set[str]:
    """The named dimensions the source's tensors carry (``vocab``, ``pos`` …)."""
    return {dim for m in matched.values() for axis in m.rule.axes for dim in axis}


class Chosen(dict):
    """Strategy name → the registered strategy, looked up on first use (once per plan)."""

    def __missing__(self, name: str):
        self[name] = strategies.get(name)
        return self[name]


def _target_config(spec, config: dict, src: dict, tgt: dict, layer_map: list[LayerLink], untie: bool) -> dict:
    """The target's config.json: the source's with the new sizes; per-layer lists follow the layer map."""
    target_config = spec.target_config(config, tgt)
    if not spec.layered or "stages" in src:  # a staged family's lists are per stage (spec.target_config)
        return target_config
    if untie:
        target_config[spec.tied_field] = False
    # Per-layer config lists (Qwen2's layer_types, …) follow the layer map.
    for key, value in config.items():
        if isinstance(value, list) and len(value) == src["layers"] and key != "architectures":
            target_config[key] = [value[link.source] for link in layer_map]
    return target_config
