"""``graft report``: figures drawn offscreen by app.render, plus report.json, source and target."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from core.recipe import Recipe


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from tiny_models import build_tiny

    folder = tmp_path_factory.mktemp("report") / "llama"
    build_tiny("llama", folder)
    return folder


def test_report_of_a_source_and_its_target(llama, tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    Recipe(source=str(llama), target={"layers": 1, "hidden": 16, "ffn": 32, "heads": 2, "kv_heads": 1}).save(recipe)
    out = tmp_path / "report"
    name = "model.layers.0.mlp.up_proj.weight"
    assert main(["report", str(llama), "--target", str(recipe), "--out", str(out), "--tensor", name]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["tables"]) == {"source", "target"}
    assert report["tables"]["target"]["layers"] == [0, None] and report["tables"]["source"]["layers"] == [0, 1, None]
    entry = report["tensors"][name]
    assert entry["target"] == name and entry["comparison"]["distances"]["ks"] >= 0
    assert f"hist_{name}.png" in report["figures"] and "heads_layer0_qk_head0.png" in report["figures"]
    for fig in report["figures"]:
        data = (out / fig).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert "figures and report.json" in capsys.readouterr().out


def test_report_of_a_source_alone_draws_the_first_layer(llama, tmp_path):
    out = tmp_path / "alone"
    assert main(["report", str(llama), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["tables"]) == ["source"] and len(report["heads_layer0"]["qk_diag_dominance"]) == 4
    assert len(report["tensors"]) == 7 and all("target" not in e for e in report["tensors"].values())
    assert (out / "corr_rows_model.layers.0.self_attn.q_proj.weight.png").is_file()
