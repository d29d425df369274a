"""MoE experts kept by router usage on calibration data, and symmetry-breaking noise on copied experts (issue 15)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file
from tiny_models import model_output
from torch.testing import assert_close

from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe
from core.sources import demo_model_path
from core.transfer import build_state_dict

VOCAB = 30522  # the demo tokenizer's: calibration text is tokenised with it
USED = [2, 5]  # the experts the rigged routers prefer on every token
FAST = {"samples": 8, "seq_len": 32}
ROUTER = {"mixtral": "model.layers.{j}.block_sparse_moe.gate.weight", "qwen2_moe": "model.layers.{j}.mlp.gate.weight"}


def _rigged(family: str, folder):
    """An 8-expert, 2-layer model whose routers send every token to experts 2 and 5.

    Hidden channel 0 holds 10 for every token (the embedding's column 0) and no block writes it
    (row 0 of o_proj and of every down projection is zero), so every router input has a large
    positive channel 0. Rows 2 and 5 of each router read only that channel; the other rows are
    larger (a by_norm draw prefers them) but read the other, near-zero channels.
    """
    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
        max_position_embeddings=128,
    )
    if family == "mixtral":
        config = transformers.MixtralConfig(**common, intermediate_size=24, num_local_experts=8)
    else:
        config = transformers.Qwen2MoeConfig(
            **common, num_experts=8, moe_intermediate_size=24, shared_expert_intermediate_size=16, norm_topk_prob=True
        )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        model.model.embed_tokens.weight[:, 0] = 10.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0
            layer.mlp.experts.down_proj[:, 0] = 0
            if family == "qwen2_moe":
                layer.mlp.shared_expert.down_proj.weight[0] = 0
            router = layer.mlp.gate.weight
            router.copy_(torch.randn(router.shape))
            router[:, 0] = 0
            router[USED] = 0
            router[USED, 0] = 1.0
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(demo_model_path() / name, folder / name)
    return folder, model


@pytest.fixture(scope="module", params=["mixtral", "qwen2_moe"])
def rigged(request, tmp_path_factory):
    folder, model = _rigged(request.param, tmp_path_factory.mktemp(f"rigged-{request.param}"))
    return request.param, folder, model


def _inputs():
    return {"input_ids": torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))}


def test_by_activation_keeps_the_most_used_experts_with_their_router_rows(rigged, tmp_path):
    from core.calibration import activation_profile
    from core.sources import open_source

    family, folder, model = rigged
    profile = activation_profile(open_source(str(folder)), **FAST)
    for j in range(2):
        usage = profile.scores("experts", j)
        assert usage.sum() == pytest.approx(1.0)  # renormalised top-2 weights: one unit per token
        assert usage[USED].sum() > 0.99
    recipe = Recipe(source=str(folder), target={"experts": 2}, index={"method": "by_activation", "params": FAST})
    plan, source = plan_recipe(recipe)
    sd = build_state_dict(plan, source)
    for j in range(2):
        assert plan.dims[f"experts@{j}"].index == USED
        name = ROUTER[family].format(j=j)
        assert_close(sd[name], source.read(name)[USED], rtol=0, atol=0)
    out = export_recipe(recipe, tmp_path / "out")
    small = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        got, want = small(**_inputs()).logits, model(**_inputs()).logits
    # Every token went to experts 2 and 5 with renormalised weights p2/(p2+p5): two experts compute the same.
    assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_experts_by_usage_with_another_index_strategy(rigged):
    family, folder, _ = rigged
    for method in ("first_n", "by_norm"):
        base = Recipe(source=str(folder), target={"experts": 2, "ffn": 12}, index={"method": method, "params": {}})
        plan, _ = plan_recipe(base)
        assert plan.dims["experts@0"].index != USED  # the strategy alone keeps other experts
        usage = Recipe(
            source=str(folder),
            target={"experts": 2, "ffn": 12},
            index={"method": method, "params": {"experts": "usage"}},
        )
        plan_u, _ = plan_recipe(usage)
        assert [plan_u.dims[f"experts@{j}"].index for j in range(2)] == [USED, USED]
        assert plan_u.dims["experts@0"].method == "usage" and plan_u.dims["ffn@0/0"].method == method
    # Growing by usage: every expert once, then copies of the most used first.
    plan, _ = plan_recipe(
        Recipe(
            source=str(folder),
            target={"experts": 10},
            values={"default": {"method": "growth"}},
            index={"method": "cyclic", "params": {"experts": "usage"}},
        )
    )
    assert plan.dims["experts@0"].index[:8] == list(range(8)) and sorted(plan.dims["experts@0"].index[8:]) == USED


def test_cli_transfer_keeps_experts_by_usage(tmp_path):
    from app.cli import main

    folder, _ = _rigged("mixtral", tmp_path / "src")
    out = tmp_path / "out"
    argv = ["transfer", str(folder), "--experts", "2", "--index", "by_activation", "--out", str(out)]
    assert main([*argv, "--index-param", "samples=8", "--index-param", "seq_len=32"]) == 0
    assert json.loads((out / "config.json").read_text())["num_local_experts"] == 2
    source = load_file(folder / "model.safetensors")
    weights = load_file(out / "model.safetensors")
    name = ROUTER["mixtral"].format(j=1)
    assert_close(weights[name], source[name][USED], rtol=0, atol=0)
    assert_close(
        weights["model.layers.1.block_sparse_moe.experts.1.w2.weight"],
        source["model.layers.1.block_sparse_moe.experts.5.w2.weight"],
        rtol=0,
        atol=0,
    )


# -- noise on copied experts ----------------------------------------------------------------------
def _grown(src, noise: float | None, seed: int = 0, top_k: int | None = None) -> Recipe:
    params = {} if noise is None else {"expert_noise": noise}
    return Recipe(
        source=str(src),
        target={"experts": 8},
        values={"default": {"method": "growth"}},
        index={"method": "cyclic", "params": params},
        seed=seed,
        config={"num_experts_per_tok": top_k} if top_k else None,
    )


def _logits(recipe, tmp_path, name):
    out = export_recipe(recipe, tmp_path / name)
    return model_output(transformers.AutoModelForCausalLM.from_pretrained(out).eval(), "mixtral")


def test_expert_noise_zero_keeps_the_bytes_and_noise_breaks_the_copies_deterministically(tiny_model):
    src, _, _ = tiny_model("mixtral")
    plain = build_state_dict(*plan_recipe(_grown(src, None)))
    zero = build_state_dict(*plan_recipe(_grown(src, 0.0)))
    assert plain.keys() == zero.keys() and all(torch.equal(plain[k], zero[k]) for k in plain)
    noisy = build_state_dict(*plan_recipe(_grown(src, 0.01)))
    again = build_state_dict(*plan_recipe(_grown(src, 0.01)))
    other_seed = build_state_dict(*plan_recipe(_grown(src, 0.01, seed=1)))
    x = "model.layers.1.block_sparse_moe.experts.{e}.{w}.weight"
    for w in ("w1", "w2", "w3"):
        for e in range(4):  # the first copy of each source expert stays exact, the second differs
            assert torch.equal(noisy[x.format(e=e, w=w)], plain[x.format(e=e, w=w)])
            copy, original = noisy[x.format(e=e + 4, w=w)], plain[x.format(e=e, w=w)]
            relative = float((copy - original).std() / original.std())
            assert 0.005 < relative < 0.02  # std noise × the tensor's std
            assert torch.equal(copy, again[x.format(e=e + 4, w=w)])
            assert not torch.equal(copy, other_seed[x.format(e=e + 4, w=w)])
    router = "model.layers.1.block_sparse_moe.gate.weight"
    assert torch.equal(noisy[router], plain[router])  # copies are still routed together


def test_expert_noise_changes_the_function_by_about_the_noise_scale(tiny_model, tmp_path):
    src, model, _ = tiny_model("mixtral")
    # Top-4 of 8 (each expert copied twice) computes the source's function exactly without noise.
    exact = _logits(_grown(src, 0.0, top_k=4), tmp_path, "zero")
    assert_close(exact, model_output(model, "mixtral"), rtol=1e-5, atol=1e-6)
    scale = (exact - exact.mean()).norm()
    changes = {}
    for noise in (0.01, 0.02):
        changes[noise] = float((_logits(_grown(src, noise, top_k=4), tmp_path, f"n{noise}") - exact).norm() / scale)
    # The logits move by far less than the noise (measured 0.07% for 0.01): half the experts are exact, and
    # the residual stream carries the rest; noise not relative to each tensor's std would be about 30× larger.
    assert 0 < changes[0.01] < 0.0025
    assert 1.5 < changes[0.02] / changes[0.01] < 2.5  # first order in the noise
