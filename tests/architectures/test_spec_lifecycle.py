"""Each family's spec says how its model is built, exported, loaded and trained; nothing else asks its name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tiny_models import _configs

from core.architectures import FAMILIES, detect, spec_for_model_type
from core.architectures.mlp import MLP, build_mlp
from core.errors import TrainingError
from core.export import default_model_card
from core.pipeline import export_recipe
from core.recipe import Recipe
from core.sources import open_source
from core.training import TASKS, task_for

CORE = Path(__file__).resolve().parents[2] / "core"
MLP_CONFIG = {"model_type": "mlp", "widths": [64, 16, 10], "activation": "relu"}
#: the class each tiny config names in ``architectures`` (bert and roberta share the bert spec).
CLASSES = {
    "bert": "BertForMaskedLM",
    "roberta": "RobertaModel",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "vit": "ViTForImageClassification",
    "gpt_neox": "GPTNeoXForCausalLM",
    "opt": "OPTForCausalLM",
    "opt-350m": "OPTForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "mixtral": "MixtralForCausalLM",
    "qwen2_moe": "Qwen2MoeForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "convnext": "ConvNextForImageClassification",
    "convnextv2": "ConvNextV2ForImageClassification",
}
TINY = {name: {**config.to_dict(), "architectures": [CLASSES[name]]} for name, (config, _) in _configs().items()}


def _family_configs():
    out = [(name, TINY[name]) for name in ("bert", "roberta", "llama", "qwen2", "gpt2", "vit")]
    out += [(name, TINY[name]) for name in ("mixtral", "qwen2_moe", "qwen3_moe")]  # mixture of experts
    out += [(name, TINY[name]) for name in ("gpt_neox", "opt", "opt-350m")]
    out += [("phi3", TINY["phi3"])]  # fused [Q;K;V] with GQA: a concatenated axis
    out += [(name, TINY[name]) for name in ("gemma", "gemma2", "gemma3_text")]  # √hidden embeddings
    out += [(name, TINY[name]) for name in ("convnext", "convnextv2")]  # stages of their own widths and depths
    return out + [("mlp", MLP_CONFIG)]


def test_every_registered_family_has_a_tiny_config_here():
    covered = {spec_for_model_type(config["model_type"]).family for _, config in _family_configs()}
    assert covered == set(FAMILIES.names())


@pytest.mark.parametrize("name, config", _family_configs(), ids=[n for n, _ in _family_configs()])
def test_build_model_from_a_tiny_config(name, config):
    spec = spec_for_model_type(config["model_type"])
    torch.manual_seed(0)
    model = spec.build_model(config)
    assert sum(p.numel() for p in model.parameters()) > 0
    torch.manual_seed(0)
    again = spec.build_model(config)
    for (key, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=key)  # the same seed, the same draw
    if spec.library == "transformers":
        assert type(model).__name__ == config["architectures"][0]  # the class the config names
        bare = spec.build_model({k: v for k, v in config.items() if k != "architectures"})
        assert type(bare).__name__ == type(model.base_model).__name__  # else AutoModel
        trained = spec.build_model(config, TASKS.get(spec.task).model_class)
        assert type(trained).__name__ != type(bare).__name__  # the task's class wins
    else:
        assert isinstance(model, torch.nn.Sequential)


@pytest.mark.parametrize("name", FAMILIES.names())
def test_the_spec_names_a_registered_task_that_trains_each_of_its_model_types(name):
    spec = FAMILIES.get(name)
    assert spec.task in TASKS
    for model_type in spec.model_types:
        assert task_for(model_type) is TASKS.get(spec.task)


def test_model_types_no_spec_accepts_have_no_task():
    with pytest.raises(TrainingError, match="no validation task for model type 't5'"):
        task_for("t5")


def test_xlm_roberta_builds_and_trains_one_step():
    from transformers import XLMRobertaConfig

    config = XLMRobertaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=40,
        pad_token_id=1,
    ).to_dict()
    task = task_for("xlm-roberta")
    assert task.name == "masked_lm"
    torch.manual_seed(0)
    model = task.build_model(config)
    assert type(model).__name__ == "XLMRobertaForMaskedLM"
    ids = torch.randint(5, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    ids[:, 3] = 4
    module = task.loss_module(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = module(input_ids=ids, labels=labels)["loss"]
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_mlp_spec_maps_odd_module_indices_under_a_prefix():
    keys = MLP.model_keys(
        {"widths": [8, 6, 3], "module_indices": [0, 3]}, ["net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias"]
    )
    assert keys == {
        "net.0.weight": "0.weight",
        "net.0.bias": "0.bias",
        "net.3.weight": "2.weight",
        "net.3.bias": "2.bias",
    }


def test_export_files_and_load_round_trip(tmp_path, tiny_model):
    folder, _, _ = tiny_model("bert")
    out = export_recipe(Recipe(source=str(folder), target={"hidden": 16, "heads": 2}), tmp_path / "bert")
    spec, config = detect(open_source(out))
    written, metadata = spec.export_files(config)
    assert written is not None and metadata == {}
    model = spec.load(out)
    assert model.config.hidden_size == 16

    torch.manual_seed(0)
    net = build_mlp([64, 16, 10], "relu")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "mlp.safetensors"))
    out = export_recipe(Recipe(source=str(tmp_path / "mlp.safetensors"), target={"hidden": 8}), tmp_path / "mlp")
    assert not (out / "config.json").exists()
    spec, config = detect(open_source(out))
    assert spec.export_files(config) == (None, {"graft.mlp.widths": "[64, 8, 10]", "graft.mlp.activation": "relu"})
    loaded = spec.load(out)
    assert [m.out_features for m in loaded if isinstance(m, torch.nn.Linear)] == [8, 10]
    card = (out / "README.md").read_text()
    assert "library_name: safetensors" in card and "from core.export import load_mlp" in card
    assert default_model_card({"library": spec.library, "loader": spec.loader}) == default_model_card(
        {"library": "safetensors", "loader": ("core.export", "load_mlp")}
    )


def test_no_module_outside_the_family_module_tests_the_mlp_family_name():
    literal = re.compile(r"""(['"])mlp\1""")
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if path == CORE / "architectures" / "mlp.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                offenders.append(f"{path.relative_to(CORE.parent)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
