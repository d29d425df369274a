"""BERT and RoBERTa (post-LN encoders), with or without their MLM / pooler heads."""

from core.architectures.families._blocks import F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, TensorRule

L = "encoder.layer.{L}"

RULES = (
    TensorRule("embeddings.word_embeddings.weight", "embed", (("vocab",), H)),
    TensorRule("embeddings.position_embeddings.weight", "pos", (("pos",), H)),
    TensorRule("embeddings.token_type_embeddings.weight", "embed", (("types",), H), optional=True),
    TensorRule("embeddings.position_ids", "buffer", (("one",), ("pos",)), kind="buffer", optional=True),
    TensorRule("embeddings.token_type_ids", "buffer", (("one",), ("pos",)), kind="buffer", optional=True),
    *norm("embeddings.LayerNorm"),
    *linear(f"{L}.attention.self.query", "attn.q", Q, H),
    *linear(f"{L}.attention.self.key", "attn.k", Q, H),
    *linear(f"{L}.attention.self.value", "attn.v", Q, H),
    *linear(f"{L}.attention.output.dense", "attn.o", H, Q, residual=True),
    *norm(f"{L}.attention.output.LayerNorm"),
    *linear(f"{L}.intermediate.dense", "mlp.up", F, H),
    *linear(f"{L}.output.dense", "mlp.down", H, F, residual=True),
    *norm(f"{L}.output.LayerNorm"),
    *linear("pooler.dense", "pooler", H, H, optional=True),
    # BertForMaskedLM / BertForPreTraining heads
    *linear("cls.predictions.transform.dense", "head", H, H, optional=True),
    *norm("cls.predictions.transform.LayerNorm", optional=True),
    TensorRule("cls.predictions.decoder.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("cls.predictions.decoder.bias", "head", (("vocab",),), optional=True),
    TensorRule("cls.predictions.bias", "head", (("vocab",),), optional=True),
    TensorRule("cls.seq_relationship.weight", "head", (("labels",), H), fan_in=1, optional=True),
    TensorRule("cls.seq_relationship.bias", "head", (("labels",),), optional=True),
    # RobertaForMaskedLM head
    *linear("lm_head.dense", "head", H, H, optional=True),
    *norm("lm_head.layer_norm", optional=True),
    TensorRule("lm_head.decoder.weight", "head", (("vocab",), H), fan_in=1, optional=True),
    TensorRule("lm_head.decoder.bias", "head", (("vocab",),), optional=True),
    TensorRule("lm_head.bias", "head", (("vocab",),), optional=True),
    # sequence classification heads
    TensorRule("classifier.weight", "head", (("labels",), H), fan_in=1, optional=True),
    TensorRule("classifier.bias", "head", (("labels",),), optional=True),
)

SPEC = ArchitectureSpec(
    family="bert",
    task="masked_lm",
    model_types=("bert", "roberta", "xlm-roberta", "camembert"),
    rules=RULES,
    config_fields={"hidden": "hidden_size", "ffn": "intermediate_size", "heads": "num_attention_heads"},
    layers_field="num_hidden_layers",
    prefixes=("", "bert.", "roberta."),
    tied_field="tie_word_embeddings",
    tied_default=True,
    # The MLM decoders are tied to the word embeddings (BERT names them cls.…, RoBERTa lm_head.…).
    tied_head=("cls.predictions.decoder.weight", "embeddings.word_embeddings.weight"),
    tied_head_by_type={
        t: ("lm_head.decoder.weight", "embeddings.word_embeddings.weight")
        for t in ("roberta", "xlm-roberta", "camembert")
    },
    tied_head_twins={
        "cls.predictions.decoder.weight": (("cls.predictions.decoder.bias", "cls.predictions.bias"),),
        "lm_head.decoder.weight": (("lm_head.decoder.bias", "lm_head.bias"),),
    },
    norm_placement="post",
    notes="hidden = heads × head_dim; post-LN blocks, so depth growth is not exactly function-preserving.",
)
FAMILIES.add(SPEC.family, SPEC)
