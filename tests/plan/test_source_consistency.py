"""A source whose tensors disagree with its config is refused before planning, the mismatch named.

Each of these used to export with exit 0, and transformers then loaded random weights for what
was missing (it only warns). The exports are loaded back to show what the check prevents.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from cli_expect import digest, fails
from safetensors.torch import load_file, save_file

from app.cli import main
from core.sources import demo_model_path


@pytest.fixture
def demo_copy(tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(demo_model_path(), folder)
    return folder


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def edit_tensors(folder, edit):
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def transfer_fails(capsys, folder, tmp_path, *needles):
    before = digest(folder)
    err = fails(
        capsys, ["transfer", str(folder), "--layers", "2", "--out", str(tmp_path / "out")], tmp_path / "out", *needles
    )
    assert digest(folder) == before
    return err


def test_a_config_with_more_layers_than_the_tensors_is_refused(demo_copy, tmp_path, capsys):
    edit_config(demo_copy, num_hidden_layers=12)
    transfer_fails(capsys, demo_copy, tmp_path, "encoder.layer.6.", "6 of 12 layers lack")
    # and inspect says so too, with exit 2, after printing what it can
    assert main(["inspect", str(demo_copy), "--headers-only"]) == 2
    assert "encoder.layer.6." in capsys.readouterr().err


def test_a_config_with_fewer_layers_than_the_tensors_is_refused(demo_copy, tmp_path, capsys):
    edit_config(demo_copy, num_hidden_layers=5)
    transfer_fails(capsys, demo_copy, tmp_path, "layer 5", "num_hidden_layers=5")


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("hidden_size", 512, "implies 512"),
        ("intermediate_size", 1000, "implies 1000"),
        ("num_attention_heads", 7, "heads 7"),
        ("vocab_size", 1000, "embeddings.word_embeddings.weight"),
    ],
)
def test_a_config_whose_sizes_do_not_match_the_tensors_is_refused(demo_copy, tmp_path, capsys, field, value, needle):
    edit_config(demo_copy, **{field: value})
    transfer_fails(capsys, demo_copy, tmp_path, needle, "config.json")


@pytest.mark.parametrize(
    "field, value",
    [("num_attention_heads", 0), ("num_hidden_layers", "six"), ("hidden_size", 384.5), ("num_hidden_layers", True)],
)
def test_config_sizes_that_are_not_positive_integers_are_refused(demo_copy, tmp_path, capsys, field, value):
    edit_config(demo_copy, **{field: value})
    transfer_fails(capsys, demo_copy, tmp_path, field, "positive integer")


def test_a_removed_layer_is_refused(demo_copy, tmp_path, capsys):
    edit_tensors(demo_copy, lambda t: [t.pop(k) for k in [k for k in t if ".layer.3." in k]])
    transfer_fails(capsys, demo_copy, tmp_path, "encoder.layer.3.attention.self.query.weight")


def test_a_bias_missing_from_one_layer_is_refused(demo_copy, tmp_path, capsys):
    edit_tensors(demo_copy, lambda t: t.pop("encoder.layer.2.output.dense.bias"))
    transfer_fails(capsys, demo_copy, tmp_path, "encoder.layer.2.output.dense.bias")


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool])
def test_integer_or_bool_weights_in_a_floating_role_are_refused(demo_copy, tmp_path, capsys, dtype):
    name = "encoder.layer.0.attention.self.query.weight"

    def cast(t):
        t[name] = (t[name] > 0).to(dtype)

    edit_tensors(demo_copy, cast)
    transfer_fails(capsys, demo_copy, tmp_path, name, "floating point")


def test_an_index_listing_one_of_two_shards_is_refused(tmp_path, capsys):
    from tiny_models import build_tiny

    src = tmp_path / "sharded"
    model, _ = build_tiny("llama", src)
    (src / "model.safetensors").unlink()
    model.save_pretrained(src, safe_serialization=True, max_shard_size="20KB")
    index_path = src / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    # Shards named freely (not model-0000k-of-0000N), so only the tensors can tell one is left out.
    renamed = {old: f"part-{i}.safetensors" for i, old in enumerate(sorted(set(index["weight_map"].values())))}
    for old, new in renamed.items():
        (src / old).rename(src / new)
    kept = "part-0.safetensors"
    index["weight_map"] = {k: renamed[v] for k, v in index["weight_map"].items() if renamed[v] == kept}
    index_path.write_text(json.dumps(index))
    for other in set(renamed.values()) - {kept}:
        (src / other).unlink()
    transfer_fails(capsys, src, tmp_path, "lack")


def test_a_causal_lm_without_its_untied_head_is_refused(tmp_path, capsys):
    from tiny_models import build_tiny

    src = tmp_path / "llama"
    build_tiny("llama", src)  # tie_word_embeddings=False: the head is its own tensor
    edit_tensors(src, lambda t: t.pop("lm_head.weight"))
    transfer_fails(capsys, src, tmp_path, "lm_head.weight", "tie_word_embeddings")


def test_every_tiny_family_and_the_demo_pass_the_check(tmp_path):
    from tiny_models import FAMILIES, build_tiny

    from core.architectures import detect
    from core.architectures.check import source_problems
    from core.sources import open_source

    for family in FAMILIES:
        build_tiny(family, tmp_path / family)
        source = open_source(tmp_path / family)
        spec, config = detect(source)
        assert source_problems(source, spec, config) == [], family
    demo = open_source("demo")
    assert source_problems(demo, *detect(demo)) == []
