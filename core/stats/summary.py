"""A few cheap numbers per materialised tensor, for the model-wide layer × metric overview."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.stats.moments import moments

#: Rows of a source matrix read for its statistics (a slice read, not the whole tensor).
SOURCE_ROWS = 8192
#: Elements each moment estimate looks at (a seeded subsample of larger tensors).
MAX_ELEMENTS = 100_000


@dataclass
class TensorSummary:
    """One materialised tensor against its source: spread, centre, tails."""

    name: str
    role: str
    layer: int | None
    std: float
    source_std: float
    mean: float
    excess_kurtosis: float


def read_source_rows(source, name: str):
    """The source tensor ``name``, or its first :data:`SOURCE_ROWS` rows when it is taller."""
    info = source.info(name)
    if len(info.shape) >= 2 and info.shape[0] > SOURCE_ROWS:
        return source.read_slice(name, (slice(0, SOURCE_ROWS),))
    return source.read(name)


def summarise(tensor_plan, target, source) -> TensorSummary:
    """Subsampled, seeded moments of ``target`` and the std of its source tensor."""
    if not target.is_floating_point():
        return TensorSummary(
            tensor_plan.name, tensor_plan.role, tensor_plan.layer, math.nan, math.nan, math.nan, math.nan
        )
    m = moments(target, max_elements=MAX_ELEMENTS)
    s_std = math.nan
    if tensor_plan.source_name is not None and source.info(tensor_plan.source_name).is_float:
        s_std = moments(read_source_rows(source, tensor_plan.source_name), max_elements=MAX_ELEMENTS).std
    return TensorSummary(tensor_plan.name, tensor_plan.role, tensor_plan.layer, m.std, s_std, m.mean, m.excess_kurtosis)
