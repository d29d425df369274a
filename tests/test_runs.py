"""Runs of one source read from the history (core.runs) and ``graft history``: keys, listing, diffs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from app.cli import main
from core.history import History, recipe_key
from core.recipe import Recipe
from core.runs import (
    entry_diff,
    layer_metrics,
    materialised_payload,
    recipe_diff,
    runs_of_source,
    verdict_lines,
)
from core.stats.summary import TensorSummary
from core.training.verdict import Verdict

BASE = Recipe(source="demo", target={"layers": 2, "hidden": 64}, seed=1)
SUMMARIES = [
    TensorSummary("emb", "embed", None, 0.02, 0.04, 0.0, 1.0),
    TensorSummary("q0", "attn.q", 0, 0.1, 0.1, 0.01, 3.0),
    TensorSummary("k0", "attn.k", 0, 0.3, math.nan, 0.03, 5.0),
    TensorSummary("q1", "attn.q", 1, 0.2, 0.1, -0.01, 0.5),
]


@pytest.fixture
def history(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFT_HISTORY_DIR", str(tmp_path / "history"))
    return History()


def _verdict(arm: str, speedup: float | None) -> dict:
    return Verdict(arm, "baseline", 40, 4.0, 3.5, -0.5, None, 10 if speedup else None, speedup, False).to_dict()


def _validation(recipe: Recipe, steps: int, speedup: float | None) -> dict:
    report = {
        "status": "complete",
        "config": {"steps": steps, "lr": 1e-3},
        "baseline": "baseline",
        "verdicts": {"transferred": _verdict("transferred", speedup)},
        "eval": {"transferred": [[0, 5.0, None], [steps, 3.5, None]], "baseline": [[0, 9.0, None], [steps, 4.0, None]]},
    }
    return {"recipe": recipe.to_dict(), "report": report}


def _fill(history: History) -> None:
    mean_field = BASE.with_strategy("mean_field")
    history.add(
        "materialised",
        recipe_key(BASE, what="materialised"),
        materialised_payload(BASE.to_dict(), SUMMARIES, 1234567, "cpu"),
    )
    history.add("validation", recipe_key(BASE, what="validation"), _validation(BASE, 40, 4.0))
    history.add("validation", recipe_key(mean_field, what="validation"), _validation(mean_field, 80, None))
    other = Recipe(source="/models/other", target={"layers": 1})
    history.add("validation", recipe_key(other, what="validation"), _validation(other, 40, 2.0))


def test_materialised_key_is_the_recipe_without_validation_options():
    key = recipe_key(BASE, what="materialised")
    assert key not in (recipe_key(BASE, what="validation"), recipe_key(BASE, what="leaderboard"))
    with_options = Recipe.from_dict({**BASE.to_dict(), "validation": {"steps": 7}})
    assert recipe_key(with_options, what="materialised") == key  # training options do not change the weights
    assert recipe_key(with_options, what="validation") != recipe_key(BASE, what="validation")
    recorded = Recipe.from_dict({**BASE.to_dict(), "provenance": {"shards": {"a.safetensors": "ab" * 32}}})
    assert recipe_key(recorded, what="materialised") == key
    assert recipe_key(BASE.with_strategy("mean_field"), what="materialised") != key
    assert recipe_key(Recipe.from_dict({**BASE.to_dict(), "dtype": "bfloat16"}), what="materialised") != key


def test_materialised_payload_is_plain_json_and_reads_as_the_overview_table(history):
    payload = materialised_payload(BASE.to_dict(), SUMMARIES, 1234567, "cpu")
    path = history.add("materialised", recipe_key(BASE, what="materialised"), payload)
    stored = json.loads(path.read_text())["payload"]  # NaN survives the round trip
    assert stored["num_parameters"] == 1234567 and len(stored["tensors"]) == 4
    assert math.isnan(stored["tensors"][2]["source_std"])
    rows, values = layer_metrics(stored)
    assert rows == ["global", "layer 0", "layer 1"]
    assert values[0] == pytest.approx([0.5, 0.02, 0.0, 1.0])
    # layer 0: the ratio of q0 only (k0's source std is NaN); the other columns average both tensors
    assert values[1] == pytest.approx([1.0, 0.2, 0.02, 4.0])
    assert values[2] == pytest.approx([2.0, 0.2, -0.01, 0.5])
    assert verdict_lines({"kind": "materialised", "payload": stored}) == [
        "1.23 M parameters in 4 tensors on cpu; std ÷ source std 0.5 … 2"
    ]


def test_old_kinds_still_read_and_runs_are_listed_per_source(history):
    _fill(history)
    # a leaderboard written before this kind existed: its recipe is the base recipe
    board = {"base_recipe": BASE.to_dict(), "rows": [], "config": {"steps": 5}, "report": None}
    history.add("leaderboard", recipe_key(BASE, what="leaderboard"), board)
    runs = runs_of_source("demo", history)
    assert [e["kind"] for e in runs] == ["leaderboard", "validation", "validation", "materialised"]
    assert len({e["key"] for e in runs}) == 4  # every recipe key of the source
    assert [e["kind"] for e in runs_of_source("/models/other", history)] == ["validation"]
    assert runs_of_source("nowhere", history) == []
    assert verdict_lines(runs[0]) == ["no start could be trained"]


def test_recipe_diff_names_the_leaves_that_differ():
    a = BASE.to_dict()
    b = {**BASE.with_strategy("mean_field").to_dict(), "graft_version": "0.0.0", "provenance": {"x": 1}}
    b["target"] = {"layers": 2, "hidden": 64, "ffn": 128}
    assert recipe_diff(a, b) == [("target.ffn", None, 128), ("values.default.method", "select", "mean_field")]
    assert recipe_diff(a, dict(a)) == []


def test_entry_diff_adds_the_run_options_of_two_runs_of_one_kind(history):
    _fill(history)
    runs = runs_of_source("demo", history)
    select, mean_field = runs[1], runs[0]
    assert entry_diff(select, mean_field) == [
        ("values.default.method", "select", "mean_field"),
        ("options.steps", 40, 80),
    ]
    materialised = runs[2]
    assert entry_diff(materialised, select) == []  # one recipe; other kinds' options are not compared
    assert verdict_lines(select)[0].startswith("transferred reaches the baseline's step-40 eval loss")
    assert "does not reach" in verdict_lines(mean_field)[0]


def test_graft_history_lists_and_compares(history, capsys):
    _fill(history)
    assert main(["history", "--source", "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["#", "created", "(UTC)", "kind"] and len(out) == 2 + 3
    assert "validation" in out[2] and "mean_field" in out[2] and "materialised" in out[4]

    assert main(["history", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["number"] for e in listed] == [1, 2, 3, 4] and listed[0]["recipe"]["source"] == "/models/other"

    assert main(["history", "--source", "demo", "--compare", "2", "1"]) == 0
    text = capsys.readouterr().out
    assert "values.default.method  select  mean_field" in text and "options.steps" in text
    assert "A found:\n  transferred reaches the baseline's step-40" in text
    assert "B found:\n  transferred does not reach" in text

    assert main(["history", "--source", "demo", "--compare", "2", "1", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["diff"][0] == {"field": "values.default.method", "a": "select", "b": "mean_field"}

    assert main(["history", "--compare", "1", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("graft: error: no run of the history match '9'") and "\n" not in err


def test_graft_history_imports_no_qt(history):
    _fill(history)
    code = "import sys; from app.cli import main; main(['history']); sys.exit('PySide6' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mean_field" in done.stdout
