"""The plan: a pure, inspectable description of a transfer.

From a source spec, target sizes and strategy choices it computes — without reading tensor data
(except neuron scores when an index strategy asks for them) —

* a **layer map** (target layer j ← source layer l, or a new block when growing depth),
* one **dimension map** per named dimension (target index → source index), drawn once and
  shared by every tensor on that dimension,
* per tensor: its source tensor, target shape, role, and the strategy that fills it.

A plan is data: it serialises into the recipe, prints as a table, and materialising one tensor
from it (the live preview) costs one slice read.

- :mod:`core.plan.model`: the data classes (``Plan``, ``TargetSizes``, ``DimMap``, ``TensorPlan``).
- :mod:`core.plan.sizes`: the target sizes completed and checked.
- :mod:`core.plan.maps`: the layer map and the dimension maps.
- :mod:`core.plan.tensors`: the tensor table, fallbacks and role checks.
- :mod:`core.plan.make`: :func:`make_plan`, the steps in order.
- :mod:`core.plan.from_recipe`: ``plan_recipe``, a recipe's plan (calibration data first where a choice
  needs it), without importing torch unless a draw or a tensor does.
"""

from core.plan.make import GROWING_HINT, make_plan
from core.plan.maps import LAYER_MAPS, make_dim_maps, make_layer_map
from core.plan.model import DimMap, LayerLink, Plan, TargetSizes, TensorPlan
from core.plan.sizes import growing_dims, resolve_sizes
from core.plan.tensors import resolve_value_strategy

__all__ = [
    "GROWING_HINT",
    "LAYER_MAPS",
    "DimMap",
    "LayerLink",
    "Plan",
    "TargetSizes",
    "TensorPlan",
    "growing_dims",
    "make_dim_maps",
    "make_layer_map",
    "make_plan",
    "resolve_sizes",
    "resolve_value_strategy",
]
