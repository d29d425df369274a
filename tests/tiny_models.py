"""Tiny "pico" checkpoints of every supported family, built with transformers config classes."""

from __future__ import annotations


def _configs():
    from transformers import (
        BertConfig,
        GPT2Config,
        LlamaConfig,
        Qwen2Config,
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
        "gpt2": (GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=100), "AutoModelForCausalLM"),
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
    }


FAMILIES = ("bert", "roberta", "llama", "qwen2", "gpt2", "vit")


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
    """Fixed inputs for a tiny model of ``family``: images for vit, token ids (vocab 100) otherwise."""
    import torch

    g = torch.Generator().manual_seed(1)
    if family == "vit":
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}
    return {"input_ids": torch.randint(0, 100, (2, length), generator=g)}


def model_output(model, family: str, length: int = 10):
    """The model's logits (or last hidden states, for a bare encoder) on :func:`example_inputs`."""
    import torch

    with torch.no_grad():
        out = model(**example_inputs(family, length))
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out.last_hidden_state
