"""Baseline: the architecture's own default initialisation (METHODS.md §8), for A/B runs.

A fresh model is built once per run from the plan's target config by the family's spec
(:meth:`core.architectures.ArchitectureSpec.build_model`: for a transformers family the class
named in its ``architectures``, else ``AutoModel``; for the generic MLP its ``nn.Sequential``, so
PyTorch's default ``nn.Linear`` init) under ``torch.manual_seed`` of a seed derived from the recipe
seed, so ``_init_weights`` does exactly what ``transformers`` does; it is cached in ``ctx.cache``
and each target tensor is looked up by name (a plan name with or without the model's base prefix,
``bert.`` …, or as the spec maps it: the MLP's k-th Linear). This holds the whole target model in
memory once.
"""

from __future__ import annotations

from core.errors import StrategyError
from core.strategies import base as registry
from core.strategies.base import ValueStrategy, register


def _fresh_state(plan) -> dict:
    import torch

    from core.architectures import FAMILIES

    spec, config = FAMILIES.get(plan.family), dict(plan.target_config)
    seed = registry.derive_seed(plan.seed, "baseline")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build_model(config)
    own = model.state_dict()
    state = _checkpoint_form(model, own)
    keys = spec.model_keys(config, [t.name for t in plan.tensors])
    if keys is not None:
        state = {**state, **{name: own[key] for name, key in keys.items() if key in own}}
    state = {k: v.detach().to(torch.float32) if v.is_floating_point() else v.detach() for k, v in state.items()}
    return {"state": state, "prefix": getattr(model, "base_model_prefix", "") or ""}


def _checkpoint_form(model, own: dict) -> dict:
    """The model's state dict under the names and shapes its checkpoints use: transformers 5 fuses
    an MoE's per-expert matrices into stacked parameters (and renames some modules) when it loads,
    and converts them back when it saves (``revert_weight_conversion``, what ``save_pretrained``
    calls); the plan's tensors are checkpoint tensors. Unchanged for models without conversions."""
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # transformers 4, or a plain torch module: the state dict is the checkpoint's
        return dict(own)
    try:
        return revert_weight_conversion(model, dict(own))
    except (AttributeError, TypeError):  # not a transformers model (the generic MLP)
        return dict(own)


def lookup(fresh: dict, name: str):
    """The fresh tensor for plan name ``name`` (with or without the base-model prefix)."""
    state, prefix = fresh["state"], fresh["prefix"]
    candidates = [name]
    if prefix:
        candidates += [f"{prefix}.{name}", name.removeprefix(f"{prefix}.")]
    for c in candidates:
        if c in state:
            return state[c]
    for c in state:  # a prefix the spec knows but the fresh class lacks (``transformer.`` …)
        if name.endswith("." + c) or c.endswith("." + name):
            return state[c]
    return None


@register
class Baseline(ValueStrategy):
    name = "baseline"
    summary = "the architecture's own default init (transformers' _init_weights, PyTorch's for the MLP)"
    default_index = "cyclic"
    can_grow = True
    from_source = False  # the target's own init: its scale is the target's already

    def fill(self, params, ctx):
        key = ("baseline", ctx.plan.seed)
        if key not in ctx.cache:
            ctx.cache[key] = _fresh_state(ctx.plan)
        t = ctx.tensor
        out = lookup(ctx.cache[key], t.name)
        if out is None:
            raise StrategyError(
                f"the default-initialised {ctx.plan.family} model has no tensor {t.name}; "
                "assign another strategy to its role"
            )
        if tuple(out.shape) != ctx.shape:
            raise StrategyError(
                f"the default-initialised tensor {t.name} has shape {tuple(out.shape)}, the plan expects {ctx.shape}"
            )
        return out.clone()
