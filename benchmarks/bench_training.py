"""Issue 5 benchmark: validation-training overhead and the demo model's quality verdict.

(a) overhead: optimizer steps per second of our loop (``ArmRunner.step`` plus the per-step batch
    digest the job computes) against a plain hand-written PyTorch loop (same loss function, AdamW
    param groups, clipping and schedule) over the same model and the same pre-built batches, in
    the same process, timed in alternating blocks so background load hits both alike. Reported
    for the demo target (BERT 4L/256H MLM, batch 16 × 128) and a tiny model (worst case for
    per-step Python overhead). Target: ratio ≥ 0.95.
(b) quality: all-MiniLM-L6-v2 → BERT 4 layers, hidden 256, 8 heads, ffn 1024; masked LM on the
    pydoc text, seq 128, batch 16, AdamW 5e-4 with 30 warm-up steps then cosine decay to 10%,
    300 steps; eval loss at 0/50/100/150/200/250/300 for ``select``, ``mean_field`` and the
    baseline, steps-to-baseline and speedup. Minutes on 2 CPU cores: run it in the background.

Usage:
    python benchmarks/bench_training.py overhead [--blocks 6 --block-steps 4]
    nohup python benchmarks/bench_training.py quality --out bench-out/training > bench-out/training.log 2>&1 &
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.training import (  # noqa: E402
    Arm,
    ArmRunner,
    ValidationConfig,
    build_arm_model,
    get_task,
    run_validation,
)
from core.training.data import batch_digest  # noqa: E402

DEMO_TARGET = {"layers": 4, "hidden": 256, "heads": 8, "ffn": 1024}
TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def demo_target_config() -> dict:
    from core.sources import demo_model_path

    src = json.loads((demo_model_path() / "config.json").read_text())
    return dict(src, num_hidden_layers=4, hidden_size=256, num_attention_heads=8, intermediate_size=1024)


def plain_loop(model, task, batches, config: ValidationConfig):
    """The loop anyone would write by hand; returns a ``run(batches)`` closure."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: config.lr_at(s) / config.lr)
    params = decay + no_decay
    model.train()

    def run(block):
        for batch in block:
            loss = task.compute(model, batch)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss.item()

    return run


def overhead(label: str, model_config: dict, config: ValidationConfig, blocks: int, block_steps: int) -> dict:
    from core.sources import demo_model_path

    task = get_task("masked_lm")
    data = task.prepare(model_config, config, str(demo_model_path()))
    batches = [task.batch(data, s, config) for s in range(blocks * block_steps)]
    model, _ = build_arm_model(task, Arm.baseline(model_config), config.seed)
    plain_model = copy.deepcopy(model)
    runner = ArmRunner("ours", model, task, config, torch.device("cpu"))
    plain = plain_loop(plain_model, task, batches, config)

    def ours(block):
        for batch in block:
            runner.step(batch, batch_digest(batch))

    # warm up both (allocator, first-call costs), then alternate timed blocks
    ours(batches[:1])
    plain(batches[:1])
    t_ours, t_plain = [], []
    for b in range(blocks):
        block = batches[b * block_steps : (b + 1) * block_steps]
        for fn, out in ((ours, t_ours), (plain, t_plain)) if b % 2 == 0 else ((plain, t_plain), (ours, t_ours)):
            start = time.perf_counter()
            fn(block)
            out.append(block_steps / (time.perf_counter() - start))
    result = {
        "model": label,
        "ours_steps_per_s": statistics.median(t_ours),
        "plain_steps_per_s": statistics.median(t_plain),
        "blocks": blocks,
        "block_steps": block_steps,
    }
    result["ratio"] = result["ours_steps_per_s"] / result["plain_steps_per_s"]
    return result


def quality(out: Path, steps: int) -> dict:
    from core.pipeline import plan_recipe
    from core.recipe import Recipe
    from core.transfer import build_state_dict

    recipe = Recipe(source="demo", target=dict(DEMO_TARGET))
    arms = []
    for method in ("select", "mean_field"):
        plan, source = plan_recipe(recipe.with_strategy(method))
        arms.append(Arm.from_state(method, plan.target_config, build_state_dict(plan, source, dtype="float32")))
    arms.append(Arm.baseline(arms[0].config))
    config = ValidationConfig(
        steps=steps, batch_size=16, seq_len=128, lr=5e-4, warmup=30, eval_every=50, eval_batches=4, device="cpu"
    )
    started = time.perf_counter()

    def on_step(m):
        if m.eval_loss is not None or (m.step % 10 == 0 and m.arm == "baseline"):
            evaluated = f" eval {m.eval_loss:.3f}" if m.eval_loss is not None else ""
            print(
                f"[{time.perf_counter() - started:7.1f}s] {m.arm:>10} step {m.step:4d} train {m.train_loss or 0:.3f}{evaluated}",
                flush=True,
            )

    report = run_validation(arms, config=config, tokenizer=source.root, out_dir=out, on_step=on_step)
    table = {a: dict(pts) for a, pts in report.eval_curves().items()}
    return {
        "eval_loss": table,
        "verdicts": {a: v.to_dict() for a, v in report.verdicts.items()},
        "elapsed_s": report.elapsed_s,
        "summary": report.summary(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "part",
        nargs="?",
        default="overhead",
        choices=("overhead", "quality", "all"),
        help="overhead (default, a few minutes), quality (tens of minutes on 2 cores) or all",
    )
    ap.add_argument("--out", default="bench-out/training")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block-steps", type=int, default=4)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice; 1 on a busy machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.part in ("overhead", "all"):
        config = ValidationConfig(steps=1000, warmup=30, device="cpu")
        results["overhead"] = [
            overhead(
                "tiny bert 2L/32H, batch 16x64",
                TINY_BERT,
                config.with_(seq_len=64),
                args.blocks * 3,
                args.block_steps * 3,
            ),
            overhead(
                "demo target bert 4L/256H, batch 16x128", demo_target_config(), config, args.blocks, args.block_steps
            ),
        ]
        for r in results["overhead"]:
            print(
                f"overhead {r['model']}: ours {r['ours_steps_per_s']:.2f} steps/s, plain {r['plain_steps_per_s']:.2f} steps/s, ratio {r['ratio']:.3f}",
                flush=True,
            )
    if args.part in ("quality", "all"):
        results["quality"] = quality(out, args.steps)
        print(results["quality"]["summary"], flush=True)
    (out / f"bench_{args.part}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
