"""Tiny "pico" checkpoints of every supported family, built with transformers config classes."""

from __future__ import annotations


def _configs():
    from transformers import (
        BertConfig,
        ConvNextConfig,
        ConvNextV2Config,
        Gemma2Config,
        Gemma3TextConfig,
        GemmaConfig,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MixtralConfig,
        OPTConfig,
        Phi3Config,
        Qwen2Config,
        Qwen2MoeConfig,
        Qwen3Config,
        Qwen3MoeConfig,
        RobertaConfig,
        ViTConfig,
    )

    return {
        "bert": (
            BertConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                vocab_size=100,
                max_position_embeddings=64,
            ),
            "AutoModelForMaskedLM",
        ),
        "roberta": (
            RobertaConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                vocab_size=100,
                max_position_embeddings=66,
                pad_token_id=1,
            ),
            "AutoModel",
        ),
        "llama": (
            LlamaConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                vocab_size=100,
                tie_word_embeddings=False,
            ),
            "AutoModelForCausalLM",
        ),
        "qwen2": (
            Qwen2Config(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                vocab_size=100,
                tie_word_embeddings=True,
            ),
            "AutoModelForCausalLM",
        ),
        "mixtral": (MixtralConfig(**_MOE, intermediate_size=48, num_local_experts=4), "AutoModelForCausalLM"),
        "qwen2_moe": (
            Qwen2MoeConfig(
                **_MOE, num_experts=4, moe_intermediate_size=48, shared_expert_intermediate_size=40, norm_topk_prob=True
            ),
            "AutoModelForCausalLM",
        ),
        "qwen3_moe": (Qwen3MoeConfig(**_MOE, num_experts=4, moe_intermediate_size=48), "AutoModelForCausalLM"),
        "qwen3": (
            Qwen3Config(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                head_dim=8,
                intermediate_size=64,
                vocab_size=100,
                tie_word_embeddings=False,
            ),
            "AutoModelForCausalLM",
        ),
        "gpt2": (GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=100), "AutoModelForCausalLM"),
        # Gemma family (tests/architectures/test_family_gemma.py): embeddings × √hidden, (1 + w) norms, tied head;
        # Gemma 2 soft-caps attention and final logits, both alternate sliding-window (4) and full attention.
        "gemma": (GemmaConfig(**_GEMMA), "AutoModelForCausalLM"),
        "gemma2": (
            Gemma2Config(**_GEMMA, query_pre_attn_scalar=16, sliding_window=4, attn_logit_softcapping=5.0),
            "AutoModelForCausalLM",
        ),
        "gemma3_text": (
            Gemma3TextConfig(
                **_GEMMA,
                query_pre_attn_scalar=16,
                sliding_window=4,
                layer_types=["sliding_attention", "full_attention"],
            ),
            "AutoModelForCausalLM",
        ),
        # Phi-3-like: fused [Q;K;V] with 4 query heads over 2 kv heads, fused [gate; up].
        "phi3": (
            Phi3Config(
                **_DECODER,
                num_key_value_heads=2,
                intermediate_size=48,
                max_position_embeddings=64,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
            ),
            "AutoModelForCausalLM",
        ),
        # Pythia-like: q|k|v interleaved per head, half of head_dim 8 rotates, parallel residual.
        "gpt_neox": (
            GPTNeoXConfig(**_DECODER, intermediate_size=64, rotary_pct=0.5, max_position_embeddings=64),
            "AutoModelForCausalLM",
        ),
        # opt-125m-like (pre-LN, tied head) and opt-350m-like (post-LN, project_in/out to word_embed_proj_dim 16).
        "opt": (OPTConfig(**_DECODER, ffn_dim=64, max_position_embeddings=64), "AutoModelForCausalLM"),
        "opt-350m": (
            OPTConfig(
                **_DECODER, ffn_dim=64, max_position_embeddings=64, word_embed_proj_dim=16, do_layer_norm_before=False
            ),
            "AutoModelForCausalLM",
        ),
        "vit": (
            ViTConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                image_size=16,
                patch_size=4,
                num_channels=3,
                num_labels=10,
            ),
            "AutoModelForImageClassification",
        ),
        # Stages of their own widths and depths (tests/architectures/test_family_convnext.py).
        "convnext": (ConvNextConfig(**_CONVNEXT), "AutoModelForImageClassification"),
        "convnextv2": (ConvNextV2Config(**_CONVNEXT), "AutoModelForImageClassification"),
    }


FAMILIES = ("bert", "roberta", "llama", "qwen2", "gpt2", "vit")
#: the sizes the tiny gpt_neox and opt models share (tests/architectures/test_family_{gpt_neox,opt}.py).
_DECODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=100)
#: mixture-of-experts models (tests/architectures/test_family_moe.py), and qwen3 (a dense source they upcycle).
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe")
#: the tiny ConvNeXt (and V2) models: four stages, 32×32 images, 10 classes.
_CONVNEXT = dict(hidden_sizes=[8, 16, 24, 32], depths=[2, 1, 3, 1], image_size=32, num_labels=10)
#: the Gemma family's tiny models (their config classes tie the head by default).
GEMMA_FAMILIES = ("gemma", "gemma2", "gemma3_text")
_GEMMA = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    intermediate_size=64,
    vocab_size=100,
)
#: the sizes the tiny MoE models share: 4 experts, top-2.
_MOE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=100,
    num_experts_per_tok=2,
    tie_word_embeddings=False,
)


def build_tiny(family: str, folder, seed: int = 0):
    """Save a randomly initialised tiny model of ``family`` to ``folder``; returns (model, auto_class_name)."""
    config, auto = _configs()[family]
    return save_tiny(config, auto, folder, seed)


def save_tiny(config, auto: str, folder, seed: int = 0):
    """Build ``auto`` (a transformers Auto class name) from ``config``, perturb it, save it; returns (model, auto)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, auto).from_config(config)
    # Random init leaves norms at 1/0: perturb every tensor so identity checks are meaningful.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model, auto


def example_inputs(family: str, length: int = 10) -> dict:
    """Fixed inputs for a tiny model of ``family``: images for vit and convnext, token ids (vocab 100) otherwise."""
    import torch

    g = torch.Generator().manual_seed(1)
    if family == "vit":
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}
    if family.startswith("convnext"):
        return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    return {"input_ids": torch.randint(0, 100, (2, length), generator=g)}


def model_output(model, family: str, length: int = 10):
    """The model's logits (or last hidden states, for a bare encoder) on :func:`example_inputs`."""
    import torch

    with torch.no_grad():
        out = model(**example_inputs(family, length))
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out.last_hidden_state


#: Above the model table's exact side (512) on both sides: its spectrum is a block-Krylov estimate.
WIDE_MATRIX = "model.layers.0.mlp.up_proj.weight"


def save_wide_checkpoint(path) -> str:
    """A 4-matrix bf16 ``.safetensors`` file (generic labels: layers 0–1 × up_proj, q_proj) whose
    600×520 ``WIDE_MATRIX`` gets estimated spectra in the model table and the rest exact ones;
    returns the path."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    shapes = {
        WIDE_MATRIX: (600, 520),
        "model.layers.0.self_attn.q_proj.weight": (64, 64),
        "model.layers.1.mlp.up_proj.weight": (300, 200),
        "model.layers.1.self_attn.q_proj.weight": (64, 64),
    }
    save_file({k: (torch.randn(*s, generator=g) * 0.02).to(torch.bfloat16) for k, s in shapes.items()}, str(path))
    return str(path)
