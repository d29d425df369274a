"""``graft report --out`` follows the export's rules: atomic, never the source, never foreign data."""

from __future__ import annotations

import json

import pytest
from cli_expect import digest, fails

from app.cli import main


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from tiny_models import build_tiny

    folder = tmp_path_factory.mktemp("report-safety") / "llama"
    build_tiny("llama", folder)
    return folder


def _report(source, out, *flags) -> list[str]:
    return ["report", str(source), "--out", str(out), "--tensor", "model.layers.0.mlp.up_proj.weight", *flags]


def test_a_non_empty_out_needs_force_and_only_a_report_is_replaced(llama, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    fails(capsys, _report(llama, out), None, "--force")
    fails(capsys, _report(llama, out, "--force"), None, "--replace-any")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    assert main(_report(llama, out, "--force", "--replace-any")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["graft_report"] and "thesis.tex" not in {p.name for p in out.iterdir()}
    assert main(_report(llama, out, "--force")) == 0  # a previous report is replaced by --force alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_the_source_is_never_the_out_folder(llama, capsys):
    before = digest(llama)
    for out in (llama, llama.parent, llama / "report"):
        fails(capsys, _report(llama, out, "--force", "--replace-any"), None, "source")
    assert digest(llama) == before and not (llama / "report").exists()


def test_the_target_recipe_is_protected_too(llama, tmp_path, capsys):
    from core.recipe import Recipe

    keep = tmp_path / "keep"
    keep.mkdir()
    recipe = keep / "recipe.json"
    Recipe(source=str(llama), target={"layers": 1}).save(recipe)
    fails(capsys, _report(llama, keep, "--target", str(recipe), "--force", "--replace-any"), None, "recipe.json")
    assert recipe.is_file()


def test_a_failing_report_leaves_nothing(llama, tmp_path, capsys):
    out = tmp_path / "new" / "report"
    fails(capsys, ["report", str(llama), "--out", str(out), "--tensor", "no.such.tensor"], out, "no.such.tensor")
    assert list(tmp_path.iterdir()) == []
