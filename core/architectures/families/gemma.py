"""Gemma, Gemma 2 and Gemma 3 (text): Llama's tensor table, with what sets them apart for a transfer.

* **√hidden embedding.** The forward pass multiplies the token embeddings by √hidden, so a target
  of width Ñ built from a source of width N would start its residual stream √(Ñ/N) times the
  source's (per coordinate) with the embedding copied or sampled unchanged: ×0.5 for 64→16. Every
  value strategy that takes its values from the source (``select``, ``mean_field``, ``growth`` …,
  not ``baseline``) therefore gets its embedding divided by √(Ñ/N) after the fill
  (:func:`core.transfer.embedding_divisor`), and the plan says so. Measured on pico models of all
  three types (hidden 64, 2 layers): the residual stream's RMS after the embedding, target over
  source, is 0.49 / 0.70 / 1.42 undivided and 0.99 / 0.99 / 1.01 divided for ``select`` to 16,
  ``select`` to 32 and ``mean_field`` to 128.
* **The tied LM head.** Gemma ties the head to the embedding, so the division also multiplies the
  logits by √(N/Ñ). It is kept, and the plan says so: a head over Ñ ≠ N hidden coordinates sums
  fewer (more) terms, so its logits shrink (grow) by about √(Ñ/N) where the coordinates add like
  noise, and the division puts them back near the source's scale. Measured on the same models,
  logits std over the source's: ``select`` to 16, 0.42–0.53 undivided, 0.85–1.07 divided; to 32,
  0.63–0.76 and 0.90–1.07; ``mean_field`` to 128, 2.3–2.4 and 1.6–1.7. Untied heads are not
  affected (their logits are the same either way). Function-preserving growth unties the head
  (``core.plan.tensors.untie_for_growth``) and is exact; kept tied, a k-fold clone's logits are
  √k× the source's with the division (k× without).
* **(1 + w) RMSNorm.** Every norm computes ``(1 + w) · x / rms(x)`` with zero-centred ``w``.
  Selecting, cloning or sampling entries of ``w`` does the same to the scale ``1 + w``, so
  ``select`` and ``growth`` need nothing; an inserted block stays the identity even through
  Gemma 2/3's post-attention / post-feedforward norms, which normalise the branch before it is
  added (RMSNorm(0) = 0).
* **Gemma 2/3 config fields.** ``attn_logit_softcapping``, ``final_logit_softcapping``,
  ``query_pre_attn_scalar`` (the attention scale is its −½ power, not head_dim's) and
  ``sliding_window`` are copied unchanged; ``layer_types`` follows the layer map. Gemma 3 adds
  q_norm / k_norm over head_dim (optional rows of Llama's table). Growth refuses a head_dim change
  (rotary, as for Llama); forced with ``allow_inexact``, its q/k factor (d̃/d)^¼ assumes a
  head_dim^-½ attention scale and plain norm weights, so it is further off here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.architectures.families.llama import RULES
from core.architectures.spec import FAMILIES, ArchitectureSpec

MODEL_TYPES = ("gemma", "gemma2", "gemma3_text")


@dataclass(frozen=True)
class GemmaSpec(ArchitectureSpec):
    """Llama's spec plus the plan's note on the √hidden embedding compensation."""

    def plan_warnings(self, plan) -> list[str]:
        from core.transfer import embedding_divisor

        notes = []
        for t in plan.tensors:
            divisor = embedding_divisor(plan, t)
            if divisor is None:
                continue
            n, new_n = plan.source_sizes["hidden"], plan.target_sizes["hidden"]
            note = (
                f"{plan.target_config.get('model_type')} multiplies the token embeddings by √hidden: {t.name} is "
                f"divided by √({new_n}/{n}) = {divisor:.4g} after filling, so the residual stream keeps the "
                "source's scale"
            )
            if self.is_tied(plan.target_config) and self.tied_head_for(plan.target_config):
                note += (
                    f"; the LM head is tied to it, so the logits are multiplied by {1 / divisor:.4g} too "
                    "(which brings a resized head's logits back near the source's scale)"
                )
            notes.append(note)
        return notes


SPEC = GemmaSpec(
    family="gemma",
    task="causal_lm",
    model_types=MODEL_TYPES,
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
    norm_placement="pre",  # the post-attention / post-feedforward norms act on the branch, not the sum
    sqrt_hidden_embedding=MODEL_TYPES,
    notes="Llama's tensors; embeddings × √hidden (compensated when hidden changes), (1 + w) norms, tied head.",
)
FAMILIES.add(SPEC.family, SPEC)
