"""Materialise a plan: fill every target tensor, one at a time, with its strategy.

Memory streams: each target tensor is produced from slices of its source tensor and released
before the next, so peak memory follows the largest tensor, not the model.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator

from core.architectures.spec import FAMILIES, axis_atoms, is_concat
from core.dtypes import torch_dtype
from core.errors import PlanError, StrategyError
from core.plan import Plan, TensorPlan
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.strategies import base as registry

log = logging.getLogger(__name__)


def composite_index(plan: Plan, axis: list):
    """Flat source indices for every target position of one (composite) axis, or None if identity.

    For an axis (d1, …, dk) the flat source index of target position (t1, …, tk) is
    Σ m_i[t_i] · Π_{j>i} N_j — row-major, like the tensor's memory layout. A concatenated axis
    (a list of parts, Phi-3's [Q;K;V]) is its parts' indices one after the other, each shifted by
    the part's source offset (the source sizes of the parts before it).
    """
    import torch

    if is_concat(axis):
        parts = [[plan.dims.get(k) for k in part] for part in axis]
        if all(m is None or m.is_identity for part in parts for m in part):
            return None
        out, offset = [], 0
        for keys, maps in zip(axis, parts):
            missing = [k for k, m in zip(keys, maps) if m is None]
            if missing:
                raise PlanError(f"dimension {missing[0]} has no map but shares an axis with resized ones")
            index = composite_index(plan, list(keys))
            size = math.prod(m.source_size for m in maps)
            out.append((torch.arange(size) if index is None else index) + offset)
            offset += size
        return torch.cat(out)
    maps = [plan.dims.get(k) for k in axis]
    if all(m is None or m.is_identity for m in maps):
        return None
    flat = torch.zeros(1, dtype=torch.long)
    for key, m in zip(axis, maps):
        if m is None:
            raise PlanError(f"dimension {key} has no map but shares an axis with resized ones")
        flat = flat[:, None] * m.source_size + torch.tensor(m.index, dtype=torch.long)[None, :]
        flat = flat.reshape(-1)
    return flat


#: the run cache's key for the :class:`core.provenance.ReadLedger` of an export.
LEDGER_KEY = "read_ledger"


class FillContext:
    """Everything a value strategy may use to fill one target tensor.

    Attributes:
        plan, tensor (its :class:`TensorPlan`), source, device, cache (shared by one run).
    """

    def __init__(self, plan: Plan, tensor: TensorPlan, source, *, device: str = "cpu", cache: dict | None = None):
        self.plan = plan
        self.tensor = tensor
        self.source = source
        self.device = device
        self.cache = cache if cache is not None else {}
        self._index: dict[int, object] = {}

    # -- facts -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    @property
    def source_shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.source_shape)

    def index(self, axis: int):
        """Flat source index (LongTensor of the target axis length) for ``axis``, or None if identity."""
        if axis not in self._index:
            self._index[axis] = composite_index(self.plan, self.tensor.axes[axis])
        return self._index[axis]

    def fan_in_ratio(self) -> float:
        """N / Ñ along the fan-in axis (1.0 when there is none or it keeps its size)."""
        a = self.tensor.fan_in
        if a is None:
            return 1.0
        return self.tensor.source_shape[a] / self.tensor.shape[a]

    def fan_in_counts(self):
        """For each target position of the fan-in axis, how many target positions copy its source.

        Dividing the fan-in columns by these counts keeps the next layer's input unchanged when
        neurons are duplicated (Net2WiderNet); all ones for a pure selection.
        """
        import torch

        a = self.tensor.fan_in
        if a is None:
            return None
        idx = self.index(a)
        if idx is None:
            return torch.ones(self.tensor.shape[a])
        counts = torch.bincount(idx, minlength=self.tensor.source_shape[a])
        return counts[idx].to(torch.float32)

    # -- randomness --------------------------------------------------------------------------
    def generator(self, *parts: object):
        """A generator seeded by the recipe seed, this tensor's name and ``parts``."""
        return registry.generator(self.plan.seed, "value", self.tensor.name, *parts)

    def layer_generator(self, *parts: object):
        """A generator shared by the tensors of one target layer (e.g. q and k of mimetic init)."""
        return registry.generator(self.plan.seed, "value-layer", self.tensor.layer, *parts)

    # -- data --------------------------------------------------------------------------------
    def read(self, name: str | None = None):
        """A whole source tensor (default: this tensor's source) on ``device``."""
        name = name or self.tensor.source_name
        if name is None:
            raise StrategyError(f"{self.tensor.name} has no source tensor; choose a strategy that needs none")
        return self.source.read(name).to(self.device)

    def gather(self, name: str | None = None):
        """The source tensor gathered through the dimension maps: shape ``self.shape``.

        Reads only the kept rows' kept columns (:meth:`core.sources.base.Source.read_gather`:
        coalesced ``pread``\\ s, see :mod:`core.sources.reader`), on the CPU, then moves the result
        to ``device``.
        """
        request = self.gather_request(name)
        if request is None:  # a scalar
            return self.source.read(name or self.tensor.source_name).to(self.device)
        name, rows, cols = request
        data = self.source.read_gather(name, rows, cols)
        if cols is not None:
            data = data.reshape(self.shape)
        if tuple(data.shape) != self.shape:
            raise PlanError(
                f"{self.tensor.name}: gathered shape {tuple(data.shape)} differs from the planned {self.shape}"
            )
        return data.to(self.device)

    def gather_request(self, name: str | None = None):
        """The ``(name, rows, cols)`` :meth:`gather` passes to ``source.read_gather`` (None for a scalar)."""
        import numpy as np

        name = name or self.tensor.source_name
        if name is None:
            raise StrategyError(f"{self.tensor.name} has no source tensor; choose a strategy that needs none")
        shape = self.tensor.source_shape
        if not shape:
            return None
        idx0 = self.index(0)
        rows = None if idx0 is None else idx0.numpy()
        cols = None
        trailing = [self.index(axis) for axis in range(1, len(shape))]
        if any(idx is not None for idx in trailing):
            cols = np.zeros(1, dtype=np.int64)
            for axis, idx in enumerate(trailing, start=1):
                positions = np.arange(shape[axis]) if idx is None else idx.numpy()
                cols = (cols[:, None] * shape[axis] + positions[None, :]).reshape(-1)
        return name, rows, cols

    def read_rows(self, name: str, start: int, stop: int):
        """Rows ``[start, stop)`` of a source tensor (its leading axis) on ``device``: only their bytes are read."""
        import numpy as np

        return self.source.read_gather(name, np.arange(start, stop), None).to(self.device)

    def same_role_sources(self) -> list[str]:
        """Source names of this tensor's rule in every source layer (for pooled fits, templates)."""
        suffix = self.tensor.source_name
        layer = self.tensor.source_layer
        if suffix is None or layer is None:
            return [suffix] if suffix else []
        marker = f".{layer}."
        head, _, tail = suffix.partition(marker)
        out = []
        for n in range(self.plan.source_sizes["layers"]):
            candidate = f"{head}.{n}.{tail}"
            if candidate in self.source.tensors:
                out.append(candidate)
        return out


def fill_tensor(plan: Plan, tensor: TensorPlan, source, *, device: str = "cpu", cache: dict | None = None):
    """Produce one target tensor with its strategy (in its computed dtype)."""
    strategy = registry.get(tensor.strategy)
    params = registry.make_params(tensor.strategy, tensor.params)
    ledger = (cache or {}).get(LEDGER_KEY)
    if ledger is not None:  # an export: every byte a strategy reads is hashed and checked on the way
        source = ledger.watch(source)
    ctx = FillContext(plan, tensor, source, device=device, cache=cache)
    out = strategy.fill(params, ctx)
    if tuple(out.shape) != tuple(tensor.shape):
        raise StrategyError(
            f"strategy {tensor.strategy} produced {tuple(out.shape)} for {tensor.name}, expected {tuple(tensor.shape)}"
        )
    divisor = embedding_divisor(plan, tensor)
    if divisor is not None:  # a division, as HyperCloning's clone_gemma does: growth gives the same bits
        import torch

        out = out.to(torch.promote_types(out.dtype, torch.float32)) / divisor
    return add_expert_noise(plan, tensor, out)


def planned_reads(plan: Plan, tensor: TensorPlan, source) -> list[tuple]:
    """The ``read_gather`` requests ``tensor``'s strategy declares it will make (see
    :meth:`core.strategies.base.ValueStrategy.reads`); none where it cannot say."""
    strategy = registry.get(tensor.strategy)
    try:
        params = registry.make_params(tensor.strategy, tensor.params)
        return strategy.reads(params, FillContext(plan, tensor, source))
    except Exception:  # a hint only: the tensor's own fill reports what is wrong, in its turn
        log.debug("no read-ahead for %s", tensor.name, exc_info=True)
        return []


class ReadAhead:
    """:func:`fill_tensor` over a plan's tensors in file order, each next tensor's declared reads
    read in the background meanwhile (:class:`core.sources.prefetch.Prefetcher`; same bytes).

    ``GRAFT_PREFETCH=0`` turns the reading ahead off (to measure what it saves). Call
    :meth:`close` when done (or failed).
    """

    def __init__(self, plan: Plan, source, *, device: str = "cpu", cache: dict | None = None) -> None:
        from core.sources.prefetch import Prefetcher

        self.plan, self.device, self.cache = plan, device, cache
        self._source = source
        self._ahead = Prefetcher(source) if os.environ.get("GRAFT_PREFETCH", "1") != "0" else None
        self._next = {t.name: n for t, n in zip(plan.tensors, plan.tensors[1:])}

    def fill(self, tensor: TensorPlan):
        if self._ahead is None:
            return fill_tensor(self.plan, tensor, self._source, device=self.device, cache=self.cache)
        following = self._next.get(tensor.name)
        if following is not None:
            self._ahead.schedule(following.name, planned_reads(self.plan, following, self._source))
        try:
            return fill_tensor(self.plan, tensor, self._ahead, device=self.device, cache=self.cache)
        finally:
            self._ahead.retire(tensor.name)

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()


def copied_expert(plan: Plan, tensor: TensorPlan) -> int | None:
    """The target expert ``tensor`` belongs to when it is a later copy of a source expert, else None.

    An expert's tensors carry its own ffn map on one axis (``ffn@<layer>/<expert>``); the layer's
    experts map says whether an earlier target expert copies the same source expert.
    """
    for axis in tensor.axes:
        for key in axis if not is_concat(axis) else [k for part in axis for k in part]:
            if isinstance(key, str) and key.startswith("ffn@") and "/" in key:
                layer, expert = key[4:].split("/", 1)
                experts = plan.dims.get(f"experts@{layer}")
                e = int(expert)
                if experts is not None and experts.index[e] in experts.index[:e]:
                    return e
                return None
    return None


def add_expert_noise(plan: Plan, tensor: TensorPlan, out):
    """``out`` plus the index parameter ``expert_noise`` (:class:`core.strategies.base.ExpertOptions`)
    when ``tensor`` belongs to a later copy of an expert: Gaussian, std ``expert_noise`` × std(out),
    seeded by the recipe seed and the tensor's name. After every value strategy, because experts are
    copied by the plan's experts map (:func:`core.plan.maps._expert_maps`), whatever fills them.
    The router's rows are not perturbed: copies keep being routed together.
    """
    index = plan.index or {}
    noise = (index.get("params") or {}).get("expert_noise", 0.0)
    if not noise or not out.is_floating_point() or out.numel() < 2 or copied_expert(plan, tensor) is None:
        return out
    import torch

    data = out.to(torch.promote_types(out.dtype, torch.float32))
    draw = torch.randn(tuple(out.shape), generator=registry.generator(plan.seed, "expert-noise", tensor.name))
    return data + draw.to(data.device, data.dtype) * (float(noise) * data.std())


def embedding_divisor(plan: Plan, tensor: TensorPlan) -> float | None:
    """√(Ñ/N) for the token embedding of a model that multiplies it by √hidden (Gemma), else None.

    Such a model's residual stream starts at √hidden × the embedding: with hidden N → Ñ and the
    embedding's values taken from the source (copied, averaged or sampled: every strategy with
    ``from_source``), the target's would be √(Ñ/N) times the source's, so :func:`fill_tensor`
    divides the embedding by it once, after any strategy. A tied LM head reads the same matrix, so
    its logits are multiplied by √(N/Ñ): see :mod:`core.architectures.families.gemma` for why that is kept.
    """
    spec = FAMILIES.find(plan.family)
    n, new_n = plan.source_sizes.get("hidden"), plan.target_sizes.get("hidden")
    if (
        spec is None
        or tensor.role != "embed"
        or plan.target_config.get("model_type") not in spec.sqrt_hidden_embedding
        or not n
        or not new_n
        or n == new_n
        or not any("hidden" in axis_atoms(axis) for axis in tensor.axes)
        or not registry.get(tensor.strategy).from_source
    ):
        return None
    return math.sqrt(new_n / n)


def output_dtype(tensor: TensorPlan, dtype: str | None):
    """The dtype a tensor is exported in: the source's, unless ``dtype`` overrides floats."""
    if dtype is None or not tensor.dtype.startswith(("F", "BF")):
        return torch_dtype(tensor.dtype)
    return torch_dtype(dtype)


def materialize(
    plan: Plan,
    source,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    cache: dict | None = None,
) -> Iterator[tuple[str, object]]:
    """Yield ``(name, tensor)`` for every target tensor in file order, one at a time.

    ``cache`` is shared by the strategies of one run; pass a dict to read what they left in it
    (``fits``, ``wave_error``) afterwards.
    """
    cache = {} if cache is None else cache
    total = sum(t.numel for t in plan.tensors) or 1
    done = 0
    reader = ReadAhead(plan, source, device=device, cache=cache)
    try:
        for tensor in plan.tensors:
            cancel.check()
            out = reader.fill(tensor).to(output_dtype(tensor, dtype))
            done += tensor.numel
            progress(done / total, tensor.name)
            yield tensor.name, out.cpu()
    finally:
        reader.close()


def build_state_dict(plan: Plan, source, *, device: str = "cpu", dtype: str | None = None, **kw) -> dict:
    """The whole target state dict in memory (small models: previews, validation runs, tests)."""
    return dict(materialize(plan, source, device=device, dtype=dtype, **kw))
