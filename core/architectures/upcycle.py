"""Dense → MoE upcycling (Komatsuzaki et al. 2023, "Sparse Upcycling"): a dense source read as a
one-expert model of its MoE family, whose experts the plan then copies (``--experts N``).

:func:`upcycled` wraps a llama/mistral (→ mixtral) or qwen2/qwen3 (→ qwen2_moe/qwen3_moe) source
in an :class:`UpcycledSource`: the dense ``mlp.{gate,up,down}_proj`` are expert 0's tensors (and,
for qwen2_moe, the shared expert's, whose down projection reads as zero), the router is a zero
(1, hidden) row, and the config is the MoE family's with one expert and the fields of
:attr:`~core.architectures.families._moe.MoESpec.upcycle_config`. That one-expert model computes
the dense function exactly (a softmax over one expert is 1). Growing ``experts`` 1 → N copies
expert 0 and the zero router row N times, so every token is routed with weights 1/k to k identical
experts: the output is the dense MLP's, bit for bit when 1/k is a power of two (mixtral always
renormalises its top-k weights; qwen needs ``norm_topk_prob``, which the upcycle sets). A router
filled by another strategy (``--value moe.router=baseline``) keeps the function too, up to
rounding: renormalised weights over identical experts still sum to one. It also breaks the tie a
zero router leaves (every token picks experts 0…k−1, and identical experts give the router no gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.architectures import detect
from core.architectures.families._moe import MoESpec
from core.architectures.spec import FAMILIES
from core.errors import PlanError
from core.sources.base import Source, TensorInfo


def moe_spec_for(model_type: str) -> MoESpec | None:
    """The MoE family a dense ``model_type`` upcycles to, or None."""
    for _, spec in FAMILIES.items():
        if isinstance(spec, MoESpec) and model_type in spec.upcycles:
            return spec
    return None


@dataclass
class UpcycledSource(Source):
    """A dense source seen as a one-expert MoE checkpoint: renamed tensors, zero routers, the MoE config."""

    dense: Source | None = None
    #: view name → dense tensor name.
    aliases: dict[str, str] = field(default_factory=dict)
    #: names that read as zeros (their shape and dtype are in ``tensors``).
    zeros: frozenset = frozenset()

    def read(self, name: str):
        import torch

        info = self.info(name)
        if name in self.zeros:
            from core.dtypes import torch_dtype

            return torch.zeros(info.shape, dtype=torch_dtype(info.dtype))
        return self.dense.read(self.aliases.get(name, name))

    def read_slice(self, name: str, index: tuple):
        if name in self.zeros:
            return self.read(name)[index]
        return self.dense.read_slice(self.aliases.get(name, name), index)

    def read_gather(self, name: str, rows, cols):
        if name in self.zeros:
            import math

            import numpy as np

            data = self.read(name)
            flat = data.reshape(data.shape[0], math.prod(data.shape[1:])) if data.dim() else data
            out = flat if rows is None else flat[np.asarray(rows)]
            return out.reshape((out.shape[0], *data.shape[1:])) if cols is None else out[:, np.asarray(cols)]
        return self.dense.read_gather(self.aliases.get(name, name), rows, cols)

    def file_hashes(self) -> dict[str, str]:
        return self.dense.file_hashes()

    def scan(self, **kw):
        return self.dense.scan(**kw)


def upcycled(source: Source, sizes) -> Source:
    """``source`` as a one-expert MoE model when ``sizes`` asks for experts of a dense model, else ``source``.

    Args:
        source: an opened source.
        sizes: the target sizes (a :class:`core.plan.TargetSizes` or a dict); only ``experts`` matters.

    Raises:
        PlanError: experts asked of a dense family no MoE family upcycles, or of a dense MLP with biases.
    """
    experts = sizes.get("experts") if isinstance(sizes, dict) else getattr(sizes, "experts", None)
    if experts is None or isinstance(source, UpcycledSource):
        return source
    spec, config = detect(source)
    if isinstance(spec, MoESpec):
        return source
    model_type = config.get("model_type")
    moe = moe_spec_for(model_type)
    if moe is None:
        known = sorted({t for _, s in FAMILIES.items() if isinstance(s, MoESpec) for t in s.upcycles})
        raise PlanError(
            f"a {model_type} model has no experts and no mixture-of-experts family upcycles it; "
            f"drop --experts, or start from one of {', '.join(known)}"
        )
    if config.get("mlp_bias") or config.get("attention_bias"):
        raise PlanError(
            f"this {model_type} model has MLP or attention biases, which {moe.upcycles[model_type]} lacks; "
            "it cannot be upcycled exactly — drop --experts"
        )
    target_type = moe.upcycles[model_type]
    keep = (lambda p: True) if target_type in moe.shared_expert_types else (lambda p: ".shared_expert" not in p)
    tensors: dict[str, TensorInfo] = {}
    aliases: dict[str, str] = {}
    zeros: set[str] = set()
    matched = spec.ensure_matches(list(source.tensors))
    float_dtype = next((i.dtype for i in source.tensors.values() if i.is_float), "F32")
    zero_patterns = {p: axes for p, axes in moe.upcycle_zeros if keep(p)}
    layers = set()
    for name, m in matched.items():
        info = source.tensors[name]
        targets = [p for p in moe.dense_names.get(m.rule.pattern, ()) if keep(p)]
        if m.layer is not None:
            layers.add((m.layer, m.prefix))
        if not targets:
            tensors[name] = info
            continue
        for pattern in targets:
            new = m.prefix + pattern.replace("{L}", str(m.layer)).replace("{E}", "0")
            tensors[new] = replace(info, name=new)
            aliases[new] = name
            if pattern in zero_patterns:
                zeros.add(new)
    hidden = spec.sizes(config)["hidden"]
    for layer, prefix in sorted(layers):
        for pattern, axes in zero_patterns.items():
            if axes is None:
                continue
            new = prefix + pattern.replace("{L}", str(layer))
            shape = tuple(1 if a in (("experts",), ("one",)) else hidden for a in axes)
            any_file = source.files[0]
            tensors[new] = TensorInfo(new, float_dtype, shape, any_file, (0, 0))
            zeros.add(new)
    moe_config = _moe_config(moe, config, target_type)
    view = UpcycledSource(
        root=source.root,
        files=source.files,
        tensors=tensors,
        config=moe_config,
        identity=source.identity,
        metadata=source.metadata,
        file_names=source.file_names,
        dense=source,
        aliases=aliases,
        zeros=frozenset(zeros),
    )
    return view


def _moe_config(moe: MoESpec, config: dict, target_type: str) -> dict:
    """The dense config as the MoE family's, with one expert (the plan grows the count)."""
    from core.architectures.spec import _class_default

    out = dict(config)
    out["model_type"] = target_type
    out["architectures"] = [
        {"mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}[
            target_type
        ]
    ]
    ffn = config.get("intermediate_size")
    for dim in ("ffn", "shared_ffn"):
        key = moe.config_fields.get(dim)
        if key and (dim == "ffn" or target_type in moe.shared_expert_types):
            out[key] = ffn
    out[moe.config_fields["experts"]] = 1
    out[moe.top_k_field] = _class_default(target_type, moe.top_k_field, 2)  # target_config caps it at the experts
    out.update(moe.upcycle_config)
    for key in ("mlp_bias", "attention_bias"):
        out.pop(key, None)
    return out
