"""Recipe → source → plan → materialised tensors → export folder: the jobs both faces run."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from core import __version__
from core.architectures import FAMILIES
from core.budget import check_disk
from core.devices import check_device_available
from core.errors import SourceError
from core.export import ExportEntry, default_model_card, export_checkpoint
from core.outdir import check_out_dir, protected_paths
from core.plan import Plan
from core.plan.from_recipe import open_recipe_source, plan_recipe  # noqa: F401  (re-exported)
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.provenance import BackgroundHashes, ReadLedger, check_finite, scans_cached, verify_recorded_hashes
from core.provenance import record as record_provenance
from core.recipe import Recipe
from core.sources import Source
from core.transfer import LEDGER_KEY, ReadAhead, output_dtype

log = logging.getLogger(__name__)

#: run-cache entries that are plain JSON and belong in the exported recipe.
RECORDED_CACHE_KEYS = ("fits", "wave_error")


#: config keys that make transformers import code from the source's repository.
REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code")


def strip_remote_code(data: dict) -> list[str]:
    """Remove the remote-code keys from a config dict in place; returns the keys removed.

    Graft's exports hold weights for transformers' own classes, so a source's ``auto_map``
    (which would import its repository's modelling code) must not come along.
    """
    removed = [key for key in REMOTE_CODE_KEYS if key in data]
    for key in removed:
        del data[key]
    return removed


def _without_remote_code(path: Path) -> tuple[str, list[str]] | None:
    """``(edited JSON text, keys removed)`` for an aux JSON file naming remote code, else None."""
    if path.suffix != ".json":
        return None
    from core.sources.trust import load_json

    try:
        data = load_json(path, None, path.name)
    except SourceError:  # an unreadable aux file is copied as it is, like any other
        return None
    removed = strip_remote_code(data) if isinstance(data, dict) else []
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n", removed) if removed else None


def export_entries(plan: Plan, dtype: str | None) -> list[ExportEntry]:
    return [ExportEntry(t.name, tuple(t.shape), output_dtype(t, dtype)) for t in plan.tensors]


def trust_source(
    recipe: Recipe,
    source: Source,
    *,
    allow_changed_source: bool = False,
    allow_nonfinite: bool = False,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> None:
    """Before any weight is transferred: the recipe's device exists here, the recipe's recorded
    hashes match the source, every value is finite.

    Raises:
        RecipeError: the source changed since the recipe was recorded (unless allowed).
        SourceError: NaN/Inf weights (unless allowed).
    """
    check_device_available(recipe.device)
    # The scan is a phase before the job's own work: its fraction never reports "done".
    check_finite(
        source, allow_nonfinite=allow_nonfinite, cancel=cancel, progress=lambda f, m: progress(min(f, 0.999), m)
    )
    verify_recorded_hashes(recipe.provenance, source, allow_changed=allow_changed_source)


def export_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    source: Source | None = None,
    plan: Plan | None = None,
    force: bool = False,
    replace_any: bool = False,
    allow_changed_source: bool = False,
    allow_nonfinite: bool = False,
    verifiable: bool = False,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Path:
    """Materialise the recipe's target tensor by tensor and write an HF folder atomically.

    The source is checked against the recipe's recorded provenance and for NaN/Inf values
    (:mod:`core.provenance`): at once where that needs no read (the scan cache, file sizes and
    headers), else on the way, on the bytes the transfer reads, before the export is made visible;
    ``allow_changed_source`` / ``allow_nonfinite`` go on anyway. ``verifiable`` records every
    shard's SHA-256, hashed beside the transfer when not known already.

    Returns:
        The export folder (absolute).
    """
    if plan is None:
        plan, source = plan_recipe(recipe, source)
    elif source is None:
        source = open_recipe_source(recipe)
    # --out first (core.outdir: never the source, --force replaces only an earlier export unless
    # replace_any): a refusal must not wait for the scan below.
    protect = protected_paths(source)
    check_out_dir(Path(out_dir), force=force, replace_any=replace_any, protect=protect)
    check_device_available(recipe.device)
    scanned = scans_cached(source)
    if scanned:  # known from the cache: no read
        check_finite(source, allow_nonfinite=allow_nonfinite)
    verify_recorded_hashes(recipe.provenance, source, allow_changed=allow_changed_source)
    written = recipe.to_dict()
    written["provenance"] = record_provenance(source)
    reads_mode = written["provenance"]["verify"] == "reads"
    hashing = BackgroundHashes(source) if verifiable and reads_mode else None
    # the read digest costs a hash of every byte read: only when a recipe (replayed or written) holds it
    wanted = (reads_mode and hashing is None) or bool((recipe.provenance or {}).get("reads"))
    ledger = ReadLedger(source, check_finite=not scanned, allow_nonfinite=allow_nonfinite, hashing=wanted)
    cache: dict = {LEDGER_KEY: ledger}
    by_name = {t.name: t for t in plan.tensors}
    last = plan.tensors[-1].name if plan.tensors else None
    reader = ReadAhead(plan, source, device=recipe.device, cache=cache)

    def produce(name: str):
        out = reader.fill(by_name[name])
        # export_checkpoint writes the recipe after the last tensor, so what strategies fitted
        # on the way (distribution parameters, WAVE reconstruction errors) lands in it.
        for key in RECORDED_CACHE_KEYS:
            if key in cache:
                written["provenance"][key] = cache[key]
        if name == last:  # every source byte is read: check them before the export is made visible
            ledger.finish()
            ledger.verify(recipe.provenance, allow_changed=allow_changed_source)
            if hashing is not None:
                shards = hashing.result()
                check_finite(source, allow_nonfinite=allow_nonfinite)  # the same pass scanned every value
                written["provenance"].pop("files", None)
                written["provenance"].update(verify="files", shards=shards)
            elif reads_mode:
                written["provenance"]["reads"] = ledger.summary()
        return out

    spec = FAMILIES.get(plan.family)
    config, family_metadata = spec.export_files(plan.target_config)
    metadata = {"graft.version": __version__, **family_metadata}
    removed: dict[str, list[str]] = {}
    if config is not None:
        if recipe.dtype:
            config["dtype"] = recipe.dtype
        dropped = strip_remote_code(config)
        if dropped:
            removed["config.json"] = dropped
    aux_files, aux_texts = [], {}
    for path in source.aux_files():
        edited = _without_remote_code(path)
        if edited is None:
            aux_files.append(path)
        else:
            aux_texts[path.name], removed[path.name] = edited
    default = recipe.values["default"]
    card = default_model_card(
        {
            "source": source.display_name,
            "revision": source.identity.get("revision"),
            "family": plan.family,
            "library": spec.library,
            "loader": spec.loader,
            "target": {k: v for k, v in plan.target_sizes.items() if k not in ("one", "qkv", "two")},
            "strategy": default["method"]
            + "".join(f", {r}: {c['method']}" for r, c in recipe.values.items() if r != "default"),
            "parameters": default.get("params") or {},
            "seed": recipe.seed,
            "dtype": recipe.dtype,
            "removed_remote_code": removed,
        }
    )
    entries = export_entries(plan, recipe.dtype)
    check_disk(sum(e.nbytes for e in entries), Path(out_dir))
    try:
        out = export_checkpoint(
            Path(out_dir),
            entries=entries,
            produce=produce,
            config=config,
            aux_files=aux_files,
            aux_texts=aux_texts,
            recipe=written,
            model_card=card,
            metadata=metadata,
            max_shard_size=recipe.max_shard_size,
            force=force,
            replace_any=replace_any,
            protect=protect,
            progress=progress,
            cancel=cancel,
        )
    finally:
        reader.close()
        ledger.close()
    return out


def validate_recipe_steps(
    recipe: Recipe,
    source: Source | None = None,
    config=None,
    *,
    tokenizer: str | Path | None = None,
    allow_changed_source: bool = False,
    allow_nonfinite: bool = False,
    teacher: bool = False,
    save_trained=None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
):
    """Materialise the recipe's target and train it against the baseline: a generator of every
    arm-step's :class:`~core.training.StepMetrics`, whose return value is the report.

    Everything comes from the recipe (and the opened ``source``, which pickles as its headers),
    so the app runs this in a child process (:func:`core.process.run_in_child`) without sending
    any tensor there: the same recipe gives the same bytes on either side.

    Args:
        config: a :class:`~core.training.ValidationConfig` (default: the recipe's validation block).
        tokenizer: the tokenizer folder (default: the source's folder).
        teacher: distil from the source (:class:`~core.training.Teacher`, built once): both arms
            add the term; the transferred arm is matched through the plan's hidden map.
        save_trained: a folder or :class:`~core.training.SaveTrained`: the trained transferred
            arm (or the named arms) written there, with the recipe; never the source.
    """
    from core.training import Arm, SaveTrained, Teacher, ValidationConfig, validation_steps
    from core.training.loop import resolve_device
    from core.training.tasks import task_for
    from core.transfer import build_state_dict

    progress(-1.0, "materialising the target")
    plan, source = plan_recipe(recipe, source)
    if config is None:
        config = ValidationConfig(**(recipe.validation or {}))
    save = SaveTrained.of(save_trained)
    if save is not None:  # refused before the scan and the training, never after them
        save = replace(
            save,
            protect=tuple(save.protect) + protected_paths(source),
            recipes={"transferred": recipe.to_dict(), **save.recipes},
        )
        save.check(["transferred", "baseline"], "baseline", [Path(tokenizer or source.root)])
    trust_source(
        recipe,
        source,
        allow_changed_source=allow_changed_source,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
        cancel=cancel,
    )
    cancel.check()
    state = build_state_dict(plan, source, device="cpu", dtype="float32", cancel=cancel)
    hidden = plan.dims.get("hidden")
    arms = [
        Arm.from_state(
            "transferred",
            plan.target_config,
            state,
            f"{recipe.values['default']['method']} transfer of {source.display_name}",
        ),
        Arm.baseline(plan.target_config),
    ]
    arms[0].teacher_map = list(hidden.index) if hidden is not None else None
    guide = None
    if teacher:
        progress(-1.0, "loading the source as the teacher")
        guide = Teacher.from_source(
            source, task_for(plan.target_config["model_type"]), device=resolve_device(config.device), seed=config.seed
        )
    return (
        yield from validation_steps(
            arms,
            config,
            tokenizer=tokenizer or source.root,
            teacher=guide,
            save_trained=save,
            progress=progress,
            cancel=cancel,
        )
    )


def materialise_summaries(
    recipe: Recipe,
    source: Source | None = None,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    allow_changed_source: bool = False,
    allow_nonfinite: bool = False,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> list:
    """Fill every target tensor of the recipe on ``device`` and summarise each against its source
    (:class:`~core.stats.TensorSummary`); the tensors are dropped as they are summarised.

    What the app's "materialise" runs (in a child process): it proves the whole target builds on
    that device and feeds the model overview, holding one tensor at a time.
    """
    from core.stats.summary import summarise
    from core.transfer import materialize

    plan, source = plan_recipe(recipe, source)
    trust_source(
        recipe,
        source,
        allow_changed_source=allow_changed_source,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
        cancel=cancel,
    )
    by_name = {t.name: t for t in plan.tensors}
    return [
        summarise(by_name[name], tensor, source)
        for name, tensor in materialize(plan, source, device=device, dtype=dtype, progress=progress, cancel=cancel)
    ]
