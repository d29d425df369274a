"""Weight selection (Xu et al., ICLR 2024, "Initializing Models with Larger Ones").

Layer selection plus *consistent* element selection along every named dimension: each target
tensor is the source tensor gathered through the shared dimension maps, so coupled rows and
columns stay together and the small network is a sub-network of the large one. No rescaling.
Shrinking only: a larger target is refused by the plan with the strategies that can grow.
"""

from __future__ import annotations

from core.strategies.base import ValueStrategy, gather_reads, register


@register
class Select(ValueStrategy):
    name = "select"
    summary = "weight selection: gather the source through the shared dimension maps (shrink only)"
    default_index = "first_n"

    def fill(self, params, ctx):
        return ctx.gather()

    def reads(self, params, ctx):
        return gather_reads(ctx)
