"""The plan's data: target sizes, dimension maps, the layer map and one row per target tensor.

A :class:`Plan` serialises into the recipe (``to_dict`` / ``from_dict``), prints as a table
(``graft transfer --dry-run``) and is all a strategy needs to fill one tensor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from core.errors import PlanError


@dataclass(frozen=True)
class TargetSizes:
    """What the user asks for; None keeps the source's value (or derives it).

    Each field's metadata holds its GUI label and help: the CLI's size flags (``--kv-heads``) and the
    target panel's spin boxes are made from :meth:`size_fields`, so a new size is one field here.
    """

    layers: int | None = field(default=None, metadata={"label": "Layers", "help": "number of blocks (layers)"})
    hidden: int | None = field(default=None, metadata={"label": "Hidden", "help": "model width (hidden size)"})
    ffn: int | None = field(default=None, metadata={"label": "FFN", "help": "inner width of each feed-forward block"})
    heads: int | None = field(default=None, metadata={"label": "Heads", "help": "attention (query) heads"})
    kv_heads: int | None = field(
        default=None, metadata={"label": "KV heads", "help": "key/value heads (default: derived from the heads)"}
    )
    head_dim: int | None = field(
        default=None,
        metadata={
            "label": "Head dim",
            "help": "width of each attention head (for configs that set it apart from hidden / heads)",
        },
    )
    experts: int | None = field(
        default=None,
        metadata={
            "label": "Experts",
            "help": "experts per mixture-of-experts layer (a dense llama/mistral/qwen2/qwen3 source is upcycled)",
        },
    )

    @classmethod
    def size_fields(cls) -> tuple[tuple[str, str, str], ...]:
        """``(name, label, help)`` of every target size, in order."""
        return tuple((f.name, f.metadata["label"], f.metadata["help"]) for f in fields(cls))

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
    #: a cross-family plan's source role that fed it (``mlp.up statistics`` for a gate; :mod:`core.plan.cross`).
    source_role: str | None = None

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
    #: the source's family when it differs from the target's (``family``): a cross-family plan.
    source_family: str | None = None

    # -- lookups ----------------------------------------------------------------------------
    def tensor(self, name: str) -> TensorPlan:
        for t in self.tensors:
            if t.name == name:
                return t
        raise PlanError(f"the plan has no target tensor named {name!r}")

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors if t.kind == "param")

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        if self.source_family is None:  # a same-family plan serialises as before cross-family targets existed
            del data["source_family"]
            for t in data["tensors"]:
                del t["source_role"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        data = dict(data)
        data["layer_map"] = [LayerLink(**x) for x in data["layer_map"]]
        data["dims"] = {k: DimMap(**v) for k, v in data["dims"].items()}
        data["tensors"] = [TensorPlan(**t) for t in data["tensors"]]
        return cls(**data)
