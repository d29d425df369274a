"""``--set key=JSON`` / the recipe's ``config``: any target config field, checked against the plan."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from cli_expect import fails
from safetensors.torch import load_file
from tiny_models import model_output
from torch.testing import assert_close

from app.cli import main
from core.errors import ArchitectureError, PlanError, RecipeError
from core.pipeline import export_recipe, plan_recipe
from core.recipe import Recipe

SHRINK = {"layers": 1, "hidden": 16, "heads": 2, "kv_heads": 1, "ffn": 32}
AS_FIELDS = {
    "num_hidden_layers": 1,
    "hidden_size": 16,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 32,
}


def _files(folder):
    return (folder / "model.safetensors").read_bytes(), json.loads((folder / "config.json").read_text())


def test_size_fields_export_the_same_bytes_as_the_size_flags(tiny_model, tmp_path):
    src, _, _ = tiny_model("llama")
    by_flags = export_recipe(Recipe(source=str(src), target=SHRINK), tmp_path / "flags")
    by_fields = export_recipe(Recipe(source=str(src), config=AS_FIELDS), tmp_path / "fields")
    weights, config = _files(by_fields)
    assert (weights, config) == _files(by_flags)
    assert config["hidden_size"] == 16 and config["num_hidden_layers"] == 1
    # Both at once agree: accepted; they disagree: refused, naming both.
    plan, _ = plan_recipe(Recipe(source=str(src), target={"hidden": 16, "heads": 2}, config={"hidden_size": 16}))
    assert plan.target_sizes["hidden"] == 16
    with pytest.raises(PlanError, match=r"hidden_size=24 and the target hidden 16 disagree"):
        plan_recipe(Recipe(source=str(src), target={"hidden": 16, "heads": 2}, config={"hidden_size": 24}))


def test_other_fields_land_in_the_exported_config_and_the_weights_stay_the_sources(tiny_model, tmp_path):
    src, model, auto = tiny_model("llama")
    fields = {"rms_norm_eps": 1e-5, "rope_theta": 20000.0, "attention_dropout": 0.1, "max_position_embeddings": 4096}
    out = export_recipe(Recipe(source=str(src), config=fields), tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert config["rms_norm_eps"] == 1e-5 and config["attention_dropout"] == 0.1
    assert config["max_position_embeddings"] == 4096  # rotary positions: no tensor carries them
    # rope_theta goes where transformers 5 reads it (a top-level one would be ignored on loading).
    assert config["rope_parameters"]["rope_theta"] == 20000.0 and "rope_theta" not in config
    assert json.loads((out / "graft_recipe.json").read_text())["config"] == fields
    loaded = getattr(transformers, auto).from_pretrained(out).eval()
    assert loaded.config.rope_parameters["rope_theta"] == 20000.0 and loaded.config.rms_norm_eps == 1e-5
    weights = load_file(str(out / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        assert_close(weights[name], tensor, rtol=0, atol=0)
    # Another rope base and epsilon: the same weights compute another function.
    assert not torch.equal(model_output(loaded, "llama"), model_output(model, "llama"))


@pytest.mark.parametrize(
    ("family", "fields", "target", "needle"),
    [
        ("llama", {"vocab_size": 200}, {}, "vocab axis that the source's tensors carry"),
        ("gpt2", {"n_positions": 128}, {}, "pos axis"),
        ("bert", {"type_vocab_size": 3}, {}, "types axis"),
        ("llama", {"model_type": "mistral"}, {}, "names the architecture"),
        ("llama", {"architectures": ["LlamaModel"]}, {}, "decides the head"),
        ("llama", {"auto_map": {}}, {}, "never a repository's code"),
        ("llama", {"tie_word_embeddings": True}, {}, "as the source ties it (false)"),
        ("llama", {"hidden_size": 16.5}, {}, "must be a whole number"),
        ("llama", {"num_hidden_layers": True}, {}, "must be a whole number"),
        ("qwen2", {"layer_types": ["full_attention"]}, {}, "a list of 2 entries"),
        ("qwen2", {"layer_types": "full_attention"}, {"layers": 1}, "a list of 1 entries"),
        ("gpt2", {"hidden_size": 16}, {}, "gpt2 calls it n_embd (or give --hidden)"),
        ("llama", {"n_head": 2}, {}, "llama calls it num_attention_heads"),
        ("llama", {"num_local_experts": 4}, {}, "give --experts where this source can take it"),
    ],
)
def test_fields_the_plan_decides_are_refused_in_one_sentence(tiny_model, family, fields, target, needle):
    src, _, _ = tiny_model(family)
    with pytest.raises(PlanError, match=None) as caught:
        plan_recipe(Recipe(source=str(src), target=target, config=fields))
    message = str(caught.value)
    assert needle in message and next(iter(fields)) in message and message.count(". ") == 0, message


def test_fields_that_agree_with_the_plan_are_accepted(tiny_model):
    src, _, _ = tiny_model("qwen2")
    same = {"vocab_size": 100, "tie_word_embeddings": True, "layer_types": ["full_attention"], "sliding_window": 8}
    plan, _ = plan_recipe(Recipe(source=str(src), target={"layers": 1}, config=same))
    assert {k: plan.target_config[k] for k in same} == same
    gpt2, _, _ = tiny_model("gpt2")
    plan, _ = plan_recipe(Recipe(source=str(gpt2), config={"n_positions": 64, "layer_norm_epsilon": 1e-6}))
    assert plan.target_config["layer_norm_epsilon"] == 1e-6


def test_a_field_transformers_cannot_take_is_refused(tiny_model):
    src, _, _ = tiny_model("llama")
    with pytest.raises(ArchitectureError, match="use_return_dict"):
        plan_recipe(Recipe(source=str(src), config={"use_return_dict": False}))


def test_the_generic_mlp_has_no_config_to_set(tmp_path):
    from safetensors.torch import save_file

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    path = tmp_path / "mlp.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    with pytest.raises(PlanError, match="no config.json"):
        plan_recipe(Recipe(source=str(path), config={"dropout": 0.1}))


def test_a_recipe_without_config_saves_the_same_bytes_and_one_with_it_round_trips(tmp_path):
    old = Recipe(source="demo", target={"layers": 2}).to_dict()
    assert "config" not in old  # an empty config is left out of the file
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old, indent=2) + "\n")
    before = path.read_bytes()
    Recipe.load(path).save(path)
    assert path.read_bytes() == before
    fields = {"rope_theta": 20000.0, "layer_types": ["full_attention"]}
    Recipe(source="demo", config=fields).save(tmp_path / "new.json")
    assert Recipe.load(tmp_path / "new.json").config == fields
    with pytest.raises(RecipeError, match="config must be an object"):
        Recipe.from_dict({"source": "demo", "config": [1]})
    with pytest.raises(RecipeError, match="config keys"):
        Recipe.from_dict({"source": "demo", "config": {"": 1}})


def test_the_cli_sets_fields_as_json_and_refuses_a_value_that_is_not(tiny_model, tmp_path, capsys):
    src, _, _ = tiny_model("llama")
    out = tmp_path / "out"
    argv = ["transfer", str(src), "--set", "rms_norm_eps=1e-5", "--set", "hidden_size=16", "--heads", "2"]
    assert main([*argv, "--set", "layer_types=null", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["rms_norm_eps"] == 1e-5 and config["hidden_size"] == 16 and config["layer_types"] is None
    recipe = json.loads((out / "graft_recipe.json").read_text())
    assert recipe["config"] == {"rms_norm_eps": 1e-5, "hidden_size": 16, "layer_types": None}
    # --recipe plus --set: the flag's field joins (or replaces) the recipe's.
    again = tmp_path / "again"
    assert main(["transfer", "--recipe", str(out), "--set", "rms_norm_eps=1e-6", "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["rms_norm_eps"] == 1e-6
    assert json.loads((again / "config.json").read_text())["hidden_size"] == 16

    fails(capsys, ["transfer", str(src), "--set", "hidden_act=gelu", "--out", str(tmp_path / "x")], None, "not JSON")
    fails(capsys, ["transfer", str(src), "--set", "noequals", "--out", str(tmp_path / "y")], None, "KEY=JSON")
    fails(capsys, [*argv, "--hidden", "24", "--out", str(tmp_path / "z")], tmp_path / "z", "disagree")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    help_text = capsys.readouterr().out
    assert "--set KEY=JSON" in help_text and "rope_theta=20000.0" in help_text
