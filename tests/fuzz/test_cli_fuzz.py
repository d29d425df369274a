"""Fuzzing the CLI with generated headers, configs and recipes: exit 0, or one sentence with exit 2.

Every case is a mutation of a real pico BERT checkpoint (a header entry, a config field or a
recipe field replaced by a value of another JSON type, out of range, huge, nested, or with
control characters), fed to ``graft inspect`` and ``graft transfer``. The command must either
succeed or print exactly one ``graft: error: …`` line and exit 2 — never a traceback, never
another exit code — and never modify the source. A fixed seed makes every run the same cases;
``GRAFT_FUZZ_CASES`` raises their number for a longer local run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct

import pytest
from cli_expect import digest

from app.cli import main

CASES = int(os.environ.get("GRAFT_FUZZ_CASES", "150"))


def odd_values(rng: random.Random):
    """JSON values of every shape a hostile file may hold."""
    nested: object = 1
    for _ in range(rng.choice((2, 50, 5000))):
        nested = [nested]
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2,
            3,
            7,
            2**31,
            2**63,
            2**64 + 5,
            -(2**63),
            1.5,
            128.9,
            float("1e308"),
            "",
            "six",
            "F32",
            "BOOL",
            "I32",
            "../x.safetensors",
            "/etc/passwd",
            "a\x1b[31mred\x1b[0m",
            "\u202e\u0000",
            [],
            [1],
            [1, 2],
            [-1, 4],
            [0, 10**15],
            ["a"],
            {},
            {"a": 1},
            {"dtype": "F32"},
            nested,
        ]
    )


def _header_case(rng: random.Random, path) -> None:
    """Rewrite the safetensors header of ``path`` with one entry mutated (the data bytes kept)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    names = [k for k in header if k != "__metadata__"]
    target = rng.choice(names + ["__metadata__"])
    what = rng.choice(("entry", "dtype", "shape", "offsets", "name", "metadata", "extra"))
    if what == "metadata" or target == "__metadata__":
        header["__metadata__"] = odd_values(rng)
    elif what == "entry":
        header[target] = odd_values(rng)
    elif what == "dtype":
        header[target]["dtype"] = odd_values(rng)
    elif what == "shape":
        header[target]["shape"] = odd_values(rng)
    elif what == "offsets":
        header[target]["data_offsets"] = odd_values(rng)
    elif what == "name":
        header[f"{target}\x1b[2J{rng.randint(0, 9)}"] = header.pop(target)
    else:
        header[str(odd_values(rng))[:40]] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    try:
        body = json.dumps(header).encode()
    except (ValueError, RecursionError):
        body = b'{"x": ' * 3000 + b"1" + b"}" * 3000
    path.write_bytes(struct.pack("<Q", len(body)) + body + data)


def _config_case(rng: random.Random, path) -> None:
    config = json.loads(path.read_text())
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(sorted(config) + ["auto_map", "trust_remote_code", "architectures"])
        config[key] = odd_values(rng)
    if rng.random() < 0.1:
        config = odd_values(rng)
    try:
        path.write_text(json.dumps(config))
    except (ValueError, RecursionError):
        path.write_text("[" * 100000 + "]" * 100000)


def _recipe_case(rng: random.Random, source: str) -> dict:
    recipe = {
        "graft_recipe": 1,
        "source": source,
        "target": {"layers": 1, "hidden": 16, "heads": 2},
        "values": {"default": {"method": "select", "params": {}}},
        "seed": 0,
    }
    key = rng.choice(
        (
            "target",
            "values",
            "index",
            "layers",
            "seed",
            "dtype",
            "device",
            "max_shard_size",
            "validation",
            "provenance",
            "revision",
            "graft_recipe",
            "bogus",
            "target.hidden",
            "target.layers",
            "values.default.method",
            "values.default.params",
            "values.attn",
        )
    )
    head, _, sub = key.partition(".")
    if not sub:
        recipe[head] = odd_values(rng)
    elif head == "target":
        recipe["target"][sub] = odd_values(rng)
    elif sub == "default.method":
        recipe["values"]["default"]["method"] = odd_values(rng)
    elif sub == "default.params":
        recipe["values"]["default"]["params"] = {rng.choice(("noise", "rescale", "x")): odd_values(rng)}
    else:
        recipe["values"]["attn"] = odd_values(rng)
    return recipe


def expect_clean(capsys, argv: list[str]) -> int:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("graft: error: ")]
        assert len(errors) == 1, err
        assert all(ch.isprintable() for ch in errors[0]), repr(errors[0])  # control characters come escaped
    return code


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tiny_bert_folder):
    return tiny_bert_folder


@pytest.mark.parametrize("kind", ["header", "config"])
def test_mutated_sources_exit_cleanly(kind, pristine, tmp_path, capsys):
    rng = random.Random(f"graft-fuzz-{kind}")
    for case in range(CASES):
        folder = tmp_path / f"{kind}-{case}"
        shutil.copytree(pristine, folder)
        if kind == "header":
            _header_case(rng, folder / "model.safetensors")
        else:
            _config_case(rng, folder / "config.json")
        before = digest(folder)
        expect_clean(capsys, ["inspect", str(folder), "--headers-only"])
        out = tmp_path / f"out-{case}"
        if expect_clean(capsys, ["transfer", str(folder), "--layers", "1", "--out", str(out)]) == 2:
            assert not out.exists()
        assert digest(folder) == before
        shutil.rmtree(folder)
        shutil.rmtree(out, ignore_errors=True)


def test_mutated_recipes_exit_cleanly(pristine, tmp_path, capsys):
    rng = random.Random("graft-fuzz-recipe")
    for case in range(CASES):
        path = tmp_path / "recipe.json"
        try:
            path.write_text(json.dumps(_recipe_case(rng, str(pristine))))
        except (ValueError, RecursionError):
            path.write_text('{"graft_recipe": 1, "target": ' + "[" * 100000 + "]" * 100000 + "}")
        out = tmp_path / f"out-{case}"
        expect_clean(capsys, ["plan", "--recipe", str(path)])
        if expect_clean(capsys, ["transfer", "--recipe", str(path), "--out", str(out)]) == 2:
            assert not out.exists()
        shutil.rmtree(out, ignore_errors=True)
