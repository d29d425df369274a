"""Phi-3 (and Phi-4-mini, same ``phi3`` model type): fused ``qkv_proj`` and ``gate_up_proj``.

``qkv_proj`` stacks the query rows of all heads, then the key rows, then the value rows:
(H·d + 2·KV·d) × hidden. With grouped-query attention (KV < H) the blocks differ in size, so the
output axis is no product of named dimensions (GPT-2's ``("qkv", "heads", "head_dim")`` needs
KV = H) but a :class:`~core.architectures.spec.Concat` of ``(heads, head_dim)``, ``(kv_heads,
head_dim)``, ``(kv_heads, head_dim)``: each block follows its own maps, a kept query head keeps its
kv group as in the llama family. ``gate_up_proj`` is ``[gate; up]``, two blocks of ffn rows:
the product axis ``("two", "ffn")``, so gate row i and up row i stay one neuron.

head_dim is hidden / heads (Phi-3's config states no head_dim). Phi-4-mini rotates only the first
``partial_rotary_factor`` = 0.75 of head_dim (rotary pairs (i, i + r/2) within those r channels,
transformers 5 keeps the factor in ``rope_parameters``); the plan keeps the pairs and the share as
for gpt_neox. Phi-3's long-context checkpoints (``longrope``) list one short and one long rescale
factor per rotary pair: their head_dim cannot change (the lists would not fit), so such a target is
refused with a sentence; heads and kv_heads still can, with hidden scaled along.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.architectures.families._blocks import KV, F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, Concat, TensorRule
from core.errors import PlanError

L = "model.layers.{L}"
QKV = Concat((Q, KV, KV))
GATE_UP = ("two", "ffn")

RULES = (
    TensorRule("model.embed_tokens.weight", "embed", (("vocab",), H)),
    *linear(f"{L}.self_attn.qkv_proj", "attn.qkv", QKV, H, bias=None),
    *linear(f"{L}.self_attn.o_proj", "attn.o", H, Q, bias=None, residual=True),
    TensorRule(f"{L}.self_attn.rotary_emb.inv_freq", "buffer", (("half_rotary",),), kind="drop", optional=True),
    TensorRule("model.rotary_emb.inv_freq", "buffer", (("half_rotary",),), kind="drop", optional=True),
    *linear(f"{L}.mlp.gate_up_proj", "mlp.gate_up", GATE_UP, H, bias=False),
    *linear(f"{L}.mlp.down_proj", "mlp.down", H, F, bias=False, residual=True),
    *norm(f"{L}.input_layernorm", bias=False),
    *norm(f"{L}.post_attention_layernorm", bias=False),
    *norm("model.norm", bias=False),
    TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True),
)

#: per-rotary-pair lists of a longrope config (one entry per pair of the rotary part of head_dim).
_PAIR_LISTS = ("short_factor", "long_factor")


@dataclass(frozen=True)
class Phi3Spec(ArchitectureSpec):
    """The phi3 spec: the block models' rules, plus the longrope check on a changed head_dim."""

    def target_config(self, source_config: dict, sizes: dict[str, int]) -> dict:
        config = super().target_config(source_config, sizes)
        source_head_dim = self.sizes(source_config).get("head_dim")
        if sizes.get("head_dim") != source_head_dim:
            for key in ("rope_parameters", "rope_scaling"):
                rope = source_config.get(key) or {}
                if any(isinstance(rope.get(k), list) for k in _PAIR_LISTS):
                    raise PlanError(
                        f"this Phi-3's {key} lists a {rope.get('rope_type') or rope.get('type')} factor per rotary "
                        f"pair of head_dim {source_head_dim}, which a head_dim of {sizes.get('head_dim')} cannot "
                        "use; keep head_dim = hidden / heads (scale hidden with heads)"
                    )
        return config


SPEC = Phi3Spec(
    family="phi3",
    task="causal_lm",
    model_types=("phi3",),
    rules=RULES,
    config_fields={
        "hidden": "hidden_size",
        "ffn": "intermediate_size",
        "heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
    },
    layers_field="num_hidden_layers",
    rotary=True,
    rotary_fraction_field="partial_rotary_factor",
    tied_head=("lm_head.weight", "model.embed_tokens.weight"),
    norm_placement="pre",
    notes="fused [Q;K;V] (GQA: a concatenated axis) and [gate; up]; hidden = heads × head_dim.",
)
FAMILIES.add(SPEC.family, SPEC)
