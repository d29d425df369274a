"""Hostile safetensors headers and config files: one sentence each, and no raw control characters.

Each case edits one field of a real pico BERT saved by ``transformers`` (the tensor bytes kept)
and runs ``graft inspect`` as a user would.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from cli_expect import fails

from app.cli import main
from core.errors import SourceError
from core.sources import open_source

TARGET = "bert.embeddings.word_embeddings.weight"


@pytest.fixture
def bert_dir(tiny_model):
    return tiny_model("bert")[0]


def _edit_header(path: Path, edit) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n :])


def _set(key, value):
    def edit(header):
        header[TARGET][key] = value(header[TARGET][key]) if callable(value) else value

    return edit


def _meta(value):
    def edit(header):
        header["__metadata__"] = value

    return edit


def _entry(value):
    def edit(header):
        header[TARGET] = value

    return edit


@pytest.mark.parametrize(
    "edit, needles",
    [
        (_meta([1]), ["__metadata__ is [1], not an object of strings"]),
        (_meta("pt"), ["__metadata__ is 'pt', not an object of strings"]),
        (_meta({"format": 1}), ["__metadata__ entry 'format' is 1, not a string"]),
        (_meta({"format": {"a": "b"}}), ["__metadata__ entry 'format'"]),
        (_entry([1, 2]), [repr(TARGET), "header entry [1, 2], not an object"]),
        (_entry("F32"), [repr(TARGET), "not an object"]),
        (_entry(7), [repr(TARGET), "not an object"]),
        (_set("shape", lambda s: [-d for d in s]), [repr(TARGET), "not a list of non-negative integers"]),
        (_set("shape", lambda s: [s[0] + 0.5, s[1]]), ["not a list of non-negative integers"]),
        (_set("shape", lambda s: [float(d) for d in s]), ["not a list of non-negative integers"]),
        (_set("shape", lambda s: [str(d) for d in s]), ["not a list of non-negative integers"]),
        (_set("shape", lambda s: "x".join(map(str, s))), ["not a list of non-negative integers"]),
        (_set("shape", lambda s: [True] * len(s)), ["not a list of non-negative integers"]),
        (_set("data_offsets", lambda o: [str(x) for x in o]), [repr(TARGET), "data_offsets", "not two integers"]),
        (_set("data_offsets", lambda o: "".join(map(str, o))), ["data_offsets", "not two integers"]),
        (_set("data_offsets", lambda o: [*o, o[1]]), ["data_offsets", "not two integers"]),
        (_set("data_offsets", lambda o: {"begin": o[0], "end": o[1]}), ["data_offsets", "not two integers"]),
        (_set("dtype", ["F32"]), [repr(TARGET), "unsupported dtype"]),
        (_set("dtype", 4), ["unsupported dtype 4"]),
        (_set("dtype", None), ["unsupported dtype null"]),
    ],
)
def test_malformed_header_fields_are_one_sentence(bert_dir, capsys, edit, needles):
    _edit_header(bert_dir / "model.safetensors", edit)
    fails(capsys, ["inspect", str(bert_dir)], None, "model.safetensors:", *needles)


def test_a_header_nested_too_deeply_is_one_sentence(bert_dir, capsys):
    body = b'{"x": ' * 20_000 + b"1" + b"}" * 20_000
    (bert_dir / "model.safetensors").write_bytes(struct.pack("<Q", len(body)) + body)
    fails(capsys, ["inspect", str(bert_dir)], None, "model.safetensors", "nested too deeply")


ESCAPE = "\x1b[31m"


def test_names_with_escape_sequences_never_reach_the_terminal_raw(tmp_path, capsys):
    # A generic MLP (no config.json) whose Sequential prefix carries an escape sequence: it opens,
    # and `graft inspect` lists its tensors.
    import torch
    from safetensors.torch import save_file

    prefix = f"evil{ESCAPE}."
    save_file(
        {
            f"{prefix}0.weight": torch.zeros(8, 4),
            f"{prefix}0.bias": torch.zeros(8),
            f"{prefix}2.weight": torch.zeros(3, 8),
        },
        str(tmp_path / "model.safetensors"),
        metadata={"format": "pt"},
    )
    capsys.readouterr()
    assert main(["inspect", str(tmp_path), "--headers-only"]) == 0
    out, err = capsys.readouterr()
    assert "evil\\x1b[31m.0.weight" in out  # listed in the table, escaped
    assert "\x1b" not in out and "\x1b" not in err


def test_escape_sequences_in_architecture_errors_are_escaped(bert_dir, capsys):
    def rename(header):
        header[f"evil{ESCAPE}.weight"] = header.pop(TARGET)

    _edit_header(bert_dir / "model.safetensors", rename)
    line = fails(capsys, ["inspect", str(bert_dir), "--headers-only"], None, "evil\\x1b[31m.weight")
    assert "\x1b" not in line


def test_escape_sequences_in_errors_are_escaped(bert_dir, capsys):
    def rename(header):
        header[f"evil{ESCAPE}"] = header.pop(TARGET)
        header[f"evil{ESCAPE}"]["dtype"] = "F99"

    _edit_header(bert_dir / "model.safetensors", rename)
    line = fails(capsys, ["inspect", str(bert_dir)], None, "unsupported dtype 'F99'", "evil\\x1b[31m")
    assert "\x1b" not in line


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[1, 2]", "config.json is not a JSON object (it holds a list)"),
        ("5", "config.json is not a JSON object (it holds a number)"),
        ('"bert"', "config.json is not a JSON object (it holds a string)"),
        ("[" * 100_000 + "]" * 100_000, "config.json nests its JSON too deeply"),
        (
            '{"model_type": "bert", "x": ' + "[" * 500 + "]" * 500 + "}",
            "config.json nests its JSON more than 64 levels",
        ),
        (b'{"model_type": "b\xffrt"}', "config.json is not UTF-8 text"),
        ("{model_type: bert}", "config.json is not valid JSON"),
    ],
)
def test_config_json_that_is_not_a_config_is_one_sentence(bert_dir, capsys, text, needle):
    path = bert_dir / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    fails(capsys, ["inspect", str(bert_dir)], None, needle)


@pytest.mark.parametrize("location", ["a" * 300, "owner/" + "n" * 300, "o" * 150 + "/" + "n" * 150, "x" * 5000])
def test_an_overlong_repo_id_is_one_sentence(capsys, location):
    line = fails(capsys, ["inspect", location], None, "not a hub repo id", "at most 96 characters")
    assert len(line) < 400
    with pytest.raises(SourceError, match="not a hub repo id"):
        open_source(location)
