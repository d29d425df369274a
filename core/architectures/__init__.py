"""What each tensor means: a registry of declarative family specs plus the inferred MLP.

``detect(source)`` picks the spec from ``config.json``'s ``model_type`` (or infers the generic
MLP when there is no config); ``describe(source)`` labels every tensor with its role, layer and
named dimensions. :data:`FAMILIES` holds every family's spec by name (``FAMILIES.get(plan.family)``),
:func:`spec_for_model_type` the one whose ``model_types`` hold a model type — the one list of model
types Graft supports, which training's ``task_for`` reads too.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.architectures.mlp import MLPSpec, infer_mlp
from core.architectures.spec import FAMILIES, ArchitectureSpec, Axis, MatchedTensor, TensorRule, axis_parts, is_concat
from core.errors import ArchitectureError

__all__ = [
    "FAMILIES",
    "ArchitectureSpec",
    "TensorRule",
    "MatchedTensor",
    "TensorRole",
    "detect",
    "describe",
    "all_families",
    "config_from_metadata",
    "model_types",
    "spec_for_model_type",
    "supported_model_types",
]


def all_families() -> dict[str, ArchitectureSpec]:
    """Every registered family spec by family name (the MLP's is its template: no tensors)."""
    return dict(FAMILIES.items())


def model_types() -> list[str]:
    """Every model type some family accepts (``mlp`` for the generic MLP's pseudo-config)."""
    return sorted({t for _, spec in FAMILIES.items() for t in spec.model_types})


def supported_model_types() -> list[str]:
    """The model types a config.json may name, and the MLP (which has none)."""
    named = {t for _, spec in FAMILIES.items() if not isinstance(spec, MLPSpec) for t in spec.model_types}
    return sorted(named) + ["generic MLP (no config.json)"]


def spec_for_model_type(model_type) -> ArchitectureSpec | None:
    """The spec of the family whose ``model_types`` hold ``model_type``, or None."""
    for _, spec in FAMILIES.items():
        if model_type in spec.model_types:
            return spec
    return None


def spec_for_config(config: dict) -> ArchitectureSpec:
    """The spec of a config.json (the MLP, which has none, is inferred from its tensors instead)."""
    model_type = config.get("model_type")
    spec = spec_for_model_type(model_type)
    if spec is None or isinstance(spec, MLPSpec):
        raise ArchitectureError(
            f"architecture {model_type!r} is not supported; supported: {', '.join(supported_model_types())}"
        )
    return spec


def config_from_metadata(metadata: dict[str, str]) -> dict | None:
    """The config recorded in the safetensors metadata of an export without config.json (the MLP's), or None."""
    for _, spec in FAMILIES.items():
        config = spec.config_from_metadata(metadata)
        if config is not None:
            return config
    return None


def detect(source) -> tuple[ArchitectureSpec, dict]:
    """The spec and the (pseudo-)config of an opened source.

    Raises:
        ArchitectureError: unknown family, or tensors the spec does not describe.
    """
    if source.config is None:
        shapes = {n: t.shape for n, t in source.tensors.items()}
        try:
            return infer_mlp(shapes, source.metadata)
        except ArchitectureError as exc:
            raise ArchitectureError(
                f"{source.display_name} has no config.json and is not a plain MLP ({exc}); add the model's "
                f"config.json next to the weights (supported: {', '.join(supported_model_types())})"
            ) from None
    if not isinstance(source.config, dict):
        raise ArchitectureError("config.json is not a JSON object; use the config.json that came with the weights")
    if not isinstance(source.config.get("model_type"), str):
        raise ArchitectureError("config.json has no 'model_type'; is this a transformers checkpoint?")
    spec = spec_for_config(source.config)
    _check_config_types(spec, source.config)
    return spec.bind(source.config), source.config


def _check_config_types(spec: ArchitectureSpec, config: dict) -> None:
    """The config fields Graft reads besides the sizes (checked in ``spec.sizes``) have their JSON types."""
    architectures = config.get("architectures")
    if architectures is not None and not (
        isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)
    ):
        raise ArchitectureError(
            f"config.json's architectures is {str(architectures)[:60]!r}, but it must be a list "
            "of class names; fix config.json"
        )
    tied = config.get(spec.tied_field) if spec.tied_field else None
    if tied is not None and not isinstance(tied, bool):
        raise ArchitectureError(
            f"config.json's {spec.tied_field} is {str(tied)[:60]!r}, but it must be true or false; fix config.json"
        )


@dataclass(frozen=True)
class TensorRole:
    """A source tensor with its meaning."""

    name: str
    role: str
    layer: int | None
    axes: tuple[Axis, ...]
    fan_in: int | None
    kind: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def dims_label(self) -> str:
        return " × ".join(_axis_label(a) for a in self.axes)


def _axis_label(axis) -> str:
    """``heads·head_dim``, or a concatenated axis's parts joined by ``+`` (``heads·head_dim+kv_heads·head_dim+…``)."""
    if not axis:
        return "()"
    return "+".join("·".join(part) for part in axis_parts(axis)) if is_concat(axis) else "·".join(axis)


def describe(source, spec: ArchitectureSpec | None = None) -> list[TensorRole]:
    """Label every tensor of ``source`` (in file order)."""
    if spec is None:
        spec, _ = detect(source)
    matched = spec.ensure_matches(list(source.tensors))
    out = []
    for name, info in source.tensors.items():
        m = matched[name]
        out.append(
            TensorRole(name, m.rule.role, m.layer, m.rule.axes, m.rule.fan_in, m.rule.kind, info.shape, info.dtype)
        )
    return out
