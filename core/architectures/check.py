"""Check a source's tensors against its config and spec before anything is planned.

A checkpoint whose tensors do not say what its config says exports a model that ``transformers``
then fills with random weights for whatever is missing, without an error. So before planning:

* every tensor the spec requires is present, for every layer the config declares, and no tensor
  belongs to a layer beyond them;
* an optional per-layer tensor (a bias, a q/k norm) is in every layer or in none;
* every axis has the size its named dimensions imply: the config's sizes (hidden, ffn, heads,
  head_dim, vocab, positions …), and the same size wherever one named dimension recurs (a
  dimension the config does not state, such as GPT-2's labels, is taken from its first tensor);
* a weight (``kind="param"``) has a floating dtype: a BOOL or I32 tensor in a floating role is
  refused rather than cast;
* an untied LM head of a ``…ForCausalLM`` checkpoint is present.

:func:`source_problems` lists every mismatch (``graft inspect`` prints them);
:func:`check_source` raises on the first (planning does).
"""

from __future__ import annotations

import math

from core.architectures.spec import axis_atoms, is_concat
from core.errors import ArchitectureError

#: dims fixed by the data whose size a family's config states: dim → config field(s), first found wins.
FIXED_DIM_FIELDS = {
    "vocab": ("vocab_size",),
    "pos": ("max_position_embeddings", "n_positions"),
    "types": ("type_vocab_size",),
    "channels": ("num_channels",),
    "patch_h": ("patch_size",),
    "patch_w": ("patch_size",),
}
#: architectures whose checkpoint must carry its own LM head when the embeddings are not tied.
_CAUSAL_LM_SUFFIX = "ForCausalLM"


def _config_int(config: dict, key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _dim_sizes(spec, config: dict, sizes: dict[str, int]) -> dict[str, int]:
    known = dict(sizes)
    if "head_dim" in known:
        known.setdefault("half_head_dim", known["head_dim"] // 2)
    for dim, keys in FIXED_DIM_FIELDS.items():
        for key in keys:
            value = _config_int(config, key)
            if value is not None:
                known.setdefault(dim, value)
                break
    return known


def source_problems(source, spec, config: dict, *, limit: int = 20) -> list[str]:
    """Every way ``source``'s tensors disagree with ``config`` and ``spec`` (at most ``limit``).

    Args:
        source: an opened :class:`core.sources.Source`.
        spec: its family spec (from :func:`core.architectures.detect`).
        config: its (pseudo-)config.

    Returns:
        One sentence per problem, each naming the tensor and what to do; empty when consistent.
    """
    problems: list[str] = []
    matched = spec.ensure_matches(list(source.tensors))
    sizes = spec.sizes(config)
    n_layers = sizes.get("layers", 0)
    known = _dim_sizes(spec, config, sizes)
    where: dict[str, str] = {}  # dim → the tensor that fixed its size (for the message)

    def problem(text: str) -> bool:
        problems.append(text)
        return len(problems) >= limit

    # Shapes and dtypes, in file order.
    for name, m in matched.items():
        info = source.tensors[name]
        if m.rule.kind == "drop":
            continue
        if m.layer is not None and m.layer >= n_layers:
            if problem(
                f"tensor {name!r} belongs to layer {m.layer}, but config.json says {spec.layers_field}="
                f"{n_layers}; fix {spec.layers_field} or remove the extra layers' tensors"
            ):
                return problems
            continue
        if m.rule.kind == "param" and not info.is_float:
            if problem(
                f"tensor {name!r} is {info.dtype}, but {m.rule.role} weights must be floating point; "
                "the checkpoint is corrupt or not a model of this family"
            ):
                return problems
            continue
        if len(info.shape) != len(m.rule.axes):
            if problem(
                f"tensor {name!r} has {len(info.shape)} dimension(s) {tuple(info.shape)}, but a "
                f"{spec.family} {m.rule.role} tensor has {len(m.rule.axes)}; the checkpoint does not match its family"
            ):
                return problems
            continue
        for axis, (dims, actual) in enumerate(zip(m.rule.axes, info.shape)):
            if is_concat(dims):  # Phi-3's [Q;K;V]: the sum of its parts, checked once their sizes are known
                atoms = axis_atoms(dims)
                expected = (
                    sum(math.prod(known[d] for d in part) for part in dims) if all(d in known for d in atoms) else None
                )
                if expected is not None and expected != actual:
                    stated = ", ".join(f"{d} {known[d]}" for d in atoms)
                    if problem(
                        f"tensor {name!r} has size {actual} on axis {axis}, but config.json implies {expected} "
                        f"({stated}); the config does not describe these weights — use the config.json that came "
                        "with them"
                    ):
                        return problems
                    break
                continue
            unknown = [d for d in dims if d not in known]
            if len(unknown) == 1:  # the first tensor carrying an unstated dimension fixes it
                rest = math.prod(known[d] for d in dims if d != unknown[0])
                if rest and actual % rest == 0:
                    known[unknown[0]] = actual // rest
                    where[unknown[0]] = name
            if any(d not in known for d in dims):
                continue
            expected = math.prod(known[d] for d in dims)
            if expected != actual:
                stated = ", ".join(f"{d} {known[d]}" + (f" (from {where[d]})" if d in where else "") for d in dims)
                if problem(
                    f"tensor {name!r} has size {actual} on axis {axis}, but config.json implies {expected} "
                    f"({stated}); the config does not describe these weights — use the config.json that came "
                    "with them"
                ):
                    return problems
                break

    # Presence: required tensors in every layer, optional per-layer tensors in all or none.
    present: dict[tuple, set] = {}
    for m in matched.values():
        present.setdefault((m.rule.pattern, m.rule.role), set()).add(m.layer)
    prefix = _body_prefix(matched)
    for rule in spec.rules:
        if rule.kind == "drop":
            continue
        have = present.get((rule.pattern, rule.role), set())
        if "{L}" in rule.pattern:
            # Counted, not listed: a config may claim 2^64 layers. A staged family's rule: its stage's blocks.
            expected = spec.rule_layers(rule, sizes)
            found = {layer for layer in have if layer is not None and layer in expected}
            n_expected = expected.stop - expected.start  # len() of a 2^64-long range overflows
            n_missing = n_expected - len(found)
            if not n_missing or (rule.optional and not have):
                continue
            first_missing = next(i for i in expected[: len(found) + 1] if i not in found)
            first = prefix + rule.pattern.replace("{L}", str(spec.block_index(first_missing, sizes)))
            what = f"{n_missing:,} of {n_expected:,} layers lack" if n_missing > 1 else "the source lacks"
            hint = "the other layers have it" if rule.optional else "every layer of this family needs it"
            if problem(
                f"{what} {rule.role} tensor {first!r} ({hint}); the checkpoint is incomplete — download or "
                "export it again (a sharded index must list every shard)"
            ):
                return problems
        elif not rule.optional and not have:
            if problem(
                f"the source lacks the {rule.role} tensor {prefix + rule.pattern!r}; the checkpoint is "
                "incomplete — download or export it again"
            ):
                return problems

    head = _missing_untied_head(source, spec, config, matched)
    if head:
        problem(head)
    return problems


def _body_prefix(matched) -> str:
    prefixes = [m.prefix for m in matched.values() if m.layer is not None]
    return max(set(prefixes), key=prefixes.count) if prefixes else ""


def _missing_untied_head(source, spec, config: dict, matched) -> str | None:
    if not spec.tied_head or spec.is_tied(config):
        return None
    architectures = config.get("architectures") or []
    if not any(isinstance(a, str) and a.endswith(_CAUSAL_LM_SUFFIX) for a in architectures):
        return None
    head_name = spec.tied_head[0]
    if any(m.name.endswith(head_name) and m.rule.role == "head" for m in matched.values()):
        return None
    return (
        f"config.json says {architectures[0]} with untied embeddings ({spec.tied_field}=false), but the "
        f"source has no {head_name!r}; the checkpoint is incomplete — download it again, or set "
        f"{spec.tied_field} to true if the head is shared"
    )


def check_source(source, spec, config: dict) -> None:
    """Raise on the first way ``source`` disagrees with its config and spec.

    Raises:
        ArchitectureError: naming the first missing tensor, wrong shape or wrong dtype.
    """
    problems = source_problems(source, spec, config, limit=1)
    if problems:
        raise ArchitectureError(problems[0])
