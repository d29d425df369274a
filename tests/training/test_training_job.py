"""The validation job: same batches for every arm, determinism, cancel, reports, verdicts."""

import csv
import hashlib
import json

import pytest
import torch

from core.errors import TrainingError
from core.progress import CancelToken
from core.training import (
    Arm,
    ValidationConfig,
    ValidationReport,
    ValidationSession,
    compute_verdicts,
    run_validation,
)
from core.training.report import CURVES_NAME, JSON_NAME, VERDICT_NAME


def _record_training_inputs(session):
    """Hash every batch of token ids each arm's embedding actually receives while training."""
    seen = {r.name: [] for r in session.runners}
    for runner in session.runners:

        def hook(module, args, name=runner.name, model=runner.model):
            if model.training:
                seen[name].append(hashlib.sha1(args[0].numpy().tobytes()).hexdigest())

        runner.model.get_input_embeddings().register_forward_pre_hook(hook)
    return seen


def test_arms_receive_identical_batches(tiny_export, fast_config, tiny):
    arms = [Arm.from_export(tiny_export, "transferred"), Arm.baseline(tiny["bert"])]
    session = ValidationSession(arms, config=fast_config)
    seen = _record_training_inputs(session)
    metrics = list(session.steps())
    assert len(seen["transferred"]) == fast_config.steps
    assert seen["transferred"] == seen["baseline"]
    assert len(set(seen["baseline"])) == fast_config.steps  # a new batch every step
    by_step = {}
    for m in metrics[2:]:
        by_step.setdefault(m.step, set()).add(m.batch_hash)
    assert all(len(h) == 1 for h in by_step.values())


def test_same_seed_same_curve_and_arms_do_not_disturb_each_other(tiny_export, fast_config, tiny):
    def curves(arms, config):
        session = ValidationSession(arms, config=config, tokenizer=tiny_export)
        list(session.steps())
        return {a: [(m.step, m.train_loss, m.eval_loss) for m in r] for a, r in session.report().records.items()}

    pair = curves([Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])], fast_config)
    again = curves([Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])], fast_config)
    alone = curves([Arm.baseline(tiny["bert"])], fast_config)
    other = curves([Arm.baseline(tiny["bert"])], fast_config.with_(seed=1))
    assert pair == again
    # dropout draws come from each arm's own generator: a baseline alone trains exactly as in a pair
    assert alone["baseline"] == pair["baseline"]
    assert other["baseline"] != alone["baseline"]


def test_cancel_stops_within_a_step_and_leaves_a_consistent_report(tiny_export, fast_config, tiny, tmp_path):
    cancel = CancelToken()
    calls = []

    def on_step(m):
        calls.append((m.arm, m.step))
        if (m.arm, m.step) == ("t", 4):
            cancel.cancel()

    arms = [Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])]
    report = run_validation(arms, config=fast_config, out_dir=tmp_path, cancel=cancel, on_step=on_step)
    assert calls[-1] == ("t", 4)  # nothing ran after the step during which cancel was asked
    assert report.status == "cancelled" and report.steps_completed == 3
    lengths = {a: [m.step for m in r] for a, r in report.records.items()}
    assert lengths["t"] == lengths["baseline"] == [0, 1, 2, 3]
    saved = json.loads((tmp_path / JSON_NAME).read_text())
    assert saved["status"] == "cancelled" and saved["steps_completed"] == 3
    assert saved["verdicts"]["t"]["baseline_final_step"] == 3
    rows = list(csv.DictReader(open(tmp_path / CURVES_NAME)))
    assert len(rows) == 8
    assert ValidationReport.load(tmp_path).to_dict() == saved


def test_complete_run_writes_json_csv_and_verdict(tiny_export, fast_config, tiny, tmp_path):
    fractions = []
    arms = [Arm.from_export(tiny_export, "t"), Arm.baseline(tiny["bert"])]
    report = run_validation(arms, config=fast_config, out_dir=tmp_path, progress=lambda f, m: fractions.append(f))
    assert report.status == "complete" and fractions[-1] == 1.0
    assert {p.name for p in tmp_path.iterdir()} == {JSON_NAME, CURVES_NAME, VERDICT_NAME}
    verdict = report.verdicts["t"]
    assert verdict.baseline_final_step == fast_config.steps
    assert verdict.final_eval_loss_diff == pytest.approx(
        report.eval_curves()["t"][-1][1] - report.eval_curves()["baseline"][-1][1]
    )
    assert [s for s, _ in report.eval_curves()["t"]] == fast_config.eval_steps() == [0, 3, 6]
    assert len(list(csv.DictReader(open(tmp_path / VERDICT_NAME)))) == 1
    load = report.arms["t"]["load"]
    assert load["loaded"] > 0 and load["mismatched"] == []


def test_verdict_steps_to_baseline_and_speedup():
    evals = {
        "baseline": [(0, 10.0, None), (50, 6.0, None), (100, 5.5, None), (300, 5.2, None)],
        "fast": [(0, 9.0, None), (50, 5.4, None), (100, 5.1, None), (300, 4.8, None)],
        "never": [(0, 11.0, None), (300, 5.3, None)],
        "start": [(0, 5.0, None), (300, 4.0, None)],
    }
    v = compute_verdicts(evals, "baseline")
    assert v["fast"].steps_to_baseline == 100 and v["fast"].speedup == pytest.approx(3.0)
    assert v["fast"].final_eval_loss_diff == pytest.approx(-0.4)
    assert v["never"].steps_to_baseline is None and v["never"].speedup is None
    assert v["start"].reached_at_start and v["start"].speedup is None
    assert "3.0x" in v["fast"].sentence()
    assert v["fast"].sentence().endswith("final eval loss 0.400 lower than the baseline's")  # words, not "−0.400 vs"
    assert v["never"].sentence().endswith("final eval loss 0.100 higher than the baseline's")
    assert compute_verdicts({"baseline": [(0, 1.0, None)]}, "baseline") == {}


def test_state_dict_arm_with_bare_encoder_keys_and_param_filter(tiny_export, fast_config, tiny):
    from safetensors.torch import load_file

    state = {
        k[len("bert.") :]: v
        for k, v in load_file(str(tiny_export / "model.safetensors")).items()
        if k.startswith("bert.")
    }
    arm = Arm.from_state("bare", tiny["bert"], state)
    config = fast_config.with_(param_filter="*LayerNorm*", steps=2)
    session = ValidationSession([arm], config=config, tokenizer=tiny_export)
    runner = session.runners[0]
    before = {n: p.detach().clone() for n, p in runner.model.named_parameters()}
    list(session.steps())
    changed = {n for n, p in runner.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("LayerNorm" in n for n in changed)
    load = session.report().arms["bare"]["load"]
    assert load["loaded"] == len(state) - ("embeddings.position_ids" in state)
    assert any(n.startswith("cls.predictions") for n in load["missing"])  # the MLM head: default init
    with pytest.raises(TrainingError, match="matches no parameter"):
        ValidationSession([arm], config=config.with_(param_filter="re:^nothing$"), tokenizer=tiny_export)


def test_mlp_export_folder_arm(tmp_path, fast_config, tiny):
    from safetensors.torch import save_file

    from core.export import build_mlp, mlp_metadata

    torch.manual_seed(1)
    model = build_mlp([64, 32, 10], "relu")
    save_file(
        model.state_dict(),
        str(tmp_path / "model.safetensors"),
        metadata={"format": "pt", **mlp_metadata([64, 32, 10], "relu")},
    )
    arm = Arm.from_export(tmp_path, "mlp")
    assert arm.config["widths"] == [64, 32, 10]
    report = run_validation([arm, Arm.baseline(arm.config)], config=fast_config.with_(lr=1e-2))
    assert report.metric == "accuracy" and report.status == "complete"
    assert set(report.verdicts) == {"mlp"}


def test_schedule_warms_up_then_decays():
    config = ValidationConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [config.lr_at(s) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] <= 1.0 and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)
    assert config.with_(schedule="constant").lr_at(80) == 1.0
    with pytest.raises(TrainingError):
        ValidationConfig(steps=0)


def test_train_generator_matches_the_session(tiny_export, fast_config, tiny):
    from core.training import build_arm_model, task_for, train

    task = task_for("bert")
    data = task.prepare(tiny["bert"], fast_config, str(tiny_export))
    model, _ = build_arm_model(task, Arm.baseline(tiny["bert"]), fast_config.seed)
    alone = [
        (m.step, m.train_loss, m.eval_loss, m.batch_hash) for m in train("baseline", model, task, data, fast_config)
    ]
    session = ValidationSession([Arm.baseline(tiny["bert"])], config=fast_config, tokenizer=tiny_export)
    together = [(m.step, m.train_loss, m.eval_loss, m.batch_hash) for m in session.steps()]
    assert alone == together
    assert [s for s, _, e, _ in alone if e is not None] == fast_config.eval_steps()
