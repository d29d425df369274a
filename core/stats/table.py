"""The layer × role table of any metrics for a whole model, streamed tensor by tensor.

Tensors are read one at a time from the source (``Source.read``), the next one in a thread while
the current one is measured, and dropped after: peak memory is two tensors plus one float32
buffer the size of the largest matrix (reused by every tensor), never the model.

Exact and estimated: each row says which of its metrics are estimates for that tensor
(``TensorRow.estimated``; ``ModelTable.estimated`` and the JSON's ``estimated`` per cell), and
each metric's description says when it is estimated, how far off that was measured to be, and
for how many of the table's tensors (rules and bounds: :mod:`core.stats.metrics`). Spectra of
matrices whose smaller side exceeds 512 are estimated from their top 96 eigenvalues: on 2 shared
CPU cores a 4096×11008 bf16 matrix costs ~0.1–0.5 s instead of ~7 s. The whole Llama-2-7B-shaped
table (``graft stats --json``, cold) took 13.6–14.6 s on a 2-core Zen 5 VM with bf16 products:
2.05–2.25× a cold ``cat`` of its shards in the same runs (``benchmarks/bench_7b.py``; 3.1× in an
earlier one with a faster ``cat``, 0.8× when the disk was slower); it was 30 s there before its reads went around the page cache
(:func:`core.sources.reader.one_pass`) and numpy's BLAS stopped spinning beside the workers
(:func:`_single_threaded_numpy_blas`). On a 2-core AVX2 CPU (float32 products) it took 91 s, 7× a
fast ``cat``, before those two changes. Each tensor's
role and layer come from ``core.architectures.describe(source)``; pass ``describe=`` to label
tensors another way (any callable returning objects with ``name``, ``role``, ``layer`` and
optionally ``kind``/``fan_in``). Checkpoints no spec describes fall back to a generic labelling:
the first ``.<digits>.`` in a name is the layer, the rest of the name is the role.

Rows are the layers in increasing order, then one row (``layer None``) for the tensors outside
any layer (embeddings, final norm, head). Columns are the roles found inside layers, then the
others, each group in ``ROLE_ORDER`` (attention, then MLP) and then in checkpoint order. When
several tensors share a (layer, role) cell — BERT's word and token-type embeddings are both
``embed`` — their columns are told apart by the name's last component:
``embed (word_embeddings)``.

Tensors with NaN/±Inf entries are listed in ``ModelTable.nonfinite`` (name → count) whatever the
metrics asked for; their value metrics describe the finite entries and their matrix metrics are
NaN (see :mod:`core.stats.metrics`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from core.devices import product_dtype
from core.errors import ArchitectureError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.sources.reader import one_pass
from core.stats.meanfield import suggest
from core.stats.metrics import DEFAULT_METRICS, MEAN_FIELD_METRICS, METRICS, TensorView, Workspace
from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED
from core.stats.spectrum import DEFAULT_EXACT_SIDE, DEFAULT_MAX_SIDE, DEFAULT_RANK

log = logging.getLogger(__name__)

_LAYER = re.compile(r"\.(\d+)\.")
#: Column order of the well-known roles (core/architectures names).
ROLE_ORDER = (
    "embed",
    "pos",
    "attn.qkv",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.o",
    "mlp.gate",
    "mlp.up",
    "mlp.down",
    "norm",
    "head",
)


@dataclass(frozen=True)
class LabelledTensor:
    """What the table needs to know about a tensor before reading it."""

    name: str
    role: str
    layer: int | None
    fan_in: int | None = 1
    kind: str = "param"


@dataclass(frozen=True)
class TensorRow:
    """One tensor's metric values (what :func:`iter_tensor_metrics` yields)."""

    name: str
    layer: int | None
    column: str
    values: dict[str, float]
    nonfinite: int = 0  # NaN/±Inf entries of the tensor
    estimated: tuple[str, ...] = ()  # the metrics whose value is an estimate for this tensor


@dataclass(frozen=True, eq=False)
class ModelTable:
    """Metric values of a model's tensors arranged by layer (rows) and role (columns).

    Attributes:
        metrics: metric names, keys of ``values``.
        layers: row labels (layer index, or None for tensors outside any layer).
        columns: column labels (roles, disambiguated when a cell holds several tensors).
        values: metric → (len(layers), len(columns)) float64 array, NaN where no tensor.
        names: (len(layers), len(columns)) tensor names ("" where none).
        nonfinite: tensor name → count of NaN/±Inf entries, for the tensors that have any, in
            checkpoint order.
        descriptions: metric → what it measures, in words (the registry's help, which says when it
            is estimated and how far off that was measured to be), followed by how many of this
            table's tensors it is estimated for, for people reading the table.
        estimated: metric → (len(layers), len(columns)) bool array, True where that cell's value
            is an estimate rather than exact (False where no tensor).
        estimate_methods: metric → how its estimated cells were estimated, in a few words (the
            registry's ``Metric.estimate``, e.g. "block Krylov, top 96 eigenvalues"); absent for
            metrics that are never estimated. Not in the JSON, whose descriptions say it in full.
    """

    metrics: tuple[str, ...]
    layers: tuple[int | None, ...]
    columns: tuple[str, ...]
    values: dict[str, np.ndarray]
    names: np.ndarray
    nonfinite: dict[str, int] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    estimated: dict[str, np.ndarray] = field(default_factory=dict)
    estimate_methods: dict[str, str] = field(default_factory=dict)

    def estimated_count(self, metric: str) -> int:
        """How many of ``metric``'s cells hold an estimate."""
        flags = self.estimated.get(metric)
        return int(flags.sum()) if flags is not None else 0

    def row_labels(self) -> list[str]:
        return [f"layer {layer}" if layer is not None else "other" for layer in self.layers]

    def cells(self) -> Iterator[tuple[int | None, str, str, dict[str, float]]]:
        """``(layer, column, tensor name, {metric: value})`` for every filled cell."""
        for i, layer in enumerate(self.layers):
            for j, column in enumerate(self.columns):
                if self.names[i, j]:
                    yield layer, column, str(self.names[i, j]), {m: float(self.values[m][i, j]) for m in self.metrics}

    def suggestions(self) -> list[tuple[int | None, str, str, tuple[str, ...]]]:
        """The mean-field rule applied to every matrix cell (needs the mean-field metrics)."""
        missing = [m for m in MEAN_FIELD_METRICS if m not in self.metrics]
        if missing:
            raise ValueError(f"the table lacks {', '.join(missing)}; build it with MEAN_FIELD_METRICS")
        return [
            (layer, column, name, suggest(vals))
            for layer, column, name, vals in self.cells()
            if not math.isnan(vals["row_corr_excess"])
        ]

    def to_dict(self) -> dict:
        def clean(a: np.ndarray) -> list:
            return [[None if math.isnan(x) else float(x) for x in row] for row in a]

        return {
            "metrics": list(self.metrics),
            "layers": list(self.layers),
            "columns": list(self.columns),
            "names": self.names.tolist(),
            "values": {m: clean(v) for m, v in self.values.items()},
            "nonfinite": dict(self.nonfinite),
            "descriptions": dict(self.descriptions),
            "estimated": {
                m: [[bool(e) if n else None for e, n in zip(er, nr)] for er, nr in zip(v, self.names)]
                for m, v in self.estimated.items()
            },
        }


def generic_labels(names: Iterable[str]) -> list[LabelledTensor]:
    """Layer = the first ``.<digits>.`` in the name; role = the name without it."""
    out = []
    for name in names:
        m = _LAYER.search(name)
        if m:
            out.append(LabelledTensor(name, name[: m.start()] + "." + name[m.end() :], int(m.group(1))))
        else:
            out.append(LabelledTensor(name, name, None))
    return out


def label_tensors(source, describe: Callable | None = None) -> list[LabelledTensor]:
    """Label every tensor of ``source`` by role and layer (see the module docstring)."""
    if describe is None:
        try:
            from core.architectures import describe as arch_describe

            described = arch_describe(source)
        except (ImportError, ArchitectureError) as exc:
            log.info(
                "no architecture spec for %s (%s); using generic labels", getattr(source, "display_name", source), exc
            )
            return generic_labels(source.tensors)
    else:
        described = describe(source)
    return [
        LabelledTensor(d.name, d.role, d.layer, getattr(d, "fan_in", 1), getattr(d, "kind", "param")) for d in described
    ]


def _column_labels(items: Sequence[LabelledTensor]) -> list[str]:
    seen: dict[tuple[int | None, str], int] = {}
    for t in items:
        seen[(t.layer, t.role)] = seen.get((t.layer, t.role), 0) + 1
    labels = []
    for t in items:
        if seen[(t.layer, t.role)] > 1:
            parts = t.name.split(".")
            tail = parts[-2] if len(parts) >= 2 and parts[-1] in ("weight", "bias") else parts[-1]
            labels.append(f"{t.role} ({tail})")
        else:
            labels.append(t.role)
    return labels


def select_tensors(
    source,
    *,
    roles: Sequence[str] | None = None,
    describe: Callable | None = None,
    include_vectors: bool = False,
) -> list[tuple[LabelledTensor, str]]:
    """The float parameter tensors a table covers, each with its column label."""
    items = []
    for t in label_tensors(source, describe):
        info = source.tensors[t.name]
        if t.kind != "param" or not info.is_float:
            continue
        if roles is not None and t.role not in roles:
            continue
        if not include_vectors and (len(info.shape) < 2 or min(info.shape[0], math.prod(info.shape[1:])) < 2):
            continue
        items.append(t)
    return list(zip(items, _column_labels(items)))


#: At most this many tensors are measured at once (one per core: the table is memory-bound beyond).
MAX_WORKERS = 4
#: tensors queued per worker at most, and the bytes of all queued tensors (beyond ``workers`` of them).
AHEAD, AHEAD_BYTES = 4, 512 << 20


def iter_tensor_metrics(
    source,
    metrics: Sequence[str] = DEFAULT_METRICS,
    roles: Sequence[str] | None = None,
    *,
    describe: Callable | None = None,
    include_vectors: bool = False,
    device: str | torch.device = "cpu",
    seed: int = DEFAULT_SEED,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    exact_side: int | None = DEFAULT_EXACT_SIDE,
    rank: int = DEFAULT_RANK,
    products: str = "auto",
    workers: int | None = None,
) -> Iterator[TensorRow]:
    """Yield one :class:`TensorRow` per covered tensor, in order, reading each tensor once (cancel =
    stop iterating). The next tensor is read in a thread while the current ones are measured, so
    reading and computing overlap.

    On CPU the tensors are measured ``workers`` at a time (default: torch's intra-op thread count,
    at most :data:`MAX_WORKERS`), each in a thread of its own that runs torch single-threaded, with
    its own widening buffer. The table's operations are small or memory-bound (a Krylov block is
    4096 × 48): split over two threads each one waits on the other. On 2 cores, the Llama-2-7B
    shape's steps took 63 s with one tensor at a time on two threads and 39–48 s on one thread
    (``benchmarks/stats_steps.py``, ``OMP_NUM_THREADS=1``); the whole table from a warm page
    cache 43.0 s on one thread and 40.1 s with a worker per core (``graft stats --json``). Each
    tensor's values are the same either way. While the workers run, torch is single-threaded in
    the whole process (OpenMP's and MKL's thread counts are not per thread); the count is restored
    when the iteration ends. ``workers=1`` measures in the caller's thread, as torch is set. A CUDA device
    measures one tensor at a time. On a 2-core AVX2 EPYC (float32 products) the cold 7B table took
    95–100 s while the workers' views shared ``functools.cached_property``'s class-wide lock
    (Python 3.11: 1.3 cores busy), 75 s once they did not (:class:`core.stats.metrics.cached_property`).
    """
    resolved = [METRICS.get(m) for m in metrics]
    selected = select_tensors(source, roles=roles, describe=describe, include_vectors=include_vectors)
    options = dict(device=device, seed=seed, max_elements=max_elements, max_side=max_side)
    options.update(exact_side=exact_side, rank=rank, products=products)
    if workers is None:
        workers = min(MAX_WORKERS, torch.get_num_threads()) if torch.device(device).type == "cpu" else 1
    with _single_threaded_numpy_blas():
        yield from _measure_all(selected, resolved, options, source, workers)


@contextlib.contextmanager
def _single_threaded_numpy_blas():
    """numpy's BLAS (OpenBLAS in the wheels) on one thread while the table runs.

    The table's numpy calls are small (the 96 × 96 Ritz matrix's ``eigvalsh``, a ≤ 512-side Gram's),
    but after each one OpenBLAS's own threads spin waiting for more work, on the cores the workers
    need: on a 2-core Zen 5 the cold Llama-2-7B-shape table spent 9.4 s of its 41 s of CPU in those
    threads, and took 21.2 s where one-thread OpenBLAS took 16.2 s (``OPENBLAS_NUM_THREADS=1``). The
    limit is the process's while it holds, and restored after.
    """
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=1, user_api="blas")
    try:
        yield
    finally:
        limiter.restore_original_limits()


def _measure_all(selected, resolved, options, source, workers) -> Iterator[TensorRow]:
    tensors = _read_ahead(source, [t.name for t, _ in selected], depth=max(1, workers))
    if workers <= 1:
        workspace = Workspace()
        try:
            for (t, column), tensor in zip(selected, tensors):
                yield _measure(t, column, tensor, resolved, workspace, options)
                del tensor
        finally:
            tensors.close()
        return
    local = threading.local()
    threads = torch.get_num_threads()

    def measure(t, column, tensor) -> TensorRow:
        if not hasattr(local, "workspace"):
            # OpenMP's and MKL's counts are the process's, whatever thread sets them: restored below
            torch.set_num_threads(1)
            local.workspace = Workspace()
        return _measure(t, column, tensor, resolved, local.workspace, options)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="graft-stats")
    pending: deque = deque()  # (future, bytes of its tensor), in table order
    try:
        for (t, column), tensor in zip(selected, tensors):
            pending.append((pool.submit(measure, t, column, tensor), tensor.nbytes))
            del tensor
            # Rows come out in order, but a worker that finished a small tensor takes the next
            # one while a big one is still measured: up to AHEAD tensors per worker are queued
            # (within AHEAD_BYTES), so one large matrix does not leave the other cores idle.
            while len(pending) >= workers and (
                len(pending) >= AHEAD * workers or sum(n for _, n in pending) > AHEAD_BYTES
            ):
                yield pending.popleft()[0].result()
        while pending:
            yield pending.popleft()[0].result()
    finally:
        for future, _ in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        tensors.close()
        torch.set_num_threads(threads)


def _measure(t, column, tensor, resolved, workspace, options) -> TensorRow:
    view = TensorView(tensor, fan_in=t.fan_in, workspace=workspace, **options)
    values = {m.name: m(view) for m in resolved}
    estimated = tuple(m.name for m in resolved if not math.isnan(values[m.name]) and m.is_estimated(view))
    return TensorRow(t.name, t.layer, column, values, view.nonfinite, estimated)


def _read_ahead(source, names: Sequence[str], depth: int = 1) -> Iterator[torch.Tensor]:
    """``source.read`` of each name in order, the next one read in a thread meanwhile (the reads
    are ``pread`` s that release the GIL; with ``depth`` > 1, up to that many reads queue ahead).
    Closing the iterator waits for the read in flight."""
    if not names:
        return

    def read(name: str) -> torch.Tensor:
        with one_pass():  # each tensor read once: O_DIRECT where it is not cached (core.sources.reader)
            return source.read(name)

    pool = ThreadPoolExecutor(1, thread_name_prefix="graft-stats-read")
    try:
        pending = deque(pool.submit(read, name) for name in names[:depth])
        for i in range(len(names)):
            tensor = pending.popleft().result()
            if i + depth < len(names):
                pending.append(pool.submit(read, names[i + depth]))
            yield tensor
            del tensor
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def model_table(
    source, metrics: Sequence[str] = DEFAULT_METRICS, roles: Sequence[str] | None = None, **options
) -> ModelTable:
    """A layer × role table of ``metrics`` (names from ``core.stats.metrics.METRICS``).

    Args:
        source: an opened :class:`core.sources.Source` (anything with ``tensors`` and ``read``).
        metrics: metric names; ``MEAN_FIELD_METRICS`` enables :meth:`ModelTable.suggestions`.
        roles: keep only these roles (None: all).
        options: those of :func:`stream_model_table`:
        describe: labelling callable (default ``core.architectures.describe``).
        include_vectors: also cover 1-D tensors (norms, biases; matrix metrics are NaN there).
        device, seed, max_elements, max_side, exact_side, rank, products: see the statistics' docstrings
            (:class:`core.stats.metrics.TensorView`).
        progress: ``progress(fraction, tensor name)`` after each tensor.
        cancel: checked before each tensor; raises ``Cancelled``.
        cache: reuse/store the rows per source content (:mod:`core.stats.table_cache`; default True).

    Returns:
        The :class:`ModelTable`.
    """
    stream = stream_model_table(source, metrics, roles, **options)
    while True:
        try:
            next(stream)
        except StopIteration as end:
            return end.value


def stream_model_table(
    source,
    metrics: Sequence[str] = DEFAULT_METRICS,
    roles: Sequence[str] | None = None,
    *,
    describe: Callable | None = None,
    include_vectors: bool = False,
    device: str | torch.device = "cpu",
    seed: int = DEFAULT_SEED,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    exact_side: int | None = DEFAULT_EXACT_SIDE,
    rank: int = DEFAULT_RANK,
    products: str = "auto",
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    cache: bool = True,
) -> Iterator[TensorRow]:
    """:func:`model_table` as a generator: yields each tensor's :class:`TensorRow` as soon as it is
    computed (a viewer fills the table as it grows) and returns the :class:`ModelTable`.

    With ``cache`` (and the default labelling) the rows are kept per source content, metrics and
    parameters (:mod:`core.stats.table_cache`): the same files a second time yield the stored rows
    at once."""
    from core.stats import table_cache

    selected = select_tensors(source, roles=roles, describe=describe, include_vectors=include_vectors)
    total = len(selected)
    cache = cache and describe is None
    sizes = {"seed": seed, "max_elements": max_elements, "max_side": max_side, "exact_side": exact_side, "rank": rank}
    params = {"roles": list(roles) if roles is not None else None, "include_vectors": include_vectors, **sizes}
    # the estimate's product dtype as resolved here: "auto" gives other values on another machine
    params["products"] = str(product_dtype(products, device)).removeprefix("torch.")
    hashes = table_cache.file_keys(source) if cache else None
    cached = table_cache.read_rows(table_cache.table_key(hashes, selected, metrics, params)) if hashes else None
    rows: list[TensorRow] = []
    stream = (
        iter(cached)
        if cached is not None
        else iter_tensor_metrics(
            source,
            metrics,
            roles,
            describe=describe,
            include_vectors=include_vectors,
            device=device,
            products=products,
            **sizes,
        )
    )
    progress(0.0, "")
    while True:
        cancel.check()
        row = next(stream, None)
        if row is None:
            break
        rows.append(row)
        yield row
        progress(len(rows) / max(total, 1), row.name)
    if cache and cached is None and hashes:
        try:
            table_cache.write_rows(table_cache.table_key(hashes, selected, metrics, params), rows)
        except Exception as exc:  # an unreadable file only costs the cache entry
            log.warning("the statistics table was not cached: %s", exc)
    return assemble_table(rows, tuple(metrics))


def assemble_table(rows: Sequence[TensorRow], metrics: tuple[str, ...]) -> ModelTable:
    """Arrange tensor rows (from :func:`iter_tensor_metrics`) into a :class:`ModelTable`."""
    layer_set = sorted({r.layer for r in rows if r.layer is not None})
    layers: tuple[int | None, ...] = tuple(layer_set) + ((None,) if any(r.layer is None for r in rows) else ())
    first = {}
    for k, r in enumerate(rows):
        first.setdefault(r.column, (r.layer is None, k, r.column.split(" (")[0]))
    rank = {role: i for i, role in enumerate(ROLE_ORDER)}
    columns = tuple(sorted(first, key=lambda c: (first[c][0], rank.get(first[c][2], len(rank)), first[c][1])))
    li = {layer: i for i, layer in enumerate(layers)}
    ci = {c: j for j, c in enumerate(columns)}
    values = {m: np.full((len(layers), len(columns)), np.nan) for m in metrics}
    estimated = {m: np.zeros((len(layers), len(columns)), dtype=bool) for m in metrics}
    names = np.full((len(layers), len(columns)), "", dtype=object)
    for r in rows:
        i, j = li[r.layer], ci[r.column]
        names[i, j] = r.name
        for m in metrics:
            values[m][i, j] = r.values[m]
            estimated[m][i, j] = m in r.estimated
    nonfinite = {r.name: r.nonfinite for r in rows if r.nonfinite}
    registered = dict(METRICS.items())
    descriptions = {
        m: f"{registered[m].help}; {_estimated_words(int(estimated[m].sum()), len(rows))}"
        for m in metrics
        if m in registered
    }
    methods = {m: registered[m].estimate for m in metrics if m in registered and registered[m].estimate}
    return ModelTable(metrics, layers, columns, values, names, nonfinite, descriptions, estimated, methods)


def _estimated_words(count: int, total: int) -> str:
    if count == 0:
        return "exact for every tensor of this table"
    if count == total:
        return "estimated for every tensor of this table"
    return f"estimated for {count} of the {total} tensors of this table, exact for the rest"
