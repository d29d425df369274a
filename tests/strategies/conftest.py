"""Tiny "pico" sources for the strategy tests, built from transformers configs with fixed seeds."""

from __future__ import annotations

import pytest
import torch

from core.sources import open_source


@pytest.fixture(scope="session")
def llama_path(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=100,
        tie_word_embeddings=False,
    )
    path = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture()
def llama(llama_path):
    return open_source(llama_path)


@pytest.fixture(scope="session")
def gpt2_path(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=64)
    path = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="session")
def bert_path(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=64,
    )
    path = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(config).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="session")
def vit_path(tmp_path_factory):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
        num_channels=3,
    )
    path = tmp_path_factory.mktemp("vit")
    ViTModel(config, add_pooling_layer=False).save_pretrained(path, safe_serialization=True)
    return path
