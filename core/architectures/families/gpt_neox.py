"""GPT-NeoX (Pythia): fused ``query_key_value`` interleaved per head, partial rotary, parallel residual.

``query_key_value``'s output axis is ``("heads", "qkv", "head_dim")``: transformers views it as
(heads, 3·head_dim) and splits each head's row block into q | k | v, so head h's q, k, v rows are
``h·3d + [0, d)``, ``h·3d + [d, 2d)``, ``h·3d + [2d, 3d)`` — the row-major flat index of
(heads, qkv, head_dim), where GPT-2's ``c_attn`` is (qkv, heads, head_dim).

Only the first ``rotary_dims = int(head_dim × rotary_pct)`` channels of a head rotate (Pythia:
rotary_pct 0.25, head_dim 64 → 16), in pairs (i, i + rotary_dims/2); the plan keeps those pairs
together and the share fixed, so a target head_dim must give an even rotary part at the source's
rotary_pct (head_dim 64 → 32 keeps 8 of the 16).

Both block forms are pre-LN: ``use_parallel_residual`` (Pythia) computes x + attn(LN₁x) + mlp(LN₂x),
the sequential form x' = x + attn(LN₁x), x' + mlp(LN₂x'); with zero ``dense`` and ``dense_4h_to_h``
(and biases) an inserted block is the identity in either.
"""

from core.architectures.families._blocks import F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, TensorRule

L = "layers.{L}"
QKV = ("heads", "qkv", "head_dim")

RULES = (
    TensorRule("embed_in.weight", "embed", (("vocab",), H)),
    *norm(f"{L}.input_layernorm"),
    *norm(f"{L}.post_attention_layernorm"),
    *linear(f"{L}.attention.query_key_value", "attn.qkv", QKV, H, bias=None),
    *linear(f"{L}.attention.dense", "attn.o", H, Q, bias=None, residual=True),
    # Older checkpoints (Pythia) carry the causal mask and rotary frequencies; transformers recomputes them.
    TensorRule(f"{L}.attention.bias", "buffer", (("one",), ("one",), ("pos",), ("pos",)), kind="drop", optional=True),
    TensorRule(f"{L}.attention.masked_bias", "buffer", (), kind="drop", optional=True),
    TensorRule(f"{L}.attention.rotary_emb.inv_freq", "buffer", (("half_rotary",),), kind="drop", optional=True),
    TensorRule("rotary_emb.inv_freq", "buffer", (("half_rotary",),), kind="drop", optional=True),
    *linear(f"{L}.mlp.dense_h_to_4h", "mlp.up", F, H),
    *linear(f"{L}.mlp.dense_4h_to_h", "mlp.down", H, F, residual=True),
    *norm("final_layer_norm"),
    # Pythia and transformers 5 save the head as embed_out (the module is lm_head; renamed on load).
    TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("embed_out.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True),
)

SPEC = ArchitectureSpec(
    family="gpt_neox",
    task="causal_lm",
    model_types=("gpt_neox",),
    rules=RULES,
    config_fields={"hidden": "hidden_size", "ffn": "intermediate_size", "heads": "num_attention_heads"},
    layers_field="num_hidden_layers",
    prefixes=("", "gpt_neox."),
    rotary=True,
    rotary_fraction_field="rotary_pct",
    tied_head=("embed_out.weight", "embed_in.weight"),  # the name Pythia and transformers save it under
    norm_placement="pre",
    notes="hidden = heads × head_dim; q|k|v interleaved per head; the first rotary_pct of head_dim rotates.",
)
FAMILIES.add(SPEC.family, SPEC)
