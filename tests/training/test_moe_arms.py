"""A mixture-of-experts export trains with its experts: transformers 5 stacks a layer's experts into
fused parameters (``…experts.gate_up_proj`` / ``down_proj``) that only ``from_pretrained`` fills
from the checkpoint's per-expert tensors, so an arm (and the teacher) must stack them the same way."""

from __future__ import annotations

import json
import shutil

import pytest
import transformers
from tiny_models import model_output, save_tiny
from tiny_sources import TOKENIZER_FILES
from torch.testing import assert_close

from app.cli import main
from core.sources import open_source
from core.training import Arm, Teacher, build_arm_model, get_task


def _config(family: str, vocab: int = 100):
    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
    )
    if family == "mixtral":
        return transformers.MixtralConfig(**common, intermediate_size=48, num_local_experts=4)
    return transformers.Qwen2MoeConfig(
        **common, num_experts=4, moe_intermediate_size=48, shared_expert_intermediate_size=40, norm_topk_prob=True
    )


def _export(family: str, root, vocab: int = 100, tokenizer_dir=None):
    src, out = root / f"src-{family}", root / f"out-{family}"
    model, _ = save_tiny(_config(family, vocab), "AutoModelForCausalLM", src)
    for name in TOKENIZER_FILES if tokenizer_dir is not None else ():
        shutil.copy(tokenizer_dir / name, src / name)
    assert main(["transfer", str(src), "--experts", "2", "--out", str(out)]) == 0
    return src, model, out


def _clean(load: dict) -> None:
    assert load["loaded"] > 0 and not load["missing"] and not load["unexpected"] and not load["mismatched"], load


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_an_moe_arm_computes_what_from_pretrained_loads(family, tmp_path):
    _, _, out = _export(family, tmp_path)
    model, report = build_arm_model(get_task("causal_lm"), Arm.from_export(out), seed=0)
    _clean(report.to_dict())
    reference = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert_close(model_output(model.eval(), family), model_output(reference, family), rtol=0, atol=0)
    # The family's own loader (the model card's) reads the experts too: the same hidden states.
    from core.training.tasks.base import family_of

    loaded = family_of(Arm.from_export(out).config).load(out).eval()
    assert_close(model_output(loaded, family), model_output(model.model, family), rtol=0, atol=0)


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_an_moe_teacher_computes_the_source(family, tmp_path):
    src, source_model, _ = _export(family, tmp_path)
    teacher = Teacher.from_source(open_source(str(src)), "causal_lm")
    _clean(teacher.load.to_dict())
    assert teacher.kind == "logits"
    assert_close(model_output(teacher.model, family), model_output(source_model, family), rtol=0, atol=0)


def test_graft_validate_trains_an_moe_export(tmp_path, tokenizer_dir):
    vocab = len(transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    _, _, out = _export("mixtral", tmp_path, vocab=vocab, tokenizer_dir=tokenizer_dir)
    run = tmp_path / "run"
    fast = ["--steps", "6", "--batch-size", "8", "--seq-len", "32", "--lr", "3e-3", "--warmup", "0"]
    fast += ["--schedule", "constant", "--eval-every", "3", "--eval-batches", "2", "--device", "cpu"]
    assert main(["validate", str(out), "--teacher", "source", "--out", str(run), *fast]) == 0
    report = json.loads((run / "validation.json").read_text())
    assert report["status"] == "complete"
    _clean(report["arms"][out.name]["load"])
    evals = [r["eval_loss"] for r in report["records"][out.name] if r.get("eval_loss") is not None]
    assert len(evals) == 3 and evals[-1] < evals[0], evals
