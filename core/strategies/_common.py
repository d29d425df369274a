"""Small tensor helpers shared by the value strategies (no registration here)."""

from __future__ import annotations


def along(vector, axis: int, ndim: int):
    """View a 1-D ``vector`` so it broadcasts along ``axis`` of an ``ndim``-D tensor."""
    shape = [1] * ndim
    shape[axis] = -1
    return vector.reshape(shape)


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
