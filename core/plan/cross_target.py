"""What a cross-family target is: its family (checked against the source), sizes, config and tensors.

The config is the target family's transformers config class defaults (left out, so transformers fills
them) plus the sizes, the source's vocabulary and positions, and token ids that fit the source's
tokenizer; the tensors are those of the family's model for that config, built on the ``meta`` device.
See :mod:`core.plan.cross` for how they are fed.
"""

from __future__ import annotations

from core.architectures.spec import FAMILIES, axis_atoms
from core.errors import ArchitectureError, PlanError, SourceError
from core.plan.sizes import resolve_sizes

#: the sizes a cross-family target takes from the source unless asked (the rest are the target family's own).
SHARED_SIZES = ("layers", "hidden", "ffn", "heads", "kv_heads", "head_dim")
#: the model class that carries the target family's head, by its training task.
TASK_CLASSES = {"causal_lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "masked_lm": "MODEL_FOR_MASKED_LM_MAPPING_NAMES"}


def target_spec(name: str, source_spec):
    """The spec of target family ``name``, refused (one sentence) where it cannot take this source.

    Raises:
        PlanError: an unknown family, one that shares no tensor roles with the source, another kind
            of input (images vs tokens), or a mixture-of-experts family.
    """
    known = sorted(f for f, s in FAMILIES.items() if s.library == "transformers" and s.layered)
    try:
        spec = FAMILIES.get(name)
    except ArchitectureError:
        raise PlanError(f"unknown target family {name!r}; choose one of {', '.join(known)}") from None
    shared = _roles(spec) & _roles(source_spec)
    if not shared:
        raise PlanError(
            f"the {spec.family} family shares no tensor roles with the {source_spec.family} source, so nothing "
            f"could be transferred; choose a family with attention and MLP blocks ({', '.join(known)})"
        )
    if spec.library != "transformers" or not spec.layered or spec.family not in known:
        raise PlanError(f"{spec.family} cannot be a cross-family target; choose one of {', '.join(known)}")
    if _carries(spec, "vocab") != _carries(source_spec, "vocab"):
        raise PlanError(
            f"a {spec.family} model and a {source_spec.family} model read different inputs (tokens vs images); "
            "a cross-family target must read the source's kind of input"
        )
    if _carries(spec, "experts") or _carries(source_spec, "experts"):
        raise PlanError("mixture-of-experts families cannot be cross-family sources or targets yet; choose a dense one")
    return spec


def _roles(spec) -> set[str]:
    return {r.role for r in spec.rules if r.kind == "param"}


def _carries(spec, dim: str) -> bool:
    return any(dim in axis_atoms(axis) for rule in spec.rules for axis in rule.axes)


def cross_sizes(spec, tgt_spec, src: dict, sizes) -> dict:
    """The target sizes: the source's shared sizes with the asked ones on top, by the target family's rules.

    A source whose head_dim is hidden / heads (bert, gpt2) gives a target head_dim of the target's
    hidden / heads, unless head_dim is asked.
    """
    asked = sizes.to_dict()
    allowed = tgt_spec.target_size_names()
    extra = sorted(set(asked) - allowed)
    if extra:
        raise PlanError(f"a {tgt_spec.family} target has no size {', '.join(extra)}; leave it out")
    shared = {k: src[k] for k in SHARED_SIZES if k in src}
    tgt = resolve_sizes(tgt_spec, shared, sizes)
    if tgt_spec.explicit_head_dim and not spec.explicit_head_dim and "head_dim" not in asked:
        if tgt["hidden"] % tgt["heads"]:
            raise PlanError(
                f"hidden size {tgt['hidden']} is not divisible by {tgt['heads']} heads, and the {spec.family} "
                "source's head_dim is hidden / heads; choose heads that divide hidden, or give --head-dim"
            )
        tgt["head_dim"] = tgt["hidden"] // tgt["heads"]
        if tgt_spec.rotary and tgt["head_dim"] % 2:
            raise PlanError(f"head_dim {tgt['head_dim']} is odd; rotary embeddings need an even head_dim")
    if "kv_heads" not in tgt_spec.config_fields:
        tgt["kv_heads"] = tgt["heads"]  # a family without grouped attention: every head has its keys
    return tgt


def target_config(source, spec, config: dict, tgt_spec, tgt: dict) -> dict:
    """The target's config.json: its family's class defaults (left to transformers), the sizes, the
    source's vocabulary and positions, and token ids that fit the source's tokenizer."""
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto

    model_type = tgt_spec.model_types[0]
    names = getattr(modeling_auto, TASK_CLASSES.get(tgt_spec.task, ""), {})
    out: dict = {"model_type": model_type}
    if model_type in names:
        out["architectures"] = [names[model_type]]
    for dim, key in tgt_spec.config_fields.items():
        if dim in tgt and (dim != "head_dim" or tgt_spec.explicit_head_dim):
            out[key] = tgt[dim]
    out[tgt_spec.layers_field] = tgt["layers"]
    aliases = getattr(type(AutoConfig.for_model(model_type)), "attribute_map", {})
    vocab = config.get("vocab_size") or _axis_size(source, spec, "vocab")
    if vocab:
        out[aliases.get("vocab_size", "vocab_size")] = vocab
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    if positions:
        out[aliases.get("max_position_embeddings", "max_position_embeddings")] = positions
    out.update(special_token_ids(source, config))
    return out


def _axis_size(source, spec, dim: str) -> int | None:
    for name, info in source.tensors.items():
        m = spec.match(name)
        if m is not None:
            for a, axis in enumerate(m.rule.axes):
                if tuple(axis) == (dim,):
                    return int(info.shape[a])
    return None


def special_token_ids(source, config: dict) -> dict:
    """``pad/bos/eos_token_id`` for the source's tokenizer: its bos/eos, else its cls/sep (BERT's), else
    the source config's; None where it has none (never a class default that names another vocabulary's token)."""
    tokens, ids = _tokenizer_tokens(source)

    def token_id(*keys):
        for key in keys:
            content = tokens.get(key)
            if content in ids:
                return ids[content]
        return None

    out = {}
    for field, keys in (("pad_token_id", ("pad_token",)), ("bos_token_id", ("bos_token", "cls_token"))):
        value = config.get(field)
        out[field] = value if isinstance(value, int) and not isinstance(value, bool) else token_id(*keys)
    eos = config.get("eos_token_id")
    out["eos_token_id"] = (
        eos if isinstance(eos, int) and not isinstance(eos, bool) else token_id("eos_token", "sep_token")
    )
    return out


def _tokenizer_tokens(source) -> tuple[dict[str, str], dict[str, int]]:
    """(special token kind → its text, token text → id) from the source's tokenizer files."""
    from core.sources.trust import load_json

    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    try:
        files = {p.name: p for p in source.aux_files()}
    except SourceError:
        return tokens, ids
    for fname in ("special_tokens_map.json", "tokenizer_config.json", "tokenizer.json"):
        path = files.get(fname)
        if path is None:
            continue
        try:
            data = load_json(path, None, fname)
        except SourceError:
            continue
        if not isinstance(data, dict):
            continue
        for key in ("bos_token", "eos_token", "cls_token", "sep_token", "pad_token"):
            value = data.get(key)
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                tokens.setdefault(key, value)
        for item in data.get("added_tokens") or []:
            if isinstance(item, dict) and isinstance(item.get("content"), str) and isinstance(item.get("id"), int):
                ids.setdefault(item["content"], item["id"])
        for key, item in (data.get("added_tokens_decoder") or {}).items():
            if isinstance(item, dict) and isinstance(item.get("content"), str) and str(key).isdigit():
                ids.setdefault(item["content"], int(key))
    return tokens, ids


def target_tensors(tgt_spec, config: dict) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of every tensor the target family's model holds for ``config``, in its order
    (built on the ``meta`` device: no memory, no init); a tied head is left out, as an export leaves it."""
    import torch

    with torch.device("meta"):
        model = tgt_spec.build_model(config)
    tied = tgt_spec.tied_head_for(config) if tgt_spec.is_tied(config) else None
    skip = set()
    if tied:
        skip = {tied[0], *(twin for twin, _ in tgt_spec.tied_head_twins.get(tied[0], ()))}
    return [(n, tuple(t.shape)) for n, t in model.state_dict().items() if n not in skip]
