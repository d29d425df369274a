"""Declarative architecture specs: what every tensor means.

A spec is a table of tensor-name templates → role + the *named dimension* of each axis. This is
the row–column ansatz made concrete: every axis carrying the same named dimension is one random
variable, and is mapped the same way in every tensor that carries it.

An axis is a tuple of atomic dimension names, outermost first: GPT-2's fused ``c_attn`` output
axis is ``("qkv", "heads", "head_dim")`` — three blocks of heads × head_dim. Atomic dimensions
that differ from layer to layer (``ffn``, ``heads``, ``kv_heads``) are *per layer*: layer 3's
ffn neurons are a different random variable from layer 4's.

A spec also says how its family lives outside the tensor table, so a new family is one module:
how a random-init model is built from a config (:meth:`ArchitectureSpec.build_model`, the one
place Graft does that), what an export writes besides the weights (:meth:`~ArchitectureSpec.export_files`),
how an export is loaded back (``loader``, :meth:`~ArchitectureSpec.load`) and which training task
trains it (``task``). The defaults are those of a ``transformers`` family; the generic MLP
(:mod:`core.architectures.mlp`) overrides them. Every spec registers in :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field

from core.errors import ArchitectureError, PlanError
from core.registry import Registry

Axis = tuple[str, ...]


class Concat(tuple):
    """An axis made of blocks of different composite dimensions, one after the other.

    Phi-3's fused ``qkv_proj`` with grouped-query attention stacks H·d query rows, then KV·d key
    rows, then KV·d value rows: ``Concat((("heads", "head_dim"), ("kv_heads", "head_dim"),
    ("kv_heads", "head_dim")))``. It is no product (GPT-2's ``("qkv", "heads", "head_dim")`` is,
    because there K and V have as many heads as Q): its size is the sum of its parts' products,
    and a target position's source index is its part's composite index plus the part's source
    offset (:func:`core.transfer.composite_index`). In a plan (``TensorPlan.axes``) such an axis
    is a list of parts, each a list of keys, so a plan still serialises to JSON.
    """

    __slots__ = ()

    def __new__(cls, parts):
        return super().__new__(cls, tuple(tuple(p) for p in parts))

    def __repr__(self) -> str:
        return f"Concat({tuple(self)!r})"


def is_concat(axis) -> bool:
    """Whether an axis (a rule's tuple, or a plan's list of keys) is a concatenation of parts."""
    return isinstance(axis, Concat) or (len(axis) > 0 and not isinstance(axis[0], str))


def axis_parts(axis) -> list:
    """The parts of an axis: its blocks for a concatenated one, else the axis itself as the only part."""
    return list(axis) if is_concat(axis) else [axis]


def axis_atoms(axis) -> list[str]:
    """Every atomic dimension (or key) on an axis, once each, in order."""
    return list(dict.fromkeys(d for part in axis_parts(axis) for d in part))


#: Family name → its spec; each family module registers its own (the MLP's is the template
#: :func:`core.architectures.mlp.infer_mlp` fills in from a checkpoint's shapes).
FAMILIES: Registry[ArchitectureSpec] = Registry(
    "architecture family",
    ArchitectureError,
    modules=tuple(f"core.architectures.families.{m}" for m in ("bert", "llama", "gpt2", "vit"))
    + tuple(f"core.architectures.families.{m}" for m in ("mixtral", "qwen2_moe"))
    + tuple(f"core.architectures.families.{m}" for m in ("gpt_neox", "opt"))
    + ("core.architectures.families.phi3",)
    + ("core.architectures.families.gemma",)
    + ("core.architectures.families.convnext",)
    + ("core.architectures.mlp",),
)
#: config.json keys that are not arguments of a transformers config class.
_NOT_CONFIG_ARGS = ("model_type", "architectures", "transformers_version", "_name_or_path")


def _positive_int(value, key: str) -> int:
    """A config size, refused unless it is a positive integer (JSON ``true`` and ``6.5`` are not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArchitectureError(f"config.json's {key} is {value!r}, but it must be a positive integer; fix config.json")
    return value


def _class_default(model_type, key: str, fallback):
    """``key``'s default in the transformers config class of ``model_type`` (``fallback`` if unknown);
    from the table in :mod:`core.architectures.class_defaults`, so opening a checkpoint needs no transformers."""
    from core.architectures.class_defaults import class_default

    return class_default(model_type, key, fallback)


#: Substrings of the transformers class names that carry an LM head (``GPT2LMHeadModel``, ``BertForMaskedLM`` …).
LM_HEAD_MARKERS = ("LMHead", "ForCausalLM", "ForMaskedLM", "ForPreTraining")
#: Dimensions drawn separately for every layer (``experts`` and a shared expert's ``shared_ffn``: MoE families).
PER_LAYER_DIMS = frozenset({"ffn", "heads", "kv_heads", "experts", "shared_ffn"})
#: Dimensions drawn separately for every expert of a layer too, in the tensors of a rule with ``{E}`` (``ffn@3/1``).
PER_EXPERT_DIMS = frozenset({"ffn"})
#: Dimensions a target may change (others are fixed by the data: vocab, positions, …).
RESIZABLE_DIMS = frozenset({"hidden", "ffn", "heads", "kv_heads", "head_dim", "experts", "shared_ffn"})


@dataclass(frozen=True)
class TensorRule:
    """One template row of a spec.

    Attributes:
        pattern: name template; ``{L}`` stands for the layer index, ``{E}`` for the expert index
            (one tensor per expert of a mixture-of-experts layer).
        role: what the tensor is (``attn.q``, ``mlp.down``, ``norm``, ``embed`` …).
        axes: the named dimension(s) of each axis, in storage order (a :class:`Concat` for blocks
            of different sizes stacked on one axis).
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


@dataclass(frozen=True)
class MatchedTensor:
    """A source tensor matched to its rule."""

    name: str
    rule: TensorRule
    layer: int | None
    prefix: str
    expert: int | None = None

    def renamed(self, layer: int | None, expert: int | None = None) -> str:
        """This tensor's name for another layer index (the target's), and expert index for a ``{E}`` rule."""
        body = self.rule.pattern.replace("{L}", str(layer)) if layer is not None else self.rule.pattern
        if "{E}" in body:
            body = body.replace("{E}", str(self.expert if expert is None else expert))
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
    #: model_type → ``tied_head`` where a family's model types name their LM head differently.
    tied_head_by_type: dict = field(default_factory=dict)
    #: head tensor → ((tensor, the tensor it is tied to), …) untied along with the head (BERT's decoder bias).
    tied_head_twins: dict = field(default_factory=dict)
    #: where each block normalises: ``"pre"`` (x + f(norm(x)): an inserted block whose output
    #: projections are zero is the identity) or ``"post"`` (norm(x + f(x)), BERT: it is not).
    norm_placement: str = "pre"
    #: config field that, set false, makes the blocks post-LN (OPT's ``do_layer_norm_before``: opt-350m).
    pre_norm_field: str | None = None
    #: config field of the rotary share of head_dim (GPT-NeoX's ``rotary_pct``; transformers 5 keeps it as
    #: ``rope_parameters["partial_rotary_factor"]``): only the first ``int(head_dim × fraction)`` channels
    #: rotate, in pairs (i, i + rotary_dims/2). None: the whole head_dim rotates (when ``rotary``).
    rotary_fraction_field: str | None = None
    #: model types that multiply the token embeddings by √hidden in the forward pass (Gemma).
    sqrt_hidden_embedding: tuple[str, ...] = ()
    #: dimensions a target may resize (the generic MLP names its own).
    resizable: frozenset = RESIZABLE_DIMS
    #: the family repeats blocks named with ``{L}``: its depth can change and ``ffn``/``heads``/``kv_heads``
    #: are drawn per layer. False for a fixed chain whose every width is one global dimension (the MLP).
    layered: bool = True
    #: the training task (``core.training.tasks.TASKS``) that trains the family in a validation run.
    task: str = ""
    #: the library an export loads with (the model card's ``library_name``).
    library: str = "transformers"
    #: ``(module, call)`` that loads an export folder: what the model card shows and :meth:`load` runs.
    loader: tuple[str, str] = ("transformers", "AutoModel.from_pretrained")
    #: the blocks normalise what they sum (LayerNorm, RMSNorm), so a uniform fan-in scale is undone
    #: downstream: mean_field's ``rescale=auto`` leaves a shrinking fan-in unscaled.
    normalised: bool = True
    #: the rule by_activation's ``rule=auto`` stands for: the benchmarks' winner on the family.
    activation_rule: str = "magnitude"
    #: config field → named dimension for ``--set`` (:mod:`core.plan.config_set`), beyond ``config_fields``,
    #: ``layers_field`` and the common fixed fields (``vocab_size`` → ``vocab`` …).
    set_fields: dict = field(default_factory=dict)
    #: the class a validation run trains where the family fixes it (ViT's ``ViTForImageClassification``
    #: for deit configs too); None: the task's ``model_class``.
    task_class: str | None = None
    notes: str = ""
    _regexes: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        compiled = []
        for rule in self.rules:
            body = (
                re.escape(rule.pattern)
                .replace(r"\{L\}", r"(?P<layer>\d+)")
                .replace(r"\{E\}", r"(?P<expert>\d+)")
                .replace(r"\{S\}", r"(?P<stage>\d+)")  # a staged family's template (core.architectures.stages)
            )
            pre = "|".join(re.escape(p) for p in sorted(self.prefixes, key=len, reverse=True))
            compiled.append((re.compile(rf"^(?P<prefix>{pre}){body}$"), rule))
        object.__setattr__(self, "_regexes", tuple(compiled))

    def match(self, name: str) -> MatchedTensor | None:
        for regex, rule in self._regexes:
            m = regex.match(name)
            if m:
                layer, expert = m.groupdict().get("layer"), m.groupdict().get("expert")
                return MatchedTensor(
                    name,
                    rule,
                    int(layer) if layer is not None else None,
                    m["prefix"],
                    int(expert) if expert is not None else None,
                )
        return None

    # -- sizes -----------------------------------------------------------------------------
    def sizes(self, config: dict) -> dict[str, int]:
        """Size of every atomic dimension (and ``layers``) for a config of this family."""
        out: dict[str, int] = {}
        for dim, key in self.config_fields.items():
            value = config.get(key)
            if value is not None:
                out[dim] = _positive_int(value, key)
        if config.get(self.layers_field) is None:
            raise ArchitectureError(f"config.json has no {self.layers_field!r}; add the model's number of layers")
        out["layers"] = _positive_int(config[self.layers_field], self.layers_field)
        for dim, key in (("hidden", self.config_fields.get("hidden")), ("heads", self.config_fields.get("heads"))):
            if key and dim not in out:
                raise ArchitectureError(f"config.json has no {key!r}; use the config.json that came with these weights")
        out.setdefault("kv_heads", out.get("heads", 1))
        if "head_dim" not in out and "heads" in out:
            out["head_dim"] = out["hidden"] // out["heads"]
        if "ffn" not in out and "hidden" in out:
            out["ffn"] = 4 * out["hidden"]  # gpt2's n_inner=None convention
        out.setdefault("qkv", 3)
        if any("two" in axis_atoms(axis) for rule in self.rules for axis in rule.axes):
            out.setdefault(
                "two", 2
            )  # Phi-3's fused [gate; up] (only where a rule carries it: plans elsewhere keep their sizes)
        out.setdefault("one", 1)
        if self.rotary_fraction_field and "head_dim" in out:
            rotary_dims = int(out["head_dim"] * self.rotary_fraction(config))  # as transformers computes it
            if 0 < rotary_dims < out["head_dim"]:
                out["rotary_dims"] = rotary_dims
        return out

    def rotary_fraction(self, config: dict) -> float:
        """The rotary share of head_dim: the config's ``rotary_fraction_field``, else its
        ``rope_parameters["partial_rotary_factor"]``, else the transformers class default (1.0 if none)."""
        value = config.get(self.rotary_fraction_field) if self.rotary_fraction_field else None
        if value is None:
            value = (config.get("rope_parameters") or config.get("rope_scaling") or {}).get("partial_rotary_factor")
        if value is None:
            value = (_class_default(config.get("model_type"), "rope_parameters", {}) or {}).get("partial_rotary_factor")
        if value is None:
            return 1.0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ArchitectureError(
                f"config.json's {self.rotary_fraction_field} is {value!r}, but it must be a number in (0, 1]; fix config.json"
            )
        return float(value)

    def norm_placement_for(self, config: dict) -> str:
        """Where the blocks of this config normalise: ``norm_placement``, or ``"post"`` when the config sets
        ``pre_norm_field`` false."""
        if self.pre_norm_field and config.get(self.pre_norm_field) is False:
            return "post"
        return self.norm_placement

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
        if (
            "rotary_dims" in sizes
            and int(sizes["head_dim"] * self.rotary_fraction(source_config)) != sizes["rotary_dims"]
        ):
            raise PlanError(
                f"with head_dim {sizes['head_dim']}, the source's {self.rotary_fraction_field} "
                f"{self.rotary_fraction(source_config)} does not give the {sizes['rotary_dims']} rotary channels "
                "the source's share needs; choose another head_dim (hidden / heads)"
            )
        if self.explicit_head_dim and "head_dim" in sizes:
            config[self.config_fields.get("head_dim", "head_dim")] = sizes["head_dim"]
        return config

    def resolve_sizes(
        self, src: dict[str, int], asked: dict[str, int], fields: dict | None = None
    ) -> dict[str, int] | None:
        """The target sizes by the family's own rule, or None for the block models' rule
        (:func:`core.plan.resolve_sizes`: derived kv heads and head_dim, divisibility checks).

        ``fields`` are the target config fields that set no single-integer size (``--set``), for a
        family whose sizes are lists (a staged family's per-stage widths and depths)."""
        return None

    def bind(self, config: dict) -> ArchitectureSpec:
        """This spec for one config: itself, or a staged family's rules written out per stage
        (:mod:`core.architectures.stages`); :func:`core.architectures.detect` calls it."""
        return self

    def block_index(self, layer: int | None, sizes: dict[str, int]) -> int | None:
        """The index a (flat) layer has in tensor names under ``sizes``: the layer itself, or a staged
        family's index within its stage."""
        return layer

    def rule_layers(self, rule: TensorRule, sizes: dict[str, int]) -> range:
        """The flat layers a ``{L}`` rule has tensors in: every layer, or a staged family's stage."""
        return range(sizes.get("layers", 0))

    def target_size_names(self) -> frozenset[str]:
        """The target sizes a user may set: ``layers`` and the resizable config sizes (not a derived head_dim)."""
        names = {"layers"} | {d for d in self.config_fields if d in self.resizable}
        if not self.explicit_head_dim:
            names.discard("head_dim")  # derived from hidden / heads
        return frozenset(names)

    def plan_warnings(self, plan) -> list[str]:
        """Sentences about what a finished plan of this family does not keep (MoE routing), for ``plan.warnings``."""
        return []

    def per_layer(self, dim: str) -> bool:
        """Whether ``dim`` is drawn separately for every layer (``ffn@3``), not once for the model."""
        return self.layered and dim.split(".")[0] in PER_LAYER_DIMS  # a stage's ffn.2 too

    # -- the model: built, exported, loaded --------------------------------------------------
    def hf_config(self, config: dict):
        """A transformers config object from a config dict (config.json's content).

        Raises:
            ArchitectureError: transformers cannot build a config of this model type from it.
        """
        from transformers import AutoConfig

        values = {k: v for k, v in config.items() if k not in _NOT_CONFIG_ARGS}
        try:
            return AutoConfig.for_model(config["model_type"], **values)
        except Exception as exc:  # noqa: BLE001 - transformers raises anything on a bad config
            raise ArchitectureError(f"cannot build a {config.get('model_type')} config: {exc}") from exc

    def build_model(self, config: dict, model_class: str | None = None):
        """A randomly initialised model from a config dict: the one place Graft builds one.

        The class is ``model_class`` (a training task's, e.g. ``AutoModelForCausalLM``), else the
        one config.json's ``architectures`` names, else ``AutoModel``. An Auto class is built with
        ``from_config`` (which honours the config's dtype), a named class by calling it, exactly as
        transformers does either; the caller seeds ``torch`` first, so the draw is reproducible.
        """
        import transformers

        cfg = self.hf_config(config)
        name = model_class or (config.get("architectures") or [None])[0]
        cls = getattr(transformers, name, None) if name else None
        if cls is None:
            return transformers.AutoModel.from_config(cfg)
        return cls.from_config(cfg) if name.startswith("Auto") else cls(cfg)

    def model_keys(self, config: dict, names: list[str]) -> dict[str, str] | None:
        """Checkpoint name → state-dict key of :meth:`build_model`'s model where the family fixes it,
        or None: the names are matched to the model's own keys (:func:`core.training.arms.match_keys`)."""
        return None

    def model_state(self, config: dict, tensors: dict, own: dict) -> tuple[dict, set[str]]:
        """The checkpoint tensors that the model built from ``config`` holds in another form, converted
        the way ``from_pretrained`` converts them (an MoE family's per-expert tensors stacked into
        transformers' fused expert parameters).

        Args:
            tensors: checkpoint name → tensor.
            own: the model's state dict.

        Returns:
            ``(state-dict key → tensor, the checkpoint names they consume)``; both empty by default:
            every tensor loads by name (:func:`core.training.arms.load_tensors`).
        """
        return {}, set()

    def export_files(self, config: dict) -> tuple[dict | None, dict[str, str]]:
        """What an export writes besides the weights: ``(config.json's content or None, safetensors metadata)``."""
        out = dict(config)
        out.pop("_name_or_path", None)
        return out, {}

    def config_from_metadata(self, metadata: dict[str, str]) -> dict | None:
        """The config an export without config.json records in its safetensors metadata (None: not this family's)."""
        return None

    def load(self, folder):
        """Load an export folder back into a model, with :attr:`loader`."""
        module, call = self.loader
        loader = importlib.import_module(module)
        for part in call.split("."):
            loader = getattr(loader, part)
        return loader(str(folder))

    def is_tied(self, config: dict) -> bool:
        """Whether the LM head shares the embedding matrix, as ``transformers`` would decide it.

        A config that does not state it gets its transformers class's default (Gemma ties,
        Llama does not), falling back to ``tied_default``.
        """
        if not self.tied_field:
            return False
        if self.tied_field in config:
            return bool(config[self.tied_field])
        return _class_default(config.get("model_type"), self.tied_field, self.tied_default)

    def tied_head_for(self, config: dict) -> tuple[str, str] | None:
        """(head tensor name, embedding pattern) of this config's tied LM head; None without an LM head.

        A config whose ``architectures`` names a bare encoder or a classifier has no LM head to
        untie; one that names no architecture gets the family's ``tied_head``.
        """
        arch = (config.get("architectures") or [""])[0]
        if arch and not any(marker in arch for marker in LM_HEAD_MARKERS):
            return None
        return self.tied_head_by_type.get(config.get("model_type"), self.tied_head)

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
