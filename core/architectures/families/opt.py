"""OPT: ``fc1``/``fc2`` blocks, learned positions with an offset of 2, optional ``project_in/out``.

``embed_positions.weight`` has max_position_embeddings + 2 rows (OPT looks position p up at row
p + 2): a fixed axis, like every position table. Where ``word_embed_proj_dim`` differs from
hidden_size (opt-350m: 512 vs 1024) the token embeddings and the LM head live in that smaller
space and ``project_in`` (hidden × proj) / ``project_out`` (proj × hidden) map to and from the
blocks; Graft keeps that dimension (``embed_proj``) fixed, so only the projections' hidden side
is resized, and refuses a target hidden equal to it (transformers would then drop the
projections). Without projections word_embed_proj_dim is hidden_size and follows it.

``do_layer_norm_before`` false (opt-350m) makes the blocks post-LN: growth refuses to insert
blocks there (:func:`core.strategies._growth_checks.growth_exactness`), as for BERT.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.architectures.families._blocks import F, H, Q, linear, norm
from core.architectures.spec import FAMILIES, ArchitectureSpec, MatchedTensor, TensorRule
from core.errors import PlanError

L = "decoder.layers.{L}"
P = ("embed_proj",)

EMBED = TensorRule("decoder.embed_tokens.weight", "embed", (("vocab",), H))
HEAD = TensorRule("lm_head.weight", "head", (("vocab",), H), fan_in=1, optional=True)
SCORE = TensorRule("score.weight", "head", (("labels",), H), fan_in=1, optional=True)
#: the same tensors when project_in/out exist: they are word_embed_proj_dim wide, not hidden.
PROJECTED = {
    EMBED: replace(EMBED, axes=(("vocab",), P)),
    HEAD: replace(HEAD, axes=(("vocab",), P)),
    SCORE: replace(SCORE, axes=(("labels",), P)),
}

RULES = (
    EMBED,
    TensorRule("decoder.embed_positions.weight", "pos", (("offset_pos",), H)),  # max_position_embeddings + 2 rows
    *linear("decoder.project_in", "embed", H, P, bias=False, optional=True),
    *linear(f"{L}.self_attn.q_proj", "attn.q", Q, H, bias=None),
    *linear(f"{L}.self_attn.k_proj", "attn.k", Q, H, bias=None),
    *linear(f"{L}.self_attn.v_proj", "attn.v", Q, H, bias=None),
    *linear(f"{L}.self_attn.out_proj", "attn.o", H, Q, bias=None, residual=True),
    *norm(f"{L}.self_attn_layer_norm", optional=True),
    *linear(f"{L}.fc1", "mlp.up", F, H, bias=None),
    *linear(f"{L}.fc2", "mlp.down", H, F, bias=None, residual=True),
    *norm(f"{L}.final_layer_norm", optional=True),
    *norm("decoder.final_layer_norm", optional=True),  # absent when post-LN (opt-350m)
    *linear("decoder.project_out", "head", P, H, bias=False, optional=True),
    HEAD,
    SCORE,
    *PROJECTED.values(),  # matched through OPTSpec.ensure_matches only (the rules above match first)
)


def _projected(config: dict) -> bool:
    proj = config.get("word_embed_proj_dim")
    return proj is not None and proj != config.get("hidden_size")


@dataclass(frozen=True)
class OPTSpec(ArchitectureSpec):
    """OPT's spec: the embedding and head take the projected table where project_in/out exist."""

    def ensure_matches(self, names: list[str]) -> dict[str, MatchedTensor]:
        matched = super().ensure_matches(names)
        if not any(name.endswith("decoder.project_in.weight") for name in names):
            return matched
        return {name: replace(m, rule=PROJECTED.get(m.rule, m.rule)) for name, m in matched.items()}

    def tied_head_for(self, config: dict) -> tuple[str, str] | None:
        # A projected head reads word_embed_proj_dim, which no target changes: nothing to untie.
        return None if _projected(config) else super().tied_head_for(config)

    def target_config(self, source_config: dict, sizes: dict[str, int]) -> dict:
        config = super().target_config(source_config, sizes)
        if not _projected(source_config):
            if source_config.get("word_embed_proj_dim") is not None:
                config["word_embed_proj_dim"] = sizes["hidden"]
        elif sizes["hidden"] == source_config["word_embed_proj_dim"]:
            raise PlanError(
                f"a target hidden size of {sizes['hidden']} equals word_embed_proj_dim, where OPT has no "
                "project_in/out, but the source's are kept; choose another hidden size"
            )
        return config


SPEC = OPTSpec(
    family="opt",
    task="causal_lm",
    model_types=("opt",),
    rules=RULES,
    config_fields={
        "hidden": "hidden_size",
        "ffn": "ffn_dim",
        "heads": "num_attention_heads",
        "embed_proj": "word_embed_proj_dim",
    },
    layers_field="num_hidden_layers",
    prefixes=("", "model."),
    tied_default=True,
    tied_head=("lm_head.weight", "decoder.embed_tokens.weight"),
    norm_placement="pre",
    pre_norm_field="do_layer_norm_before",
    notes="hidden = heads × head_dim; learned positions (max + 2 rows); word_embed_proj_dim is kept.",
)
FAMILIES.add(SPEC.family, SPEC)
