import math

import pytest
import torch

from core.training import Arm, ArmRunner, ValidationSession, build_arm_model, get_task, task_for
from core.training.data import load_tokenizer


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "vit", "mlp"])
def test_tiny_models_learn(family, fast_config, tokenizer_dir, tiny):
    """Every task family trains a few steps on the CPU and its loss on a fixed batch falls."""
    task = task_for(tiny[family]["model_type"])
    config = fast_config.with_(lr=3e-3, warmup=0, schedule="constant")
    data = task.prepare(tiny[family], config, str(tokenizer_dir))
    model, _ = build_arm_model(task, Arm.baseline(tiny[family]), seed=0)
    runner = ArmRunner(family, model, task, config)
    batch = task.batch(data, 0, config)
    before, _ = runner.evaluate([batch])
    losses = [runner.step(batch).train_loss for _ in range(8)]
    after, metric = runner.evaluate([batch])
    assert after < before * 0.9, (before, losses, after)
    if task.metric == "accuracy":
        assert 0.0 <= metric <= 1.0
    else:
        assert metric == pytest.approx(math.exp(after), rel=1e-6)


def test_a_whole_session_trains(fast_config, tokenizer_dir, tiny):
    session = ValidationSession([Arm.baseline(tiny["gpt2"])], config=fast_config, tokenizer=tokenizer_dir)
    metrics = list(session.steps())
    evals = [m.eval_loss for m in metrics if m.eval_loss is not None]
    assert [m.step for m in metrics] == list(range(fast_config.steps + 1))
    assert len(evals) == len(fast_config.eval_steps()) == 3
    assert evals[-1] < evals[0]
    report = session.report()
    assert report.status == "complete" and report.steps_completed == fast_config.steps


def test_masking_follows_the_80_10_10_rule_and_is_seeded(fast_config, tokenizer_dir, tiny):
    task = get_task("masked_lm")
    config = fast_config.with_(seq_len=64, batch_size=128)
    data = task.prepare(tiny["bert"], config, str(tokenizer_dir))
    tok = load_tokenizer(str(tokenizer_dir))
    batch = task.batch(data, 0, config)
    assert torch.equal(batch["input_ids"], task.batch(data, 0, config)["input_ids"])
    assert not torch.equal(batch["labels"], task.batch(data, 1, config)["labels"])
    original = data.inputs[data.split.batch_rows(0, config.batch_size)]
    chosen = batch["labels"] != -100
    assert torch.equal(batch["labels"][chosen], original[chosen])
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # cls / sep never masked
    rate = chosen.float().mean().item()
    assert 0.12 < rate < 0.18
    masked = (batch["input_ids"] == tok.mask_token_id)[chosen].float().mean().item()
    kept = (batch["input_ids"] == original)[chosen].float().mean().item()
    assert 0.75 < masked < 0.85 and 0.06 < kept < 0.16
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])


def test_masked_only_head_gives_the_full_forward_loss(fast_config, tokenizer_dir, tiny):
    task = get_task("masked_lm")
    data = task.prepare(tiny["bert"], fast_config, str(tokenizer_dir))
    torch.manual_seed(0)
    model = task.build_model(tiny["bert"]).eval()
    batch = task.batch(data, 0, fast_config)
    with torch.no_grad():
        ours = task.compute(model, batch)["loss"]
        full = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)


def test_vit_images_follow_the_config(fast_config, tiny):
    task = get_task("image_classification")
    data = task.prepare(tiny["vit"], fast_config, None)
    batch = task.batch(data, 0, fast_config)
    assert batch["pixel_values"].shape == (8, 3, 16, 16)
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1
    # nearest-neighbour: each digit pixel is a 2×2 block
    px = batch["pixel_values"][0, 0]
    assert torch.equal(px[::2, ::2], px[1::2, 1::2])
