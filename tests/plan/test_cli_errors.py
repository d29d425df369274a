"""Bad input: one clear line, a non-zero exit, nothing left in --out, the source untouched."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from cli_expect import digest, fails

from app.cli import main


@pytest.fixture
def bert_dir(tiny_model):
    return tiny_model("bert")[0]


def test_truncated_safetensors(bert_dir, tmp_path, capsys):
    f = bert_dir / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    before = digest(bert_dir)
    fails(
        capsys,
        ["transfer", str(bert_dir), "--hidden", "16", "--heads", "2", "--out", str(tmp_path / "o")],
        tmp_path / "o",
        "truncated",
    )
    assert digest(bert_dir) == before


def test_garbage_header(bert_dir, tmp_path, capsys):
    (bert_dir / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\0" * 64)
    fails(capsys, ["transfer", str(bert_dir), "--out", str(tmp_path / "o")], tmp_path / "o", "header")


def test_missing_shard(tmp_path, capsys):
    from tiny_models import build_tiny

    src = tmp_path / "sharded"
    model, _ = build_tiny("llama", src)
    model.save_pretrained(src, safe_serialization=True, max_shard_size="20KB")
    (src / "model.safetensors").unlink(missing_ok=True)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    victim = sorted(set(index["weight_map"].values()))[1]
    (src / victim).unlink()
    fails(capsys, ["transfer", str(src), "--out", str(tmp_path / "o")], tmp_path / "o", victim)


def test_pickle_file_is_never_unpickled(tmp_path, capsys):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(2)}, path)
    fails(capsys, ["transfer", str(path), "--out", str(tmp_path / "o")], tmp_path / "o", "pickle", "graft convert")
    fails(capsys, ["inspect", str(tmp_path)], tmp_path / "o", "pickle")


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--hidden", "30", "--heads", "4"], "not divisible"),
        (["--heads", "4", "--kv-heads", "3"], "kv groups"),
        (["--layers", "0"], "positive"),
        (["--ffn", "-4"], "positive"),
    ],
)
def test_impossible_sizes(bert_dir, tmp_path, capsys, flags, needle):
    fails(capsys, ["transfer", str(bert_dir), *flags, "--out", str(tmp_path / "o")], tmp_path / "o", needle)


def test_larger_target_with_select_names_the_growing_strategies(bert_dir, tmp_path, capsys):
    fails(
        capsys,
        ["transfer", str(bert_dir), "--ffn", "128", "--strategy", "select", "--out", str(tmp_path / "o")],
        tmp_path / "o",
        "only shrink",
        "growth",
    )


def test_unknown_architecture(bert_dir, tmp_path, capsys):
    config = json.loads((bert_dir / "config.json").read_text())
    config["model_type"] = "t5"
    (bert_dir / "config.json").write_text(json.dumps(config))
    fails(capsys, ["transfer", str(bert_dir), "--out", str(tmp_path / "o")], tmp_path / "o", "not supported", "llama")


def test_existing_output_is_refused_without_force(bert_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["transfer", str(bert_dir), "--out", str(out)]) == 2
    assert (out / "keep.txt").read_text() == "mine"
    assert (
        main(["transfer", str(bert_dir), "--out", str(out), "--force", "--replace-any"]) == 0
    )  # keep.txt is not Graft's
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()
    shutil.rmtree(out)


def test_cli_inspect_plan_and_demo(tmp_path, capsys):
    assert main(["inspect", "demo"]) == 0
    table = capsys.readouterr().out
    assert "encoder.layer.5.output.dense.weight" in table and "mlp.down" in table and "hidden × ffn" in table
    assert (
        main(["transfer", "demo", "--layers", "4", "--hidden", "256", "--ffn", "1024", "--heads", "8", "--dry-run"])
        == 0
    )
    plan = capsys.readouterr().out
    assert "layers: 0←0  1←1  2←2  3←3" in plan and "ffn@3" in plan
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tmp_path / "demo")
    assert model.config.hidden_size == 256 and model.config.num_hidden_layers == 4
