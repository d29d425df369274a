"""ViT and DeiT-style encoders (pre-LN), with or without the classifier."""

from core.architectures.families._blocks import F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, TensorRule

L = "encoder.layer.{L}"
RULES = (
    TensorRule("embeddings.cls_token", "embed", (("one",), ("one",), H)),
    TensorRule("embeddings.mask_token", "embed", (("one",), ("one",), H), optional=True),
    TensorRule("embeddings.position_embeddings", "pos", (("one",), ("patches",), H)),
    TensorRule(
        "embeddings.patch_embeddings.projection.weight",
        "embed",
        (H, ("channels",), ("patch_h",), ("patch_w",)),
        fan_in=1,
    ),
    TensorRule("embeddings.patch_embeddings.projection.bias", "embed", (H,)),
    *linear(f"{L}.attention.attention.query", "attn.q", Q, H),
    *linear(f"{L}.attention.attention.key", "attn.k", Q, H),
    *linear(f"{L}.attention.attention.value", "attn.v", Q, H),
    *linear(f"{L}.attention.output.dense", "attn.o", H, Q, residual=True),
    *linear(f"{L}.intermediate.dense", "mlp.up", F, H),
    *linear(f"{L}.output.dense", "mlp.down", H, F, residual=True),
    *norm(f"{L}.layernorm_before"),
    *norm(f"{L}.layernorm_after"),
    *norm("layernorm"),
    TensorRule("pooler.dense.weight", "pooler", (H, H), fan_in=1, optional=True),
    TensorRule("pooler.dense.bias", "pooler", (H,), optional=True),
    TensorRule("classifier.weight", "head", (("labels",), H), fan_in=1, optional=True),
    TensorRule("classifier.bias", "head", (("labels",),), optional=True),
)

SPEC = ArchitectureSpec(
    family="vit",
    task="image_classification",
    task_class="ViTForImageClassification",  # deit configs too: the [CLS] classifier
    model_types=("vit", "deit"),
    rules=RULES,
    config_fields={"hidden": "hidden_size", "ffn": "intermediate_size", "heads": "num_attention_heads"},
    layers_field="num_hidden_layers",
    prefixes=("", "vit.", "deit."),
    tied_field=None,
    norm_placement="pre",
    notes="hidden = heads × head_dim; pre-LN blocks, so inserted blocks with zero output projections are exact.",
)
FAMILIES.add(SPEC.family, SPEC)
