"""Issue 13 benchmark: which start trains fastest — every strategy against the baseline, same batches.

all-MiniLM-L6-v2 (the demo) → BERT 4 layers / hidden 256 / 8 heads / ffn 1024, masked LM on the
pydoc text (no one tuned on it), seq 128, batch 16, AdamW 5e-4 (30 warm-up steps, cosine to 10%),
300 steps, eval every 10 steps on the fixed held-out batches. All arms of one run train
interleaved on the very same batches (``core.training.ValidationSession``).

Arms (``--arms``, comma-separated; a run may take a subset and ``merge`` joins runs that share the
config, checking that their baseline curves are identical — the run is deterministic):

* ``baseline`` — the architecture's default init (random head);
* ``baseline+head`` — the baseline's own random body with the data-initialised MLM head
  (``core.training.heads``): how much of a start the head alone gives;
* ``select``, ``mean_field``, ``distribution``, ``covariance``, ``templates``, ``mimetic``, … — a value
  strategy model-wide with its default index (``STRATEGY@random_head`` keeps the random head;
  ``STRATEGY~k=v;k=v`` sets parameters, e.g. ``distribution~lookups=sample``);
* ``by_activation``, ``by_activation+by_influence`` — select with the data-aware index / layer map
  (``by_activation~rule=reconstruction`` sets the index's parameters);
* ``…+teacher`` — the same arm distilled from the source (``core.training.teacher``).

For every arm: steps-to-baseline (first eval step at or below the baseline's step-300 eval loss),
speedup (300 / that), final eval loss, zero-step eval loss. Then the quick proxy: rank the arms
by their eval loss after K steps (K = 10, 20, 30, 60) and compare with the full ranking (same winner?
Spearman ρ, top-3 overlap).

Usage (minutes per arm on 2 CPU cores; run in the background):
    python benchmarks/bench_strategies.py run --arms baseline,select,mean_field --out bench-out/s1.json
    python benchmarks/bench_strategies.py merge bench-out/s1.json bench-out/s2.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = {"layers": 4, "hidden": 256, "heads": 8, "ffn": 1024}
STEPS, EVAL_EVERY = 300, 10
QUICK = (10, 20, 30, 60)  # 60: graft compare --quick on 300 steps (a fifth)


def _parse(spec: str) -> dict:
    """``value[~k=v;k=v][+by_activation][+by_influence][+teacher][@random_head]`` → arm description."""
    random_head = spec.endswith("@random_head")
    body = spec.removesuffix("@random_head")
    tokens = body.split("+")
    first = tokens[0]
    value, _, raw = first.partition("~")
    params = {}
    for pair in filter(None, raw.split(";")):
        key, _, text = pair.partition("=")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    out = {
        "name": spec,
        "value": value,
        "params": params,
        "index": None,
        "index_params": {},
        "layers": "first_n",
        "teacher": False,
        "random_head": random_head,
    }
    if value == "by_activation":  # select with the data-aware index; ~k=v are the index's parameters
        out["value"], out["index"], out["params"], out["index_params"] = "select", "by_activation", {}, params
    for token in tokens[1:]:
        if token == "by_activation":
            out["index"] = "by_activation"
        elif token == "by_influence":
            out["layers"] = "by_influence"
        elif token == "teacher":
            out["teacher"] = True
        else:
            raise SystemExit(f"unknown arm token {token!r} in {spec!r}")
    return out


def build_arms(specs: list[str], config, source):
    """Arms (in-memory states) for the specs; returns (arms, timings, plan of the first transfer)."""
    import torch

    from core.pipeline import plan_recipe
    from core.recipe import Recipe
    from core.training import Arm, get_task
    from core.transfer import build_state_dict

    arms, timings, target_config = [], {}, None
    task = get_task("masked_lm")
    for spec in specs:
        if spec in ("baseline", "baseline+head"):
            continue  # added last, once target_config is known
        d = _parse(spec)
        start = time.perf_counter()
        recipe = Recipe(
            source="demo",
            target=dict(TARGET),
            values={"default": {"method": d["value"], "params": d["params"]}},
            index={"method": d["index"], "params": d["index_params"]} if d["index"] else None,
            layers=d["layers"],
            seed=config.seed,
        )
        plan, _ = plan_recipe(recipe, source)
        state = build_state_dict(plan, source, device="cpu", dtype="float32")
        arm = Arm.from_state(spec, plan.target_config, state, f"{spec} transfer of the demo")
        arm.teacher_map, arm.distill = list(plan.dims["hidden"].index), d["teacher"]
        arms.append(arm)
        timings[spec] = time.perf_counter() - start
        target_config = plan.target_config
    if target_config is None:
        recipe = Recipe(source="demo", target=dict(TARGET), seed=config.seed)
        target_config = plan_recipe(recipe, source)[0].target_config
    if "baseline+head" in specs:
        torch.manual_seed(config.seed)
        body = {
            k: v.clone() for k, v in task.build_model(target_config).state_dict().items() if not k.startswith("cls.")
        }
        arm = Arm.from_state(
            "baseline+head", target_config, body, "the baseline's random body with the data-initialised head"
        )
        arm.distill = False
        arms.append(arm)
    if "baseline" in specs:
        arm = Arm.baseline(target_config)
        arm.distill = False
        arms.append(arm)
    return arms, timings


def run(args) -> None:
    import dataclasses

    import torch

    from core.sources import open_source
    from core.training import ValidationConfig
    from core.training.session import ValidationSession

    torch.set_num_threads(args.threads)
    specs = [s.strip() for s in args.arms.split(",") if s.strip()]
    config = ValidationConfig(
        steps=args.steps,
        eval_every=args.eval_every,
        batch_size=16,
        seq_len=128,
        lr=5e-4,
        warmup=30,
        seed=args.seed,
        teacher_weight=args.teacher_weight,
    )
    source = open_source("demo")
    arms, timings = build_arms(specs, config, source)
    teacher = None
    if any(_parse(s)["teacher"] for s in specs if not s.startswith("baseline")):
        from core.training import get_task
        from core.training.teacher import Teacher

        teacher = Teacher.from_source(source, get_task("masked_lm"), device=torch.device("cpu"), seed=config.seed)
    random_heads = [a.name for a in arms if a.name.endswith("@random_head")]
    kwargs = {"teacher": teacher} if teacher is not None else {}
    sessions = []
    # Arms that keep the random head run in a session of their own with head_init=random: the
    # same batches (same config otherwise), so their curves are comparable with the others'.
    main = [a for a in arms if a.name not in random_heads]
    if main:
        sessions.append(ValidationSession(main, config=config, tokenizer=source.root, **kwargs))
    if random_heads:
        other = [a for a in arms if a.name in random_heads]
        sessions.append(
            ValidationSession(other, config=dataclasses.replace(config, head_init="random"), tokenizer=source.root)
        )
    curves, heads, teacher_info = {}, {}, None
    started = time.perf_counter()
    for session in sessions:
        for m in session.steps():
            if args.stop_after is not None and m.step > args.stop_after:
                break  # the quick proxy: the first steps of the full schedule
            if m.eval_loss is not None:
                curves.setdefault(m.arm, []).append((m.step, m.eval_loss))
                if m.step % 50 == 0 or m.step == config.steps:
                    print(
                        f"{time.perf_counter() - started:7.0f}s {m.arm:<34} step {m.step:>3} eval {m.eval_loss:.3f}",
                        flush=True,
                    )
        report = session.report()
        for name, info in report.arms.items():
            heads[name] = (info.get("load") or {}).get("head")
            timings.setdefault(name, 0.0)
            timings[name] += next((r.elapsed_s for r in reversed(report.records[name])), 0.0)
        teacher_info = getattr(report, "teacher", None) or teacher_info
    out = {
        "config": dataclasses.asdict(config),
        "target": TARGET,
        "curves": curves,
        "heads": heads,
        "wall_s": timings,
        "teacher": teacher_info,
        "torch_threads": args.threads,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    summarise(out)


def _rank(values: dict[str, float]) -> dict[str, float]:
    order = sorted(values, key=lambda k: values[k])
    return {k: i for i, k in enumerate(order)}


def spearman(a: dict[str, float], b: dict[str, float]) -> float:
    keys = sorted(set(a) & set(b))
    ra, rb = _rank({k: a[k] for k in keys}), _rank({k: b[k] for k in keys})
    n = len(keys)
    if n < 2:
        return float("nan")
    d2 = sum((ra[k] - rb[k]) ** 2 for k in keys)
    return 1 - 6 * d2 / (n * (n * n - 1))


def summarise(data: dict) -> None:
    from core.training.verdict import compute_verdicts

    curves = {k: [(s, loss, None) for s, loss in v] for k, v in data["curves"].items()}
    if "baseline" not in curves:
        print("no baseline in these results; merge with a run that has one")
        return
    verdicts = compute_verdicts(curves, "baseline")
    final = {k: v[-1][1] for k, v in curves.items()}
    zero = {k: v[0][1] for k, v in curves.items()}
    base_final = final["baseline"]
    print(
        f"\nbaseline: eval loss {zero['baseline']:.3f} at step 0, {base_final:.3f} at step {curves['baseline'][-1][0]}"
    )
    print(f"{'arm':<34} {'steps→base':>10} {'speedup':>8} {'final':>7} {'step 0':>7} {'wall s':>7}  head")
    full_key = {}
    for name in sorted(
        verdicts,
        key=lambda n: (verdicts[n].steps_to_baseline if verdicts[n].steps_to_baseline is not None else 10**9, final[n]),
    ):
        v = verdicts[name]
        stb = "—" if v.steps_to_baseline is None else str(v.steps_to_baseline)
        speed = "start" if v.reached_at_start else ("—" if v.speedup is None else f"{v.speedup:.1f}×")
        head = data.get("heads", {}).get(name)
        head_txt = f"tied s={head['scale']}" if head else "random"
        print(
            f"{name:<34} {stb:>10} {speed:>8} {final[name]:7.3f} {zero[name]:7.3f} {data['wall_s'].get(name, 0):7.0f}  {head_txt}"
        )
        full_key[name] = (v.steps_to_baseline if v.steps_to_baseline is not None else 10**6) + final[name] / 100
    if data.get("teacher"):
        print(f"teacher: {data['teacher']}")
    winner = min(full_key, key=full_key.get)
    print(f"\nquick proxy vs the full ranking ({len(full_key)} arms, full winner {winner}):")
    for k in QUICK:
        at = {n: next((loss for s, loss in data["curves"][n] if s == k), None) for n in full_key}
        at = {n: v for n, v in at.items() if v is not None}
        if len(at) < len(full_key):
            continue
        quick_winner = min(at, key=at.get)
        top_full = set(sorted(full_key, key=full_key.get)[:3])
        top_quick = set(sorted(at, key=at.get)[:3])
        print(
            f"  eval loss at step {k:>2}: winner {quick_winner:<30} same={quick_winner == winner}  "
            f"spearman {spearman(at, full_key):+.2f}  top-3 overlap {len(top_full & top_quick)}/3"
        )


def merge(args) -> None:
    datas = [json.loads(Path(p).read_text()) for p in args.files]
    out = {
        "config": datas[0]["config"],
        "target": datas[0]["target"],
        "curves": {},
        "heads": {},
        "wall_s": {},
        "teacher": None,
    }
    for d in datas:
        if d["config"] != out["config"]:
            raise SystemExit("these runs have different configs; they cannot be merged")
        for name, curve in d["curves"].items():
            if name in out["curves"] and out["curves"][name] != curve:
                raise SystemExit(f"arm {name} differs between runs (a non-deterministic run?)")
            out["curves"][name] = curve
        out["heads"].update(d.get("heads", {}))
        out["wall_s"].update(d.get("wall_s", {}))
        out["teacher"] = d.get("teacher") or out["teacher"]
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    summarise(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument(
        "--arms",
        default="baseline,baseline+head,select,select@random_head,mean_field,distribution,covariance,templates,mimetic",
    )
    r.add_argument("--steps", type=int, default=STEPS)
    r.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--stop-after", type=int, default=None, help="stop after this many steps of the full schedule")
    r.add_argument("--teacher-weight", type=float, default=1.0, help="α of the distillation term (+teacher arms)")
    r.add_argument("--out", default="bench-out/strategies.json")
    m = sub.add_parser("merge")
    m.add_argument("files", nargs="+")
    m.add_argument("--out")
    args = parser.parse_args()
    run(args) if args.cmd == "run" else merge(args)


if __name__ == "__main__":
    main()
