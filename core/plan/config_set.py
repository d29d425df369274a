"""``--set key=JSON``: any field of the target's config.json, checked against what the plan decides.

A field is one of three kinds, by the named dimension it sets (:func:`field_dims`):

* **sized**: a dimension the target may resize (``hidden_size`` → ``hidden``, ``num_hidden_layers`` →
  ``layers``). It goes into the target sizes, so ``--set hidden_size=256`` plans exactly like
  ``--hidden 256``; both given with different values is refused.
* **fixed**: a dimension the source's tensors carry but no target changes (``vocab_size`` → ``vocab``,
  GPT-2's ``n_positions`` → ``pos``). A different value would describe tensors the export does not
  hold, so it is refused; the same value is accepted (a no-op). Llama's ``max_position_embeddings``
  sets no tensor (rotary positions), so there it is an ordinary field.
* **other** (``rope_theta``, ``layer_norm_eps``, ``attention_dropout`` …): written into the target
  config after the sizes.

A field another family sizes with but this one does not hold is refused, naming this family's
own field (GPT-2's ``n_embd`` for ``hidden_size``, which transformers would alias silently) or the
size flag (a dense Llama's ``num_local_experts``: ``--experts`` upcycles it).

Refused outright: ``model_type`` (it picks the architecture the tensors were planned for),
``architectures`` (the class decides the head: Graft writes the source's head tensors, so another
class would load with missing or unexpected weights), the remote-code keys (exports load
transformers' own classes). Fields the plan derives are refused when they disagree with it: the tie
of the LM head (the tensors follow the source's tie, untied only by growth) and per-layer lists
(``layer_types``: their length must be the target's depth).

A family maps a field of a dimension it adds with :attr:`ArchitectureSpec.set_fields` (or its
``config_fields``, for a single-integer size); :data:`FIXED_FIELDS` holds the fields every
transformers family spells the same way.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace

from core.errors import PlanError
from core.plan.model import TargetSizes

#: config fields that size a dimension carried by tensors but never resized (refused when changed).
FIXED_FIELDS = {
    "vocab_size": "vocab",
    "max_position_embeddings": "pos",
    "n_positions": "pos",
    "type_vocab_size": "types",
    "num_labels": "labels",
    "id2label": "labels",
    "label2id": "labels",
    "image_size": "patches",
    "patch_size": "patches",
    "num_channels": "channels",
}
#: where transformers ≥ 5 keeps ``rope_theta`` and the other rope settings: a field the source holds
#: only there is set there.
NESTED = "rope_parameters"
UPCYCLE_HINT = " (a dense llama-family source upcycles to experts)"
#: fields refused whatever their value, each with its reason.
REFUSED = {
    "model_type": "it names the architecture the tensors were planned for; open a source of that type instead",
    "architectures": "the model class decides the head, and Graft writes the source's head tensors; "
    "convert the head after the transfer",
    "auto_map": "exports load transformers' own classes, never a repository's code",
    "trust_remote_code": "exports load transformers' own classes, never a repository's code",
}


def field_dims(spec) -> dict[str, str]:
    """Config field → the named dimension it sets, for ``spec`` (fields of no dimension are absent)."""
    out = dict(FIXED_FIELDS)
    out.update({key: dim for dim, key in spec.config_fields.items()})
    out[spec.layers_field] = "layers"
    out.update(spec.set_fields)
    return out


def split_overrides(spec, sizes: TargetSizes, overrides: dict) -> tuple[TargetSizes, dict]:
    """Move the fields that set a target size into ``sizes``; return ``(sizes, the other fields)``.

    Raises:
        PlanError: a refused field, a size that is not a whole number, or one that disagrees with a size flag.
    """
    if not overrides:
        return sizes, {}
    if spec.library != "transformers":
        raise PlanError(
            f"a {spec.family} export has no config.json, so it takes no config fields (--set); leave them out"
        )
    dims = field_dims(spec)
    sized = spec.target_size_names() & {f.name for f in fields(TargetSizes)}
    asked = sizes.to_dict()
    rest = {}
    for key, value in overrides.items():
        if key in REFUSED:
            raise PlanError(f"config field {key} is not allowed: {REFUSED[key]}")
        dim = dims.get(key)
        if dim not in sized:
            other = _other_families_sizes(spec).get(key)
            if other is not None:
                flag = "--" + other.replace("_", "-")
                own = next((k for k, d in dims.items() if d == other and d in sized), None)
                raise PlanError(
                    f"config field {key} is another family's name for the {other}; {spec.family} calls it {own} "
                    f"(or give {flag})"
                    if own
                    else f"config field {key} sets the {other}, which a {spec.family} config does not hold; give "
                    f"{flag} where this source can take it{UPCYCLE_HINT if other == 'experts' else ''}, "
                    f"or leave {key} out"
                )
            rest[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanError(f"config field {key}={_show(value)} must be a whole number (it sets the target's {dim})")
        if dim in asked and asked[dim] != value:
            raise PlanError(
                f"config field {key}={value} and the target {dim} {asked[dim]} disagree; give the {dim} once"
            )
        asked[dim] = value
    return replace(sizes, **asked), rest


def apply_overrides(
    spec, config: dict, target_config: dict, carried: set[str], tgt: dict[str, int], rest: dict
) -> dict:
    """Write the non-size fields ``rest`` into ``target_config`` (in place, and returned).

    Args:
        config: the source's config.
        target_config: the planned target config (sizes, tie and per-layer lists already decided).
        carried: the named dimensions the source's tensors carry.
        tgt: the resolved target sizes (``layers`` for per-layer lists).

    Raises:
        PlanError: a fixed dimension changed, the tie changed, or a per-layer list of the wrong length.
    """
    dims = field_dims(spec)
    for key, value in rest.items():
        dim = dims.get(key)
        if dim in carried and _measure(value) != _measure(config.get(key)):
            raise PlanError(
                f"config field {key}={_show(value)} would change the {dim} axis that the source's tensors carry "
                f"({key} is {_show(config.get(key))}); a transfer keeps it, so leave {key} out"
            )
        if key == spec.tied_field and bool(value) != _tied(spec, config, target_config):
            raise PlanError(
                f"config field {key}={_show(value)} disagrees with the plan, which writes the LM head as the source "
                f"ties it ({_show(_tied(spec, config, target_config))}); leave {key} out"
            )
        source_value = config.get(key)
        if (
            spec.layered
            and isinstance(source_value, list)
            and len(source_value) == config.get(spec.layers_field)
            and (not isinstance(value, list) or len(value) != tgt["layers"])
        ):
            raise PlanError(
                f"config field {key} must be a list of {tgt['layers']} entries, one per target layer "
                f"(the plan otherwise takes the source's entries through the layer map)"
            )
        nested = config.get(NESTED)
        if key not in config and isinstance(nested, dict) and key in nested:
            target_config[NESTED] = {**target_config.get(NESTED, nested), key: value}  # rope_theta lives here now
        else:
            target_config[key] = value
    _check_kept(spec, target_config, rest)
    return target_config


def _check_kept(spec, target_config: dict, rest: dict) -> None:
    """Refuse a field that transformers' config class would silently drop (read from elsewhere, or converted)."""
    if not rest:
        return
    kept = spec.hf_config(target_config)
    as_dict = kept.to_dict()
    nested = as_dict.get(NESTED) if isinstance(as_dict.get(NESTED), dict) else {}
    for key in rest:
        if key not in as_dict and key not in nested and not hasattr(kept, key):
            raise PlanError(
                f"config field {key} is not a field transformers' {target_config.get('model_type')} config keeps "
                f"(it would be dropped on loading); check the field's name in the model's config.json"
            )


def _other_families_sizes(spec) -> dict[str, str]:
    """Config field → target size of the other registered families (``num_local_experts`` → ``experts``)."""
    from core.architectures.spec import FAMILIES

    names = {f.name for f in fields(TargetSizes)}
    out: dict[str, str] = {}
    for family, other in FAMILIES.items():
        if family != spec.family and other.library == "transformers":
            out.update({k: d for k, d in field_dims(other).items() if d in names and d in other.target_size_names()})
    return out


def _tied(spec, config: dict, target_config: dict) -> bool:
    if spec.tied_field in target_config and target_config.get(spec.tied_field) != config.get(spec.tied_field):
        return bool(target_config[spec.tied_field])  # the plan untied it (growth)
    return spec.is_tied(config)


def _measure(value):
    """What a fixed field says about its axis: a label map's length, else the value itself."""
    return len(value) if isinstance(value, (dict, list)) else value


def _show(value) -> str:
    return json.dumps(value)[:60]
