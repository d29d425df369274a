"""``graft validate``: train the transferred start against the baseline and print the verdict.

    graft validate out/demo                          # an export folder: the export vs baseline
    graft validate recipe.json --vs baseline mean_field --steps 300
    graft validate recipe.json --teacher source --save-trained out/trained

For an export folder the arms are the export and the baseline (plus any other ``--vs``
strategy, rebuilt in memory from the folder's ``graft_recipe.json``). For a recipe they are the
recipe's transfer, the baseline and each ``--vs`` strategy, all built in memory. Results
(JSON, CSV and, when the app's renderer is available, a PNG of the curves) go to ``--out``; a run
on an export folder also leaves them in ``<export>/validation``. Ctrl-C once stops after the
current step and keeps the partial report; twice quits at once.

``--teacher source`` distils from the source model (``core.training.teacher``): every arm adds
the distillation term; the source is the recipe's (an export folder's ``graft_recipe.json``).
``--save-trained DIR`` writes each arm but the baseline (or each ``--save-arm``) as a checkpoint
folder ``DIR/<arm>/`` after the run, also after Ctrl-C (marked partial); never into the source.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from app.cli import command
from app.cli.term import TerminalProgress, ctrl_c_cancels
from core.errors import TrainingError

log = logging.getLogger(__name__)

DEFAULT_VS = ("baseline",)
TEACHERS = ("source",)


@command("validate", help="train the transferred start and the baseline on the same data; report the speedup")
def arguments(p) -> None:
    from core.params import add_arguments
    from core.training.config import ValidationConfig

    p.add_argument("target", help="an export folder (written by 'graft transfer') or a recipe JSON file")
    p.add_argument(
        "--vs",
        nargs="+",
        default=None,
        metavar="ARM",
        help="arms to compare with: 'baseline' and/or strategy names (e.g. select mean_field); default: baseline",
    )
    p.add_argument(
        "--out", help="run folder for validation.json/.csv/.png (default: <export>/validation or out/validation)"
    )
    p.add_argument("--tokenizer", help="tokenizer folder for language models (default: the export's or the source's)")
    p.add_argument(
        "--teacher",
        metavar="source",
        help="distil from a teacher: 'source' (the model the target was built from; the only teacher for now)",
    )
    p.add_argument(
        "--save-trained", metavar="DIR", help="write each trained arm (not the baseline) to DIR/<arm>/ as a checkpoint"
    )
    p.add_argument(
        "--save-arm", action="append", metavar="NAME", help="with --save-trained: save this arm only (repeatable)"
    )
    p.add_argument(
        "--force", action="store_true", help="with --save-trained: replace trained folders an earlier run wrote"
    )
    g = p.add_argument_group("training options")
    add_arguments(g, ValidationConfig)
    p.set_defaults(func=run_validate)


def _base_config(recipe_validation: dict | None):
    from core.training import ValidationConfig

    known = {f.name for f in fields(ValidationConfig)}
    return ValidationConfig(**{k: v for k, v in (recipe_validation or {}).items() if k in known})


@dataclass
class Setup:
    """What a run needs besides its options: the arms and where things are."""

    arms: list
    tokenizer: object
    default_out: Path
    export: Path | None
    validation: dict | None
    source: object = None  # the opened source, when a recipe names it
    recipes: dict[str, dict] = field(default_factory=dict)  # arm → the recipe of its start
    source_path: Path | None = None  # an export's source folder on disk (from its recipe), never written over


def _recipe_arm(recipe, name: str):
    """An in-memory arm: the recipe's plan materialised by ``core.transfer``."""
    from core.pipeline import plan_recipe
    from core.training import Arm
    from core.transfer import build_state_dict

    plan, source = plan_recipe(recipe)
    state = build_state_dict(plan, source, device="cpu", dtype="float32")
    arm = Arm.from_state(name, plan.target_config, state, f"{name} transfer of {source.display_name}")
    arm.teacher_map = _hidden_map(plan)
    return arm, source


def _hidden_map(plan) -> list[int] | None:
    hidden = plan.dims.get("hidden")
    return list(hidden.index) if hidden is not None else None


def setup_arms(target: str, vs: list[str], tokenizer: str | None, *, need_source: bool = False) -> Setup:
    """The arms of ``target`` (an export folder or a recipe) and ``--vs``; with ``need_source``
    an export folder's source is opened from its ``graft_recipe.json`` (refused without one)."""
    from core.pipeline import plan_recipe
    from core.recipe import Recipe
    from core.training import Arm

    path = Path(target).expanduser()
    strategies = [v for v in vs if v != "baseline"]
    recipes: dict[str, dict] = {}
    source = source_path = None
    if path.is_dir() and list(path.glob("*.safetensors")):
        export = Arm.from_export(path)
        arms = [export]
        recipe = Recipe.load(path) if (path / "graft_recipe.json").is_file() else None
        if strategies and recipe is None:
            raise TrainingError(
                f"{path} has no graft_recipe.json, so --vs {' '.join(strategies)} cannot be rebuilt; compare with 'baseline' only"
            )
        if need_source and recipe is None:
            raise TrainingError(
                f"{path} has no graft_recipe.json, so its source (the teacher) is unknown; "
                "validate the recipe instead, or run without --teacher"
            )
        if recipe is not None:
            recipes[export.name] = recipe.to_dict()
            local = Path(recipe.source).expanduser()
            source_path = local if local.exists() else None
            if need_source:
                plan, source = plan_recipe(recipe)
                export.teacher_map = _hidden_map(plan)
        for name in strategies:
            arms.append(_recipe_arm(recipe.with_strategy(name), name)[0])
            recipes[name] = recipe.with_strategy(name).to_dict()
        validation = recipe.validation if recipe else None
        default_out, tok, export_dir = path / "validation", tokenizer or path, path
    else:
        recipe = Recipe.load(path)
        method = recipe.values["default"]["method"]
        main, source = _recipe_arm(recipe, method)
        arms = [main] + [_recipe_arm(recipe.with_strategy(n), n)[0] for n in strategies if n != method]
        recipes = {
            method: recipe.to_dict(),
            **{n: recipe.with_strategy(n).to_dict() for n in strategies if n != method},
        }
        validation, default_out, tok, export_dir = (
            recipe.validation,
            Path("out/validation"),
            tokenizer or source.root,
            None,
        )
    if "baseline" in vs:
        arms.append(Arm.baseline(arms[0].config))
    return Setup(arms, tok, default_out, export_dir, validation, source, recipes, source_path)


def build_arms(target: str, vs: list[str], tokenizer: str | None):
    """``(arms, tokenizer folder, default out folder, export folder or None, recipe validation dict)``."""
    s = setup_arms(target, vs, tokenizer)
    return s.arms, s.tokenizer, s.default_out, s.export, s.validation


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


def _check_teacher(name: str | None) -> None:
    if name is not None and name not in TEACHERS:
        raise TrainingError(
            f"--teacher {name!r} is not available: only 'source' (the model the target was built from) "
            "can teach for now; other teachers are not supported yet"
        )


def run_validate(args) -> int:
    from core.outdir import protected_paths
    from core.params import from_args
    from core.progress import CancelToken
    from core.training import SaveTrained, Teacher, resolve_device, run_validation, task_for
    from core.training.config import ValidationConfig

    teacher_name = getattr(args, "teacher", None)
    _check_teacher(teacher_name)
    if getattr(args, "save_arm", None) and not getattr(args, "save_trained", None):
        raise TrainingError("--save-arm needs --save-trained DIR; give the folder to save into")
    vs = list(args.vs or DEFAULT_VS)
    setup = setup_arms(args.target, vs, args.tokenizer, need_source=teacher_name is not None)
    arms, tokenizer, default_out, export = setup.arms, setup.tokenizer, setup.default_out, setup.export
    config = from_args(ValidationConfig, args, _base_config(setup.validation))
    out = Path(args.out) if args.out else default_out
    save = None
    if getattr(args, "save_trained", None):
        protect = (
            protected_paths(setup.source)
            if setup.source is not None
            else ((setup.source_path,) if setup.source_path else ())
        )
        save = SaveTrained(
            Path(args.save_trained).expanduser(),
            tuple(args.save_arm) if args.save_arm else None,
            force=bool(getattr(args, "force", False)),
            protect=tuple(protect),
            recipes=setup.recipes,
        )
        save.check_arms(arms, tokenizer)  # refused before the teacher loads and anything trains
    teacher = None
    if teacher_name is not None:
        teacher = Teacher.from_source(
            setup.source, task_for(arms[0].model_type), device=resolve_device(config.device), seed=config.seed
        )
    cancel = CancelToken()

    with ctrl_c_cancels(cancel):
        extra = f"; teacher: the {teacher.description}" if teacher is not None else ""
        print(
            f"validate: {', '.join(a.name for a in arms)}; {config.steps} steps of batch {config.batch_size}{extra}",
            file=sys.stderr,
        )
        report = run_validation(
            arms,
            config=config,
            tokenizer=tokenizer,
            out_dir=out,
            teacher=teacher,
            save_trained=save,
            progress=TerminalProgress("validate"),
            cancel=cancel,
        )
    png = render_png(report, out)
    if export is not None and out.resolve() != (export / "validation").resolve():
        report.write(export / "validation")
        if png is not None:
            render_png(report, export / "validation")
    print(report.summary())
    if report.teacher is not None:
        t = report.teacher
        per_step = f", {t['ms_per_step']:.0f} ms/step" if t.get("ms_per_step") is not None else ""
        print(f"teacher ({teacher.description}): {t['seconds']:.1f} s{per_step}")
    for arm, folder in report.saved.items():
        print(f"saved the trained {arm} to {folder}" + ("" if report.status == "complete" else " (partial)"))
    print(f"wrote {out}" + (f" (and {export / 'validation'})" if export is not None and args.out else ""))
    if report.status != "complete":
        print(json.dumps({"status": report.status, "steps_completed": report.steps_completed}), file=sys.stderr)
        return 1
    return 0
