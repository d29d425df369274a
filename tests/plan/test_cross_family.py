"""A target of another family: a tiny BERT (the demo's shape, its tokenizer) filling a llama-shaped model."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from cli_expect import fails

from app.cli import main
from core.plan import TargetSizes, make_plan
from core.sources import demo_model_path, open_source
from core.transfer import build_state_dict

SIZES = ["--layers", "2", "--hidden", "16", "--heads", "2", "--ffn", "32"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="module")
def bert_src(tmp_path_factory):
    """A BertModel like the demo (no MLM head), 3 layers × 32, with the demo's 30522-token tokenizer."""
    from tiny_models import save_tiny
    from transformers import BertConfig

    folder = tmp_path_factory.mktemp("cross") / "bert"
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=30522,
        max_position_embeddings=64,
    )
    save_tiny(config, "AutoModel", folder, seed=3)
    for name in TOKENIZER_FILES:
        shutil.copy(demo_model_path() / name, folder / name)
    return folder


def _plan(src, method: str = "select", **kw):
    source = open_source(str(src))
    sizes = TargetSizes(layers=2, hidden=16, heads=2, ffn=32)
    return make_plan(source, sizes, values={"default": {"method": method}}, target_family="llama", **kw), source


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_bert_to_llama_exports_a_causal_lm_that_loads_and_runs(bert_src, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "llama"
    argv = ["transfer", str(bert_src), "--target-family", "llama", *SIZES, "--strategy", "select", "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert config["vocab_size"] == 30522 and config["head_dim"] == 8 and config["num_key_value_heads"] == 2
    # BERT's tokenizer: [PAD] 0, [CLS] 101 as bos, [SEP] 102 as eos
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (0, 101, 102)
    assert all((out / name).is_file() for name in TOKENIZER_FILES)
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ids = AutoTokenizer.from_pretrained(out)("the quick brown fox", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], 30522) and torch.isfinite(logits).all()
    recipe = json.loads((out / "graft_recipe.json").read_text())
    assert recipe["target_family"] == "llama"


def test_select_copies_the_source_through_the_maps_and_states_the_gate_fallback(bert_src):
    from safetensors.torch import load_file

    from app.cli.plan_text import format_plan

    plan, source = _plan(bert_src, index={"method": "uniform", "params": {}})
    state = build_state_dict(plan, source)
    src = load_file(str(bert_src / "model.safetensors"))
    hidden = plan.dims["hidden"].index
    assert hidden != list(range(16))  # uniform: not simply the first channels
    for j, link in enumerate(plan.layer_map):
        s, hd = f"encoder.layer.{link.source}.", plan.dims["head_dim"].index
        heads = [h * 8 + d for h in plan.dims[f"heads@{j}"].index for d in hd]
        kv = [h * 8 + d for h in plan.dims[f"kv_heads@{j}"].index for d in hd]
        ffn = plan.dims[f"ffn@{j}"].index
        t = f"model.layers.{j}."
        expected = {
            "self_attn.q_proj.weight": src[s + "attention.self.query.weight"][heads][:, hidden],
            "self_attn.k_proj.weight": src[s + "attention.self.key.weight"][kv][:, hidden],
            "self_attn.v_proj.weight": src[s + "attention.self.value.weight"][kv][:, hidden],
            "self_attn.o_proj.weight": src[s + "attention.output.dense.weight"][hidden][:, heads],
            "mlp.up_proj.weight": src[s + "intermediate.dense.weight"][ffn][:, hidden],
            "mlp.down_proj.weight": src[s + "output.dense.weight"][hidden][:, ffn],
            # the k-th norm of the block ← the source block's k-th
            "input_layernorm.weight": src[s + "attention.output.LayerNorm.weight"][hidden],
            "post_attention_layernorm.weight": src[s + "output.LayerNorm.weight"][hidden],
        }
        for name, value in expected.items():
            torch.testing.assert_close(state[t + name], value, rtol=0, atol=0, msg=name)
        gate = plan.tensor(t + "mlp.gate_proj.weight")
        assert (gate.strategy, gate.fallback_from, gate.source_role) == ("distribution", "select", "mlp.up statistics")
        assert gate.source_name == s + "intermediate.dense.weight"
        assert not torch.equal(state[t + "mlp.gate_proj.weight"], state[t + "mlp.up_proj.weight"])
    # the LM head starts as the (tied) token embedding; the final norm the source lacks is llama's ones
    torch.testing.assert_close(state["lm_head.weight"], src["embeddings.word_embeddings.weight"][:, hidden])
    torch.testing.assert_close(state["model.norm.weight"], torch.ones(16))
    assert plan.tensor("model.norm.weight").strategy == "baseline"
    table = format_plan(plan)
    gate_line = next(line for line in table.splitlines() if "layers.0.mlp.gate_proj" in line)
    assert "from mlp.up statistics [encoder.layer.0.intermediate.dense.weight]" in gate_line
    q_line = next(line for line in table.splitlines() if "layers.1.self_attn.q_proj" in line)
    assert "from attn.q [encoder.layer.1.attention.self.query.weight]" in q_line
    assert "from a bert source" in table
    assert any("mlp.gate ← mlp.up statistics" in w for w in plan.warnings)
    assert any("model.norm.weight" in w and "default init" in w for w in plan.warnings)


@pytest.mark.parametrize("method", ["distribution", "covariance", "mimetic"])
def test_sampling_strategies_fill_every_llama_tensor(bert_src, method):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    plan, source = _plan(bert_src, method)
    cache: dict = {}
    state = build_state_dict(plan, source, cache=cache)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**plan.target_config))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == want
    assert all(torch.isfinite(v).all() for v in state.values())
    if method == "distribution":  # fitted to the source role: the draws keep its scale
        src = load_file(str(bert_src / "model.safetensors"))
        up = src["encoder.layer.0.intermediate.dense.weight"]
        for name in ("model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"):
            assert abs(state[name].std() / up.std() - 1) < 0.25, name
            assert abs(state[name].mean() - up.mean()) < 0.25 * up.std(), name
        assert "model.layers.0.mlp.gate_proj.weight" in cache["fits"]
    if method == "mimetic":  # attention mimetic; the rest falls back as stated
        assert plan.tensor("model.layers.0.self_attn.q_proj.weight").strategy == "mimetic"
        assert plan.tensor("model.layers.0.mlp.gate_proj.weight").strategy == "distribution"


def test_validation_trains_the_llama_export_against_the_llama_baseline(bert_src, tmp_path):
    out, run = tmp_path / "llama", tmp_path / "run"
    assert main(["transfer", str(bert_src), "--target-family", "llama", *SIZES, "--out", str(out)]) == 0
    flags = ["--steps", "8", "--batch-size", "8", "--seq-len", "32", "--lr", "2e-3", "--warmup", "1"]
    flags += ["--eval-every", "4", "--eval-batches", "2", "--device", "cpu", "--out", str(run)]
    assert main(["validate", str(out), *flags]) == 0
    report = json.loads((run / "validation.json").read_text())
    assert report["task"] == "causal_lm" and set(report["records"]) == {"llama", "baseline"}
    for arm, records in report["records"].items():
        losses = [r["train_loss"] for r in records if r["train_loss"] is not None]
        assert len(losses) == 8 and losses[-1] < losses[0], (arm, losses)


def test_the_exported_recipe_reproduces_the_same_bytes(bert_src, tmp_path):
    first, again = tmp_path / "a", tmp_path / "b"
    argv = ["transfer", str(bert_src), "--target-family", "llama", *SIZES, "--strategy", "distribution"]
    assert main([*argv, "--seed", "5", "--out", str(first)]) == 0
    assert main(["transfer", "--recipe", str(first / "graft_recipe.json"), "--out", str(again)]) == 0
    for name in ("model.safetensors", "config.json", "graft_recipe.json"):
        assert _sha(first / name) == _sha(again / name), name


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--target-family", "nosuch"], "unknown target family 'nosuch'"),
        (["--target-family", "llama", "--strategy", "growth"], "growth keeps the source's function"),
        (["--target-family", "mlp"], "shares no tensor roles"),
        (["--target-family", "vit"], "read different inputs"),
        (["--target-family", "llama", "--role", "mlp.gate=select"], "select copies values"),
    ],
)
def test_bad_cross_family_requests_are_refused_in_one_sentence(bert_src, tmp_path, capsys, flags, needle):
    out = tmp_path / "o"
    fails(capsys, ["transfer", str(bert_src), *flags, "--out", str(out)], out, needle)


def test_same_family_as_the_source_plans_as_usual(bert_src):
    source = open_source(str(bert_src))
    same = make_plan(source, TargetSizes(hidden=16, heads=2), target_family="bert")
    plain = make_plan(source, TargetSizes(hidden=16, heads=2))
    assert same.to_dict() == plain.to_dict() and "source_family" not in plain.to_dict()


def test_a_source_tensor_stored_in_another_layout_gives_only_its_statistics(bert_src):
    """gpt2's Conv1D weights are (in, out): bert's (out, in) matrices are never copied into them, even square ones."""
    source = open_source(str(bert_src))
    plan = make_plan(source, TargetSizes(layers=2, hidden=16, heads=2), target_family="gpt2")
    c_proj = plan.tensor(
        "transformer.h.0.attn.c_proj.weight"
    )  # 16×16 like bert's attention.output.dense: still transposed
    assert (c_proj.strategy, c_proj.fallback_from) == ("distribution", "select")
    assert c_proj.source_name == "encoder.layer.0.attention.output.dense.weight"
    assert "another layout" in c_proj.source_role
    bias = plan.tensor("transformer.h.0.attn.c_proj.bias")  # a vector is a vector: copied
    assert (bias.strategy, bias.source_role) == ("select", "attn.o")
    assert plan.tensor("transformer.h.0.attn.c_attn.weight").strategy == "baseline"  # no fused q|k|v in bert
