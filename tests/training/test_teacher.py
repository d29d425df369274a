"""Distillation from the source: kind detection, the term's zero, its fall, one teacher forward per step."""

import pytest
import torch
from tiny_sources import save_bert_source

from core.errors import TrainingError
from core.sources import open_source
from core.training import Arm, Teacher, ValidationSession, build_arm_model, get_task


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tokenizer_dir, tiny):
    root = tmp_path_factory.mktemp("teacher-sources")
    return {
        "hidden": save_bert_source(root / "bare", tokenizer_dir, tiny["bert"], head=False, seed=1),
        "logits": save_bert_source(root / "mlm", tokenizer_dir, tiny["bert"], head=True, seed=2),
    }


def _student_and_batch(folder, config):
    task = get_task("masked_lm")
    model, _ = build_arm_model(task, Arm.from_export(folder), seed=0)
    data = task.prepare(dict(open_source(str(folder)).config), config, str(folder))
    return task, model.eval(), task.batch(data, 0, config)


@pytest.mark.parametrize("kind", ["hidden", "logits"])
def test_kind_follows_the_head_and_the_teacher_is_frozen(sources, kind):
    teacher = Teacher.from_source(open_source(str(sources[kind])), "masked_lm")
    assert teacher.kind == kind
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())
    head_missing = [n for n in teacher.load.missing if n.startswith("cls.")]
    assert bool(head_missing) == (kind == "hidden")


@pytest.mark.parametrize("kind", ["hidden", "logits"])
def test_the_term_is_zero_for_the_teacher_itself_and_positive_otherwise(sources, kind, fast_config):
    teacher = Teacher.from_source(open_source(str(sources[kind])), "masked_lm")
    task, student, batch = _student_and_batch(sources[kind], fast_config)
    targets = teacher.targets(batch)
    assert set(targets) == {kind}
    with torch.no_grad():
        out = task.compute(student, batch)
        assert float(teacher.loss(out, targets)) == pytest.approx(0.0, abs=1e-7)
        width = out["hidden"].shape[-1]
        if kind == "hidden":  # the identity map is the default; a shuffled one is not the same channels
            assert float(teacher.loss(out, targets, list(range(width)))) == pytest.approx(0.0, abs=1e-7)
            assert float(teacher.loss(out, targets, list(reversed(range(width))))) > 0.5
            with pytest.raises(TrainingError, match="teacher map has 3 channels"):
                teacher.loss(out, targets, [0, 1, 2])
        layer = student.bert.encoder.layer[-1].output.dense
        layer.weight.add_(torch.randn_like(layer.weight) * 0.5)
        assert float(teacher.loss(task.compute(student, batch), targets)) > 1e-4


def test_training_with_the_teacher_lowers_the_term_and_plain_arms_are_untouched(sources, fast_config, tiny):
    teacher = Teacher.from_source(open_source(str(sources["hidden"])), "masked_lm")
    plain = Arm.baseline(tiny["bert"], name="plain")
    plain.distill = False
    session = ValidationSession(
        [Arm.baseline(tiny["bert"]), plain], config=fast_config, tokenizer=sources["hidden"], teacher=teacher
    )
    list(session.steps())
    report = session.report()
    terms = [m.distill_loss for m in report.records["baseline"][1:]]
    assert terms[-1] < 0.8 * terms[0]
    assert all(m.distill_loss is None for m in report.records["plain"])
    assert report.arms["baseline"]["distill"] and not report.arms["plain"]["distill"]
    # an arm that skips the term trains exactly as it does in a session without a teacher
    alone = ValidationSession(
        [Arm.baseline(tiny["bert"], name="plain")], config=fast_config, tokenizer=sources["hidden"]
    )
    list(alone.steps())
    curve = lambda r: [(m.step, m.train_loss, m.eval_loss) for m in r.records["plain"]]  # noqa: E731
    assert curve(report) == curve(alone.report())
    assert report.teacher["kind"] == "hidden" and report.teacher["seconds"] > 0
    assert report.teacher["ms_per_step"] == pytest.approx(1000 * report.teacher["seconds"] / fast_config.steps)


def test_the_teacher_runs_once_per_step_for_every_arm(sources, fast_config, tiny):
    teacher = Teacher.from_source(open_source(str(sources["logits"])), "masked_lm")
    calls = []
    teacher.model.bert.embeddings.register_forward_hook(lambda *a: calls.append(1))
    arms = [
        Arm.from_export(sources["logits"], "a"),
        Arm.from_export(sources["logits"], "b"),
        Arm.baseline(tiny["bert"]),
    ]
    config = fast_config.with_(steps=3)
    session = ValidationSession(arms, config=config, teacher=teacher)
    metrics = list(session.steps())
    assert len(calls) == config.steps == teacher.calls
    assert all(m.distill_loss is not None for m in metrics if m.step > 0)
    # no arm distils: the teacher's forward is skipped
    for arm in arms:
        arm.distill = False
    calls.clear()
    list(ValidationSession(arms, config=config, teacher=teacher).steps())
    assert calls == []


def test_a_teacher_of_another_task_is_refused(sources, fast_config, tiny):
    teacher = Teacher.from_source(open_source(str(sources["logits"])), "masked_lm")
    with pytest.raises(TrainingError, match="teacher is a masked_lm model"):
        ValidationSession(
            [Arm.baseline(tiny["gpt2"])], config=fast_config, tokenizer=sources["logits"], teacher=teacher
        )
