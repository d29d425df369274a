"""``graft stats``: one tensor in detail, the model table with mean-field advice, errors."""

from __future__ import annotations

import json

import pytest

from app.cli import main


@pytest.fixture
def tiny_llama(tmp_path):
    from tiny_models import build_tiny

    build_tiny("llama", tmp_path / "llama")
    return str(tmp_path / "llama")


def test_stats_of_one_demo_tensor_as_json(capsys):
    name = "encoder.layer.0.attention.self.query.weight"
    assert main(["stats", "demo", "--tensor", name, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == name and out["shape"] == [384, 384]
    assert set(out["fits"]) == {"gaussian", "laplace", "student-t"}
    assert out["spectrum"]["stable_rank"] > 1 and out["mean_field"]["suggestions"]


def test_stats_of_one_tensor_as_text(capsys, tiny_llama):
    assert main(["stats", tiny_llama, "--tensor", "model.layers.0.mlp.down_proj.weight"]) == 0
    text = capsys.readouterr().out
    assert "excess kurtosis" in text and "stable rank" in text and "mean-field:" in text


def test_model_table_and_suggestions(capsys, tiny_llama):
    assert main(["stats", tiny_llama]) == 0
    text = capsys.readouterr().out
    assert "alpha" in text and "layer 1" in text and "mean-field suggestions" in text
    assert main(["stats", tiny_llama, "--json", "--roles", "attn.q,attn.k"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["columns"] == ["attn.q", "attn.k"] and out["layers"] == [0, 1]
    assert len(out["suggestions"]) == 4 and all(s["suggestions"] for s in out["suggestions"])
    # which values are estimates, cell by cell (tiny matrices: every spectrum exact, ≤ 256 rows)
    assert set(out["estimated"]) == set(out["metrics"])
    assert out["estimated"]["alpha"] == [[False, False], [False, False]]
    assert "exact for every tensor of this table" in out["descriptions"]["alpha"]


def test_errors_are_one_line_messages(capsys, tiny_llama):
    assert main(["stats", tiny_llama, "--tensor", "nope"]) == 2
    assert "no tensor named 'nope'" in capsys.readouterr().err
    assert main(["stats", tiny_llama, "--metrics", "std,bogus"]) == 2
    assert "unknown metric 'bogus'" in capsys.readouterr().err
