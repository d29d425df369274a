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


def test_estimated_cells_are_marked_in_the_text_table(capsys, tmp_path):
    from tiny_models import WIDE_MATRIX, save_wide_checkpoint

    path = save_wide_checkpoint(tmp_path / "wide.safetensors")
    assert main(["stats", path, "--metrics", "alpha,stable_rank,top1_norm_ratio"]) == 0
    text = capsys.readouterr().out
    tables = {block.split("\n", 1)[0]: block for block in text.split("\n\n")[1:]}
    alpha = tables["alpha"].splitlines()
    assert alpha[1].split() == ["model.layers.mlp.up_proj.weight", "model.layers.self_attn.q_proj.weight"]
    cells = {line[:7]: line[7:].split() for line in alpha[3:5]}
    assert cells["layer 0"][0].startswith("≈")  # 600×520: block Krylov
    assert not cells["layer 1"][0].startswith("≈")  # 300×200: exact
    assert not cells["layer 0"][1].startswith("≈") and not cells["layer 1"][1].startswith("≈")  # 64×64: exact
    legend = alpha[-1]
    assert legend.startswith("≈ estimated (block Krylov, top 96 eigenvalues): 1 of 4 matrices")
    assert "graft stats --help" in legend and "≈ estimated" in tables["stable_rank"]
    assert "≈" not in tables["top1_norm_ratio"]  # every row norm: always exact

    assert main(["stats", path, "--json", "--metrics", "alpha"]) == 0  # the JSON keeps plain numbers
    out = json.loads(capsys.readouterr().out)
    assert sum(e for row in out["estimated"]["alpha"] for e in row if e) == 1
    assert all(isinstance(v, float) for row in out["values"]["alpha"] for v in row if v is not None)

    # one tensor: the spectrum is labelled an estimate of the top 96 eigenvalues, not a subset
    assert main(["stats", path, "--tensor", WIDE_MATRIX]) == 0
    text = capsys.readouterr().out
    assert "subset" not in text and "top 96 eigenvalues (block Krylov)" in text
    spectrum = text.split("σ max", 1)[1].splitlines()
    assert all(v.startswith("≈") for v in spectrum[2].split()[:3])  # σ max, stable rank, α
    assert spectrum[3].startswith("≈ estimated from the top 96 eigenvalues by block Krylov (smaller side 520 > 512")
    assert main(["stats", path, "--tensor", "model.layers.1.mlp.up_proj.weight"]) == 0
    text = capsys.readouterr().out
    assert "whole matrix" in text and "≈" not in text


def test_help_lists_each_metric_with_its_measured_error(capsys):
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    text = capsys.readouterr().out
    assert "alpha: ESD power-law exponent" in text and "measured" in text.split("stable_rank:", 1)[1]


def test_errors_are_one_line_messages(capsys, tiny_llama):
    assert main(["stats", tiny_llama, "--tensor", "nope"]) == 2
    assert "no tensor named 'nope'" in capsys.readouterr().err
    assert main(["stats", tiny_llama, "--metrics", "std,bogus"]) == 2
    assert "unknown metric 'bogus'" in capsys.readouterr().err
