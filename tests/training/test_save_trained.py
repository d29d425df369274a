"""Keeping the trained weights: loadable folders, partial saves, refusals; the CLI's --teacher and --save-trained."""

import json

import pytest
import torch
from tiny_sources import TOKENIZER_FILES, save_bert_source

from app.cli import main
from core.errors import Cancelled, ExportError, TrainingError
from core.progress import CancelToken
from core.recipe import Recipe
from core.training import (
    Arm,
    SaveTrained,
    ValidationSession,
    get_task,
    run_validation,
    validation_steps,
)
from core.training.save import TRAINED_NAME

FAST = ["--batch-size", "4", "--seq-len", "32", "--eval-every", "1", "--eval-batches", "1", "--device", "cpu"]
TARGET = {"layers": 1, "hidden": 16, "heads": 1, "ffn": 32}


@pytest.fixture(scope="module")
def bare_source(tmp_path_factory, tokenizer_dir, tiny):
    """A tiny BertModel source (no MLM head, like the demo) with the demo tokenizer."""
    return save_bert_source(tmp_path_factory.mktemp("bare") / "src", tokenizer_dir, tiny["bert"], head=False, seed=3)


def _eval_loss(folder, session) -> float:
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    task, total, count = get_task("masked_lm"), 0.0, 0.0
    with torch.no_grad():
        for batch in session.eval_batches:
            out = task.compute(model, batch)
            total += float(out["loss"]) * float(out["count"])
            count += float(out["count"])
    return total / count


def test_the_saved_folder_loads_and_gives_the_last_evaluation(tiny_export, fast_config, tiny, tmp_path):
    session = ValidationSession([Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])], config=fast_config)
    list(session.steps())
    saved = session.save_trained(tmp_path / "trained")
    assert list(saved) == ["t"] and session.report().saved == {"t": str(saved["t"])}
    last = session.report().records["t"][-1]
    assert _eval_loss(saved["t"], session) == pytest.approx(last.eval_loss, rel=1e-6)
    info = json.loads((saved["t"] / TRAINED_NAME).read_text())
    assert info["status"] == "complete" and not info["partial"] and info["steps"] == fast_config.steps
    assert info["final_eval_loss"] == last.eval_loss and info["eval_step"] == fast_config.steps
    assert all((saved["t"] / n).is_file() for n in ("config.json", "model.safetensors", *TOKENIZER_FILES))
    assert not (tmp_path / "trained" / "baseline").exists()


def test_a_cancelled_run_saves_its_partial_weights_evaluated(tiny_export, fast_config, tiny, tmp_path):
    cancel = CancelToken()

    def on_step(m):
        if (m.arm, m.step) == ("baseline", 4):
            cancel.cancel()

    arms = [Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])]
    save = SaveTrained(tmp_path / "trained", names=("t", "baseline"))
    report = run_validation(arms, config=fast_config, cancel=cancel, on_step=on_step, save_trained=save)
    evaluation = ValidationSession(arms, config=fast_config)  # the same fixed eval batches
    assert report.status == "cancelled" and set(report.saved) == {"t", "baseline"}
    for arm in ("t", "baseline"):
        info = json.loads((tmp_path / "trained" / arm / TRAINED_NAME).read_text())
        # eval steps are 0, 3, 6: step 4's weights were evaluated when saved
        assert info["partial"] and info["status"] == "partial" and info["steps"] == 4 and info["eval_step"] == 4
        assert _eval_loss(tmp_path / "trained" / arm, evaluation) == pytest.approx(info["final_eval_loss"], rel=1e-6)
    # the job form saves too, before it raises Cancelled
    cancel = CancelToken()
    steps = validation_steps(arms, fast_config, save_trained=tmp_path / "job", cancel=cancel)
    for _ in range(5):  # steps 0 and 1 of both arms, step 2 of the first
        next(steps)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(steps)
    info = json.loads((tmp_path / "job" / "t" / TRAINED_NAME).read_text())
    assert info["partial"] and info["steps"] == 2 and not (tmp_path / "job" / "baseline").exists()


def test_save_trained_refuses_the_source_foreign_folders_and_unknown_arms(tiny_export, fast_config, tiny, tmp_path):
    arms = [Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])]
    steps = []
    with pytest.raises(ExportError, match="inside the source folder"):  # refused before any training
        run_validation(arms, config=fast_config, save_trained=tiny_export / "trained", on_step=steps.append)
    assert steps == []
    session = ValidationSession(arms, config=fast_config.with_(steps=1))
    with pytest.raises(ExportError, match="holds the source folder"):
        session.save_trained(tiny_export.parent)
    foreign = tmp_path / "other" / "t"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        session.save_trained(tmp_path / "other")
    with pytest.raises(ExportError, match="not a trained model Graft wrote"):
        session.save_trained(tmp_path / "other", force=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    session.save_trained(tmp_path / "ok")
    with pytest.raises(ExportError, match="not empty"):
        session.save_trained(tmp_path / "ok")
    assert session.save_trained(tmp_path / "ok", force=True)["t"] == tmp_path / "ok" / "t"
    with pytest.raises(TrainingError, match="no arm named nope"):
        session.save_trained(tmp_path / "ok", ["nope"])


def test_the_pipeline_distils_through_the_plans_hidden_map(bare_source, fast_config, tmp_path):
    from core.pipeline import validate_recipe_steps

    recipe = Recipe(source=str(bare_source), target=TARGET, index={"method": "uniform", "params": {}})
    steps = validate_recipe_steps(
        recipe, config=fast_config.with_(steps=2), teacher=True, save_trained=tmp_path / "trained"
    )
    with pytest.raises(StopIteration) as stop:
        while True:
            next(steps)
    report = stop.value.value
    assert report.teacher["kind"] == "hidden" and set(report.saved) == {"transferred"}
    first = {a: r[1].distill_loss for a, r in report.records.items()}
    # the transferred start computes (nearly) the source's states on the channels it was cut from
    assert first["transferred"] < 0.5 * first["baseline"]
    info = json.loads((tmp_path / "trained" / "transferred" / TRAINED_NAME).read_text())
    assert info["recipe"]["source"] == str(bare_source) and info["distilled"]


def test_cli_validate_with_the_source_as_teacher_saves_the_trained_arm(bare_source, tmp_path, capsys):
    from transformers import AutoModelForMaskedLM

    path = Recipe(source=str(bare_source), target=TARGET).save(tmp_path / "recipe.json")
    out, trained = tmp_path / "run", tmp_path / "trained"
    argv = [
        "validate",
        str(path),
        "--teacher",
        "source",
        "--steps",
        "3",
        "--save-trained",
        str(trained),
        "--out",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    report = json.loads((out / "validation.json").read_text())
    assert report["teacher"]["kind"] == "hidden" and report["saved"] == {"select": str(trained / "select")}
    assert all(m["distill_loss"] is not None for m in report["records"]["select"][1:])
    assert json.loads((trained / "select" / TRAINED_NAME).read_text())["recipe"]["target"] == TARGET
    AutoModelForMaskedLM.from_pretrained(trained / "select")
    printed = capsys.readouterr().out
    assert "teacher (hidden states of the source):" in printed and "ms/step" in printed


def test_cli_refuses_the_source_folder_other_teachers_and_a_teacher_without_a_recipe(
    bare_source, tiny_export, tmp_path, capsys
):
    path = Recipe(source=str(bare_source), target=TARGET).save(tmp_path / "recipe.json")
    for folder in (bare_source, bare_source / "trained"):
        assert main(["validate", str(path), "--save-trained", str(folder), "--steps", "1", *FAST]) == 2
        assert "source" in capsys.readouterr().err
    assert not (bare_source / "trained").exists() and not (bare_source / "select").exists()
    assert main(["validate", str(path), "--teacher", "gpt-4", "--steps", "1", *FAST]) == 2
    assert "only 'source'" in capsys.readouterr().err
    assert main(["validate", str(tiny_export), "--teacher", "source", "--steps", "1", *FAST]) == 2
    assert "graft_recipe.json" in capsys.readouterr().err
