"""The strategy leaderboard: candidate grammar, ranking rules, quick = full's first steps, ``graft compare``."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from cli_expect import fails

from app.cli import main
from core.errors import RecipeError
from core.leaderboard import DEFAULT_CANDIDATES, compare_steps, parse_candidates, quick_config
from core.progress import CancelToken
from core.ranking import Leaderboard, Row, agreement, rank_curves, rank_rows
from core.recipe import Recipe
from core.training import ValidationConfig

SHRINK = {"layers": 1, "hidden": 16, "heads": 2, "ffn": 32}
# warmup 0: the learning rate of step 1 already depends on the run's length, so a quick run on its own
# shorter schedule would differ from the full run at eval step 2 (the quick-equals-full test can fail)
FAST = ValidationConfig(
    steps=4, batch_size=4, seq_len=16, lr=2e-3, warmup=0, eval_every=2, eval_batches=1, device="cpu"
)
FAST_FLAGS = [
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-every",
    "1",
    "--eval-batches",
    "1",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory, tokenizer_dir):
    """A tiny BERT with an MLM head and the demo tokenizer (vocabulary 30522, hidden 32, 2 layers)."""
    from tiny_models import save_tiny
    from transformers import BertConfig

    folder = tmp_path_factory.mktemp("leaderboard") / "tiny-bert"
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=30522,
        max_position_embeddings=64,
    )
    save_tiny(config, "AutoModelForMaskedLM", folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    return folder


@pytest.fixture(autouse=True)
def _history(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFT_HISTORY_DIR", str(tmp_path / "history"))


def run(gen):
    """Drain a generator; returns (items, return value)."""
    items = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as end:
            return items, end.value


# -- grammar -------------------------------------------------------------------------------------


def test_candidate_grammar_applies_each_kind_of_name_to_the_base(tmp_path):
    base = Recipe(
        source="demo",
        target=SHRINK,
        seed=3,
        layers="last_n",
        values={"default": {"method": "growth", "params": {}}, "attn": {"method": "mimetic", "params": {}}},
    )
    other = Recipe(source="demo", target=SHRINK, values={"default": {"method": "covariance", "params": {}}})
    path = other.save(tmp_path / "cov_start.json")
    specs = [
        "mean_field",
        "uniform",
        "mean_field+by_norm",
        "layers=uniform",
        "by_activation+by_influence",
        "select+teacher",
        str(path),
    ]
    got = {c.name: c for c in parse_candidates(base, specs)}
    assert list(got) == specs[:-1] + ["cov_start"]
    mf = got["mean_field"].recipe
    assert (
        mf.values == {"default": {"method": "mean_field", "params": {}}} and mf.index is None
    )  # its own default index
    assert (mf.seed, mf.layers, mf.target) == (3, "last_n", SHRINK)  # the rest is the base's
    assert got["uniform"].recipe.values["default"]["method"] == "select"  # an index alone: select
    assert got["uniform"].recipe.index == {"method": "uniform", "params": {}}
    assert got["mean_field+by_norm"].recipe.values["default"]["method"] == "mean_field"
    assert got["mean_field+by_norm"].recipe.index["method"] == "by_norm"
    assert got["layers=uniform"].recipe.layers == "uniform" and got["layers=uniform"].recipe.values == base.values
    both = got["by_activation+by_influence"].recipe
    assert (both.index["method"], both.layers) == ("by_activation", "by_influence")
    assert got["select+teacher"].distill and not got["mean_field"].distill
    assert got["cov_start"].recipe.values["default"]["method"] == "covariance" and not got["cov_start"].distill
    assert "baseline" not in DEFAULT_CANDIDATES and "select" in DEFAULT_CANDIDATES
    assert DEFAULT_CANDIDATES[-3:] == ("by_activation", "by_activation+by_influence", "scratch")


@pytest.mark.parametrize(
    "specs, needle",
    [
        (["selekt"], "'selekt' is not a known name; use value strategies (covariance"),
        (["select+mean_field"], "two value strategies"),
        (["uniform+random"], "two index strategies"),
        (["layers=middle"], "layer map 'middle'"),
        (["baseline"], "always in the leaderboard"),
        (["select", "select"], "given twice"),
        (["teacher+teacher"], "teacher twice"),
        ([""], "empty"),
    ],
)
def test_candidate_grammar_refuses_in_one_sentence(specs, needle):
    with pytest.raises(RecipeError) as err:
        parse_candidates(Recipe(source="demo", target=SHRINK), specs)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_a_candidate_recipe_of_other_sizes_or_source_is_refused(tmp_path):
    base = Recipe(source="demo", target=SHRINK)
    wider = Recipe(source="demo", target={**SHRINK, "hidden": 32}).save(tmp_path / "wide.json")
    with pytest.raises(RecipeError, match="of the same sizes"):
        parse_candidates(base, [str(wider)])
    elsewhere = Recipe(source="other/model", target=SHRINK).save(tmp_path / "elsewhere.json")
    with pytest.raises(RecipeError, match="of the same source"):
        parse_candidates(base, [str(elsewhere)])
    same = Recipe(source="demo", target=SHRINK).save(tmp_path / "same.json")
    with pytest.raises(RecipeError, match="build the same start"):
        parse_candidates(base, ["layers=first_n", str(same)])


# -- ranking -------------------------------------------------------------------------------------

CURVES = {
    "late": [(0, 5.0), (2, 3.0), (4, 2.5)],  # reaches 3.0 at step 2
    "start": [(0, 2.9), (2, 2.95), (4, 2.9)],  # below the baseline's final loss from step 0
    "never": [(0, 6.0), (2, 5.0), (4, 4.0)],
    "late_low": [(0, 5.0), (2, 2.8), (4, 2.0)],  # also step 2, lower final loss: before "late"
    "baseline": [(0, 5.0), (2, 4.0), (4, 3.0)],
}


def test_full_ranking_steps_to_baseline_then_final_loss_none_last():
    rows, base = rank_curves(CURVES)
    assert [r.name for r in rows] == ["start", "late_low", "late", "never"]
    assert [r.rank for r in rows] == [1, 2, 3, 4]
    by = {r.name: r for r in rows}
    assert by["start"].reached_at_start and by["start"].steps_to_baseline == 0 and by["start"].speedup is None
    assert by["late"].steps_to_baseline == 2 and by["late"].speedup == 2.0
    assert by["never"].steps_to_baseline is None
    assert (by["late_low"].final_eval_loss, by["late_low"].zero_step_eval_loss) == (2.0, 5.0)
    assert base.name == "baseline" and base.final_eval_loss == 3.0 and base.rank is None


def test_quick_ranking_is_by_the_loss_at_quick_steps_and_errors_come_last():
    rows, _ = rank_curves(CURVES, quick_steps=2)
    assert [(r.name, r.quick_eval_loss) for r in rows] == [
        ("late_low", 2.8),
        ("start", 2.95),
        ("late", 3.0),
        ("never", 5.0),
    ]
    ranked = rank_rows([Row("refused", error="no"), *rows], quick=True)
    assert [r.name for r in ranked][-1] == "refused" and ranked[-1].rank is None
    assert [r.rank for r in ranked[:-1]] == [1, 2, 3, 4]


def _board(order: list[str], quick_steps=None) -> Leaderboard:
    rows = [Row(n, rank=i + 1) for i, n in enumerate(order)]
    return Leaderboard(
        rows=rows,
        baseline=Row("baseline"),
        config={},
        quick_steps=quick_steps,
        base_recipe={},
        created="",
        report={},
        key="0",
    )


def test_agreement_winner_spearman_and_top3():
    full = _board(["a", "b", "c", "d", "e"])
    same = agreement(_board(["a", "b", "c", "d", "e"], 2), full)
    assert same["same_winner"] and same["spearman"] == 1.0 and same["top3_overlap"] == 1.0 and same["n"] == 5
    reverse = agreement(_board(["e", "d", "c", "b", "a"], 2), full)
    assert not reverse["same_winner"] and reverse["spearman"] == -1.0
    assert reverse["top3_common"] == ["c"] and reverse["top3_overlap"] == pytest.approx(1 / 3)
    # curves: ranked by the loss at the last step every candidate reached (here step 2)
    curves = {"a": [(0, 3.0), (2, 1.0)], "b": [(0, 2.0), (2, 2.0)], "baseline": [(0, 9.0), (2, 8.0)]}
    from_curves = agreement(curves, _board(["a", "b"]))
    assert from_curves["quick_winner"] == "a" and from_curves["spearman"] == 1.0


def test_quick_config_lowers_eval_every_to_a_divisor():
    cfg, notes = quick_config(FAST.with_(steps=100, eval_every=25), 60)
    assert cfg.eval_every == 20 and 60 in cfg.eval_steps() and "eval_every 25 → 20" in notes[0]
    assert quick_config(FAST, 2) == (FAST, [])
    with pytest.raises(Exception, match="from 1 to the run's 4 steps"):
        quick_config(FAST, 5)


# -- real runs ----------------------------------------------------------------------------------


def test_quick_equals_the_full_runs_first_steps_and_a_refused_candidate_is_a_row(source, tmp_path):
    base = Recipe(source=str(source), target=SHRINK)
    # an explicit role override the plan refuses (mimetic fills attention only)
    refused = Recipe(
        source=str(source),
        target=SHRINK,
        values={"default": {"method": "select", "params": {}}, "mlp": {"method": "mimetic", "params": {}}},
    )
    candidates = parse_candidates(base, ["select", "mean_field", str(refused.save(tmp_path / "bad_mlp.json"))])
    items, full = run(compare_steps(base, candidates, FAST))
    assert full.status == "complete" and full.quick_steps is None
    assert len(items) == 3 * (FAST.steps + 1)  # two candidates + the baseline, steps 0…4
    bad = next(r for r in full.rows if r.name == "bad_mlp")
    assert bad.rank is None and "mimetic only fills roles" in bad.error and full.rows[-1] is bad
    assert "bad_mlp" not in full.eval_curves()
    assert sorted(r.rank for r in full.ranked()) == [1, 2]
    assert [r.name for r in rank_curves(full.eval_curves())[0]] == [r.name for r in full.ranked()]
    assert all(r.materialise_s is not None and r.wall_s > 0 for r in full.ranked())

    items, quick = run(compare_steps(base, candidates, FAST, quick_steps=3))
    assert quick.status == "complete" and quick.quick_steps == 3 and len(items) == 3 * 4
    assert "eval_every 2 → 1" in quick.notes[0]
    q_curves, f_curves = quick.eval_curves(), full.eval_curves()
    for arm in ("select", "mean_field", "baseline"):
        common = [s for s, _ in f_curves[arm] if s <= 3]
        assert common == [0, 2]
        assert [v for s, v in q_curves[arm] if s in common] == [v for s, v in f_curves[arm] if s in common]  # bit-equal
        q_train = [m["train_loss"] for m in quick.report["records"][arm]]
        f_train = [m["train_loss"] for m in full.report["records"][arm]][:4]
        assert q_train == f_train
    assert all(r.quick_eval_loss == dict(q_curves[r.name])[3] for r in quick.ranked())
    assert quick.key == full.key  # the same question: a quick look and the full answer meet in history
    again = Leaderboard.from_dict(json.loads(json.dumps(quick.to_dict())))
    assert again.to_dict() == quick.to_dict() and again.table() == quick.table()


def test_cancel_keeps_complete_steps_only(source):
    base = Recipe(source=str(source), target=SHRINK)
    cancel = CancelToken()
    gen = compare_steps(base, parse_candidates(base, ["select"]), FAST, cancel=cancel)
    while True:
        try:
            m = next(gen)
        except StopIteration as end:
            board = end.value
            break
        if (m.arm, m.step) == ("select", 2):
            cancel.cancel()
    assert board.status == "cancelled"
    assert [s for s, _ in board.eval_curves()["select"]] == [0]  # step 2 of the baseline never ran
    assert board.report["steps_completed"] == 1


def test_teacher_candidates_distil_and_leave_the_others_alone(source):
    base = Recipe(source=str(source), target=SHRINK)
    config = FAST.with_(steps=2, eval_every=1)
    _, plain = run(compare_steps(base, parse_candidates(base, ["select"]), config))
    _, board = run(compare_steps(base, parse_candidates(base, ["select", "select+teacher"]), config))
    arms = board.report["arms"]
    assert {a: arms[a]["distill"] for a in arms} == {"select": False, "select+teacher": True, "baseline": False}
    assert board.report["teacher"]["kind"] == "logits"  # the tiny source has its MLM head
    assert next(r for r in board.rows if r.name == "select+teacher").distill
    # an arm without the term trains exactly as in a session without a teacher
    assert board.eval_curves()["select"] == plain.eval_curves()["select"]
    assert board.eval_curves()["baseline"] == plain.eval_curves()["baseline"]
    assert board.eval_curves()["select+teacher"][0] == plain.eval_curves()["select"][0]  # same start
    assert board.eval_curves()["select+teacher"][-1] != plain.eval_curves()["select"][-1]


# -- CLI ----------------------------------------------------------------------------------------


def test_graft_compare_writes_the_three_files_ranks_and_keeps_history(source, tmp_path, capsys):
    from core.history import History

    out = tmp_path / "board"
    argv = [
        "compare",
        str(source),
        "--layers",
        "1",
        "--hidden",
        "48",
        "--heads",
        "2",
        "--ffn",
        "96",
        "--candidates",
        "mean_field,select,growth",
        "--out",
        str(out),
        *FAST_FLAGS,
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "refused: strategy select can only shrink" in printed and "winner: " in printed
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["graft_leaderboard"] == 1 and board["status"] == "complete"
    ranks = [(r["name"], r["rank"]) for r in board["rows"]]
    assert sorted(r for _, r in ranks if r is not None) == [1, 2] and ranks[-1] == ("select", None)
    assert (out / "leaderboard.png").stat().st_size > 1000
    table = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert [t["name"] for t in table] == [n for n, _ in ranks] + ["baseline"]
    assert table[-2]["error"].startswith("strategy select can only shrink")
    entries = History().entries(kind="leaderboard")
    assert len(entries) == 1 and entries[0]["key"] == board["key"] and entries[0]["payload"]["rows"] == board["rows"]
    # the same folder again needs --force, which replaces only a leaderboard folder
    assert main([*argv, "--quick", "--candidates", "mean_field", "--force"]) == 0
    again = json.loads((out / "leaderboard.json").read_text())
    assert again["quick_steps"] == 1 and again["key"] == board["key"]
    assert [e["payload"]["quick_steps"] for e in History().entries(board["key"])] == [1, None]  # newest first


def test_graft_compare_refuses_bad_input_with_exit_2(source, tmp_path, capsys):
    out = tmp_path / "board"
    base = ["compare", str(source), "--layers", "1", "--hidden", "16", "--out", str(out), *FAST_FLAGS]
    fails(capsys, [*base, "--candidates", "select,nope"], out, "'nope' is not a known name")
    fails(capsys, [*base, "--candidates", "select", "--teacher", "source"], out, "none distils")
    fails(capsys, [*base, "--candidates", "select", "--quick-steps", "9"], out, "quick steps")
    fails(capsys, ["compare", str(source), "--candidates", "select", "--out", str(source), *FAST_FLAGS], None, "source")
