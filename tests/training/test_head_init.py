"""A masked-LM head the arm lacks starts as a readout of its body (core.training.heads), not at random."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from core.training import Arm, ValidationConfig, ValidationSession, get_task
from core.training.heads import SCALES


@pytest.fixture
def body_state(tiny):
    """A bare BERT encoder's tensors (what a sentence-transformers checkpoint holds: no MLM head)."""
    from transformers import BertModel

    torch.manual_seed(7)
    model = BertModel(get_task("masked_lm").hf_config(tiny["bert"]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _session(tiny, body_state, tokenizer_dir, config, *arms):
    arms = [Arm.from_state("body", tiny["bert"], body_state), *arms]
    return ValidationSession(arms, config=config, tokenizer=tokenizer_dir)


def _zero_step(session):
    return {m.arm: m.eval_loss for m in session.steps() if m.step == 0}


def test_the_missing_head_reads_the_body_and_starts_far_below_a_random_head(
    tiny, body_state, tokenizer_dir, fast_config
):
    config = dataclasses.replace(fast_config, steps=1)
    auto = _session(tiny, body_state, tokenizer_dir, config, Arm.baseline(tiny["bert"]))
    head = auto.report().arms["body"]["load"]["head"]
    assert head["method"] == "tied" and head["scale"] in SCALES
    assert head["calibration_loss"] <= head["unigram_loss"] < head["random_loss"]
    assert auto.report().arms["baseline"]["load"]["head"] is None  # the baseline keeps its default draw
    random = _session(tiny, body_state, tokenizer_dir, dataclasses.replace(config, head_init="random"))
    assert random.report().arms["body"]["load"]["head"] is None
    loss_auto, loss_random = _zero_step(auto)["body"], _zero_step(random)["body"]
    assert loss_auto < loss_random - 2.0, (loss_auto, loss_random)


def test_the_transform_is_the_identity_up_to_the_bodys_final_norm(tiny, body_state, tokenizer_dir, fast_config):
    session = _session(tiny, body_state, tokenizer_dir, dataclasses.replace(fast_config, steps=1))
    model = session.runners[0].model.cpu().eval()
    scale = session.report().arms["body"]["load"]["head"]["scale"]
    final = model.bert.encoder.layer[-1].output.LayerNorm
    with torch.no_grad():
        h = model.bert(input_ids=torch.randint(5, 1000, (2, 12)))[0]
        got = model.cls.predictions.transform(h)
        norm = nn.functional.layer_norm(h, h.shape[-1:], eps=final.eps)
        want = scale * (final.weight * norm + final.bias)
    assert torch.allclose(got, want, atol=2e-3 * max(scale, 0.1)), (got - want).abs().max()
    # the decoder stays tied to the word embeddings
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()


def test_an_arm_that_has_its_head_keeps_it(tiny, tokenizer_dir, fast_config):
    from transformers import BertForMaskedLM

    torch.manual_seed(3)
    full = BertForMaskedLM(get_task("masked_lm").hf_config(tiny["bert"]))
    state = {k: v.clone() for k, v in full.state_dict().items()}
    session = ValidationSession(
        [Arm.from_state("full", tiny["bert"], state)], config=fast_config, tokenizer=tokenizer_dir
    )
    assert session.report().arms["full"]["load"]["head"] is None
    got = session.runners[0].model.cls.predictions.transform.dense.weight.detach().cpu()
    assert torch.equal(got, state["cls.predictions.transform.dense.weight"])


def test_head_init_is_a_validated_option():
    from core.errors import TrainingError

    with pytest.raises(TrainingError, match="head_init 'tied' is unknown; use one of auto, random"):
        ValidationConfig(head_init="tied")
