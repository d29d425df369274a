"""Jobs built from core's long-running functions: the only app module that calls them.

Each factory returns a :class:`~app.jobs.runner.Job` whose ``fn(progress, cancel)`` runs on a
worker thread and returns plain data (or core objects the GUI only reads). Panels call these
factories and hand the job to a controller; they never call core's heavy functions themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from app.jobs.runner import Job

log = logging.getLogger(__name__)


_TORCH_READY = False


def prepare_torch() -> None:
    """Leave the GUI thread a core: torch and BLAS kernels would otherwise take every one of them."""
    global _TORCH_READY
    if _TORCH_READY:
        return
    import os

    import torch

    threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    try:  # numpy's OpenBLAS threads spin after each call and starve the GUI of CPU on small machines
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        pass
    _TORCH_READY = True


@dataclass
class OpenedSource:
    """A source once opened and described (what the Sources and Model panels show)."""

    location: str
    source: Any  # core.sources.Source
    family: str
    sizes: dict[str, int]  # the source's named dimension sizes
    roles: list[Any]  # core.architectures.TensorRole, in file order
    architecture_error: str | None = None
    editable: frozenset = frozenset()  # target sizes this family lets the user change


@dataclass
class PlanResult:
    recipe: Any  # core.recipe.Recipe
    plan: Any  # core.plan.Plan
    cache: dict = field(default_factory=dict)  # shared by previews and materialise of this plan


@dataclass
class Materialised:
    plan: Any
    state_dict: dict  # name → tensor (stays on the worker side's objects; GUI only counts it)
    summaries: list  # app.jobs.preview.TensorSummary
    num_parameters: int


def _warm_up(*, progress, cancel) -> None:
    # Importing torch holds the GIL for a second or more: do it while the user is still reading
    # the window, not when they first change a setting.
    prepare_torch()
    import core.stats  # noqa: F401
    import core.training  # noqa: F401  (transformers' model classes, for validation)
    import core.transfer  # noqa: F401


def warm_up_job() -> Job:
    """Import the heavy libraries in the background right after the window appears."""
    return Job("warm up", _warm_up)


# -- sources ---------------------------------------------------------------------------------
def _open(location: str, offline: bool, cache_dir: str | None, *, progress, cancel) -> OpenedSource:
    from core.architectures import describe, detect
    from core.errors import ArchitectureError
    from core.sources import open_source

    progress(-1.0, f"opening {location}")
    source = open_source(location, progress=progress, cancel=cancel, cache_dir=cache_dir or None,
                         local_files_only=True if offline else None)
    cancel.check()
    try:
        spec, config = detect(source)
        roles = describe(source, spec)
        editable = {"layers"} | {d for d in spec.config_fields if d in spec.resizable}
        if not spec.explicit_head_dim:
            editable.discard("head_dim")  # derived from hidden / heads
        if spec.family == "mlp":
            editable = {"hidden"}
        return OpenedSource(location, source, spec.family, spec.sizes(config), roles, editable=frozenset(editable))
    except ArchitectureError as exc:  # still browsable: tensors without roles
        return OpenedSource(location, source, "unknown", {}, [], architecture_error=str(exc))


def open_source_job(location: str, *, offline: bool = False, cache_dir: str | None = None) -> Job:
    """Open (downloading if it is a hub repo id) and describe ``location``."""
    return Job(f"open {location}", partial(_open, location, offline, cache_dir))


def _list_cache(cache_dir: str | None, *, progress, cancel) -> list:
    from core.sources import list_cached_models

    return list_cached_models(cache_dir or None)


def list_cache_job(cache_dir: str | None = None) -> Job:
    return Job("scan the Hugging Face cache", partial(_list_cache, cache_dir))


# -- plan and preview ------------------------------------------------------------------------
def _plan(recipe, source, *, progress, cancel) -> PlanResult:
    from core.pipeline import plan_recipe

    prepare_torch()
    plan, _ = plan_recipe(recipe, source)
    return PlanResult(recipe, plan)


def plan_job(recipe, source) -> Job:
    """Compute the plan of ``recipe`` on an opened ``source`` (fast; imports torch once)."""
    return Job("plan", partial(_plan, recipe, source))


def _preview(result: PlanResult, source, name: str, device: str, *, progress, cancel):
    from app.jobs.preview import compute_preview

    return compute_preview(result.plan, source, name, device=device, cache=result.cache, cancel=cancel)


def preview_job(result: PlanResult, source, tensor_name: str, device: str = "cpu") -> Job:
    """Fill one target tensor and summarise it against its source (histograms, maps, spectra)."""
    return Job(f"preview {tensor_name}", partial(_preview, result, source, tensor_name, device))


# -- long jobs (queued) ----------------------------------------------------------------------
def _materialise(result: PlanResult, source, device: str, dtype: str | None, *, progress, cancel) -> Materialised:
    from app.jobs.preview import summarise
    from core.transfer import materialize

    plan = result.plan
    by_name = {t.name: t for t in plan.tensors}
    state, summaries = {}, []
    for name, tensor in materialize(plan, source, device=device, dtype=dtype or None, progress=progress, cancel=cancel):
        state[name] = tensor
        summaries.append(summarise(by_name[name], tensor, source))
    return Materialised(plan, state, summaries, plan.num_parameters)


def materialise_job(result: PlanResult, source, device: str = "cpu", dtype: str | None = None) -> Job:
    """Fill every target tensor on ``device``; keeps the state dict for validation."""
    return Job("materialise", partial(_materialise, result, source, device, dtype))


def _source_table(source, *, progress, cancel):
    from core.stats import DEFAULT_METRICS, MEAN_FIELD_METRICS, model_table

    prepare_torch()
    metrics = tuple(dict.fromkeys((*DEFAULT_METRICS, *MEAN_FIELD_METRICS)))
    return model_table(source, metrics, progress=progress, cancel=cancel)


def source_table_job(source) -> Job:
    """Layer × role statistics of every source matrix, with the mean-field suggestions."""
    return Job("analyse source", partial(_source_table, source))


def _validate(materialised: Materialised, config, *, progress, cancel, tokenizer: str | None = None):
    from core.training import Arm, ValidationSession

    plan = materialised.plan
    target_config = dict(plan.target_config)
    arms = [Arm.from_state("transferred", target_config, materialised.state_dict, "transferred start"),
            Arm.baseline(target_config)]
    progress(-1.0, "preparing data and models")
    session = ValidationSession(arms, config=config, tokenizer=tokenizer)
    total = (session.config.steps + 1) * len(arms)
    done = 0
    for metrics in session.steps():
        cancel.check()
        done += 1
        progress(done / total, f"{metrics.arm} step {metrics.step}/{session.config.steps}")
        yield metrics
    return session.report()


def validate_job(materialised: Materialised, config, tokenizer: str | Path | None = None) -> Job:
    """Train the transferred start and the baseline side by side; yields ``StepMetrics``."""

    def fn(*, progress, cancel):
        return _validate(materialised, config, progress=progress, cancel=cancel,
                         tokenizer=str(tokenizer) if tokenizer else None)

    return Job("validate", fn)


def _export(recipe, out_dir: str, source, plan, force: bool, *, progress, cancel) -> Path:
    from core.pipeline import export_recipe

    return export_recipe(recipe, out_dir, source=source, plan=plan, force=force, progress=progress, cancel=cancel)


def export_job(recipe, out_dir: str | Path, source=None, plan=None, *, force: bool = False) -> Job:
    """Materialise and write an HF folder atomically (the recipe decides dtype and shards)."""
    return Job(f"export → {Path(out_dir).name}", partial(_export, recipe, str(out_dir), source, plan, force))


def _save_recipe(recipe, path: str, *, progress, cancel) -> Path:
    return recipe.save(path)


def load_recipe(path: str | Path):
    """Read a recipe file (small JSON; safe on the GUI thread, no tensors)."""
    from core.recipe import Recipe

    return Recipe.load(path)
