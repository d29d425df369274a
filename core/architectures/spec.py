"""Declarative architecture specs: what every tensor means.

A spec is a table of tensor-name templates → role + the *named dimension* of each axis. This is
the row–column ansatz made concrete: every axis carrying the same named dimension is one random
variable, and is mapped the same way in every tensor that carries it.

An axis is a tuple of atomic dimension names, outermost first: GPT-2's fused ``c_attn`` output
axis is ``("qkv", "heads", "head_dim")`` — three blocks of heads × head_dim. Atomic dimensions
that differ from layer to layer (``ffn``, ``heads``, ``kv_heads``) are *per layer*: layer 3's
ffn neurons are a different random variable from layer 4's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import ArchitectureError

Axis = tuple[str, ...]

#: Dimensions drawn separately for every layer.
PER_LAYER_DIMS = frozenset({"ffn", "heads", "kv_heads"})
#: Dimensions a target may change (others are fixed by the data: vocab, positions, …).
RESIZABLE_DIMS = frozenset({"hidden", "ffn", "heads", "kv_heads", "head_dim"})


@dataclass(frozen=True)
class TensorRule:
    """One template row of a spec.

    Attributes:
        pattern: name template; ``{L}`` stands for the layer index.
        role: what the tensor is (``attn.q``, ``mlp.down``, ``norm``, ``embed`` …).
        axes: the named dimension(s) of each axis, in storage order.
        fan_in: index of the axis summed over in the forward pass (the input of a linear map),
            or None for lookups, vectors and buffers.
        kind: ``param`` (a weight), ``buffer`` (copied through the maps, never sampled), or
            ``drop`` (recomputed by transformers; not exported).
        optional: absent from some checkpoints (tied heads, pooler, biases).
        writes_residual: the tensor writes the residual stream at the end of a block (o_proj,
            down_proj and their biases): zeroed in blocks inserted to grow depth.
    """

    pattern: str
    role: str
    axes: tuple[Axis, ...]
    fan_in: int | None = None
    kind: str = "param"
    optional: bool = False
    writes_residual: bool = False

    @property
    def is_bias(self) -> bool:
        return self.pattern.endswith(".bias") and len(self.axes) == 1


@dataclass(frozen=True)
class MatchedTensor:
    """A source tensor matched to its rule."""

    name: str
    rule: TensorRule
    layer: int | None
    prefix: str

    def renamed(self, layer: int | None) -> str:
        """This tensor's name for another layer index (the target's)."""
        body = self.rule.pattern.replace("{L}", str(layer)) if layer is not None else self.rule.pattern
        return self.prefix + body


@dataclass(frozen=True)
class ArchitectureSpec:
    """A family's tensor table plus the config fields that set each dimension."""

    family: str
    model_types: tuple[str, ...]
    rules: tuple[TensorRule, ...]
    #: atomic dim → config field that holds its size (dims not here are derived or fixed).
    config_fields: dict[str, str]
    layers_field: str
    prefixes: tuple[str, ...] = ("",)
    #: head_dim comes in rotary pairs (i, i + d/2) that must be selected together.
    rotary: bool = False
    #: the config may state head_dim explicitly (llama family); otherwise hidden = heads × head_dim.
    explicit_head_dim: bool = False
    tied_field: str | None = "tie_word_embeddings"
    #: whether the head is tied when the config does not say.
    tied_default: bool = False
    #: (head tensor name, embedding rule pattern) of a tied LM head, untied when growth widens hidden.
    tied_head: tuple[str, str] | None = None
    #: dimensions a target may resize (the generic MLP names its own).
    resizable: frozenset = RESIZABLE_DIMS
    notes: str = ""
    _regexes: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        compiled = []
        for rule in self.rules:
            body = re.escape(rule.pattern).replace(r"\{L\}", r"(?P<layer>\d+)")
            pre = "|".join(re.escape(p) for p in sorted(self.prefixes, key=len, reverse=True))
            compiled.append((re.compile(rf"^(?P<prefix>{pre}){body}$"), rule))
        object.__setattr__(self, "_regexes", tuple(compiled))

    def match(self, name: str) -> MatchedTensor | None:
        for regex, rule in self._regexes:
            m = regex.match(name)
            if m:
                layer = m.groupdict().get("layer")
                return MatchedTensor(name, rule, int(layer) if layer is not None else None, m["prefix"])
        return None

    # -- sizes -----------------------------------------------------------------------------
    def sizes(self, config: dict) -> dict[str, int]:
        """Size of every atomic dimension (and ``layers``) for a config of this family."""
        out: dict[str, int] = {}
        for dim, key in self.config_fields.items():
            value = config.get(key)
            if value is not None:
                out[dim] = int(value)
        out["layers"] = int(config[self.layers_field])
        out.setdefault("kv_heads", out.get("heads", 1))
        if "head_dim" not in out and "heads" in out:
            out["head_dim"] = out["hidden"] // out["heads"]
        if "ffn" not in out and "hidden" in out:
            out["ffn"] = 4 * out["hidden"]  # gpt2's n_inner=None convention
        out.setdefault("qkv", 3)
        out.setdefault("one", 1)
        return out

    def target_config(self, source_config: dict, sizes: dict[str, int]) -> dict:
        """The source config with the resizable fields set to ``sizes``."""
        config = dict(source_config)
        for dim, key in self.config_fields.items():
            if dim in sizes and dim in self.resizable:
                if dim == "head_dim" and not self.explicit_head_dim:
                    continue
                if dim == "kv_heads" and key not in source_config and sizes[dim] == sizes.get("heads"):
                    continue
                config[key] = sizes[dim]
        config[self.layers_field] = sizes["layers"]
        if self.explicit_head_dim and "head_dim" in sizes:
            config[self.config_fields.get("head_dim", "head_dim")] = sizes["head_dim"]
        return config

    def is_tied(self, config: dict) -> bool:
        return bool(self.tied_field and config.get(self.tied_field, self.tied_default))

    def ensure_matches(self, names: list[str]) -> dict[str, MatchedTensor]:
        """Match every name or raise with the unmatched ones listed."""
        matched, unknown = {}, []
        for name in names:
            m = self.match(name)
            if m is None:
                unknown.append(name)
            else:
                matched[name] = m
        if unknown:
            shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
            raise ArchitectureError(
                f"{len(unknown)} tensor(s) are not described by the {self.family} spec ({shown}); "
                "the checkpoint may be of another family or carry extra heads"
            )
        return matched
