"""Job factories: each builds a :class:`~app.jobs.runner.Job` from one of core's long-running calls.

This is the only app module that calls them. A job's ``fn(progress, cancel)`` runs on a worker
thread and returns the plain data of :mod:`app.jobs.results` (or core objects the GUI only
reads); the long ones (materialise, analyse, validate, compare, export) run their tensor work in
a child process (``core.process.run_in_child``) and stream its items back. Panels and the
workspace build jobs here and await them on a controller or the queue; they never call core's
heavy functions themselves.
"""

from __future__ import annotations

import gc
import logging
from functools import partial
from pathlib import Path

from app.jobs.results import Compared, Diffed, Materialised, OpenedSource, PlanResult
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


def _warm_up(*, progress, cancel) -> dict[str, str | None]:
    # Importing torch holds the GIL for a second or more: do it while the user is still reading
    # the window, not when they first change a setting. The cyclic garbage collector is off
    # meanwhile: its full passes over the new objects took 50–150 ms each, with the GIL held.
    gc.disable()
    try:
        prepare_torch()
        import core.stats  # noqa: F401
        import core.training  # noqa: F401  (the validation child's step metrics and report unpickle here)
        import core.transfer  # noqa: F401
        from core.process import start_server

        start_server()  # the long jobs run in child processes forked from it, torch already imported
        from core.devices import device_availability

        return device_availability()
    finally:
        # What is imported now lives as long as the app: keep it out of the collector's way for
        # good (later collections walk only newer objects).
        gc.freeze()
        gc.enable()


def warm_up_job() -> Job:
    """Import the heavy libraries in the background right after the window appears; returns
    :func:`core.devices.device_availability` (device → None, or why it cannot be used)."""
    return Job("warm up", _warm_up)


# -- sources ---------------------------------------------------------------------------------
def _open(
    location: str, offline: bool, cache_dir: str | None, endpoint: str | None, *, progress, cancel
) -> OpenedSource:
    from core.architectures import describe, detect
    from core.errors import ArchitectureError
    from core.sources import open_source

    progress(-1.0, f"opening {location}")
    source = open_source(
        location,
        progress=progress,
        cancel=cancel,
        cache_dir=cache_dir or None,
        endpoint=endpoint or None,
        local_files_only=True if offline else None,
    )
    cancel.check()
    try:
        spec, config = detect(source)
        roles = describe(source, spec)
        editable = frozenset(spec.target_size_names())  # the sizes this family lets a target change
        return OpenedSource(location, source, spec.family, spec.sizes(config), roles, editable=editable)
    except ArchitectureError as exc:  # still browsable: tensors without roles
        return OpenedSource(location, source, "unknown", {}, [], architecture_error=str(exc))


def open_source_job(
    location: str, *, offline: bool = False, cache_dir: str | None = None, endpoint: str | None = None
) -> Job:
    """Open (downloading from ``endpoint`` if it is a hub repo id) and describe ``location``."""
    return Job(f"open {location}", partial(_open, location, offline, cache_dir, endpoint))


def _check_values(source, *, progress, cancel):
    return source.scan(progress=progress, cancel=cancel)


def check_values_job(source) -> Job:
    """Read every weight once (cached after the first time): shard hashes and NaN/Inf counts."""
    return Job("check values", partial(_check_values, source))


def _list_cache(cache_dir: str | None, *, progress, cancel) -> list:
    from core.sources import list_cached_models

    return list_cached_models(cache_dir or None)


def list_cache_job(cache_dir: str | None = None) -> Job:
    return Job("scan the Hugging Face cache", partial(_list_cache, cache_dir))


# -- plan and preview ------------------------------------------------------------------------
def _plan(recipe, source, *, progress, cancel) -> PlanResult:
    # The torch-free planner (issue 17): a plan that draws nothing at random is ready while the
    # warm-up job is still importing torch; one that needs torch imports it there.
    from core.plan.from_recipe import plan_recipe

    plan, _ = plan_recipe(recipe, source, progress=progress, cancel=cancel)
    return PlanResult(recipe, plan)


def plan_job(recipe, source) -> Job:
    """Compute the plan of ``recipe`` on an opened ``source`` (fast; torch only if a draw needs it)."""
    return Job("plan", partial(_plan, recipe, source))


def _preview(result: PlanResult, source, name: str, device: str, *, progress, cancel):
    from core.preview import compute_preview

    return compute_preview(result.plan, source, name, device=device, cache=result.cache, cancel=cancel)


def preview_job(result: PlanResult, source, tensor_name: str, device: str = "cpu") -> Job:
    """Fill one target tensor and summarise it against its source (histograms, maps, spectra)."""
    return Job(f"preview {tensor_name}", partial(_preview, result, source, tensor_name, device))


# -- long jobs (queued) ----------------------------------------------------------------------
def _materialise(
    result: PlanResult,
    source,
    device: str,
    dtype: str | None,
    allow_nonfinite: bool,
    keep_history: bool = False,
    *,
    progress,
    cancel,
):
    from core.pipeline import materialise_summaries
    from core.process import run_in_child

    summaries = yield from run_in_child(
        materialise_summaries,
        result.recipe,
        source,
        device=device,
        dtype=dtype or None,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
        cancel=cancel,
    )
    if keep_history:
        from core.runs import materialised_payload

        payload = materialised_payload(result.recipe.to_dict(), summaries, result.plan.num_parameters, device)
        add_history("materialised", history_keys(result.recipe)["materialised"], payload)
    return Materialised(result.plan, summaries, result.plan.num_parameters, device)


def materialise_job(
    result: PlanResult,
    source,
    device: str = "cpu",
    dtype: str | None = None,
    *,
    allow_nonfinite: bool = False,
    keep_history: bool = False,
) -> Job:
    """Fill and summarise every target tensor on ``device``, in a child process (the GIL of the
    GUI's process stays free; see ``core.process``); ``keep_history`` adds the per-tensor summaries
    (not the tensors) to :class:`core.history.History` under the recipe's materialised key."""
    return Job("materialise", partial(_materialise, result, source, device, dtype, allow_nonfinite, keep_history))


def _source_table(source, device: str = "cpu", *, progress, cancel):
    from core.process import run_in_child
    from core.stats import DEFAULT_METRICS, MEAN_FIELD_METRICS
    from core.stats.table import stream_model_table

    metrics = tuple(dict.fromkeys((*DEFAULT_METRICS, *MEAN_FIELD_METRICS)))
    return (
        yield from run_in_child(stream_model_table, source, metrics, device=device, progress=progress, cancel=cancel)
    )


def source_table_job(source, device: str = "cpu") -> Job:
    """Layer × role statistics of every source matrix, with the mean-field suggestions (in a child process);
    each tensor's ``TensorRow`` is an item as soon as it is computed, the ``ModelTable`` the result."""
    return Job("analyse source", partial(_source_table, source, device))


def _validate(
    recipe,
    source,
    config,
    tokenizer: str | None,
    allow_nonfinite: bool,
    teacher: bool = False,
    save_trained: str | None = None,
    keep_history: bool = False,
    *,
    progress,
    cancel,
):
    # In a child process: there, training does not compete with the GUI thread for the GIL, and
    # the child materialises the target from the recipe itself (no tensors cross over).
    from core.pipeline import validate_recipe_steps
    from core.process import run_in_child

    options = {}  # only what was asked for: a plain run calls validate_recipe_steps as before
    if teacher:
        options["teacher"] = True
    if save_trained:
        options["save_trained"] = save_trained
    progress(-1.0, "starting the training process")
    report = yield from run_in_child(
        validate_recipe_steps,
        recipe,
        source,
        config,
        tokenizer=tokenizer,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
        cancel=cancel,
        **options,
    )
    if keep_history:
        add_history(
            "validation", history_keys(recipe)["validation"], {"recipe": recipe.to_dict(), "report": report.to_dict()}
        )
    return report


def validate_job(
    recipe,
    source,
    config,
    tokenizer: str | Path | None = None,
    *,
    allow_nonfinite: bool = False,
    teacher: bool = False,
    save_trained: str | Path | None = None,
    keep_history: bool = False,
) -> Job:
    """Materialise ``recipe`` and train it against the baseline, side by side, in a child
    process; yields ``StepMetrics``, returns the ``ValidationReport``.

    ``teacher`` distils every arm from the source; ``save_trained`` (a folder that does not exist
    yet) keeps each trained arm there as ``<folder>/<arm>/`` (``report.saved``); ``keep_history``
    adds the finished run to :class:`core.history.History` under the recipe's validation key
    (computed on the job's thread, like every core call).
    """
    return Job(
        "validate",
        partial(
            _validate,
            recipe,
            source,
            config,
            str(tokenizer) if tokenizer else None,
            allow_nonfinite,
            teacher,
            str(save_trained) if save_trained else None,
            keep_history,
        ),
    )


def _export(
    recipe,
    out_dir: str,
    source,
    force: bool,
    replace_any: bool,
    allow_nonfinite: bool,
    verifiable: bool,
    *,
    progress,
    cancel,
):
    from core.pipeline import export_recipe
    from core.process import run_in_child

    return (
        yield from run_in_child(
            export_recipe,
            recipe,
            out_dir,
            source=source,
            force=force,
            replace_any=replace_any,
            allow_nonfinite=allow_nonfinite,
            verifiable=verifiable,
            progress=progress,
            cancel=cancel,
        )
    )


def export_job(
    recipe,
    out_dir: str | Path,
    source=None,
    *,
    force: bool = False,
    replace_any: bool = False,
    allow_nonfinite: bool = False,
    verifiable: bool = False,
) -> Job:
    """Materialise and write an HF folder atomically (the recipe decides dtype and shards), in a
    child process, which plans the recipe again (milliseconds) rather than receive a plan.
    ``force`` replaces an earlier Graft export, ``replace_any`` any folder (never the source);
    ``allow_nonfinite`` exports a source with NaN/Inf weights; ``verifiable`` records every
    source shard's SHA-256 (:mod:`core.provenance`)."""
    return Job(
        f"export → {Path(out_dir).name}",
        partial(_export, recipe, str(out_dir), source, force, replace_any, allow_nonfinite, verifiable),
    )


def load_recipe(path: str | Path):
    """Read a recipe file (small JSON; safe on the GUI thread, no tensors)."""
    from core.recipe import Recipe

    return Recipe.load(path)


# -- leaderboard, history, trained weights ---------------------------------------------------
def add_history(kind: str, key: str, payload: dict) -> Path | None:
    """Keep a finished run in :class:`core.history.History`; a failure to write is logged, not
    raised (the run's result on screen matters more than its copy on disk)."""
    from core.errors import GraftError
    from core.history import History

    try:
        return History().add(kind, key, payload)
    except (OSError, GraftError) as exc:
        log.warning("could not keep the %s in the history: %s", kind, exc)
        return None


def history_keys(recipe) -> dict[str, str]:
    """The history keys of ``recipe``: ``leaderboard`` (source, revision, target sizes, seed: the
    question a leaderboard answers, whatever the strategy), ``validation`` (the whole recipe) and
    ``materialised`` (the whole recipe but its validation options)."""
    from core.history import recipe_key

    return {what: recipe_key(recipe, what=what) for what in ("leaderboard", "validation", "materialised")}


def _history(recipe, *, progress, cancel) -> list[dict]:
    from core.history import History

    keys = history_keys(recipe)
    history = History()
    entries = [
        *history.entries(key=keys["leaderboard"], kind="leaderboard"),
        *history.entries(key=keys["validation"], kind="validation"),
    ]
    return sorted(entries, key=lambda e: str(e.get("created") or ""), reverse=True)


def history_job(recipe) -> Job:
    """Read the history of ``recipe``'s target: its leaderboards and the exact recipe's validations,
    newest first."""
    return Job("read the history", partial(_history, recipe))


def _runs(source: str, *, progress, cancel) -> list[dict]:
    from core.runs import runs_of_source

    return runs_of_source(source)


def runs_job(source: str) -> Job:
    """Read every run of ``source`` kept in the history (all its recipes, every kind), newest first."""
    return Job("read the runs", partial(_runs, str(source)))


def _compare(
    recipe,
    source,
    specs: list[str],
    config,
    tokenizer: str | None,
    quick_steps: int | None,
    keep_history: bool,
    allow_nonfinite: bool,
    *,
    progress,
    cancel,
):
    from core.leaderboard import compare_steps, parse_candidates
    from core.process import run_in_child

    progress(-1.0, "reading the candidates")
    candidates = parse_candidates(recipe, list(specs))
    cancel.check()
    progress(-1.0, "starting the training process")
    board = yield from run_in_child(
        compare_steps,
        recipe,
        candidates,
        config,
        source=source,
        tokenizer=tokenizer,
        quick_steps=quick_steps,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
        cancel=cancel,
    )
    data = board.to_dict()
    path = add_history("leaderboard", history_keys(recipe)["leaderboard"], data) if keep_history else None
    return Compared(data, str(path) if path is not None else None)


def compare_job(
    recipe,
    source,
    specs: list[str],
    config,
    tokenizer: str | Path | None = None,
    *,
    quick_steps: int | None = None,
    keep_history: bool = False,
    allow_nonfinite: bool = False,
) -> Job:
    """Train every candidate start of ``recipe``'s target (``specs``: see
    ``core.leaderboard.parse_candidates``) and the baseline on the same batches, in a child
    process; yields ``StepMetrics``, returns :class:`Compared` (kept in the history under the
    recipe's leaderboard key when ``keep_history``)."""
    return Job(
        f"compare {len(specs)} starts",
        partial(
            _compare,
            recipe,
            source,
            list(specs),
            config,
            str(tokenizer) if tokenizer else None,
            quick_steps,
            keep_history,
            allow_nonfinite,
        ),
    )


def trained_run_folder() -> Path:
    """A new folder name for one validation's trained weights: ``trained/<time>`` next to the
    history's root (it does not exist yet; the validation creates it)."""
    from datetime import datetime

    from core.history import History

    parent = Path(History().root).parent / "trained"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = parent / stamp, 1
    while folder.exists():
        n += 1
        folder = parent / f"{stamp}-{n}"
    return folder


def _copy_trained(src: str, out: str, source, *, progress, cancel) -> Path:
    import shutil

    from core.budget import check_disk
    from core.errors import ExportError
    from core.outdir import AtomicFolder, protected_paths
    from core.training.save import TRAINED

    folder = Path(src)
    if not folder.is_dir():
        raise ExportError(
            f"the trained weights in {folder} are gone; run the validation again with 'Keep trained weights' ticked"
        )
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    total = sum(p.stat().st_size for p in files)
    # never over the model's source, nor over (or inside) the folder being copied
    protect = (*(protected_paths(source) if source is not None else ()), folder)
    check_disk(total, Path(out))
    done = 0
    with AtomicFolder(out, kind=TRAINED, protect=protect) as tmp:
        for path in files:
            cancel.check()
            target = tmp / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            done += path.stat().st_size
            progress(done / max(total, 1), f"copying {path.name}")
    return Path(out).absolute()


def export_trained_job(trained: str | Path, out_dir: str | Path, source=None) -> Job:
    """Copy a trained arm's folder (``report.saved[arm]``) to ``out_dir`` atomically, refused as
    an export is (core.outdir: never the source, never over a folder that is not empty)."""
    return Job(f"export trained → {Path(out_dir).name}", partial(_copy_trained, str(trained), str(out_dir), source))


# -- checkpoint compare ----------------------------------------------------------------------
def _diff(location_a: str, location_b: str, *, progress, cancel):
    from core.process import run_in_child
    from core.sources import open_source
    from core.stats.diff import DIFF_METRICS, diff_checkpoints

    progress(-1.0, "opening the checkpoints")
    a = open_source(location_a, progress=progress, cancel=cancel)
    b = open_source(location_b, progress=progress, cancel=cancel)
    cancel.check()
    diff = yield from run_in_child(diff_checkpoints, a, b, progress=progress, cancel=cancel)
    return Diffed(a, b, diff, diff.table(), dict(DIFF_METRICS))


def checkpoint_diff_job(location_a: str, location_b: str) -> Job:
    """Open two checkpoints (anything ``open_source`` takes) and measure every tensor pair, in a
    child process; returns :class:`Diffed`."""
    return Job("compare checkpoints", partial(_diff, str(location_a), str(location_b)))


def _pair_detail(a, b, name: str, *, progress, cancel):
    from core.stats.diff import pair_detail

    prepare_torch()
    return pair_detail(a, b, name)


def pair_detail_job(a, b, name: str) -> Job:
    """One pair of two opened checkpoints: distances, overlaid histograms, both spectra."""
    return Job(f"compare {name}", partial(_pair_detail, a, b, name))
