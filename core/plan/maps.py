"""The maps a plan draws once: which source layer feeds each target layer, and per named
dimension which source index feeds each target index (shared by every tensor on that dimension).

Per-layer dimensions (``ffn``, ``heads``, ``kv_heads``; an MoE layer's ``experts``) are drawn separately
for every target layer and keyed ``dim@<target layer>`` (an expert's ffn ``ffn@<layer>/<target expert>``); a query head is drawn within its kv group, and a rotary head_dim
keeps its pairs (i, i + d/2) together (with partial rotary, gpt_neox, only its first rotary_dims
channels rotate: pairs (i, i + rotary_dims/2), the rest drawn among the source's non-rotary channels).
"""

from __future__ import annotations

from core.architectures.spec import PER_LAYER_DIMS
from core.architectures.stages import stage_depths, stage_of
from core.errors import PlanError
from core.plan.model import DimMap, LayerLink
from core.strategies import base as strategies
from core.strategies.index import linspace_indices, most_used

#: named layer selections (besides an explicit list of source layers); by_influence needs calibration data.
LAYER_MAPS = ("first_n", "uniform", "last_n", "by_influence")

#: index strategies whose draw is a function of the sizes and scores alone (core.strategies.index):
#: they get :data:`NO_GENERATOR`, so a plan with them imports no torch for a generator (issue 17).
#: Every other strategy gets a seeded ``torch.Generator``, whatever it does with it.
DRAW_NOTHING_AT_RANDOM = frozenset({"first_n", "uniform", "cyclic", "by_activation"})


class _NoGenerator:
    """What a strategy of :data:`DRAW_NOTHING_AT_RANDOM` gets as ``gen``: torch refuses it as a
    generator, so a strategy that starts drawing at random fails loudly instead of using the global seed."""

    def __repr__(self) -> str:
        return "<no generator: remove the strategy from core.plan.maps.DRAW_NOTHING_AT_RANDOM>"


NO_GENERATOR = _NoGenerator()


def make_layer_map(n_source: int, n_target: int, method: str | list[int], layer_scores=None) -> list[LayerLink]:
    """Target layer j ← source layer; with more target layers, new blocks follow their source.

    ``by_influence`` keeps the Ñ layers with the highest Block Influence (ShortGPT: the least
    redundant), in order, ties to the earlier layer; ``layer_scores`` is that list (or a callable
    returning it, called only when layers are dropped).
    """
    if isinstance(method, list):
        if len(method) != n_target:
            raise PlanError(f"the explicit layer list has {len(method)} entries but the target has {n_target} layers")
        bad = [i for i in method if not 0 <= i < n_source]
        if bad:
            raise PlanError(f"layer(s) {bad} do not exist in the source (0…{n_source - 1})")
        return [LayerLink(j, i) for j, i in enumerate(method)]
    if n_target <= n_source:
        if method == "first_n":
            chosen = list(range(n_target))
        elif method == "uniform":
            chosen = linspace_indices(n_source, n_target)  # the same rounding as the uniform index map
        elif method == "last_n":
            chosen = list(range(n_source - n_target, n_source))
        elif method == "by_influence":
            chosen = _most_influential(n_source, n_target, layer_scores)
        else:
            raise PlanError(f"unknown layer selection {method!r}; use {', '.join(LAYER_MAPS)} or an explicit list")
        return [LayerLink(j, i) for j, i in enumerate(chosen)]
    # Growing depth: spread the new blocks evenly, each after the source block it copies.
    links: list[LayerLink] = []
    extra = n_target - n_source
    per = [extra // n_source + (1 if i < extra % n_source else 0) for i in range(n_source)]
    for i in range(n_source):
        links.append(LayerLink(len(links), i))
        for _ in range(per[i]):
            links.append(LayerLink(len(links), i, new=True))
    return links


def make_staged_layer_map(
    src: dict[str, int], tgt: dict[str, int], method: str | list[int], layer_scores=None
) -> list[LayerLink]:
    """A staged family's layer map (:mod:`core.architectures.stages`): :func:`make_layer_map` within
    every stage (its first_n, uniform … of the stage's blocks; new blocks inserted within the stage),
    numbered flat across the stages. An explicit list names flat source blocks, each of the target
    block's own stage."""
    src_depths, tgt_depths = stage_depths(src), stage_depths(tgt)
    if isinstance(method, list) and len(method) != sum(tgt_depths):
        raise PlanError(
            f"the explicit layer list has {len(method)} entries but the target has {sum(tgt_depths)} blocks"
        )
    links: list[LayerLink] = []
    s_start = t_start = 0
    for s, (n, m) in enumerate(zip(src_depths, tgt_depths)):
        if isinstance(method, list):
            chosen = method[t_start : t_start + m]
            bad = [i for i in chosen if not s_start <= i < s_start + n]
            if bad:
                raise PlanError(
                    f"block(s) {bad} are not in stage {s} of the source (blocks {s_start}…{s_start + n - 1}); "
                    "a target block copies a block of its own stage"
                )
            stage_method = [i - s_start for i in chosen]
        else:
            stage_method = method
        scores = None
        if layer_scores is not None:

            def scores(lo=s_start, hi=s_start + n):
                return list(layer_scores() if callable(layer_scores) else layer_scores)[lo:hi]

        for link in make_layer_map(n, m, stage_method, scores):
            links.append(LayerLink(t_start + link.target, s_start + link.source, link.new))
        s_start, t_start = s_start + n, t_start + m
    return links


def _most_influential(n_source: int, n_target: int, layer_scores) -> list[int]:
    if n_target == n_source:
        return list(range(n_source))
    if layer_scores is None:
        raise PlanError(
            "the by_influence layer map needs the source's Block Influence; plan through "
            "core.pipeline.plan_recipe, or pass layer_scores to make_plan"
        )
    bi = [float(x) for x in (layer_scores() if callable(layer_scores) else layer_scores)]
    if len(bi) != n_source:
        raise PlanError(
            f"Block Influence was measured for {len(bi)} layers, but the source has {n_source}; "
            "by_influence cannot choose layers for it, use first_n or uniform"
        )
    return sorted(sorted(range(n_source), key=lambda i: (-bi[i], i))[:n_target])


def _draw(strategy, params, n_source: int, n_target: int, seed: int, key: str, scores=None) -> list[int]:
    method = strategy.name
    if n_target > n_source and not strategy.can_grow:
        raise PlanError(f"index strategy {method!r} cannot grow {key} from {n_source} to {n_target}; use iid or cyclic")
    # Only a random draw needs a seeded torch.Generator: the others plan without importing torch.
    gen = NO_GENERATOR if method in DRAW_NOTHING_AT_RANDOM else strategies.generator(seed, "dim", key)
    idx = strategy.draw(params, n_source, n_target, gen=gen, scores=scores)
    if len(idx) != n_target or any(not 0 <= i < n_source for i in idx):
        raise PlanError(f"index strategy {method!r} returned an invalid map for {key}")
    return [int(i) for i in idx]


def _expert_maps(
    dims: dict, add, src: dict, tgt: dict, j: int, layer: int, method: str, *, params=None, score_fn=None
) -> None:
    """An MoE layer's maps: ``experts@j`` (target expert ← source expert), then each target
    expert's own ``ffn@j/e`` (experts are unrelated networks, so their neurons are drawn apart;
    a score-based index sees the layer's scores pooled over its experts), and ``shared_ffn@j``.
    One source expert (an upcycled dense model) is copied into every target expert. With the index
    parameter ``experts=usage`` the experts map follows the router's usage on calibration data
    (``score_fn("experts", layer)``, :func:`core.strategies.index.most_used`), whatever the index."""
    if src["experts"] == 1:
        dims[f"experts@{j}"] = DimMap(f"experts@{j}", 1, tgt["experts"], [0] * tgt["experts"], "copy")
    elif getattr(params, "experts", "same") == "usage" and src["experts"] != tgt["experts"]:
        if score_fn is None:
            raise PlanError(
                "experts=usage needs the routers' usage on calibration data; plan through core.pipeline.plan_recipe"
            )
        index = most_used(score_fn("experts", layer), src["experts"], tgt["experts"])
        dims[f"experts@{j}"] = DimMap(f"experts@{j}", src["experts"], tgt["experts"], index, "usage")
    else:
        add(f"experts@{j}", "experts", src["experts"], tgt["experts"], layer)
    for e in range(tgt["experts"]):
        add(f"ffn@{j}/{e}", "ffn", src["ffn"], tgt["ffn"], layer)
    if "shared_ffn" in src:
        add(f"shared_ffn@{j}", "shared_ffn", src["shared_ffn"], tgt["shared_ffn"], layer)


def make_dim_maps(
    spec,
    src: dict[str, int],
    tgt: dict[str, int],
    layer_map: list[LayerLink],
    strategy,
    params,
    seed: int,
    score_fn=None,
) -> dict[str, DimMap]:
    """One map per named dimension; per-layer dims keyed ``dim@<target layer>``.

    ``strategy`` is the index strategy (a registered object, or its name).
    """
    if isinstance(strategy, str):
        strategy = strategies.get(strategy)
    method = strategy.name
    dims: dict[str, DimMap] = {}
    scored = score_fn is not None and strategy.needs_scores

    def add(key: str, dim: str, n: int, m: int, source_layer: int | None):
        scores = score_fn(dim, source_layer) if scored else None
        dims[key] = DimMap(key, n, m, _draw(strategy, params, n, m, seed, key, scores), method)

    for dim in sorted(spec.resizable - PER_LAYER_DIMS):
        if dim not in src:
            continue
        if dim == "head_dim" and spec.rotary and src[dim] != tgt[dim]:
            # Only the first r channels rotate (all of them unless partial rotary, gpt_neox), in pairs (i, i + r/2).
            r, r_tgt = src.get("rotary_dims", src[dim]), tgt.get("rotary_dims", tgt[dim])
            s = score_fn(dim, None) if scored else None  # a rotary pair (i, i + r/2) scores s[i] + s[i + r/2]
            pairs = s[: r // 2] + s[r // 2 : r] if s is not None else None
            half = _draw(strategy, params, r // 2, r_tgt // 2, seed, "head_dim/2", pairs)
            half = sorted(half) if len(set(half)) == len(half) else half
            rest = []  # the channels that do not rotate, drawn among the source's
            if tgt[dim] > r_tgt:
                rest_scores = s[r:] if s is not None else None
                rest = [
                    r + i
                    for i in _draw(strategy, params, src[dim] - r, tgt[dim] - r_tgt, seed, "head_dim/pass", rest_scores)
                ]
            dims[dim] = DimMap(dim, src[dim], tgt[dim], half + [i + r // 2 for i in half] + rest, method)
        else:
            add(dim, dim, src[dim], tgt[dim], None)
    if not spec.layered:
        return dims
    for link in layer_map:
        j, layer = link.target, link.source
        if "stages" in src:  # a staged family's block: its stage's ffn only
            ffn = f"ffn.{stage_of(src, layer)[0]}"
            add(f"{ffn}@{j}", ffn, src[ffn], tgt[ffn], layer)
            continue
        if "experts" in src:
            _expert_maps(dims, add, src, tgt, j, layer, method, params=params, score_fn=score_fn)
        else:
            add(f"ffn@{j}", "ffn", src["ffn"], tgt["ffn"], layer)
        kv_key, h_key = f"kv_heads@{j}", f"heads@{j}"
        add(kv_key, "kv_heads", src["kv_heads"], tgt["kv_heads"], layer)
        r_src, r_tgt = src["heads"] // src["kv_heads"], tgt["heads"] // tgt["kv_heads"]
        heads: list[int] = []
        head_scores = score_fn("heads", layer) if scored else None
        for g, kv in enumerate(dims[kv_key].index):
            group = head_scores[kv * r_src : (kv + 1) * r_src] if head_scores is not None else None
            within = _draw(strategy, params, r_src, r_tgt, seed, f"{h_key}/group{g}", group)
            heads += [kv * r_src + o for o in within]
        dims[h_key] = DimMap(h_key, src["heads"], tgt["heads"], heads, method)
    return dims
