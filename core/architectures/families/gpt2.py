"""GPT-2: Conv1D weights stored (in, out), fused q|k|v in ``c_attn``, tied LM head."""

from core.architectures.families._blocks import F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, TensorRule

L = "h.{L}"
QKV = ("qkv", "heads", "head_dim")

RULES = (
    TensorRule("wte.weight", "embed", (("vocab",), H)),
    TensorRule("wpe.weight", "pos", (("pos",), H)),
    *norm(f"{L}.ln_1"),
    *linear(f"{L}.attn.c_attn", "attn.qkv", QKV, H, transposed=True),
    *linear(f"{L}.attn.c_proj", "attn.o", H, Q, transposed=True, residual=True),
    TensorRule(f"{L}.attn.bias", "buffer", (("one",), ("one",), ("pos",), ("pos",)), kind="drop", optional=True),
    TensorRule(f"{L}.attn.masked_bias", "buffer", (), kind="drop", optional=True),
    *norm(f"{L}.ln_2"),
    *linear(f"{L}.mlp.c_fc", "mlp.up", F, H, transposed=True),
    *linear(f"{L}.mlp.c_proj", "mlp.down", H, F, transposed=True, residual=True),
    *norm("ln_f"),
    TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True),
)

SPEC = ArchitectureSpec(
    family="gpt2",
    task="causal_lm",
    model_types=("gpt2",),
    rules=RULES,
    config_fields={"hidden": "n_embd", "ffn": "n_inner", "heads": "n_head"},
    layers_field="n_layer",
    prefixes=("", "transformer."),
    tied_default=True,
    tied_head=("lm_head.weight", "wte.weight"),
    norm_placement="pre",
    notes="hidden = heads × head_dim; n_inner=None means 4 × hidden.",
)
FAMILIES.add(SPEC.family, SPEC)
