"""Recipe → source → plan → materialised tensors → export folder: the jobs both faces run."""

from __future__ import annotations

import logging
from pathlib import Path

from core import __version__
from core.export import ExportEntry, default_model_card, export_checkpoint, mlp_metadata
from core.jobs import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.plan import Plan, make_plan
from core.recipe import Recipe
from core.sources import Source, open_source
from core.strategies.scores import score_fn
from core.transfer import fill_tensor, output_dtype

log = logging.getLogger(__name__)

#: run-cache entries that are plain JSON and belong in the exported recipe.
RECORDED_CACHE_KEYS = ("fits", "wave_error")


def open_recipe_source(recipe: Recipe, **kw) -> Source:
    location = recipe.source if recipe.revision is None else f"{recipe.source}@{recipe.revision}"
    return open_source(location, **kw)


def plan_recipe(recipe: Recipe, source: Source | None = None) -> tuple[Plan, Source]:
    """Open the recipe's source (unless given) and compute its plan."""
    source = source or open_recipe_source(recipe)
    plan = make_plan(source, recipe.sizes, values=recipe.values, index=recipe.index,
                     layers=recipe.layers, seed=recipe.seed, score_fn=score_fn(source))
    return plan, source


def export_entries(plan: Plan, dtype: str | None) -> list[ExportEntry]:
    return [ExportEntry(t.name, tuple(t.shape), output_dtype(t, dtype)) for t in plan.tensors]


def provenance(source: Source) -> dict:
    """Identity of the source: where it came from and a SHA-256 of every shard."""
    return {"identity": dict(source.identity), "shards": source.file_hashes()}


def export_recipe(recipe: Recipe, out_dir: str | Path, *, source: Source | None = None, plan: Plan | None = None,
                  force: bool = False, progress: ProgressFn = no_progress,
                  cancel: CancelToken = NEVER_CANCELLED) -> Path:
    """Materialise the recipe's target tensor by tensor and write an HF folder atomically.

    Returns:
        The export folder (absolute).
    """
    if plan is None:
        plan, source = plan_recipe(recipe, source)
    elif source is None:
        source = open_recipe_source(recipe)
    cache: dict = {}
    by_name = {t.name: t for t in plan.tensors}

    written = recipe.to_dict()
    written["provenance"] = provenance(source)

    def produce(name: str):
        out = fill_tensor(plan, by_name[name], source, device=recipe.device, cache=cache)
        # export_checkpoint writes the recipe after the last tensor, so what strategies fitted
        # on the way (distribution parameters, WAVE reconstruction errors) lands in it.
        for key in RECORDED_CACHE_KEYS:
            if key in cache:
                written["provenance"][key] = cache[key]
        return out

    metadata = {"graft.version": __version__}
    config = dict(plan.target_config)
    if plan.family == "mlp":
        metadata.update(mlp_metadata(config["widths"], config["activation"]))
        config = None
    else:
        config.pop("_name_or_path", None)
        if recipe.dtype:
            config["dtype"] = recipe.dtype
    default = recipe.values["default"]
    card = default_model_card({
        "source": source.display_name,
        "revision": source.identity.get("revision"),
        "family": plan.family,
        "target": {k: v for k, v in plan.target_sizes.items() if k not in ("one", "qkv")},
        "strategy": default["method"] + "".join(f", {r}: {c['method']}" for r, c in recipe.values.items() if r != "default"),
        "parameters": default.get("params") or {},
        "seed": recipe.seed,
        "dtype": recipe.dtype,
    })
    out = export_checkpoint(
        Path(out_dir), entries=export_entries(plan, recipe.dtype), produce=produce, config=config,
        aux_files=source.aux_files(), recipe=written, model_card=card, metadata=metadata,
        max_shard_size=recipe.max_shard_size, force=force, progress=progress, cancel=cancel,
    )
    return out


def validate_recipe_steps(
    recipe: Recipe,
    source: Source | None = None,
    config=None,
    *,
    tokenizer: str | Path | None = None,
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
    """
    from core.training import Arm, ValidationConfig, validation_steps
    from core.transfer import build_state_dict

    progress(-1.0, "materialising the target")
    plan, source = plan_recipe(recipe, source)
    cancel.check()
    state = build_state_dict(plan, source, device="cpu", dtype="float32", cancel=cancel)
    arms = [Arm.from_state("transferred", plan.target_config, state, f"{recipe.values['default']['method']} transfer of {source.display_name}"),
            Arm.baseline(plan.target_config)]
    if config is None:
        config = ValidationConfig(**(recipe.validation or {}))
    return (yield from validation_steps(arms, config, tokenizer=tokenizer or source.root, progress=progress, cancel=cancel))


def materialise_summaries(
    recipe: Recipe,
    source: Source | None = None,
    *,
    device: str = "cpu",
    dtype: str | None = None,
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
    by_name = {t.name: t for t in plan.tensors}
    return [summarise(by_name[name], tensor, source)
            for name, tensor in materialize(plan, source, device=device, dtype=dtype, progress=progress, cancel=cancel)]
