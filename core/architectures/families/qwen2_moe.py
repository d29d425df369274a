"""Qwen2-MoE and Qwen3-MoE: ``mlp.experts.{E}.{gate,up,down}_proj`` routed by ``mlp.gate``.

Each expert has ``moe_intermediate_size`` neurons. Qwen2-MoE adds a shared expert every token
uses (``mlp.shared_expert.*``, ``shared_expert_intermediate_size`` neurons: the ``shared_ffn``
dimension), scaled by sigmoid(``mlp.shared_expert_gate`` · x), a (1, hidden) row; Qwen3-MoE has
none but q/k norms. Layers in ``mlp_only_layers`` (or off the ``decoder_sparse_step``) carry a
dense ``mlp.{gate,up,down}_proj`` of ``intermediate_size`` neurons (``dense_ffn``: kept as it is).
Top-k weights are renormalised only with ``norm_topk_prob``. Qwen3-MoE configs store the expert
count as ``num_experts`` or ``num_local_experts`` (transformers aliases them); Graft keeps the key.
"""

from core.architectures.families._blocks import KV, F, H, Q, linear, norm
from core.architectures.families._moe import MoESpec
from core.architectures.spec import FAMILIES, TensorRule

L = "model.layers.{L}"
X = f"{L}.mlp.experts.{{E}}"
S = ("shared_ffn",)
D = ("dense_ffn",)

RULES = (
    TensorRule("model.embed_tokens.weight", "embed", (("vocab",), H)),
    *linear(f"{L}.self_attn.q_proj", "attn.q", Q, H, bias=None),
    *linear(f"{L}.self_attn.k_proj", "attn.k", KV, H, bias=None),
    *linear(f"{L}.self_attn.v_proj", "attn.v", KV, H, bias=None),
    *linear(f"{L}.self_attn.o_proj", "attn.o", H, Q, bias=None, residual=True),
    *norm(f"{L}.self_attn.q_norm", bias=False, axis=("head_dim",), optional=True),
    *norm(f"{L}.self_attn.k_norm", bias=False, axis=("head_dim",), optional=True),
    TensorRule(f"{L}.self_attn.rotary_emb.inv_freq", "buffer", (("half_head_dim",),), kind="drop", optional=True),
    # A layer is sparse (router + experts) or dense (mlp_only_layers): both optional per layer.
    TensorRule(f"{L}.mlp.gate.weight", "moe.router", (("experts",), H), fan_in=1, optional=True),
    *linear(f"{X}.gate_proj", "mlp.gate", F, H, bias=False, optional=True),
    *linear(f"{X}.up_proj", "mlp.up", F, H, bias=False, optional=True),
    *linear(f"{X}.down_proj", "mlp.down", H, F, bias=False, residual=True, optional=True),
    *linear(f"{L}.mlp.shared_expert.gate_proj", "mlp.gate", S, H, bias=False, optional=True),
    *linear(f"{L}.mlp.shared_expert.up_proj", "mlp.up", S, H, bias=False, optional=True),
    *linear(f"{L}.mlp.shared_expert.down_proj", "mlp.down", H, S, bias=False, residual=True, optional=True),
    TensorRule(f"{L}.mlp.shared_expert_gate.weight", "moe.shared_gate", (("one",), H), fan_in=1, optional=True),
    *linear(f"{L}.mlp.gate_proj", "mlp.gate", D, H, bias=False, optional=True),
    *linear(f"{L}.mlp.up_proj", "mlp.up", D, H, bias=False, optional=True),
    *linear(f"{L}.mlp.down_proj", "mlp.down", H, D, bias=False, residual=True, optional=True),
    *norm(f"{L}.input_layernorm", bias=False),
    *norm(f"{L}.post_attention_layernorm", bias=False),
    *norm("model.norm", bias=False),
    TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True),
)

SPEC = MoESpec(
    family="qwen2_moe",
    task="causal_lm",
    model_types=("qwen2_moe", "qwen3_moe"),
    rules=RULES,
    config_fields={
        "hidden": "hidden_size",
        "ffn": "moe_intermediate_size",
        "heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
        "head_dim": "head_dim",
        "experts": "num_experts",
        "shared_ffn": "shared_expert_intermediate_size",
        "dense_ffn": "intermediate_size",
    },
    layers_field="num_hidden_layers",
    rotary=True,
    explicit_head_dim=True,
    tied_head=("lm_head.weight", "model.embed_tokens.weight"),
    experts_keys=("num_experts", "num_local_experts"),
    upcycles={"qwen2": "qwen2_moe", "qwen3": "qwen3_moe"},
    dense_names={
        # The shared expert starts as the dense MLP with a zero output: it adds nothing until trained.
        f"{L}.mlp.gate_proj.weight": (f"{X}.gate_proj.weight", f"{L}.mlp.shared_expert.gate_proj.weight"),
        f"{L}.mlp.up_proj.weight": (f"{X}.up_proj.weight", f"{L}.mlp.shared_expert.up_proj.weight"),
        f"{L}.mlp.down_proj.weight": (f"{X}.down_proj.weight", f"{L}.mlp.shared_expert.down_proj.weight"),
    },
    upcycle_zeros=(
        (f"{L}.mlp.gate.weight", (("experts",), H)),
        (f"{L}.mlp.shared_expert_gate.weight", (("one",), H)),
        (f"{L}.mlp.shared_expert.down_proj.weight", None),
    ),
    shared_expert_types=("qwen2_moe",),
    norm_topk_field="norm_topk_prob",
    upcycle_config={"norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": []},
    notes="Experts as a per-layer dimension; the shared expert's width is its own (shared_ffn), dense layers keep theirs.",
)
FAMILIES.add(SPEC.family, SPEC)
