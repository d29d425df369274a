"""Mixtral: Mistral's attention with a sparse MoE block of ``num_local_experts`` SwiGLU experts.

Per layer ``block_sparse_moe.gate`` (experts, hidden) routes each token to ``num_experts_per_tok``
experts, whose top-k softmax weights are renormalised to sum to one; expert E is
``experts.{E}.w1`` (gate), ``w3`` (up), ``w2`` (down) with ``intermediate_size`` neurons each.
A dense llama/mistral source upcycles into it (``--experts N``, see :mod:`core.architectures.upcycle`).
"""

from core.architectures.families._blocks import KV, F, H, Q, linear, norm
from core.architectures.families._moe import MoESpec
from core.architectures.spec import FAMILIES, TensorRule

L = "model.layers.{L}"
X = f"{L}.block_sparse_moe.experts.{{E}}"

RULES = (
    TensorRule("model.embed_tokens.weight", "embed", (("vocab",), H)),
    *linear(f"{L}.self_attn.q_proj", "attn.q", Q, H, bias=None),
    *linear(f"{L}.self_attn.k_proj", "attn.k", KV, H, bias=None),
    *linear(f"{L}.self_attn.v_proj", "attn.v", KV, H, bias=None),
    *linear(f"{L}.self_attn.o_proj", "attn.o", H, Q, bias=None, residual=True),
    TensorRule(f"{L}.self_attn.rotary_emb.inv_freq", "buffer", (("half_head_dim",),), kind="drop", optional=True),
    TensorRule(f"{L}.block_sparse_moe.gate.weight", "moe.router", (("experts",), H), fan_in=1),
    *linear(f"{X}.w1", "mlp.gate", F, H, bias=False),
    *linear(f"{X}.w3", "mlp.up", F, H, bias=False),
    *linear(f"{X}.w2", "mlp.down", H, F, bias=False, residual=True),
    *norm(f"{L}.input_layernorm", bias=False),
    *norm(f"{L}.post_attention_layernorm", bias=False),
    *norm("model.norm", bias=False),
    TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True),
)

SPEC = MoESpec(
    family="mixtral",
    task="causal_lm",
    model_types=("mixtral",),
    rules=RULES,
    config_fields={
        "hidden": "hidden_size",
        "ffn": "intermediate_size",
        "heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
        "head_dim": "head_dim",
        "experts": "num_local_experts",
    },
    layers_field="num_hidden_layers",
    rotary=True,
    explicit_head_dim=True,
    tied_head=("lm_head.weight", "model.embed_tokens.weight"),
    experts_keys=("num_local_experts", "num_experts"),
    upcycles={"llama": "mixtral", "mistral": "mixtral"},
    dense_names={
        f"{L}.mlp.gate_proj.weight": (f"{X}.w1.weight",),
        f"{L}.mlp.up_proj.weight": (f"{X}.w3.weight",),
        f"{L}.mlp.down_proj.weight": (f"{X}.w2.weight",),
    },
    upcycle_zeros=((f"{L}.block_sparse_moe.gate.weight", (("experts",), H)),),
    notes="Experts as a per-layer dimension: an expert keeps its router row; each expert's ffn is drawn on its own.",
)
FAMILIES.add(SPEC.family, SPEC)
