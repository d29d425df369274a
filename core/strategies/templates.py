"""Weight templates + scalers (WAVE, Feng et al. 2024; METHODS.md §7), learned without distillation.

For one tensor rule (say every layer's q projection) the k templates T_k (t1 × t2) are shared by
all source layers and each layer has scalers S_k ((out/t1) × (in/t2)) with W ≈ Σ_k S_k ⊗ T_k.

* Templates — Van Loan–Pitsianis nearest Kronecker product: the rearrangement R(W), one row per
  t1 × t2 block (vec of the block), satisfies R(S ⊗ T) = vec(S) vec(T)ᵀ. Over the source layers we
  accumulate the Gram matrix G = Σ_l R(W_l)ᵀ R(W_l) ((t1·t2)²), and its top-k eigenvectors are the
  templates (the top right singular vectors of the stacked R's). They are orthonormal, so a layer's
  scalers are S_k = R(W_l) vec(T_k) and k = t1·t2 reconstructs exactly. G is estimated on a
  fixed-size sample (issue 17): :data:`GRAM_SAMPLE` values of whole t1-row block rows spread over
  the role's layers (every layer whole when they hold no more) — a (t1·t2)² matrix averaged over
  tens of thousands of blocks; only the sampled rows are read.
* Target scalers — the scaler grid of the source layer feeding the target layer, resized
  through the dimension maps: scaler row r takes source block row ``index(0)[r·t1] // t1`` (and
  likewise for columns), i.e. each t1 × t2 block of the target follows the source block holding its
  first neuron. Only those source block rows are read and only the blocks used are projected; the
  target is assembled block row by block row into one preallocated float32 output (on ``device``).
  ``resize=interpolate`` resamples the whole grid bilinearly instead (ignores the maps).
* The relative Frobenius error of the reconstruction, ‖W − Σ S⊗T‖ / ‖W‖, over the source blocks
  the target is assembled from (the whole source layer when every block is used, and with
  ``resize=interpolate``), is recorded in ``ctx.cache["wave_error"][target name]``.

The default k = 32 of the 64 possible 8×8 templates was chosen by ``benchmarks/bench_strategies.py``
(demo → 4/256/8/1024 masked LM, eval loss after 30 steps: k = 8 4.92, 16 4.92, 32 4.81; at step 200,
k = 8 4.46, k = 32 4.27). More templates reconstruct the source better (k = t1·t2 reproduces it, i.e.
``select``); fewer compress it more — WAVE's reason to exist, which a start at init does not reward.

Scalers stay identifiable for scaler-only training: the templates are recorded in
``ctx.cache["wave_templates"][target name]`` (Tensor (k, t1, t2), orthonormal), so
``scalers_of(W̃, T)`` recovers the scalers of the exported weight exactly and ``assemble(S, T)``
rebuilds it; train S with T frozen. Vectors (biases, norms) are copied through the maps.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import StrategyError
from core.params import param
from core.strategies import base as registry
from core.strategies._common import read_sample
from core.strategies.base import ValueStrategy, register


@dataclass(frozen=True)
class TemplatesParams:
    k: int = param(
        32,
        help="number of templates shared by the layers of a role (at most t1·t2 are used; "
        "t1·t2 reconstructs the source exactly)",
        min=1,
        max=4096,
    )
    t1: int = param(8, help="template rows (must divide the tensor's rows)", min=1, max=256)
    t2: int = param(8, help="template columns (must divide the tensor's columns)", min=1, max=256)
    resize: str = param(
        "maps",
        help="how scaler grids change size: through the dimension maps, or by interpolation",
        choices=("maps", "interpolate"),
    )


def rearrange(w, t1: int, t2: int):
    """R(W): (out/t1 · in/t2) × (t1·t2), row (i, j) = vec of block (i, j)."""
    o, i = w.shape
    return w.reshape(o // t1, t1, i // t2, t2).permute(0, 2, 1, 3).reshape((o // t1) * (i // t2), t1 * t2)


def scalers_of(w, templates):
    """Scalers (k, out/t1, in/t2) of ``w`` for orthonormal ``templates`` (k, t1, t2)."""
    k, t1, t2 = templates.shape
    r = rearrange(w.to(templates.dtype), t1, t2)
    return (r @ templates.reshape(k, -1).T).T.reshape(k, w.shape[0] // t1, w.shape[1] // t2)


def assemble(scalers, templates):
    """Σ_k S_k ⊗ T_k: (out, in) from scalers (k, a, b) and templates (k, t1, t2)."""
    import torch

    k, a, b = scalers.shape
    _, t1, t2 = templates.shape
    return torch.einsum("kab,kcd->acbd", scalers, templates).reshape(a * t1, b * t2)


def _check(name: str, shape, t1: int, t2: int, what: str) -> None:
    if shape[0] % t1 or shape[1] % t2:
        raise StrategyError(
            f"templates of {t1}×{t2} do not tile {what} {name} of shape {tuple(shape)}; "
            "choose t1 dividing its rows and t2 dividing its columns"
        )


#: source rows per chunk of the streamed products (bounds the float32 temporaries to a few tens of MB).
CHUNK_ELEMENTS = 1 << 22


def _chunks(w, t1: int, t2: int):
    """R(W) in float32 chunks of whole block rows: ``(first block row, chunk)``, chunk (rows·in/t2) × (t1·t2)."""
    import torch

    o, i = w.shape
    block_rows = max(1, CHUNK_ELEMENTS // max(t1 * i, 1))
    for start in range(0, o // t1, block_rows):
        part = w[start * t1 : (start + block_rows) * t1].to(torch.float32)
        yield start, rearrange(part, t1, t2)


def learn_templates(read, names: list[str], t1: int, t2: int, k: int):
    """Top-k templates (k, t1, t2) from the streamed Gram matrix of the rearranged ``names``.

    The Gram matrix is accumulated in float64 from float32 products of block-row chunks, so a layer
    costs one pass over its values and no float64 copy of it.
    """
    import torch

    if k > t1 * t2:
        raise StrategyError(f"at most t1·t2 = {t1 * t2} templates of {t1}×{t2} exist; lower k")
    gram = torch.zeros(t1 * t2, t1 * t2, dtype=torch.float64)
    for name in names:
        w = read(name)
        _check(name, w.shape, t1, t2, "source tensor")
        for _, r in _chunks(w, t1, t2):
            gram += (r.T @ r).double()
    vals, vecs = torch.linalg.eigh(gram)
    top = vecs[:, vals.argsort(descending=True)[:k]]
    # a fixed sign per template (largest-magnitude entry positive) so the bytes are reproducible
    signs = torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
    top = top * torch.where(signs == 0, torch.ones_like(signs), signs)
    return top.T.reshape(k, t1, t2).contiguous()


def scalers_and_error(w, templates):
    """Scalers (k, out/t1, in/t2), float32, and the relative Frobenius error ‖W − Σ S⊗T‖ / ‖W‖.

    Streamed by block-row chunks. The templates are orthonormal, so the reconstruction is a projection
    and ‖W − Σ S⊗T‖² = ‖W‖² − ‖S‖² (no reconstruction is formed); a complete set (k = t1·t2)
    reconstructs exactly, error 0.
    """
    import torch

    k, t1, t2 = templates.shape
    o, i = w.shape
    basis = templates.reshape(k, -1).T.to(torch.float32)
    scalers = torch.empty((o // t1) * (i // t2), k, dtype=torch.float32)
    total = kept = 0.0
    for start, r in _chunks(w, t1, t2):
        s = r @ basis
        scalers[start * (i // t2) : start * (i // t2) + s.shape[0]] = s
        total += float(torch.linalg.vector_norm(r, dtype=torch.float64) ** 2)
        kept += float(torch.linalg.vector_norm(s, dtype=torch.float64) ** 2)
    error = 0.0 if k == t1 * t2 else (max(total - kept, 0.0) / max(total, 1e-300)) ** 0.5
    return scalers.T.reshape(k, o // t1, i // t2), error


def _resize_interpolate(scalers, shape, t1: int, t2: int):
    import torch.nn.functional as F

    size = (shape[0] // t1, shape[1] // t2)
    if tuple(scalers.shape[1:]) == size:
        return scalers
    return F.interpolate(scalers[None], size=size, mode="bilinear", align_corners=True)[0]


#: values of the role's layers the template Gram matrix is estimated on (whole block rows, spread).
GRAM_SAMPLE = 1 << 22


def _read_rows(source, name: str, rows, cols=None):
    """Rows ``rows`` (sorted, distinct LongTensor) of source matrix ``name`` at columns ``cols``
    (sorted; None: all): only those bytes are read where the source can (``read_gather``)."""
    import torch

    gather = getattr(source, "read_gather", None)
    if gather is not None:
        return gather(name, rows.numpy(), None if cols is None else cols.numpy())
    breaks = (torch.diff(rows) != 1).nonzero().reshape(-1) + 1
    starts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), len(rows)]
    parts = [source.read_slice(name, (slice(int(rows[a]), int(rows[b - 1]) + 1),)) for a, b in zip(starts, ends)]
    out = parts[0] if len(parts) == 1 else torch.cat(parts)
    return out if cols is None else out.index_select(1, cols)


def _block_scalers(source, name: str, shape, block_rows, block_cols, templates, device):
    """Scalers (len(block_rows), len(block_cols), k) of the source blocks at those block rows and
    columns (sorted, distinct), and per block row the blocks' squared norm and their reconstruction's.

    Reads only those blocks' bytes, in chunks of block rows (widened into one reused float32
    buffer); each chunk is rearranged and projected on the orthonormal templates.
    """
    import torch

    k, t1, t2 = templates.shape
    o, i = shape
    basis = templates.reshape(k, -1).T.to(device, torch.float32)
    nb = len(block_cols)
    cols = None if nb == i // t2 else (block_cols[:, None] * t2 + torch.arange(t2)[None, :]).reshape(-1)
    out = torch.empty((len(block_rows), nb, k), device=device)
    total = torch.empty(len(block_rows), dtype=torch.float64)
    kept = torch.empty(len(block_rows), dtype=torch.float64)
    chunk = max(1, CHUNK_ELEMENTS // max(t1 * nb * t2, 1))
    buffer = torch.empty(min(chunk, len(block_rows)) * t1 * nb * t2, device=device)
    for start in range(0, len(block_rows), chunk):
        br = block_rows[start : start + chunk]
        rows = (br[:, None] * t1 + torch.arange(t1)[None, :]).reshape(-1)
        w = buffer[: len(rows) * nb * t2].view(len(rows), nb * t2)
        w.copy_(_read_rows(source, name, rows, cols))
        r = w.view(len(br), t1, nb, t2).permute(0, 2, 1, 3).reshape(len(br), nb, t1 * t2)
        s = r @ basis
        out[start : start + len(br)] = s
        # float32 norms (a float64 norm converts the chunk first), accumulated in float64 per block row
        total[start : start + len(br)] = torch.linalg.vector_norm(w.view(len(br), -1), dim=1).double().cpu() ** 2
        kept[start : start + len(br)] = torch.linalg.vector_norm(s.view(len(br), -1), dim=1).double().cpu() ** 2
    return out, total, kept


def _assemble_maps(out, source, name: str, shape, block_rows, block_cols, templates):
    """Assemble the target ``out`` block row by block row from the source blocks the maps pick.

    Target block (r, c) is Σ_k S_k ⊗ T_k of source block (``block_rows[r]``, ``block_cols[c]``).
    Chunks of target block rows read their source block rows, project the used block columns and
    write their part of ``out``: no scaler grid of the whole tensor exists.

    Returns:
        ``(total, kept)``: the squared norms of the distinct source blocks used and of their
        reconstructions.
    """
    import torch

    k, t1, t2 = templates.shape
    read_cols, pick_cols = _distinct(block_cols)
    counted = torch.zeros(shape[0] // t1, dtype=torch.bool)
    total = kept = 0.0
    chunk = max(1, CHUNK_ELEMENTS // max(t1 * shape[1], 1))
    for start in range(0, len(block_rows), chunk):
        end = min(len(block_rows), start + chunk)
        read_rows, pick_rows = torch.unique(block_rows[start:end], return_inverse=True)
        scalers, norms, recon = _block_scalers(source, name, shape, read_rows, read_cols, templates, out.device)
        new = ~counted[read_rows]  # a source block row used twice (growth) counts once in the error
        counted[read_rows] = True
        total += float(norms[new].sum())
        kept += float(recon[new].sum())
        _assemble_into(out[start * t1 : end * t1], scalers, templates, pick_rows, pick_cols)
    return total, kept


def _assemble_into(out, scalers, templates, rows=None, cols=None) -> None:
    """Write Σ_k S_k ⊗ T_k into ``out`` (a·t1 × b·t2) by chunks of block rows.

    ``scalers`` (A, B, k) are picked at block rows ``rows`` and block columns ``cols`` (None: all,
    in order) on the way, so a grid with repeated rows or columns is never materialised.
    """
    import torch

    k, t1, t2 = templates.shape
    a, b = out.shape[0] // t1, out.shape[1] // t2
    flat = templates.reshape(k, t1 * t2).to(out.device, torch.float32)
    cols = None if cols is None else cols.to(out.device)
    chunk = max(1, CHUNK_ELEMENTS // max(t1 * out.shape[1], 1))
    for start in range(0, a, chunk):
        end = min(a, start + chunk)
        s = scalers[start:end] if rows is None else scalers.index_select(0, rows[start:end].to(scalers.device))
        if cols is not None:
            s = s.index_select(1, cols)
        blocks = (s.reshape(-1, k) @ flat).reshape(end - start, b, t1, t2)
        out[start * t1 : end * t1].view(end - start, t1, b, t2).copy_(blocks.permute(0, 2, 1, 3))


def _distinct(positions):
    """``(sorted distinct positions, inverse or None when they are already sorted and distinct)``."""
    import torch

    unique, inverse = torch.unique(positions, return_inverse=True)
    if unique.numel() == positions.numel() and bool((unique == positions).all()):
        return positions, None
    return unique, inverse


@register
class Templates(ValueStrategy):
    name = "templates"
    summary = "WAVE: k templates shared across layers (nearest Kronecker product) and resized scalers"
    Params = TemplatesParams
    default_index = "cyclic"
    can_grow = True

    def cannot_fill(self, params, tensor):
        if len(tensor.shape) != 2:
            return None  # vectors are copied through the maps
        for what, shape in (("the target", tensor.shape), ("the source", tensor.source_shape)):
            if shape[0] % params.t1 or shape[1] % params.t2:
                return f"templates of {params.t1}×{params.t2} do not tile {what}'s {'×'.join(map(str, shape))}"
        return None

    def fill(self, params, ctx):
        import torch

        t = ctx.tensor
        if len(ctx.shape) != 2:
            return ctx.gather()
        t1, t2 = params.t1, params.t2
        _check(t.name, ctx.shape, t1, t2, "target tensor")
        names = ctx.same_role_sources() or [t.source_name]
        k = min(params.k, t1 * t2)  # only t1·t2 templates exist: a larger k means all of them
        key = ("wave", tuple(names), t1, t2, k)
        store = ctx.cache.setdefault("wave_templates_by_role", {})
        if key not in store:
            for name in names:
                _check(name, tuple(ctx.source.tensors[name].shape), t1, t2, "source tensor")
            per = max(1, GRAM_SAMPLE // len(names))
            seed = ctx.plan.seed

            def sample(name):
                return read_sample(ctx.source, name, per, registry.generator(seed, "wave-rows", name), align=t1)

            store[key] = learn_templates(sample, names, t1, t2, k)
        templates = store[key]
        ctx.cache.setdefault("wave_templates", {})[t.name] = templates
        shape = tuple(ctx.source_shape)
        _check(t.source_name, shape, t1, t2, "source tensor")
        grid = (shape[0] // t1, shape[1] // t2)
        out = torch.empty(ctx.shape, device=ctx.device)
        if params.resize == "maps":
            rows, cols = ctx.index(0), ctx.index(1)
            block_rows = torch.arange(grid[0]) if rows is None else rows[::t1] // t1
            block_cols = torch.arange(grid[1]) if cols is None else cols[::t2] // t2
            total, kept = _assemble_maps(out, ctx.source, t.source_name, shape, block_rows, block_cols, templates)
        else:
            every = (torch.arange(grid[0]), torch.arange(grid[1]))
            scalers, norms, recon = _block_scalers(ctx.source, t.source_name, shape, *every, templates, ctx.device)
            total, kept = float(norms.sum()), float(recon.sum())
            scalers = _resize_interpolate(scalers.permute(2, 0, 1), ctx.shape, t1, t2).permute(1, 2, 0)
            _assemble_into(out, scalers, templates)
        error = 0.0 if k == t1 * t2 else (max(total - kept, 0.0) / max(total, 1e-300)) ** 0.5
        ctx.cache.setdefault("wave_error", {})[t.name] = error
        return out
