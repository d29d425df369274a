"""Small tensor helpers shared by the value strategies (no registration here)."""

from __future__ import annotations

import os

#: A CPU normal fill of at least this many values is split into :data:`NORMAL_PARTS` parts.
NORMAL_SPLIT_MIN = 1 << 20
NORMAL_PARTS = 4
_normal_pool = None


def fill_normal(out, gen):
    """Fill the contiguous ``out`` with i.i.d. N(0, 1) values drawn from ``gen``; returns ``out``.

    torch's CPU normal generator runs on one core (~220 M values/s here), and a covariance draw
    needs one normal per output value. A CPU tensor of at least :data:`NORMAL_SPLIT_MIN` values is
    therefore filled in :data:`NORMAL_PARTS` equal parts, each by its own generator seeded from
    ``gen`` in part order, on a small thread pool (2 cores: 2.0–2.5× the values per second,
    ``benchmarks/bench_products.py``). The parts are fixed, not one per core, so the values are the
    same on any machine whatever its core count. A GPU tensor is filled by ``gen`` in one call.
    """
    import torch

    flat = out.view(-1)
    n = flat.numel()
    if out.device.type != "cpu" or n < NORMAL_SPLIT_MIN:
        return out.normal_(generator=gen)
    seeds = torch.randint(0, 2**62, (NORMAL_PARTS,), generator=gen).tolist()
    bounds = [n * i // NORMAL_PARTS for i in range(NORMAL_PARTS + 1)]

    def part(i: int) -> None:
        flat[bounds[i] : bounds[i + 1]].normal_(generator=torch.Generator().manual_seed(seeds[i]))

    if torch.get_num_threads() < 2:
        for i in range(NORMAL_PARTS):
            part(i)
    else:
        list(_pool().map(part, range(NORMAL_PARTS)))
    return out


def _pool():
    """The normal fill's two threads, made on first use (again in a forked child: its threads are not inherited)."""
    global _normal_pool
    if _normal_pool is None or _normal_pool[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _normal_pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="graft-normal"))
    return _normal_pool[1]


def along(vector, axis: int, ndim: int):
    """View a 1-D ``vector`` so it broadcasts along ``axis`` of an ``ndim``-D tensor."""
    shape = [1] * ndim
    shape[axis] = -1
    return vector.reshape(shape)


def device_generator(ctx, *parts: object):
    """``ctx.generator(*parts)``, or on another ``ctx.device`` a generator there seeded from it.

    A CUDA fill then draws on the GPU. Its values differ from the CPU's (another random stream),
    but the same recipe — whose device is part of it — still gives the same bytes.
    """
    import torch

    gen = ctx.generator(*parts)
    device = torch.device(ctx.device)
    if device.type == "cpu":
        return gen
    out = torch.Generator(device=device)
    out.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
    return out


def duplicate_mask(ctx):
    """Bool tensor of ``ctx.shape``: True where any axis index repeats an earlier target index.

    The first copy of a duplicated neuron stays exact; the later copies are the ones a
    symmetry-breaking noise should perturb.
    """
    import torch

    mask = torch.zeros(ctx.shape, dtype=torch.bool)
    for axis in range(len(ctx.shape)):
        idx = ctx.index(axis)
        if idx is None:
            continue
        seen: set[int] = set()
        repeat = []
        for i in idx.tolist():
            repeat.append(i in seen)
            seen.add(i)
        mask |= along(torch.tensor(repeat), axis, len(ctx.shape))
    return mask


def add_noise(ctx, data, relative_std: float, *, only_duplicates: bool = True):
    """``data`` plus Gaussian noise of std ``relative_std × std(data)`` (seeded per tensor).

    Args:
        ctx: the fill context (its generator seeds the draw).
        data: the filled tensor, shape ``ctx.shape``.
        relative_std: noise std relative to the tensor's own std; 0 returns ``data``.
        only_duplicates: perturb only the later copies of duplicated neurons.
    """
    import torch

    if relative_std <= 0 or data.numel() == 0:
        return data
    data = data.to(torch.float32)
    scale = data.std() if data.numel() > 1 else data.abs().mean()
    if not torch.isfinite(scale) or scale == 0:
        scale = data.abs().mean()
    noise = torch.randn(ctx.shape, generator=ctx.generator("noise"), dtype=torch.float32) * (relative_std * scale)
    if only_duplicates:
        noise = noise * duplicate_mask(ctx)
    return data + noise.to(data.device)


def paired_signs(index) -> tuple[list[int], list[float]]:
    """Partner and sign of every position of a fan-in axis, for noise that cancels (HyperCloning).

    The copies of one source neuron, in target order, are paired first with second, third with
    fourth …: a pair's first copy gets +ε, its second −ε (the same ε), and an odd last copy 0.

    Args:
        index: the axis's flat source index per target position (list or 1-D tensor).

    Returns:
        ``(partner, sign)``: for each position, the position whose ε it uses (its pair's first
        copy) and +1, −1 or 0.
    """
    index = [int(i) for i in index]
    copies_of: dict[int, list[int]] = {}
    for p, i in enumerate(index):
        copies_of.setdefault(i, []).append(p)
    partner, sign = list(range(len(index))), [0.0] * len(index)
    for copies in copies_of.values():
        for first, second in zip(copies[0::2], copies[1::2]):
            sign[first], sign[second], partner[second] = 1.0, -1.0, first
    return partner, sign


def add_paired_noise(ctx, data, relative_std: float):
    """``data`` plus noise that cancels on duplicated inputs: ±ε on pairs of fan-in copies.

    For a fan-in axis whose positions copy a source neuron c times, the copies' columns get
    +ε, −ε, +ε′, −ε′ … (ε drawn per row, std ``relative_std × std(data)``), and an odd last copy
    nothing; since the copies read the same input x, each pair adds ε·x − ε·x and the layer's
    output is unchanged while the copies' weights differ. A tensor without a duplicated fan-in
    is returned as it is.

    Args:
        ctx: the fill context (its generator seeds the draw; its fan-in index finds the copies).
        data: the filled tensor, shape ``ctx.shape``.
        relative_std: noise std relative to the tensor's own std; 0 returns ``data``.
    """
    import torch

    axis = ctx.tensor.fan_in
    if relative_std <= 0 or data.numel() == 0 or axis is None:
        return data
    idx = ctx.index(axis)
    if idx is None or len(set(idx.tolist())) == len(idx):
        return data
    partner, sign = paired_signs(idx)
    data = data.to(torch.promote_types(data.dtype, torch.float32))
    scale = data.std() if data.numel() > 1 else data.abs().mean()
    if not torch.isfinite(scale) or scale == 0:
        scale = data.abs().mean()
    draw = torch.randn(ctx.shape, generator=ctx.generator("noise"), dtype=torch.float32) * (relative_std * scale.cpu())
    noise = draw.index_select(axis, torch.tensor(partner)) * along(torch.tensor(sign), axis, data.dim())
    return data + noise.to(data.device, data.dtype)


#: what value strategies that sample do with lookup tables (see :func:`is_lookup`).
LOOKUPS = ("select", "sample")
LOOKUP_HELP = (
    "token, position and vocabulary tables (roles embed and pos, any tensor with a vocab axis): select "
    "copies them through the maps, since each row stands for one token and a draw would erase which; "
    "sample draws them like any other matrix (Graft 0.2)"
)


def is_lookup(tensor) -> bool:
    """A table whose rows are tokens or positions (embeddings, position tables, an LM head)."""
    return tensor.role in ("embed", "pos") or any("vocab" in axis for axis in tensor.axes)


# -- fixed-size samples of a source tensor (issue 17) ------------------------------------------
#: runs of rows a sample is read in (spread over the tensor: one per stratum)
SAMPLE_BLOCKS = 64


def spread_blocks(n_rows: int, rows: int, gen, *, align: int = 1, blocks: int = SAMPLE_BLOCKS) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` covering about ``rows`` of ``n_rows`` rows, spread over all of them.

    The rows are cut into ``blocks`` equal strata and one run of consecutive rows is taken at a
    seeded offset in each (stratified: every part of the tensor is represented, every row can be
    drawn). With ``align``, runs start and end on multiples of it (whole t1-row template blocks).

    Args:
        n_rows: the tensor's leading size.
        rows: rows wanted (all of them when ``rows >= n_rows``).
        gen: a seeded ``torch.Generator`` (the same generator gives the same ranges).
        align: run boundaries are multiples of this (it must divide ``n_rows``).
        blocks: at most this many runs.

    Returns:
        Sorted, disjoint ``(lo, hi)`` ranges.
    """
    import torch

    units = n_rows // align
    wanted = min(units, max(1, -(-rows // align)))
    if wanted >= units:
        return [(0, units * align)]
    count = min(blocks, wanted)
    run = -(-wanted // count)
    edges = [round(i * units / count) for i in range(count + 1)]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        length = min(run, hi - lo)
        start = lo + int(torch.randint(0, hi - lo - length + 1, (1,), generator=gen))
        out.append((start * align, (start + length) * align))
    return out


def read_sample(source, name: str, values: int, gen, *, align: int = 1):
    """Whole rows of source tensor ``name``, about ``values`` values in all, spread over the tensor.

    :data:`SAMPLE_BLOCKS` runs of rows (:func:`spread_blocks`); only their bytes are read, by one
    ``read_gather`` where the source has it, else a ``read_slice`` per run. (Single rows, one per
    stratum, fitted no better on the demo's embedding than 64 runs and read slower.) A tensor of at
    most ``values`` values is read whole. The rows come in storage order, in the stored dtype, on the CPU.

    Args:
        source: the source (``ctx.source``).
        name: the tensor.
        values: the sample's size in values (rounded to whole rows, at least one run of rows).
        gen: seeds which rows (see :func:`spread_blocks`).
        align: runs of rows start and end on multiples of this.

    Returns:
        Tensor (rows, *trailing shape) — a vector gives a 1-D slice of its entries.
    """
    import math

    import torch

    shape = tuple(source.tensors[name].shape)
    if not shape or math.prod(shape) <= values:
        return source.read(name)
    per_row = max(1, math.prod(shape[1:]))
    rows = max(1, values // per_row)
    gather = getattr(source, "read_gather", None)
    ranges = spread_blocks(shape[0], rows, gen, align=align)
    if ranges == [(0, shape[0])]:
        return source.read(name)
    if gather is not None:  # one read of them all (sources that have it)
        import numpy as np

        return gather(name, np.concatenate([np.arange(lo, hi) for lo, hi in ranges]), None)
    parts = [source.read_slice(name, (slice(lo, hi),)) for lo, hi in ranges]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
