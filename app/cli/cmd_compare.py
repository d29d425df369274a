"""``graft compare``: rank transfer strategies by how fast their starts train, against the baseline.

    graft compare demo --layers 4 --hidden 256 --heads 8 --ffn 1024 --steps 300 --out out/board
    graft compare demo --hidden 256 --candidates select,mean_field,by_activation+teacher --steps 300 --quick --out q

Every candidate (``--candidates``, grammar in :mod:`core.leaderboard`; default all value strategies
plus by_activation and by_activation+by_influence) is materialised from the source and trained with
the baseline in one interleaved session. Prints progress, then the ranked table; writes
``leaderboard.json``, ``leaderboard.csv`` and ``leaderboard.png`` (every eval-loss curve) into
``--out`` and adds the leaderboard to the history (``GRAFT_HISTORY_DIR``). ``--quick`` stops after
the first ``--quick-steps`` (default a fifth of ``--steps``) steps of the full schedule. Ctrl-C once
stops after the current step and keeps the partial table (exit 1); twice quits at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.cli import command
from app.cli.recipe_args import (
    SIZE_FLAGS,
    add_size_args,
    add_trust_args,
    recipe_from_args,
    trust_kwargs,
)
from app.cli.term import TerminalProgress, ctrl_c_cancels
from core.errors import RecipeError

log = logging.getLogger(__name__)

QUICK_FRACTION = 5  # --quick without --quick-steps: the first fifth of the run


@command("compare", help="train many transferred starts and the baseline together; print the ranked leaderboard")
def arguments(p) -> None:
    from core.params import add_arguments
    from core.plan import LAYER_MAPS
    from core.training.config import ValidationConfig

    p.add_argument("source", nargs="?", help="'demo', a model folder or file, or a hub repo id (owner/name[@rev])")
    p.add_argument("--recipe", help="base recipe (source, sizes, seed, layer map); flags override it")
    add_size_args(p)
    c = p.add_argument_group("candidates")
    c.add_argument(
        "--candidates",
        metavar="A,B,…",
        help="comma-separated: value strategies (select, mean_field, …), index strategies (uniform, "
        f"by_activation, …), layers={'|'.join(LAYER_MAPS)}, teacher, joined by '+' "
        "(e.g. by_activation+by_influence), or recipe .json paths; default: every value strategy, "
        "by_activation and by_activation+by_influence",
    )
    c.add_argument("--layer-map", dest="layer_map", help="the base recipe's layer map (candidates may override it)")
    c.add_argument(
        "--transfer-seed",
        dest="transfer_seed",
        type=int,
        metavar="N",
        help="seed of the transfers' random draws (the recipe's seed; --seed is the training's)",
    )
    c.add_argument(
        "--teacher",
        metavar="SOURCE",
        help="teacher of the +teacher candidates: 'source' (the default) or another model location",
    )
    q = p.add_argument_group("quick look")
    q.add_argument(
        "--quick",
        action="store_true",
        help=f"stop after the first --quick-steps of the full schedule (default: a {QUICK_FRACTION}th of --steps)",
    )
    q.add_argument(
        "--quick-steps", dest="quick_steps", type=int, metavar="K", help="steps of the quick look (implies --quick)"
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        required=True,
        help="folder for leaderboard.json/.csv/.png (must not exist or be empty, unless --force)",
    )
    o.add_argument("--force", action="store_true", help="replace a non-empty --out that holds an earlier leaderboard")
    o.add_argument("--tokenizer", help="tokenizer folder for language models (default: the source's)")
    o.add_argument("--no-history", dest="history", action="store_false", help="do not add the result to the history")
    add_trust_args(p)
    t = p.add_argument_group("training options")
    add_arguments(t, ValidationConfig)
    p.set_defaults(func=run_compare)


def base_recipe(args):
    """The base recipe: ``--recipe`` and the source, size, layer-map and seed flags."""
    flags = argparse.Namespace(
        source=args.source,
        recipe=args.recipe,
        strategy=None,
        param=[],
        role=[],
        index=None,
        index_param=[],
        layer_map=args.layer_map,
        seed=args.transfer_seed,
        dtype=None,
        device=None,
        max_shard_size=None,
        **{n: getattr(args, n) for n in SIZE_FLAGS},
    )
    return recipe_from_args(flags)


def render_png(board, path: Path) -> Path | None:
    """Every arm's eval-loss curve overlaid, through the app's renderer (Qt), if it is available."""
    try:
        from app.render import render_curves_png
    except Exception as exc:  # no Qt here: JSON and CSV are enough
        log.info("no PNG: %s", exc)
        return None
    marks = {r.name: r.steps_to_baseline for r in board.ranked() if r.steps_to_baseline}
    steps = board.quick_steps or board.config.get("steps")
    title = f"eval loss: {len(board.ranked())} starts vs baseline ({board.status}, {steps} steps)"
    try:
        return render_curves_png(board.eval_curves(), path, title, marks=marks)
    except Exception as exc:
        log.warning("could not draw the curves: %s", exc)
        return None


def _quick_steps(args, steps: int) -> int | None:
    if args.quick_steps is not None:
        return args.quick_steps
    return max(1, steps // QUICK_FRACTION) if args.quick else None


def run_compare(args) -> int:
    from app.cli.cmd_validate import _base_config
    from core.history import History
    from core.leaderboard import DEFAULT_CANDIDATES, compare_steps, parse_candidates, quick_config
    from core.outdir import AtomicFolder, protected_paths
    from core.params import from_args
    from core.pipeline import open_recipe_source
    from core.progress import CancelToken
    from core.ranking import CSV_NAME, JSON_NAME, LEADERBOARD_DIR, PNG_NAME
    from core.training.config import ValidationConfig

    base = base_recipe(args)
    config = from_args(ValidationConfig, args, _base_config(base.validation))
    specs = args.candidates.split(",") if args.candidates is not None else list(DEFAULT_CANDIDATES)
    candidates = parse_candidates(base, specs)
    teacher = None
    if args.teacher is not None:
        if not any(c.distill for c in candidates):
            raise RecipeError(
                "--teacher names the teacher of +teacher candidates, but none distils; "
                "add one (e.g. select+teacher) or leave --teacher out"
            )
        teacher = None if args.teacher == "source" else args.teacher
    quick = _quick_steps(args, config.steps)
    quick_config(config, quick)  # a bad --quick-steps is refused before the source is opened
    source = open_recipe_source(base)
    protect = [*protected_paths(source), *([Path(args.recipe)] if args.recipe else [])]
    protect += [Path(s).expanduser() for s in specs if s.strip().endswith(".json")]
    folder = AtomicFolder(args.out, kind=LEADERBOARD_DIR, force=args.force, protect=protect)
    folder.check()  # a refusal must not wait for the training
    cancel = CancelToken()

    what = f"{quick} of {config.steps}" if quick else f"{config.steps}"
    count = f"{len(candidates)} candidate{'s' if len(candidates) != 1 else ''}"
    print(f"compare: {count} + baseline; {what} steps of batch {config.batch_size}", file=sys.stderr)
    with ctrl_c_cancels(cancel):
        steps = compare_steps(
            base,
            candidates,
            config,
            source=source,
            tokenizer=args.tokenizer,
            quick_steps=quick,
            teacher_source=teacher,
            progress=TerminalProgress("compare"),
            cancel=cancel,
            **trust_kwargs(args),
        )
        while True:
            try:
                next(steps)
            except StopIteration as end:
                board = end.value
                break
    with folder as tmp:
        (tmp / JSON_NAME).write_text(board.to_json() + "\n", encoding="utf-8")
        (tmp / CSV_NAME).write_text(board.to_csv(), encoding="utf-8")
        render_png(board, tmp / PNG_NAME)
    for note in board.notes:
        print(f"note: {note}")
    print(board.table())
    teacher_info = board.report.get("teacher")
    if teacher_info:
        print(
            f"teacher ({teacher_info.get('kind')} of {teacher_info.get('source', 'the source')}): "
            f"{teacher_info.get('seconds', 0.0):.1f} s, {teacher_info.get('ms_per_step', 0.0):.0f} ms/step"
        )
    winner = board.winner
    if winner is not None:
        print(f"winner: {winner.name}" + (" (quick look)" if quick else ""))
    if quick:
        from core.ranking import QUICK_AGREEMENT

        print(f"quick look: {QUICK_AGREEMENT}")
    if args.history:
        path = History().add("leaderboard", board.key, board.to_dict())
        log.info("history: %s", path)
    print(f"wrote {folder.out_dir} (history key {board.key})")
    return 0 if board.status == "complete" else 1
