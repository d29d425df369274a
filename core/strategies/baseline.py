"""Baseline: the architecture's own default initialisation (METHODS.md §8), for A/B runs.

Transformers families: a fresh model is built once per run from the plan's target config —
the class named in its ``architectures`` (else ``AutoModel``) — under ``torch.manual_seed`` of a
seed derived from the recipe seed, so ``_init_weights`` does exactly what ``transformers`` does;
it is cached in ``ctx.cache`` and each target tensor is looked up by name (a plan name with or
without the model's base prefix, ``bert.`` …). This holds the whole target model in memory once.

The generic MLP: PyTorch's default ``nn.Linear`` init (Kaiming-uniform weights, uniform biases),
one seeded Linear per layer.
"""

from __future__ import annotations

from core.errors import StrategyError
from core.strategies import base as registry
from core.strategies.base import ValueStrategy, register


def _fresh_state(plan) -> dict:
    import torch

    config = dict(plan.target_config)
    seed = registry.derive_seed(plan.seed, "baseline")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if plan.family == "mlp":
            return _mlp_state(config)
        import transformers
        from transformers import AutoConfig, AutoModel

        model_type = config.pop("model_type")
        cfg = AutoConfig.for_model(model_type, **{k: v for k, v in config.items() if k != "transformers_version"})
        arch = (config.get("architectures") or [None])[0]
        cls = getattr(transformers, arch, None) if arch else None
        model = cls(cfg) if cls is not None else AutoModel.from_config(cfg)
        state = {k: v.detach().to(torch.float32) if v.is_floating_point() else v.detach()
                 for k, v in model.state_dict().items()}
        prefix = getattr(model, "base_model_prefix", "") or ""
    return {"state": state, "prefix": prefix}


def _mlp_state(config: dict) -> dict:
    import torch

    widths, indices = config["widths"], config.get("module_indices") or [2 * i for i in range(len(config["widths"]) - 1)]
    state = {}
    for i, fan_in, fan_out in zip(indices, widths[:-1], widths[1:]):
        layer = torch.nn.Linear(fan_in, fan_out)
        state[f"{i}.weight"], state[f"{i}.bias"] = layer.weight.detach(), layer.bias.detach()
    return {"state": state, "prefix": ""}


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
    sourceless = True

    def fill(self, params, ctx):
        key = ("baseline", ctx.plan.seed)
        if key not in ctx.cache:
            ctx.cache[key] = _fresh_state(ctx.plan)
        t = ctx.tensor
        out = lookup(ctx.cache[key], t.name)
        if out is None:
            raise StrategyError(f"the default-initialised {ctx.plan.family} model has no tensor {t.name}; "
                                "assign another strategy to its role")
        if tuple(out.shape) != ctx.shape:
            raise StrategyError(f"the default-initialised tensor {t.name} has shape {tuple(out.shape)}, "
                                f"the plan expects {ctx.shape}")
        return out.clone()
