"""Run history: keys that name the question, newest-first entries, unreadable files skipped."""

from __future__ import annotations

import json
import logging

import pytest

from core.errors import GraftError
from core.history import History, history_root, recipe_key
from core.recipe import Recipe
from core.training import ValidationConfig

BASE = Recipe(source="demo", target={"layers": 2, "hidden": 64}, seed=1)


def test_leaderboard_key_names_source_sizes_and_seed_only():
    key = recipe_key(BASE, what="leaderboard")
    assert len(key) == 16 and int(key, 16) >= 0
    assert recipe_key(BASE.with_strategy("mean_field"), what="leaderboard") == key  # candidates are not the question
    assert recipe_key(BASE, what="leaderboard", config=ValidationConfig()) == key  # omitted defaults = explicit ones
    assert recipe_key(BASE.to_dict(), what="leaderboard", config={}) == key
    changed = [
        Recipe(source="demo", target={"layers": 2, "hidden": 32}, seed=1),
        Recipe(source="demo", target={"layers": 2, "hidden": 64}, seed=2),
        Recipe(source="demo", revision="v2", target={"layers": 2, "hidden": 64}, seed=1),
    ]
    assert all(recipe_key(r, what="leaderboard") != key for r in changed)
    # other training options ask the same question: their runs are listed together
    assert recipe_key(BASE, what="leaderboard", config=ValidationConfig(steps=50)) == key
    assert recipe_key(BASE, what="validation", config=ValidationConfig(steps=50)) != recipe_key(BASE, what="validation")


def test_validation_key_is_the_whole_recipe_but_provenance():
    key = recipe_key(BASE, what="validation")
    assert key != recipe_key(BASE, what="leaderboard")
    assert recipe_key(BASE.with_strategy("mean_field"), what="validation") != key
    recorded = Recipe.from_dict({**BASE.to_dict(), "provenance": {"shards": {"model.safetensors": "ab" * 32}}})
    assert recipe_key(recorded, what="validation") == key
    with pytest.raises(GraftError, match="unknown"):
        recipe_key(BASE, what="export")


def test_entries_newest_first_filtered_and_removable(tmp_path):
    history = History(tmp_path / "h")
    a, b = recipe_key(BASE), recipe_key(BASE, what="validation")
    first = history.add("leaderboard", a, {"n": 1})
    history.add("validation", b, {"n": 2})
    history.add("leaderboard", a, {"n": 3})
    assert [e["payload"]["n"] for e in history.entries()] == [3, 2, 1]
    assert [e["payload"]["n"] for e in history.entries(key=a)] == [3, 1]
    assert [e["payload"]["n"] for e in history.entries(kind="validation")] == [2]
    assert history.entries(key="0123456789abcdef") == []
    entry = history.entries(key=a)[-1]
    assert entry["path"] == str(first) and entry["kind"] == "leaderboard" and entry["key"] == a
    assert not list(first.parent.glob(".*"))  # no temporary file left behind
    history.remove(first)
    assert [e["payload"]["n"] for e in history.entries(key=a)] == [3]
    with pytest.raises(GraftError, match="not a run of the history"):
        history.remove(tmp_path / "elsewhere.json")
    with pytest.raises(GraftError, match="kind"):
        history.add("export", a, {})


def test_unreadable_files_are_skipped_with_a_warning(tmp_path, caplog):
    history = History(tmp_path)
    key = recipe_key(BASE)
    good = history.add("leaderboard", key, {"ok": True})
    (good.parent / "00-truncated.json").write_text('{"graft_history": 1, "kind": "lead')
    (good.parent / "01-other.json").write_text(json.dumps({"something": "else"}))
    (good.parent / "02-binary.json").write_bytes(b"\xff\xfe\x00")
    with caplog.at_level(logging.WARNING, logger="core.history"):
        entries = history.entries()
    assert [e["payload"] for e in entries] == [{"ok": True}]
    assert sum("skipping" in r.message for r in caplog.records) == 3


def test_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFT_HISTORY_DIR", str(tmp_path / "mine"))
    assert history_root() == tmp_path / "mine" and History().root == tmp_path / "mine"
    monkeypatch.delenv("GRAFT_HISTORY_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert history_root() == tmp_path / "data" / "graft" / "history"
