"""Llama and the families with the same tensors: Mistral, Qwen2 (q/k/v biases), Qwen3 (q/k norms).

Gemma, Gemma 2 and Gemma 3 share this table (their pre/post-feedforward norms are its optional rows)
but are a family of their own: :mod:`core.architectures.families.gemma`.
"""

from core.architectures.families._blocks import KV, F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, TensorRule

L = "model.layers.{L}"

RULES = (
    TensorRule("model.embed_tokens.weight", "embed", (("vocab",), H)),
    *linear(f"{L}.self_attn.q_proj", "attn.q", Q, H, bias=None),
    *linear(f"{L}.self_attn.k_proj", "attn.k", KV, H, bias=None),
    *linear(f"{L}.self_attn.v_proj", "attn.v", KV, H, bias=None),
    *linear(f"{L}.self_attn.o_proj", "attn.o", H, Q, bias=None, residual=True),
    *norm(f"{L}.self_attn.q_norm", bias=False, axis=("head_dim",), optional=True),
    *norm(f"{L}.self_attn.k_norm", bias=False, axis=("head_dim",), optional=True),
    TensorRule(f"{L}.self_attn.rotary_emb.inv_freq", "buffer", (("half_head_dim",),), kind="drop", optional=True),
    *linear(f"{L}.mlp.gate_proj", "mlp.gate", F, H, bias=False),
    *linear(f"{L}.mlp.up_proj", "mlp.up", F, H, bias=False),
    *linear(f"{L}.mlp.down_proj", "mlp.down", H, F, bias=False, residual=True),
    *norm(f"{L}.input_layernorm", bias=False),
    *norm(f"{L}.post_attention_layernorm", bias=False),
    *norm(f"{L}.pre_feedforward_layernorm", bias=False, optional=True),
    *norm(f"{L}.post_feedforward_layernorm", bias=False, optional=True),
    *norm("model.norm", bias=False),
    TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True),
)

SPEC = ArchitectureSpec(
    family="llama",
    task="causal_lm",
    model_types=("llama", "mistral", "qwen2", "qwen3"),
    rules=RULES,
    config_fields={
        "hidden": "hidden_size",
        "ffn": "intermediate_size",
        "heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
        "head_dim": "head_dim",
    },
    layers_field="num_hidden_layers",
    rotary=True,
    explicit_head_dim=True,
    tied_head=("lm_head.weight", "model.embed_tokens.weight"),
    norm_placement="pre",
    notes="GQA: a kept query head keeps its kv group; rotary pairs (i, i + head_dim/2) stay together.",
)
FAMILIES.add(SPEC.family, SPEC)
