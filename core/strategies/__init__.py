"""Transfer strategies, found by name through one registry (``base.STRATEGIES``, a ``core.registry.Registry``).

Adding a strategy is adding a module here and its tests: import it below so it registers.
"""

from core.strategies import (  # noqa: F401  (registration side effects)
    baseline,
    covariance,
    distribution,
    growth,
    index,
    mean_field,
    mimetic,
    select,
    templates,
)
from core.strategies.base import STRATEGIES, get, make_params, names, params_to_dict

__all__ = ["STRATEGIES", "get", "make_params", "names", "params_to_dict"]
