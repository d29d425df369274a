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
        "bert": (BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                            vocab_size=100, max_position_embeddings=64), "AutoModelForMaskedLM"),
        "roberta": (RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                  vocab_size=100, max_position_embeddings=66, pad_token_id=1), "AutoModel"),
        "llama": (LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=64, vocab_size=100, tie_word_embeddings=False), "AutoModelForCausalLM"),
        "qwen2": (Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=64, vocab_size=100, tie_word_embeddings=True), "AutoModelForCausalLM"),
        "gpt2": (GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=100), "AutoModelForCausalLM"),
        "vit": (ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          image_size=16, patch_size=4, num_channels=3, num_labels=10), "AutoModelForImageClassification"),
    }


FAMILIES = ("bert", "roberta", "llama", "qwen2", "gpt2", "vit")


def build_tiny(family: str, folder, seed: int = 0):
    """Save a randomly initialised tiny model of ``family`` to ``folder``; returns (model, auto_class_name)."""
    import torch
    import transformers

    config, auto = _configs()[family]
    torch.manual_seed(seed)
    model = getattr(transformers, auto).from_config(config)
    # Random init leaves norms at 1/0: perturb every tensor so identity checks are meaningful.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model, auto
