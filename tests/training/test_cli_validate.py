"""``graft validate`` on an export folder and on a recipe."""

import json
import shutil

from app.cli import main

FAST = [
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--seq-len",
    "32",
    "--eval-every",
    "1",
    "--eval-batches",
    "1",
    "--device",
    "cpu",
]


def test_validate_an_export_folder(tiny_export, tmp_path, capsys):
    export = tmp_path / "exp"
    shutil.copytree(tiny_export, export)
    out = tmp_path / "run"
    assert main(["validate", str(export), "--out", str(out), *FAST]) == 0
    report = json.loads((out / "validation.json").read_text())
    assert report["status"] == "complete" and set(report["records"]) == {"exp", "baseline"}
    assert report["config"]["steps"] == 2 and report["config"]["seq_len"] == 32
    assert (out / "validation_curves.csv").is_file() and (export / "validation" / "validation.json").is_file()
    assert "baseline" in capsys.readouterr().out


def test_validate_a_recipe_against_baseline_and_mean_field(tmp_path):
    from core.recipe import Recipe

    recipe = Recipe(source="demo", target={"layers": 1, "hidden": 64, "heads": 2, "ffn": 128})
    path = recipe.save(tmp_path / "recipe.json")
    out = tmp_path / "run"
    assert (
        main(["validate", str(path), "--vs", "baseline", "mean_field", "--out", str(out), *FAST, "--steps", "1"]) == 0
    )
    report = json.loads((out / "validation.json").read_text())
    assert list(report["records"]) == ["select", "mean_field", "baseline"]
    assert set(report["verdicts"]) == {"select", "mean_field"}
    assert report["arms"]["select"]["load"]["loaded"] > 0


def test_validate_refuses_strategies_without_a_recipe(tiny_export, capsys):
    assert main(["validate", str(tiny_export), "--vs", "mean_field", *FAST]) == 2
    assert "graft_recipe.json" in capsys.readouterr().err
