"""Strategy interfaces and the one registry: index strategies pick neurons, value strategies fill tensors.

Every strategy is a class with a ``name``, a ``kind`` ("index" or "value"), a one-line
``summary`` and a frozen ``Params`` dataclass declared with :func:`core.params.param` (``help``,
``min``, ``max``, ``choices``); the recipe checks, the GUI forms and ``graft strategies NAME``
all derive from it. Registering is decorating the class with :func:`register`, which adds an
instance to :data:`STRATEGIES` (a :class:`core.registry.Registry`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import StrategyError
from core.params import build, param
from core.registry import Registry

#: Every strategy, index and value, by name (instances; the modules register on the first lookup).
STRATEGIES: Registry[Any] = Registry(
    "strategy", StrategyError, modules=("core.strategies",), hint="`graft strategies NAME` describes one"
)


@dataclass(frozen=True)
class NoParams:
    """For strategies without parameters."""


def register(cls):
    """Class decorator: instantiate and register a strategy under ``cls.name``."""
    STRATEGIES.add(cls.name, cls())
    return cls


def get(name: str):
    """The registered strategy ``name``.

    Raises:
        StrategyError: unknown name (the message lists the known ones).
    """
    return STRATEGIES.get(name)


def names(kind: str | None = None) -> list[str]:
    """Registered strategy names (sorted), optionally of one kind ("index" or "value")."""
    return sorted(n for n, s in STRATEGIES.items() if kind is None or s.kind == kind)


def make_params(name: str, values: dict | None = None):
    """Build and validate ``get(name).Params`` from a plain dict (recipe / CLI / form).

    Raises:
        StrategyError: an unknown strategy or parameter, or a value of the wrong type or range.
    """
    return build(get(name).Params, values, owner=name)


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


#: how an index strategy draws a mixture-of-experts layer's ``experts`` map (see :class:`ExpertOptions`).
EXPERT_CHOICES = ("same", "usage")


@dataclass(frozen=True)
class ExpertOptions:
    """The options every index strategy has for mixture-of-experts layers (its Params inherit them)."""

    experts: str = param(
        "same",
        choices=EXPERT_CHOICES,
        help="MoE layers: same: experts drawn like every other dimension (by_activation's rule for them is "
        "usage); usage: keep the experts the router gives the most weight (mean top-k routing weight per "
        "token) on calibration data, in source order, and grow by copying the most used first; the calibration "
        "pass is by_activation's (its samples, seq_len, dataset under by_activation, their defaults otherwise)",
    )
    expert_noise: float = param(
        0.0,
        help="MoE layers grown by copying experts: Gaussian noise of this std, relative to each tensor's std, on "
        "every copy after an expert's first (its gate, up and down weights; router rows stay equal), to break "
        "the tie between identical experts. Copies are then no longer exact: each copy's output moves by about "
        "this fraction, the model's by much less (the first copies stay exact; a tiny mixtral 4→8 experts with "
        "top-k 4 and noise 0.01: logits moved 0.07%, linearly in the noise); 0 keeps the copies exact",
        min=0.0,
        max=1.0,
    )


class IndexStrategy:
    """Chooses, for one named dimension, which source index feeds each target index."""

    kind: ClassVar[str] = "index"
    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type] = ExpertOptions
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
    #: the roles it can fill (None: any); a plan that gives it another role is refused.
    roles: ClassVar[tuple[str, ...] | None] = None
    #: its values come from the source's (copied, averaged, or drawn from its statistics), so they
    #: carry the source's scale: a Gemma embedding is then divided by √(Ñ/N) (``core.transfer``).
    from_source: ClassVar[bool] = True

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

    def reads(self, params, ctx) -> list[tuple]:
        """The ``(name, rows, cols)`` requests :meth:`fill` will make of ``ctx.source.read_gather``,
        where they are known before it runs (none by default).

        A transfer reads them for the next tensor while this one is computed
        (:class:`core.sources.prefetch.Prefetcher`): a request left out here is read when asked,
        one listed but never asked is dropped. Only the timing changes, never the bytes.
        """
        return []


def gather_reads(ctx) -> list[tuple]:
    """What ``ctx.gather()`` will read (for :meth:`ValueStrategy.reads`): one request, or none
    for a scalar or a tensor without a source."""
    if ctx.tensor.source_name is None:
        return []
    request = ctx.gather_request()
    return [] if request is None else [request]
