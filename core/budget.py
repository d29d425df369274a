"""What a target will cost, known from the sizes alone, and a refusal of what cannot fit.

A typo like ``--hidden 10000000`` or ``--layers 1000000`` must not start minutes of work that
ends in an out-of-memory kill or a full disk. Right after the target sizes are resolved (before
any dimension map or tensor table is built, which for such sizes would themselves exhaust
memory), :func:`estimate` computes from the source's tensors and the target sizes:

* every target tensor's shape (an axis whose named dimensions the target sizes cover takes their
  product; a fixed axis — vocab, positions — keeps the source's size), its bytes in the export
  dtype, and the total;
* the memory to build the largest one: strategies compute in float32 and the export casts, so
  about two float32 copies of it, the tensor before it waiting to be written, the next one's
  source bytes read ahead, and one gather block;
* the memory of the plan itself: its tensor table and the Python lists of its dimension maps.

:func:`check_memory` refuses a plan whose largest tensor or whose table cannot fit in this
machine's memory; :func:`check_disk` refuses an export larger than the free space where it goes.
Both name the numbers.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.architectures.spec import axis_atoms, axis_parts
from core.dtypes import itemsize
from core.errors import ExportError, PlanError

#: bytes per tensor-table row and per dimension-map entry of a plan held in Python (measured ~2.5 KB, ~36 B).
PLAN_ROW_BYTES = 3000
PLAN_INDEX_BYTES = 40
#: a block of source rows read while gathering (the largest read of core.sources.reader.gather_2d).
GATHER_BYTES = 64 << 20


@dataclass(frozen=True)
class Estimate:
    """The cost of a target, from its sizes.

    Attributes:
        total_bytes: the exported weights.
        largest_name, largest_shape, largest_bytes: the biggest target tensor (export dtype).
        build_bytes: memory to build the largest tensor.
        plan_bytes: memory of the plan's table and maps.
        n_tensors: target tensors.
    """

    total_bytes: int
    largest_name: str
    largest_shape: tuple[int, ...]
    largest_bytes: int
    build_bytes: int
    plan_bytes: int
    n_tensors: int


def human(n: float) -> str:
    """Bytes in decimal units, as disks and the hub count them."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def estimate(spec, source, target_sizes: dict[str, int], dtype: str | None = None) -> Estimate:
    """The target's cost from ``spec``'s matched source tensors and the resolved ``target_sizes``.

    Args:
        spec: the source's family spec.
        source: the opened source (headers only are used).
        target_sizes: resolved target sizes (``core.plan.resolve_sizes``), including ``layers``.
        dtype: the export dtype (None: each tensor keeps the source's).
    """
    matched = spec.ensure_matches(list(source.tensors))
    layered = [m for m in matched.values() if m.layer is not None]
    first_layer = min((m.layer for m in layered), default=None)
    n_layers = target_sizes.get("layers", 1)
    total = n_tensors = 0
    largest = ("", (), 0, 0)  # name, shape, bytes, numel
    for m in matched.values():
        if m.rule.kind == "drop":
            continue
        if (m.layer is not None and m.layer != first_layer) or (m.expert is not None and m.expert != 0):
            continue  # one layer's tensors (and one expert's) stand for all of them
        info = source.tensors[m.name]
        shape = tuple(
            sum(math.prod(target_sizes[d] for d in part) for part in axis_parts(dims))  # a Concat: the sum of its parts
            if dims and all(d in target_sizes for d in axis_atoms(dims))
            else size
            for dims, size in zip(m.rule.axes, info.shape)
        )
        numel = math.prod(shape)
        width = itemsize(dtype if dtype and info.is_float else info.dtype, 4)
        copies = (n_layers if m.layer is not None else 1) * (
            target_sizes.get("experts", 1) if m.expert is not None else 1
        )
        total += numel * width * copies
        n_tensors += copies
        if numel * width > largest[2]:
            largest = (m.renamed(0 if m.layer is not None else None), shape, numel * width, numel)
    per_layer = sum(target_sizes.get(d, 0) for d in ("ffn", "heads", "kv_heads"))
    plan_bytes = n_tensors * PLAN_ROW_BYTES + (per_layer * n_layers + target_sizes.get("hidden", 0)) * PLAN_INDEX_BYTES
    # a tensor being built (float32 work copies) + the one before it waiting to be written (the
    # export's one-tensor pipeline, core.export.writer) + the next one's source bytes read ahead
    # (core.sources.prefetch; about its size) + one block of source reads
    build = 2 * 4 * largest[3] + 2 * largest[2] + GATHER_BYTES
    return Estimate(total, largest[0], largest[1], largest[2], build, plan_bytes, n_tensors)


def available_memory() -> int | None:
    """Bytes of memory this process can still use (Linux MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(est: Estimate, memory: int | None = None) -> None:
    """Refuse a target whose largest tensor or whose plan cannot be held in memory.

    Raises:
        PlanError: naming the tensor (or the plan), its need and the memory available.
    """
    memory = available_memory() if memory is None else memory
    if memory is None:
        return
    if est.build_bytes > memory:
        shape = " × ".join(map(str, est.largest_shape))
        raise PlanError(
            f"the target's largest tensor, {est.largest_name} ({shape}), needs about "
            f"{human(est.build_bytes)} of memory to build, but {human(memory)} are available; "
            "choose smaller target sizes"
        )
    if est.plan_bytes > memory // 2:
        raise PlanError(
            f"a target of {est.n_tensors:,} tensors needs about {human(est.plan_bytes)} just to plan, "
            f"more than half the {human(memory)} of memory available; choose fewer layers or smaller sizes"
        )


def check_disk(total_bytes: int, out_dir: Path) -> None:
    """Refuse an export larger than the free space of the file system it goes to.

    Raises:
        ExportError: naming both numbers.
    """
    folder = Path(os.path.abspath(out_dir))
    try:
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        free = shutil.disk_usage(folder).free
    except OSError:  # a name too long, a folder we may not stat: the writer reports those
        return
    if total_bytes > free:
        raise ExportError(
            f"the export needs {human(total_bytes)} but only {human(free)} are free at {folder}; "
            "free some space, choose another --out or smaller target sizes"
        )
