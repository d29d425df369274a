"""The tensor table: one :class:`~core.plan.model.TensorPlan` per target tensor, and its checks.

Each source tensor matched by the family spec becomes a row per target layer it feeds (in the
spec's rule order, layer by layer; an expert's tensor, ``{E}``, a row per target expert that copies it), with its resolved axis keys, target shape and the value
strategy its role resolves to (the most specific role prefix wins). Then: a tied head is untied
where growth needs it, a model-wide strategy that cannot fill a tensor falls back (a warning),
and role overrides are checked against the roles the model has.
"""

from __future__ import annotations

import math
from dataclasses import replace

from core.architectures.spec import PER_EXPERT_DIMS, PER_LAYER_DIMS, axis_parts, is_concat
from core.errors import PlanError
from core.plan.model import TensorPlan
from core.strategies import base as strategies


def resolve_value_strategy(values: dict, role: str) -> tuple[str, dict]:
    """The most specific role prefix wins: ``attn.q`` > ``attn`` > ``default``."""
    best, best_len = values.get("default", {"method": "select"}), -1
    for key, choice in values.items():
        if key != "default" and (role == key or role.startswith(key + ".")) and len(key) > best_len:
            best, best_len = choice, len(key)
    return best["method"], dict(best.get("params", {}))


def _axis_key(dim: str, layer: int | None, expert: int | None = None) -> str:
    if dim in PER_EXPERT_DIMS and expert is not None and layer is not None:
        return f"{dim}@{layer}/{expert}"
    # A staged family's per-stage ffn (``ffn.2``) is per layer like ffn: ``ffn.2@5``.
    return f"{dim}@{layer}" if dim.split(".")[0] in PER_LAYER_DIMS and layer is not None else dim


def tensor_table(
    source, spec, matched: dict, layer_map, dims: dict, values: dict, sizes: dict | None = None
) -> list[TensorPlan]:
    """One row per target tensor: the spec's global tensors before the first layer rule, every
    target layer's tensors (in rule order), then the remaining globals (final norm, heads).

    ``sizes`` (the target's) name a staged family's blocks by their index within their stage
    (:meth:`~core.architectures.spec.ArchitectureSpec.block_index`)."""
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

    def add(m, target_layer: int | None, new: bool, expert: int | None = None) -> None:
        info = source.tensors[m.name]
        axes, shape = [], []
        for a, dims_on_axis in enumerate(m.rule.axes):
            # A concatenated axis (Phi-3's [Q;K;V]) is a list of parts; its size is the sum of theirs.
            parts = [[_axis_key(d, target_layer, expert) for d in part] for part in axis_parts(dims_on_axis)]
            keys = [k for part in parts for k in part]
            axes.append(parts if is_concat(dims_on_axis) else parts[0])
            if all(dims.get(k) is None for k in keys):
                shape.append(info.shape[a])  # a fixed axis (vocab, positions, labels…)
            else:
                shape.append(sum(math.prod(dims[k].target_size for k in part) for part in parts))
        method, params = ("select", {}) if m.rule.kind == "buffer" else resolve_value_strategy(values, m.rule.role)
        tensors.append(
            TensorPlan(
                name=m.renamed(spec.block_index(target_layer, sizes or {}), expert),
                source_name=m.name,
                role=m.rule.role,
                kind=m.rule.kind,
                layer=target_layer,
                source_layer=m.layer,
                axes=axes,
                fan_in=m.rule.fan_in,
                shape=shape,
                source_shape=list(info.shape),
                dtype=info.dtype,
                strategy=method,
                params=params,
                new_layer=new,
                writes_residual=m.rule.writes_residual,
            )
        )

    for m in head:
        add(m, None, False)
    for link in layer_map:
        experts: dict = {}  # rule → source expert → its tensor: one row per target expert, all at the first rule's place
        for m in sorted(by_layer.get(link.source, []), key=lambda m: rule_order[m.rule]):
            if m.expert is None:
                add(m, link.target, link.new)
            elif not experts:
                experts = _experts_of(by_layer[link.source], rule_order)
                for e, s in enumerate(dims[f"experts@{link.target}"].index):
                    for per_rule in experts.values():
                        if s in per_rule:
                            add(per_rule[s], link.target, link.new, e)
    for m in tail:
        add(m, None, False)
    return tensors


def _experts_of(layer_tensors: list, rule_order: dict) -> dict:
    """Rule → {source expert → matched tensor} of one layer's ``{E}`` tensors, rules in spec order."""
    out: dict = {}
    for m in sorted((m for m in layer_tensors if m.expert is not None), key=lambda m: rule_order[m.rule]):
        out.setdefault(m.rule, {})[m.expert] = m
    return out


def check_roles(values: dict, tensors: list[TensorPlan], spec, chosen) -> None:
    """Every role prefix of the recipe names some tensor, and every strategy accepts the roles it got.

    Raises:
        PlanError: an override for a role this model does not have (a typo, or another family's
            role name), or a strategy given a role it cannot fill (mimetic outside attention).
    """
    # The spec's roles, not only the file's: a tied head has no tensor but its role still counts.
    known = list(
        dict.fromkeys(
            [t.role for t in tensors if t.kind != "buffer"]
            + [r.role for r in spec.rules if r.kind not in ("buffer", "drop")]
        )
    )
    for key in values:
        if key != "default" and not any(role == key or role.startswith(key + ".") for role in known):
            raise PlanError(
                f"no tensor of this {spec.family} model has role {key!r}; override one of its roles "
                f"({', '.join(known)}) or a prefix of one"
            )
    for t in tensors:
        accepted = chosen[t.strategy].roles
        if t.kind != "buffer" and accepted is not None and t.role not in accepted:
            raise PlanError(
                f"{t.strategy} only fills roles {', '.join(accepted)}, but it was given {t.role} "
                f"({t.name}); give {t.role} another strategy, or set {t.strategy} for attn only"
            )


def _explicit(values: dict, role: str) -> bool:
    """Whether a role override (not the model-wide ``default``) decides ``role``'s strategy."""
    return any(key != "default" and (role == key or role.startswith(key + ".")) for key in values)


def apply_fallbacks(values: dict, tensors: list[TensorPlan], chosen, *, grows: bool) -> list[str]:
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
        strategy = chosen[t.strategy]
        reason = strategy.cannot_fill(strategies.make_params(t.strategy, t.params), t)
        if reason is None:
            continue
        if _explicit(values, t.role):
            if strategy.roles is not None and t.role not in strategy.roles:
                continue  # check_roles refuses it, naming the roles it accepts
            raise PlanError(f"{reason} ({t.name}); choose another strategy for role {t.role} or other parameters")
        fallback = strategy.fallback or ("mean_field" if grows else "select")
        t.fallback_from, t.fallback_reason = t.strategy, reason
        t.strategy, t.params = fallback, {}
        fell.setdefault((t.fallback_from, fallback), []).append(t.name)
    notes = []
    for (method, fallback), names in fell.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.append(
            f"{method} cannot fill {len(names)} tensor(s) ({shown}); they use {fallback} instead "
            f"(set a role override to choose another)"
        )
    return notes


def untie_for_growth(spec, config, values, src, tgt, tensors, matched) -> bool:
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
    tensors.append(
        TensorPlan(
            name=head_name,
            source_name=embed.name,
            role="head",
            kind="param",
            layer=None,
            source_layer=None,
            axes=[["vocab"], ["hidden"]],
            fan_in=1,
            shape=list(info_shape.shape),
            source_shape=list(info_shape.source_shape),
            dtype=info_shape.dtype,
            strategy="growth",
            params=dict(resolve_value_strategy(values, "head")[1]),
        )
    )
    names = {t.name for t in tensors}  # what the head shares besides its weight (BERT's decoder bias) is untied too
    tensors += [
        replace(t, name=twin)
        for twin, of in spec.tied_head_twins.get(head_name, ())
        if twin not in names
        for t in tensors
        if t.name == of
    ]
    return True
