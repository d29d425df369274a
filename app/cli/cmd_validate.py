"""``graft validate``: train the transferred start against the baseline and print the verdict.

    graft validate out/demo                          # an export folder: the export vs baseline
    graft validate recipe.json --vs baseline mean_field --steps 300

For an export folder the arms are the export and the baseline (plus any other ``--vs``
strategy, rebuilt in memory from the folder's ``graft_recipe.json``). For a recipe they are the
recipe's transfer, the baseline and each ``--vs`` strategy, all built in memory. Results
(JSON, CSV and, when the app's renderer is available, a PNG of the curves) go to ``--out``; a run
on an export folder also leaves them in ``<export>/validation``. Ctrl-C once stops after the
current step and keeps the partial report; twice quits at once.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import fields
from pathlib import Path

from app.cli.term import TerminalProgress
from core.errors import TrainingError

log = logging.getLogger(__name__)

DEFAULT_VS = ("baseline",)


def register(sub) -> None:
    from core.training.config import add_arguments

    p = sub.add_parser("validate", help="train the transferred start and the baseline on the same data; report the speedup")
    p.add_argument("target", help="an export folder (written by 'graft transfer') or a recipe JSON file")
    p.add_argument("--vs", nargs="+", default=None, metavar="ARM",
                   help="arms to compare with: 'baseline' and/or strategy names (e.g. select mean_field); default: baseline")
    p.add_argument("--out", help="run folder for validation.json/.csv/.png (default: <export>/validation or out/validation)")
    p.add_argument("--tokenizer", help="tokenizer folder for language models (default: the export's or the source's)")
    g = p.add_argument_group("training options")
    add_arguments(g)
    p.set_defaults(func=run_validate)


def _base_config(recipe_validation: dict | None):
    from core.training import ValidationConfig

    known = {f.name for f in fields(ValidationConfig)}
    return ValidationConfig(**{k: v for k, v in (recipe_validation or {}).items() if k in known})


def _recipe_arm(recipe, name: str):
    """An in-memory arm: the recipe's plan materialised by ``core.transfer``."""
    from core.pipeline import plan_recipe
    from core.training import Arm
    from core.transfer import build_state_dict

    plan, source = plan_recipe(recipe)
    state = build_state_dict(plan, source, device="cpu", dtype="float32")
    return Arm.from_state(name, plan.target_config, state, f"{name} transfer of {source.display_name}"), source


def build_arms(target: str, vs: list[str], tokenizer: str | None):
    """``(arms, tokenizer folder, default out folder, export folder or None, recipe validation dict)``."""
    from core.recipe import Recipe
    from core.training import Arm

    path = Path(target).expanduser()
    strategies = [v for v in vs if v != "baseline"]
    if path.is_dir() and list(path.glob("*.safetensors")):
        export = Arm.from_export(path)
        arms = [export]
        recipe = Recipe.load(path) if (path / "graft_recipe.json").is_file() else None
        if strategies and recipe is None:
            raise TrainingError(f"{path} has no graft_recipe.json, so --vs {' '.join(strategies)} cannot be rebuilt; compare with 'baseline' only")
        for name in strategies:
            arms.append(_recipe_arm(recipe.with_strategy(name), name)[0])
        validation = recipe.validation if recipe else None
        default_out, tok = path / "validation", tokenizer or path
    else:
        recipe = Recipe.load(path)
        method = recipe.values["default"]["method"]
        main, source = _recipe_arm(recipe, method)
        arms = [main] + [_recipe_arm(recipe.with_strategy(n), n)[0] for n in strategies if n != method]
        validation, default_out, tok, export = recipe.validation, Path("out/validation"), tokenizer or source.root, None
    if "baseline" in vs:
        arms.append(Arm.baseline(arms[0].config))
    return arms, tok, default_out, (path if export else None), validation


def render_png(report, out: Path) -> Path | None:
    """The curves as a PNG through the app's renderer (Qt), if it is available."""
    try:
        from app.render import render_curves_png
    except Exception as exc:  # no Qt here: JSON and CSV are enough
        log.info("no PNG: %s", exc)
        return None
    marks = {a: v.steps_to_baseline for a, v in report.verdicts.items() if v.steps_to_baseline}
    title = f"{report.task}: eval loss ({report.status}, {report.steps_completed} steps)"
    try:
        return render_curves_png(report.eval_curves(), out / "validation_curves.png", title, marks=marks)
    except TypeError:  # a renderer without marks
        return render_curves_png(report.eval_curves(), out / "validation_curves.png", title)
    except Exception as exc:
        log.warning("could not draw the curves: %s", exc)
        return None


def run_validate(args) -> int:
    from core.jobs import CancelToken
    from core.training import run_validation
    from core.training.config import config_from_args

    vs = list(args.vs or DEFAULT_VS)
    arms, tokenizer, default_out, export, validation = build_arms(args.target, vs, args.tokenizer)
    config = config_from_args(args, _base_config(validation))
    out = Path(args.out) if args.out else default_out
    cancel = CancelToken()

    def on_interrupt(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        print("\ngraft: stopping after this step (Ctrl-C again to quit now)", file=sys.stderr)
        cancel.cancel()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        print(f"validate: {', '.join(a.name for a in arms)}; {config.steps} steps of batch {config.batch_size}", file=sys.stderr)
        report = run_validation(arms, config=config, tokenizer=tokenizer, out_dir=out,
                                progress=TerminalProgress("validate"), cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    png = render_png(report, out)
    if export is not None and out.resolve() != (export / "validation").resolve():
        report.write(export / "validation")
        if png is not None:
            render_png(report, export / "validation")
    print(report.summary())
    print(f"wrote {out}" + (f" (and {export / 'validation'})" if export is not None and args.out else ""))
    if report.status != "complete":
        print(json.dumps({"status": report.status, "steps_completed": report.steps_completed}), file=sys.stderr)
        return 1
    return 0
