"""Strategy interfaces and the one registry: index strategies pick neurons, value strategies fill tensors.

Every strategy is a class with a ``name``, a ``kind`` ("index" or "value"), a one-line
``summary`` and a frozen ``Params`` dataclass whose fields carry ``help``, ``min``, ``max`` and
``choices`` in their metadata; the GUI forms, CLI flags and the recipe schema all derive from it.
Registering is decorating the class with :func:`register`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import StrategyError

_REGISTRY: dict[str, Any] = {}


def param(default: Any, *, help: str, min: float | None = None, max: float | None = None,
          choices: tuple | None = None) -> Any:
    """A dataclass field with the metadata the forms and the recipe validation read."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoParams:
    """For strategies without parameters."""


def register(cls):
    """Class decorator: instantiate and register a strategy under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"strategy {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_all() -> None:
    # Importing the package registers every strategy module listed there.
    import core.strategies  # noqa: F401


def get(name: str):
    """The registered strategy ``name``.

    Raises:
        StrategyError: unknown name (the message lists the known ones).
    """
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StrategyError(f"unknown strategy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names(kind: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def make_params(name: str, values: dict | None = None):
    """Build and validate ``get(name).Params`` from a plain dict (recipe / CLI / form)."""
    strategy = get(name)
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(strategy.Params)}
    unknown = set(values) - set(fields)
    if unknown:
        raise StrategyError(f"strategy {name!r} has no parameter(s) {', '.join(sorted(unknown))}; it takes: {', '.join(fields) or 'none'}")
    for key, value in values.items():
        meta = fields[key].metadata
        _check_type(name, key, value, fields[key].default)
        if meta.get("choices") and value not in meta["choices"]:
            raise StrategyError(f"{name}.{key} must be one of {', '.join(map(str, meta['choices']))}, not {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if meta.get("min") is not None and value < meta["min"]:
                raise StrategyError(f"{name}.{key} must be ≥ {meta['min']}, not {value}")
            if meta.get("max") is not None and value > meta["max"]:
                raise StrategyError(f"{name}.{key} must be ≤ {meta['max']}, not {value}")
    return strategy.Params(**values)


def _check_type(strategy: str, key: str, value, default) -> None:
    """A parameter keeps its default's JSON type (an int may stand for a float), and floats are finite."""
    import math

    if default is None or isinstance(default, (list, tuple, dict)):
        return
    kind = type(default)
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise StrategyError(f"{strategy}.{key} must be a {kind.__name__} like {default!r}, not {value!r}")
    if kind is float and not math.isfinite(value):
        raise StrategyError(f"{strategy}.{key} must be a finite number, not {value}")


def params_to_dict(params) -> dict:
    return dataclasses.asdict(params)


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the recipe seed and a purpose, independent of evaluation order."""
    text = "/".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *parts: object, device: str = "cpu"):
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *parts))
    return g


class IndexStrategy:
    """Chooses, for one named dimension, which source index feeds each target index."""

    kind: ClassVar[str] = "index"
    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: can produce more target indices than source indices (duplicates).
    can_grow: ClassVar[bool] = False
    #: needs per-neuron scores (norms) read from the source.
    needs_scores: ClassVar[bool] = False

    def draw(self, params, n_source: int, n_target: int, *, gen, scores=None) -> list[int]:
        """Return ``n_target`` source indices in ``[0, n_source)``.

        Args:
            params: this strategy's Params.
            n_source: N, the source size of the dimension.
            n_target: Ñ, the target size.
            gen: a seeded ``torch.Generator`` for this dimension.
            scores: shape (N,) non-negative neuron scores when ``needs_scores``.
        """
        raise NotImplementedError


class ValueStrategy:
    """Fills one target tensor given the dimension maps (a :class:`FillContext`)."""

    kind: ClassVar[str] = "value"
    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: the index strategy used when the recipe does not name one.
    default_index: ClassVar[str] = "first_n"
    #: can fill a target larger than the source along some dimension, or new layers.
    can_grow: ClassVar[bool] = False
    #: needs no source tensor at all (mimetic, baseline): usable for inserted layers.
    sourceless: ClassVar[bool] = False
    #: the roles it can fill (None: any); a plan that gives it another role is refused.
    roles: ClassVar[tuple[str, ...] | None] = None

    #: the strategy a model-wide choice falls back to for a tensor it cannot fill (None: ``select``
    #: when the plan only shrinks, ``mean_field`` when it grows; see ``core.plan``).
    fallback: ClassVar[str | None] = None

    def cannot_fill(self, params, tensor) -> str | None:
        """Why this strategy cannot fill the planned ``tensor`` (a :class:`core.plan.TensorPlan`), or None.

        Checked when the plan is made: a model-wide (``default``) choice then falls back for that
        tensor, a role the user chose it for explicitly is refused with this reason.
        """
        if self.roles is not None and tensor.kind != "buffer" and tensor.role not in self.roles:
            return f"{self.name} only fills roles {', '.join(self.roles)}"
        return None

    def fill(self, params, ctx):
        """Return the target tensor, shape ``ctx.shape`` (any float dtype; export casts)."""
        raise NotImplementedError


#: A named-dimension map lookup used by contexts: dim key → list of source indices.
DimLookup = Callable[[str], list[int] | None]
