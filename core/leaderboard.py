"""The strategy leaderboard: many transferred starts trained side by side against one baseline, ranked.

One question — "from this source, at these target sizes, which start trains best?" — answered by
one :class:`~core.training.ValidationSession`: every candidate's start and the baseline are
interleaved step by step on the same batches, seeds and schedule, so the curves differ only by
the start. Ranking rules, the table and :func:`agreement` live in :mod:`core.ranking`.

Candidates (:func:`parse_candidates`) are recipe files, or names joined by ``+`` applied to the
base recipe:

- a value strategy (``select``, ``mean_field``, ``growth``, …): that strategy for every role, with
  its own default index strategy;
- an index strategy (``uniform``, ``by_norm``, ``by_activation``, …): the dimension maps; the
  value strategy is ``select`` unless a value name is also given (``mean_field+by_norm``);
- a layer map, ``layers=first_n|uniform|last_n|by_influence`` (``by_influence`` alone also works;
  ``uniform`` alone is the index strategy);
- ``teacher``: distil from the source while training (``by_activation+teacher``);
- ``scratch``: the ``baseline`` value strategy as a transfer — a body of default-init weights given
  everything a transfer gets (a task head the source lacks initialised from the body,
  ``core.training.heads``). A start that does not beat ``scratch`` owes its lead over the baseline
  to that head, not to the transferred weights: it is in the defaults so that the table says so.

Names not given keep the base recipe's choice. :data:`DEFAULT_CANDIDATES`: every value strategy
(but ``baseline``, always the reference row) plus ``by_activation`` and
``by_activation+by_influence``; the ones a plan refuses (``select`` for a wider target) become rows
with the reason and no curve, and a plan's warnings (a strategy's fallback for tensors it cannot
fill, inexact growth) go into the leaderboard's notes.

Quick mode trains the first ``quick_steps`` steps of the *full* run's schedule (same config, same
learning-rate curve) and stops, so its eval losses equal the full run's at those steps bit for bit;
step ``quick_steps`` must be an eval step, so ``eval_every`` is lowered to the largest divisor of
``quick_steps`` not above it when needed (evaluation draws no random numbers and changes no
weights, so this changes no curve) and the leaderboard's notes say so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from core import strategies
from core.errors import Cancelled, GraftError, PlanError, RecipeError, StrategyError, TrainingError
from core.plan import LAYER_MAPS
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.ranking import LEADERBOARD_DIR, Leaderboard, Row, agreement, rank_curves, rank_rows
from core.recipe import Recipe
from core.training.arms import BASELINE
from core.training.config import ValidationConfig

log = logging.getLogger(__name__)

TEACHER = "teacher"
SCRATCH = "scratch"
#: value strategies never in the defaults: the reference itself.
NOT_DEFAULT = ("baseline",)


@dataclass(frozen=True)
class Candidate:
    """A start to rank: a name, the recipe that builds it, whether it trains with the teacher."""

    name: str
    recipe: Recipe
    distill: bool = False


def _value_names() -> list[str]:
    return strategies.names("value")


def _index_names() -> list[str]:
    return strategies.names("index")


def default_candidate_specs() -> list[str]:
    """:data:`DEFAULT_CANDIDATES` computed from the strategy registry."""
    values = [n for n in _value_names() if n not in NOT_DEFAULT]
    return [*values, "by_activation", "by_activation+by_influence", SCRATCH]


DEFAULT_CANDIDATES: tuple[str, ...] = tuple(default_candidate_specs())


def _is_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith(".json")


def _transfer(recipe: Recipe) -> dict:
    """What decides a candidate's bytes (not where they were recorded from)."""
    return {k: v for k, v in recipe.to_dict().items() if k not in ("provenance", "graft_version")}


def _grammar() -> str:
    return (
        f"value strategies ({', '.join(n for n in _value_names() if n != 'baseline')}), index strategies "
        f"({', '.join(_index_names())}), layer maps ({', '.join('layers=' + m for m in LAYER_MAPS)}, or "
        f"by_influence), {TEACHER}, {SCRATCH}, joined by '+' (e.g. mean_field+by_norm), or a recipe .json path"
    )


def _token_candidate(base: Recipe, spec: str) -> Candidate:
    value = index = layers = None
    distill = False
    values, indexes = set(_value_names()), set(_index_names())

    def once(current, new, what):
        if current is not None:
            raise RecipeError(f"candidate {spec!r} names two {what} ({current} and {new}); give one")
        return new

    for token in (t.strip() for t in spec.split("+")):
        if token == TEACHER:
            if distill:
                raise RecipeError(f"candidate {spec!r} names {TEACHER} twice; give it once")
            distill = True
        elif token == SCRATCH:
            value = once(value, "baseline", "value strategies")
        elif token in values:
            value = once(value, token, "value strategies")
        elif token in indexes:
            index = once(index, token, "index strategies")
        elif token.startswith("layers=") or token == "by_influence":
            name = token.partition("=")[2] if "=" in token else token
            if name not in LAYER_MAPS:
                raise RecipeError(f"layer map {name!r} in candidate {spec!r} is unknown; use {', '.join(LAYER_MAPS)}")
            layers = once(layers, name, "layer maps")
        else:
            raise RecipeError(f"candidate {spec!r}: {token!r} is not a known name; use {_grammar()}")
    data = base.to_dict()
    if value is not None or index is not None:
        data["values"] = {"default": {"method": value or "select", "params": {}}}
        data["index"] = {"method": index, "params": {}} if index else None
    if layers is not None:
        data["layers"] = layers
    return Candidate(spec, Recipe.from_dict(data), distill)


def _recipe_candidate(base: Recipe, spec: str, taken: set[str]) -> Candidate:
    distill = spec.endswith("+" + TEACHER)
    location = spec[: -len(TEACHER) - 1] if distill else spec
    path = Path(location).expanduser()
    recipe = Recipe.load(path)
    want, got = base.sizes.to_dict(), recipe.sizes.to_dict()
    if want != got:
        raise RecipeError(
            f"candidate recipe {location} targets {got or 'the source sizes'}, but the leaderboard "
            f"compares starts of {want or 'the source sizes'}; give recipes of the same sizes"
        )
    if (recipe.source, recipe.revision) != (base.source, base.revision):
        raise RecipeError(
            f"candidate recipe {location} transfers from {recipe.source}, but the leaderboard "
            f"compares starts from {base.source}; give recipes of the same source"
        )
    stem = path.parent.name if (path.is_dir() or path.stem == "graft_recipe") else path.stem
    name = stem if stem and stem not in taken and stem != BASELINE else location
    return Candidate(name + (f"+{TEACHER}" if distill else ""), recipe, distill)


def parse_candidates(base: Recipe, specs: Sequence[str]) -> list[Candidate]:
    """Candidates from specs (module docstring grammar), each applied to ``base``.

    Raises:
        RecipeError: an unknown name, two names of one kind, a recipe of other sizes or another
            source, the name ``baseline`` (always the reference row), or the same candidate twice.
    """
    out: list[Candidate] = []
    for raw in specs:
        spec = str(raw).strip()
        if not spec:
            raise RecipeError("a candidate is empty; give names like select or mean_field+by_norm, separated by commas")
        if spec == BASELINE:
            raise RecipeError(
                "the baseline is always in the leaderboard (the reference row); leave it out of the candidates"
            )
        stripped = spec[: -len(TEACHER) - 1] if spec.endswith("+" + TEACHER) else spec
        if _is_path(stripped):
            cand = _recipe_candidate(base, spec, {c.name for c in out})
        else:
            cand = _token_candidate(base, spec)
        for other in out:
            if other.name == cand.name:
                raise RecipeError(f"candidate {cand.name!r} is given twice; give each candidate once")
            if other.distill == cand.distill and _transfer(other.recipe) == _transfer(cand.recipe):
                raise RecipeError(f"candidates {other.name!r} and {cand.name!r} build the same start; give it once")
        out.append(cand)
    if not out:
        raise RecipeError("give at least one candidate, e.g. select,mean_field")
    return out


def quick_config(config: ValidationConfig, quick_steps: int | None) -> tuple[ValidationConfig, list[str]]:
    """The config of a quick run (eval_every lowered so ``quick_steps`` is an eval step) and notes."""
    if quick_steps is None:
        return config, []
    if isinstance(quick_steps, bool) or not isinstance(quick_steps, int) or not 1 <= quick_steps <= config.steps:
        raise TrainingError(
            f"quick steps must be a whole number from 1 to the run's {config.steps} steps, "
            f"not {quick_steps!r}; lower --quick-steps or raise --steps"
        )
    if quick_steps in config.eval_steps():
        return config, []
    every = max(d for d in range(1, config.eval_every + 1) if quick_steps % d == 0)
    note = (
        f"eval_every {config.eval_every} → {every}, so that step {quick_steps} is evaluated "
        "(evaluation changes no weight and no random draw: the curves are the full run's)"
    )
    return config.with_(eval_every=every), [note]


def _reference_plan(base: Recipe, source):
    """The base recipe's plan, for the baseline's config; the baseline strategy when the base's is refused."""
    from core.pipeline import plan_recipe

    try:
        return plan_recipe(base, source)[0]
    except (PlanError, StrategyError) as exc:
        log.info("base recipe refused (%s); the baseline's config comes from the baseline strategy's plan", exc)
        return plan_recipe(base.with_strategy("baseline"), source)[0]


def _build_teacher(teacher_source, source, model_type: str, config: ValidationConfig):
    from core.sources import open_source
    from core.training.loop import resolve_device
    from core.training.tasks import task_for
    from core.training.teacher import Teacher

    tsrc = (
        source
        if teacher_source is None
        else (open_source(teacher_source) if isinstance(teacher_source, str) else teacher_source)
    )
    task = task_for(model_type)
    return Teacher.from_source(tsrc, task, device=resolve_device(config.device), seed=config.seed), tsrc is source


def compare_steps(
    base: Recipe,
    candidates: Sequence[Candidate],
    config: ValidationConfig | None = None,
    *,
    source=None,
    tokenizer: str | Path | None = None,
    quick_steps: int | None = None,
    teacher_source=None,
    allow_changed_source: bool = False,
    allow_nonfinite: bool = False,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Generator:
    """Materialise every candidate and train them with the baseline; yields every arm-step's
    :class:`~core.training.StepMetrics`, returns the :class:`~core.ranking.Leaderboard`.

    A candidate the plan refuses (or whose recorded hashes do not match the source) becomes a row
    with ``error`` and no curve; the others still run. Cancel (the token) stops within one
    arm-step and returns the partial leaderboard (``status == "cancelled"``, complete steps only).

    Args:
        base: the recipe giving source, revision, sizes and seed (and, by default, the options).
        candidates: from :func:`parse_candidates`.
        config: validation options (default: the base recipe's validation block).
        source: the base recipe's source, opened (default: opened here).
        tokenizer: tokenizer folder (default: the source's folder).
        quick_steps: stop after this many steps of the full schedule (see the module docstring).
        teacher_source: the teacher of ``+teacher`` candidates (default: the source itself).
        allow_changed_source, allow_nonfinite: as for ``graft transfer`` (core.pipeline.trust_source).

    Raises:
        StrategyError: every candidate was refused (the message lists why).
        TrainingError: bad ``quick_steps``.
    """
    from core.pipeline import open_recipe_source, plan_recipe, trust_source
    from core.provenance import verify_recorded_hashes
    from core.training import Arm, ValidationSession
    from core.transfer import build_state_dict

    if config is None:
        known = {f.name for f in fields(ValidationConfig)}
        config = ValidationConfig(**{k: v for k, v in (base.validation or {}).items() if k in known})
    asked = config  # the question's options (its history key): a quick run shares the full run's key
    config, notes = quick_config(config, quick_steps)
    candidates = list(candidates)
    if not candidates:
        raise RecipeError("give at least one candidate, e.g. select,mean_field")
    progress(-1.0, "checking the source")
    cancel.check()
    source = source or open_recipe_source(base)
    trust_source(
        base,
        source,
        allow_changed_source=allow_changed_source,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
        cancel=cancel,
    )
    reference = _reference_plan(base, source)
    arms, plans, errors, build_s = [], {}, {}, {}
    for i, cand in enumerate(candidates):
        cancel.check()
        progress(-1.0, f"materialising {cand.name} ({i + 1}/{len(candidates)})")
        start = time.perf_counter()
        try:
            verify_recorded_hashes(cand.recipe.provenance, source, allow_changed=allow_changed_source)
            plan, _ = plan_recipe(cand.recipe, source)
            if plan.target_sizes != reference.target_sizes:
                raise PlanError(f"its sizes {plan.target_sizes} differ from the base's {reference.target_sizes}")
            state = build_state_dict(plan, source, device="cpu", dtype="float32", cancel=cancel)
        except Cancelled:
            raise
        except GraftError as exc:
            errors[cand.name] = str(exc)  # its row says why; the others still run
            log.info("candidate %s refused: %s", cand.name, exc)
            continue
        build_s[cand.name] = time.perf_counter() - start
        plans[cand.name] = plan
        notes += [f"{cand.name}: {w}" for w in plan.warnings]
        arms.append(
            Arm.from_state(cand.name, plan.target_config, state, f"{cand.name} transfer of {source.display_name}")
        )
    if not arms:
        raise StrategyError("every candidate was refused: " + "; ".join(f"{n}: {e}" for n, e in errors.items()))
    baseline = Arm.baseline(reference.target_config)
    teacher = None
    if any(c.distill for c in candidates if c.name in plans):
        progress(-1.0, "loading the teacher")
        teacher, same = _build_teacher(teacher_source, source, baseline.model_type, config)
        by_name = {c.name: c for c in candidates}
        for arm in arms:
            arm.distill = by_name[arm.name].distill
            dims = plans[arm.name].dims
            arm.teacher_map = list(dims["hidden"].index) if same and "hidden" in dims else None
        baseline.distill = False  # the reference trains alone: add baseline+teacher to see it distilled
    progress(-1.0, "preparing data and models")
    started = time.perf_counter()
    session = ValidationSession(
        [*arms, baseline],
        config=config,
        tokenizer=tokenizer or source.root,
        **({"teacher": teacher} if teacher is not None else {}),
    )
    report = session.report()
    stop_at = quick_steps or config.steps
    total = (stop_at + 1) * len(session.runners)
    last = session.runners[-1].name
    pending: list = []
    steps = session.steps()
    try:
        for done, metrics in enumerate(steps, start=1):
            pending = [] if len(pending) == len(session.runners) else pending
            pending.append(metrics)
            progress(done / total, f"{metrics.arm} step {metrics.step}/{stop_at}")
            yield metrics
            finished_round = metrics.arm == last
            if cancel.cancelled or (finished_round and metrics.step >= stop_at):
                break
    finally:
        steps.close()
    committed = report.steps_completed if report.records.get(last) else -1
    if len(pending) == len(session.runners) and pending[-1].step > committed:
        for m in pending:  # the round we stopped after is complete: keep it (the session commits lazily)
            report.records[m.arm].append(m)
        report.elapsed_s = time.perf_counter() - started
    if report.status != "complete":
        report.status = "cancelled" if cancel.cancelled and report.steps_completed < stop_at else "complete"
    progress(1.0, report.status)
    return _leaderboard(base, candidates, report, config, asked, quick_steps, errors, build_s, notes)


def _leaderboard(base, candidates, report, config, asked, quick_steps, errors, build_s, notes) -> Leaderboard:
    from dataclasses import asdict

    from core.history import recipe_key

    ranked, base_row = rank_curves(report.evals(), report.baseline or BASELINE, quick_steps=quick_steps)
    by_name = {r.name: r for r in ranked}
    rows = []
    for cand in candidates:
        row = by_name.get(cand.name) or Row(cand.name, error=errors.get(cand.name, "no result"))
        row.recipe, row.distill = cand.recipe.to_dict(), cand.distill
        row.materialise_s = build_s.get(cand.name)
        records = report.records.get(cand.name)
        row.wall_s = records[-1].elapsed_s if records else None
        rows.append(row)
    base_records = report.records.get(base_row.name)
    base_row.wall_s = base_records[-1].elapsed_s if base_records else None
    return Leaderboard(
        rows=rank_rows(rows, quick=quick_steps is not None),
        baseline=base_row,
        config=asdict(config),
        quick_steps=quick_steps,
        base_recipe=base.to_dict(),
        report=report.to_dict(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        key=recipe_key(base, what="leaderboard", config=asked),
        notes=notes,
    )


__all__ = [
    "DEFAULT_CANDIDATES",
    "LEADERBOARD_DIR",
    "Candidate",
    "Leaderboard",
    "Row",
    "agreement",
    "compare_steps",
    "default_candidate_specs",
    "parse_candidates",
    "quick_config",
    "rank_curves",
    "rank_rows",
]
