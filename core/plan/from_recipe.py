"""A recipe's plan, without importing torch or transformers unless the plan needs tensor data.

``graft plan`` and ``graft transfer --dry-run`` plan through here (issue 17: they start in well
under a second). :mod:`core.pipeline` imports the export writer, and with it torch, at import
time, so this module must not import :mod:`core.pipeline`; everything it imports is torch-free,
and torch comes in only where a draw or a tensor needs it (a random index draw, neuron scores,
calibration data).
"""

from __future__ import annotations

from core.architectures.upcycle import upcycled
from core.plan.make import make_plan
from core.plan.model import Plan
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.recipe import Recipe
from core.sources import Source, open_source
from core.strategies.scores import score_fn


def open_recipe_source(recipe: Recipe, **kw) -> Source:
    """The recipe's source (at its revision), opened; a dense source asked for experts is an MoE view of it."""
    location = recipe.source if recipe.revision is None else f"{recipe.source}@{recipe.revision}"
    return upcycled(open_source(location, **kw), recipe.sizes)


def plan_recipe(
    recipe: Recipe,
    source: Source | None = None,
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> tuple[Plan, Source]:
    """Open the recipe's source (unless given) and compute its plan.

    Data-aware choices (the ``by_activation`` index strategy, the ``by_influence`` layer map) run
    the source on calibration data first (:mod:`core.calibration`, cached on disk): that pass
    reports to ``progress`` and stops at ``cancel``. So does the index parameter ``experts=usage``
    (MoE experts kept by the routers' usage), only when a plan asks for the experts' scores.

    Returns:
        The plan and the opened source.
    """
    source = upcycled(source or open_recipe_source(recipe), recipe.sizes)
    index = recipe.index or {}
    by_activation = index.get("method") == "by_activation"
    by_usage = (index.get("params") or {}).get("experts") == "usage"
    scores, layer_scores = score_fn(source), None
    if by_activation or by_usage or recipe.layers == "by_influence":
        # by_influence alone needs only Block Influence, which any rule measures: the cheap one.
        from core.architectures import detect
        from core.calibration import activation_score_fn, expert_usage_score_fn, lazy_profile
        from core.strategies import make_params
        from core.strategies.index import activation_rule

        p = make_params("by_activation", index.get("params") if by_activation else {"rule": "magnitude"})
        rule = activation_rule(p.rule, detect(source)[0].family)
        validation = recipe.validation or {}
        profile = lazy_profile(
            source,
            dataset=p.dataset or None,
            samples=p.samples,
            seq_len=p.seq_len,
            rule=rule,
            seed=validation.get("seed", 0),
            eval_fraction=validation.get("eval_fraction", 0.1),
            progress=progress,
            cancel=cancel,
        )
        if by_activation:
            scores = activation_score_fn(profile)
        elif by_usage:
            scores = expert_usage_score_fn(profile, scores)
        if recipe.layers == "by_influence":
            layer_scores = lambda: profile().block_influence  # noqa: E731  (measured only if layers are dropped)
    plan = make_plan(
        source,
        recipe.sizes,
        values=recipe.values,
        index=recipe.index,
        layers=recipe.layers,
        seed=recipe.seed,
        score_fn=scores,
        layer_scores=layer_scores,
        overrides=recipe.config,
        target_family=recipe.target_family,
    )
    return plan, source
