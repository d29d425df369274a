"""The plan: a pure, inspectable description of a transfer.

From a source spec, target sizes and strategy choices it computes — without reading tensor data
(except neuron scores when an index strategy asks for them) —

* a **layer map** (target layer j ← source layer l, or a new block when growing depth),
* one **dimension map** per named dimension (target index → source index), drawn once and
  shared by every tensor on that dimension,
* per tensor: its source tensor, target shape, role, and the strategy that fills it.

A plan is data: it serialises into the recipe, prints as a table, and materialising one tensor
from it (the live preview) costs one slice read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from core.architectures import detect
from core.architectures.check import check_source
from core.architectures.spec import PER_LAYER_DIMS
from core.budget import check_memory, estimate
from core.errors import PlanError
from core.strategies import base as strategies
from core.strategies.growth import growth_exactness
from core.strategies.index import linspace_indices

GROWING_HINT = "growth (function-preserving), mean_field with i.i.d. sampling, or a distribution fit"
#: named layer selections (besides an explicit list of source layers); by_influence needs calibration data.
LAYER_MAPS = ("first_n", "uniform", "last_n", "by_influence")


@dataclass(frozen=True)
class TargetSizes:
    """What the user asks for; None keeps the source's value (or derives it)."""

    layers: int | None = None
    hidden: int | None = None
    ffn: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> TargetSizes:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PlanError(f"unknown target size(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(known))}")
        for key, value in data.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise PlanError(f"target {key} must be a whole number, not {value!r}")
        return cls(**data)


@dataclass
class DimMap:
    """Target index → source index for one named dimension (``key`` like ``ffn@3``)."""

    key: str
    source_size: int
    target_size: int
    index: list[int]
    method: str

    @property
    def is_identity(self) -> bool:
        return self.source_size == self.target_size and self.index == list(range(self.source_size))

    def counts(self) -> list[int]:
        """How many target indices copy each source index (for function-preserving growth)."""
        c = [0] * self.source_size
        for i in self.index:
            c[i] += 1
        return c


@dataclass
class TensorPlan:
    """One target tensor: where it comes from and how it is filled."""

    name: str
    source_name: str | None
    role: str
    kind: str
    layer: int | None
    source_layer: int | None
    axes: list[list[str]]  # resolved dim keys per axis, e.g. [["heads@2", "head_dim"], ["hidden"]]
    fan_in: int | None
    shape: list[int]
    source_shape: list[int]
    dtype: str
    strategy: str
    params: dict
    new_layer: bool = False
    writes_residual: bool = False
    #: the model-wide strategy that could not fill this tensor, and why (``strategy`` is its fallback).
    fallback_from: str | None = None
    fallback_reason: str | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class LayerLink:
    target: int
    source: int
    new: bool = False


@dataclass
class Plan:
    family: str
    seed: int
    source_sizes: dict[str, int]
    target_sizes: dict[str, int]
    target_config: dict
    layer_map: list[LayerLink]
    dims: dict[str, DimMap]
    tensors: list[TensorPlan]
    index: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    #: sentences about what this plan cannot do exactly (shown by the CLI; e.g. inexact growth).
    warnings: list[str] = field(default_factory=list)

    # -- lookups ----------------------------------------------------------------------------
    def tensor(self, name: str) -> TensorPlan:
        for t in self.tensors:
            if t.name == name:
                return t
        raise PlanError(f"the plan has no target tensor named {name!r}")

    def dim_size(self, key: str, source: bool) -> int | None:
        m = self.dims.get(key)
        if m is None:
            return None
        return m.source_size if source else m.target_size

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors if t.kind == "param")

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        data = dict(data)
        data["layer_map"] = [LayerLink(**x) for x in data["layer_map"]]
        data["dims"] = {k: DimMap(**v) for k, v in data["dims"].items()}
        data["tensors"] = [TensorPlan(**t) for t in data["tensors"]]
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# target sizes
# ---------------------------------------------------------------------------------------------
def resolve_sizes(spec, src: dict[str, int], want: TargetSizes) -> dict[str, int]:
    """Fill in derived sizes and validate; every violation is one clear sentence."""
    tgt = dict(src)
    asked = want.to_dict()
    if spec.family == "mlp":
        bad = set(asked) - {"hidden", "layers"}
        if bad:
            raise PlanError(f"the generic MLP only takes --hidden (its hidden widths); not {', '.join(sorted(bad))}")
        if "layers" in asked and asked["layers"] != src["layers"]:
            raise PlanError(f"the generic MLP keeps its depth ({src['layers']} Linear layers); change --hidden only")
        for d in spec.resizable:
            tgt[d] = asked.get("hidden", src[d])
        _check_positive(tgt)
        return tgt
    tgt.update({k: v for k, v in asked.items()})
    _check_positive(tgt)
    if "heads" in asked and "kv_heads" not in asked:
        group = src["heads"] // src["kv_heads"]
        tgt["kv_heads"] = tgt["heads"] if group == 1 else (
            src["kv_heads"] if tgt["heads"] % src["kv_heads"] == 0 else max(tgt["heads"] // group, 1))
    if not spec.explicit_head_dim:  # llama-style configs keep head_dim; hidden need not be heads × head_dim
        if "head_dim" in asked:
            raise PlanError(f"{spec.family} derives head_dim from hidden/heads; set --hidden and --heads instead of --head-dim")
        if tgt["hidden"] % tgt["heads"]:
            hint = ", ".join(map(str, _divisors_near(tgt["hidden"], tgt["heads"])))
            raise PlanError(f"hidden size {tgt['hidden']} is not divisible by {tgt['heads']} heads; choose heads that divide it (e.g. {hint})")
        tgt["head_dim"] = tgt["hidden"] // tgt["heads"]
    if tgt["heads"] % tgt["kv_heads"]:
        raise PlanError(f"{tgt['heads']} query heads cannot be split into {tgt['kv_heads']} kv groups; choose kv heads that divide the heads")
    if spec.rotary and tgt["head_dim"] % 2:
        raise PlanError(f"head_dim {tgt['head_dim']} is odd; rotary embeddings need an even head_dim")
    return tgt


def _divisors_near(n: int, near: int, count: int = 4, max_steps: int = 100_000) -> list[int]:
    """Up to ``count`` divisors of ``n`` closest to ``near`` (a bounded search: sizes may be absurd)."""
    found: set[int] = set()
    for step in range(min(max_steps, max(near, n))):
        for h in (near - step, near + step):
            if 1 <= h <= n and n % h == 0:
                found.add(h)
        if len(found) >= count:
            break
    return sorted(found)[:count] or [1]


def _check_positive(sizes: dict[str, int]) -> None:
    for k, v in sizes.items():
        if v <= 0:
            raise PlanError(f"target {k} must be a positive number, not {v}")


def growing_dims(src: dict[str, int], tgt: dict[str, int], names) -> list[str]:
    return [d for d in sorted(names) if d in src and tgt.get(d, src[d]) > src[d]]


# ---------------------------------------------------------------------------------------------
# maps
# ---------------------------------------------------------------------------------------------
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


def _most_influential(n_source: int, n_target: int, layer_scores) -> list[int]:
    if n_target == n_source:
        return list(range(n_source))
    if layer_scores is None:
        raise PlanError("the by_influence layer map needs the source's Block Influence; plan through "
                        "core.pipeline.plan_recipe, or pass layer_scores to make_plan")
    bi = [float(x) for x in (layer_scores() if callable(layer_scores) else layer_scores)]
    if len(bi) != n_source:
        raise PlanError(f"Block Influence was measured for {len(bi)} layers, but the source has {n_source}; "
                        "by_influence cannot choose layers for it, use first_n or uniform")
    return sorted(sorted(range(n_source), key=lambda i: (-bi[i], i))[:n_target])


def _draw(method: str, params, n_source: int, n_target: int, seed: int, key: str, scores=None) -> list[int]:
    strategy = strategies.get(method)
    if n_target > n_source and not strategy.can_grow:
        raise PlanError(f"index strategy {method!r} cannot grow {key} from {n_source} to {n_target}; use iid or cyclic")
    gen = strategies.generator(seed, "dim", key)
    idx = strategy.draw(params, n_source, n_target, gen=gen, scores=scores)
    if len(idx) != n_target or any(not 0 <= i < n_source for i in idx):
        raise PlanError(f"index strategy {method!r} returned an invalid map for {key}")
    return [int(i) for i in idx]


def make_dim_maps(spec, src: dict[str, int], tgt: dict[str, int], layer_map: list[LayerLink],
                  method: str, params, seed: int, score_fn=None) -> dict[str, DimMap]:
    """One map per named dimension; per-layer dims keyed ``dim@<target layer>``."""
    dims: dict[str, DimMap] = {}
    scored = score_fn is not None and strategies.get(method).needs_scores

    def add(key: str, dim: str, n: int, m: int, source_layer: int | None):
        scores = score_fn(dim, source_layer) if scored else None
        dims[key] = DimMap(key, n, m, _draw(method, params, n, m, seed, key, scores), method)

    for dim in sorted(spec.resizable - PER_LAYER_DIMS):
        if dim not in src:
            continue
        if dim == "head_dim" and spec.rotary and src[dim] != tgt[dim]:
            s = score_fn(dim, None) if scored else None  # a rotary pair (i, i + d/2) scores s[i] + s[i + d/2]
            pairs = s[: src[dim] // 2] + s[src[dim] // 2:] if s is not None else None
            half = _draw(method, params, src[dim] // 2, tgt[dim] // 2, seed, "head_dim/2", pairs)
            half = sorted(half) if len(set(half)) == len(half) else half
            dims[dim] = DimMap(dim, src[dim], tgt[dim], half + [i + src[dim] // 2 for i in half], method)
        else:
            add(dim, dim, src[dim], tgt[dim], None)
    if spec.family == "mlp":
        return dims
    for link in layer_map:
        j, layer = link.target, link.source
        add(f"ffn@{j}", "ffn", src["ffn"], tgt["ffn"], layer)
        kv_key, h_key = f"kv_heads@{j}", f"heads@{j}"
        add(kv_key, "kv_heads", src["kv_heads"], tgt["kv_heads"], layer)
        r_src, r_tgt = src["heads"] // src["kv_heads"], tgt["heads"] // tgt["kv_heads"]
        heads: list[int] = []
        head_scores = score_fn("heads", layer) if scored else None
        for g, kv in enumerate(dims[kv_key].index):
            group = head_scores[kv * r_src:(kv + 1) * r_src] if head_scores is not None else None
            within = _draw(method, params, r_src, r_tgt, seed, f"{h_key}/group{g}", group)
            heads += [kv * r_src + o for o in within]
        dims[h_key] = DimMap(h_key, src["heads"], tgt["heads"], heads, method)
    return dims


def composite_index(plan: Plan, axis: list[str]):
    """Flat source indices for every target position of one (composite) axis, or None if identity.

    For an axis (d1, …, dk) the flat source index of target position (t1, …, tk) is
    Σ m_i[t_i] · Π_{j>i} N_j — row-major, like the tensor's memory layout.
    """
    import torch

    maps = [plan.dims.get(k) for k in axis]
    if all(m is None or m.is_identity for m in maps):
        return None
    flat = torch.zeros(1, dtype=torch.long)
    for key, m in zip(axis, maps):
        if m is None:
            raise PlanError(f"dimension {key} has no map but shares an axis with resized ones")
        flat = flat[:, None] * m.source_size + torch.tensor(m.index, dtype=torch.long)[None, :]
        flat = flat.reshape(-1)
    return flat


# ---------------------------------------------------------------------------------------------
# the tensor table and the whole plan
# ---------------------------------------------------------------------------------------------
def resolve_value_strategy(values: dict, role: str) -> tuple[str, dict]:
    """The most specific role prefix wins: ``attn.q`` > ``attn`` > ``default``."""
    best, best_len = values.get("default", {"method": "select"}), -1
    for key, choice in values.items():
        if key != "default" and (role == key or role.startswith(key + ".")) and len(key) > best_len:
            best, best_len = choice, len(key)
    return best["method"], dict(best.get("params", {}))


def _axis_key(dim: str, layer: int | None) -> str:
    return f"{dim}@{layer}" if dim in PER_LAYER_DIMS and layer is not None else dim


def _check_roles(values: dict, tensors: list[TensorPlan], spec) -> None:
    """Every role prefix of the recipe names some tensor, and every strategy accepts the roles it got.

    Raises:
        PlanError: an override for a role this model does not have (a typo, or another family's
            role name), or a strategy given a role it cannot fill (mimetic outside attention).
    """
    # The spec's roles, not only the file's: a tied head has no tensor but its role still counts.
    known = list(dict.fromkeys([t.role for t in tensors if t.kind != "buffer"]
                               + [r.role for r in spec.rules if r.kind not in ("buffer", "drop")]))
    for key in values:
        if key != "default" and not any(role == key or role.startswith(key + ".") for role in known):
            raise PlanError(f"no tensor of this {spec.family} model has role {key!r}; override one of its roles "
                            f"({', '.join(known)}) or a prefix of one")
    for t in tensors:
        accepted = strategies.get(t.strategy).roles
        if t.kind != "buffer" and accepted is not None and t.role not in accepted:
            raise PlanError(f"{t.strategy} only fills roles {', '.join(accepted)}, but it was given {t.role} "
                                f"({t.name}); give {t.role} another strategy, or set {t.strategy} for attn only")


def make_plan(source, sizes: TargetSizes, *, values: dict | None = None, index: dict | None = None,
              layers: str | list[int] = "first_n", seed: int = 0, score_fn=None, layer_scores=None) -> Plan:
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

    Raises:
        PlanError: impossible sizes, or a strategy that cannot produce this target.
    """
    values = values or {"default": {"method": "select"}}
    default_method, _ = resolve_value_strategy(values, "__default__")
    for choice in values.values():
        strategies.make_params(choice["method"], choice.get("params"))  # validates names/params
    index = index or {"method": strategies.get(default_method).default_index, "params": {}}
    index_params = strategies.make_params(index["method"], index.get("params"))

    spec, config = detect(source)
    check_source(source, spec, config)
    src = spec.sizes(config)
    tgt = resolve_sizes(spec, src, sizes)
    check_memory(estimate(spec, source, tgt))  # before any map or table is built for absurd sizes
    grows = growing_dims(src, tgt, spec.resizable | {"layers"})
    used = {c["method"] for c in values.values()}
    if grows:
        blocked = sorted(m for m in used if not strategies.get(m).can_grow)
        if blocked:
            what = ", ".join(f"{d} {src[d]}→{tgt[d]}" for d in grows)
            raise PlanError(f"strategy {', '.join(blocked)} can only shrink, but the target is larger ({what}); use {GROWING_HINT}")

    layer_map = (make_layer_map(src["layers"], tgt["layers"], layers, layer_scores) if spec.family != "mlp"
                 else [LayerLink(j, j) for j in range(src["layers"])])
    dims = make_dim_maps(spec, src, tgt, layer_map, index["method"], index_params, seed, score_fn)
    for fixed in ("qkv",):
        if fixed in src:
            dims.setdefault(fixed, DimMap(fixed, src[fixed], src[fixed], list(range(src[fixed])), "fixed"))

    matched = spec.ensure_matches(list(source.tensors))
    by_layer: dict[int, list] = {}
    globals_ = []
    for m in matched.values():
        if m.rule.kind == "drop":
            continue
        (by_layer.setdefault(m.layer, []) if m.layer is not None else globals_).append(m)
    rule_order = {r: i for i, r in enumerate(spec.rules)}
    first_layer_rule = min((i for r, i in rule_order.items() if "{L}" in r.pattern), default=0)
    head = sorted((m for m in globals_ if rule_order[m.rule] < first_layer_rule), key=lambda m: rule_order[m.rule])
    tail = sorted((m for m in globals_ if rule_order[m.rule] >= first_layer_rule), key=lambda m: rule_order[m.rule])

    tensors: list[TensorPlan] = []

    def add(m, target_layer: int | None, new: bool) -> None:
        info = source.tensors[m.name]
        axes, shape = [], []
        for a, dims_on_axis in enumerate(m.rule.axes):
            keys = [_axis_key(d, target_layer) for d in dims_on_axis]
            axes.append(keys)
            if all(dims.get(k) is None for k in keys):
                shape.append(info.shape[a])  # a fixed axis (vocab, positions, labels…)
            else:
                shape.append(math.prod(dims[k].target_size for k in keys))
        method, params = ("select", {}) if m.rule.kind == "buffer" else resolve_value_strategy(values, m.rule.role)
        tensors.append(TensorPlan(
            name=m.renamed(target_layer), source_name=m.name, role=m.rule.role, kind=m.rule.kind,
            layer=target_layer, source_layer=m.layer, axes=axes, fan_in=m.rule.fan_in, shape=shape,
            source_shape=list(info.shape), dtype=info.dtype, strategy=method, params=params,
            new_layer=new, writes_residual=m.rule.writes_residual,
        ))

    for m in head:
        add(m, None, False)
    if spec.family == "mlp":
        for layer in sorted(by_layer):
            for m in sorted(by_layer[layer], key=lambda m: rule_order[m.rule]):
                add(m, None, False)
    else:
        for link in layer_map:
            for m in sorted(by_layer.get(link.source, []), key=lambda m: rule_order[m.rule]):
                add(m, link.target, link.new)
    for m in tail:
        add(m, None, False)
    untie = _untie_for_growth(spec, config, values, src, tgt, tensors, matched, dims)
    fallback_notes = _apply_fallbacks(values, tensors, grows=bool(grows))
    _check_roles(values, tensors, spec)

    new_layers = any(link.new for link in layer_map)
    if new_layers:
        blocked = sorted({t.strategy for t in tensors if t.new_layer and not strategies.get(t.strategy).can_grow})
        if blocked:
            raise PlanError(f"strategy {', '.join(blocked)} cannot fill inserted layers; use {GROWING_HINT}")

    if spec.family == "mlp":
        target_config = _mlp_config(config, tgt, spec)
    else:
        target_config = spec.target_config(config, tgt)
        if untie:
            target_config[spec.tied_field] = False
        # Per-layer config lists (Qwen2's layer_types, …) follow the layer map.
        for key, value in config.items():
            if isinstance(value, list) and len(value) == src["layers"] and key != "architectures":
                target_config[key] = [value[link.source] for link in layer_map]
    plan = Plan(family=spec.family, seed=seed, source_sizes=src, target_sizes=tgt, target_config=target_config,
                layer_map=layer_map, dims=dims, tensors=tensors, index=index, values=values)
    plan.warnings = fallback_notes + growth_exactness(plan, spec)  # growth raises PlanError where it cannot keep the function
    return plan


def _explicit(values: dict, role: str) -> bool:
    """Whether a role override (not the model-wide ``default``) decides ``role``'s strategy."""
    return any(key != "default" and (role == key or role.startswith(key + ".")) for key in values)


def _apply_fallbacks(values: dict, tensors: list[TensorPlan], *, grows: bool) -> list[str]:
    """Give every tensor the model-wide strategy cannot fill that strategy's stated fallback.

    Only the ``default`` choice falls back (templates on a 30522×256 embedding that 8×8 tiles do
    not divide, mimetic outside attention); a strategy the user set for a role explicitly stays,
    and the plan refuses it with the reason. Returns one sentence per strategy that fell back
    (the plan's warnings: the CLI prints them, the app shows them under the sizes).
    """
    fell: dict[tuple[str, str], list[str]] = {}
    for t in tensors:
        if t.kind == "buffer":
            continue
        strategy = strategies.get(t.strategy)
        reason = strategy.cannot_fill(strategies.make_params(t.strategy, t.params), t)
        if reason is None:
            continue
        if _explicit(values, t.role):
            if strategy.roles is not None and t.role not in strategy.roles:
                continue  # _check_roles refuses it, naming the roles it accepts
            raise PlanError(f"{reason} ({t.name}); choose another strategy for role {t.role} or other parameters")
        fallback = strategy.fallback or ("mean_field" if grows else "select")
        t.fallback_from, t.fallback_reason = t.strategy, reason
        t.strategy, t.params = fallback, {}
        fell.setdefault((t.fallback_from, fallback), []).append(t.name)
    notes = []
    for (method, fallback), names in fell.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.append(f"{method} cannot fill {len(names)} tensor(s) ({shown}); they use {fallback} instead "
                     f"(set a role override to choose another)")
    return notes


def _untie_for_growth(spec, config, values, src, tgt, tensors, matched, dims) -> bool:
    """Give a tied LM head its own tensor when function-preserving growth widens hidden.

    A tied head reads the hidden vector with the embedding matrix, which growth must copy (the
    embedding writes hidden) and cannot also divide; untied, the head's columns are divided by
    the clone counts like any fan-in, and the grown model's logits equal the source's.
    """
    tied_head = spec.tied_head_for(config)
    if not tied_head or tgt.get("hidden", 0) <= src.get("hidden", 0) or not spec.is_tied(config):
        return False
    if resolve_value_strategy(values, "head")[0] != "growth":
        return False
    head_name, embed_pattern = tied_head
    if any(t.name == head_name for t in tensors):
        return False
    embed = next((m for m in matched.values() if m.rule.pattern == embed_pattern), None)
    if embed is None:
        return False
    info_shape = next(t for t in tensors if t.source_name == embed.name)
    tensors.append(TensorPlan(
        name=head_name, source_name=embed.name, role="head", kind="param", layer=None, source_layer=None,
        axes=[["vocab"], ["hidden"]], fan_in=1, shape=list(info_shape.shape), source_shape=list(info_shape.source_shape),
        dtype=info_shape.dtype, strategy="growth", params=dict(resolve_value_strategy(values, "head")[1]),
    ))
    names = {t.name for t in tensors}  # what the head shares besides its weight (BERT's decoder bias) is untied too
    tensors += [replace(t, name=twin) for twin, of in spec.tied_head_twins.get(head_name, ()) if twin not in names
                for t in tensors if t.name == of]
    return True


def _mlp_config(config: dict, tgt: dict, spec) -> dict:
    hidden = sorted(spec.resizable, key=lambda d: int(d[1:]))
    widths = [config["widths"][0], *[tgt[d] for d in hidden], config["widths"][-1]]
    return {**config, "widths": widths, **{d: tgt[d] for d in hidden}}


def format_plan(plan: Plan, limit: int | None = None) -> str:
    """A readable text view: sizes, layer map, dimension maps and the tensor table."""
    lines = [f"family: {plan.family}   seed: {plan.seed}   target parameters: {plan.num_parameters:,}"]
    lines.append("sizes:  " + "  ".join(
        f"{k} {plan.source_sizes[k]}→{v}" for k, v in plan.target_sizes.items()
        if k in plan.source_sizes and k not in ("one", "qkv")))
    lines.append("layers: " + "  ".join(f"{ln.target}←{ln.source}{'+new' if ln.new else ''}" for ln in plan.layer_map))
    lines.append("dims:")
    for key, m in plan.dims.items():
        if m.method == "fixed":
            continue
        preview = ",".join(map(str, m.index[:12])) + ("…" if len(m.index) > 12 else "")
        lines.append(f"  {key:<14} {m.source_size:>6}→{m.target_size:<6} {m.method:<10} [{preview}]")
    from core.sources.trust import shown  # tensor names come from the file: no raw escape sequences

    lines.append("tensors:")
    rows = plan.tensors if limit is None else plan.tensors[:limit]
    width = max((len(shown(t.name)) for t in rows), default=10)
    for t in rows:
        src = "×".join(map(str, t.source_shape))
        dst = "×".join(map(str, t.shape))
        flag = " (new)" if t.new_layer else ""
        if t.fallback_from:
            flag += f"  ← {t.fallback_from} cannot: {t.fallback_reason}"
        lines.append(f"  {shown(t.name):<{width}}  {t.role:<9} {src:>12} → {dst:<12} {t.strategy}{flag}")
    if limit is not None and len(plan.tensors) > limit:
        lines.append(f"  … {len(plan.tensors) - limit} more")
    return "\n".join(lines)
