"""Weight templates + scalers (WAVE, Feng et al. 2024; METHODS.md §7), learned without distillation.

For one tensor rule (say every layer's q projection) the k templates T_k (t1 × t2) are shared by
all source layers and each layer has scalers S_k ((out/t1) × (in/t2)) with W ≈ Σ_k S_k ⊗ T_k.

* Templates — Van Loan–Pitsianis nearest Kronecker product: the rearrangement R(W), one row per
  t1 × t2 block (vec of the block), satisfies R(S ⊗ T) = vec(S) vec(T)ᵀ. Streaming over the source
  layers we accumulate the Gram matrix G = Σ_l R(W_l)ᵀ R(W_l) ((t1·t2)²), and its top-k
  eigenvectors are the templates (the top right singular vectors of the stacked R's). They are
  orthonormal, so a layer's scalers are S_k = R(W_l) vec(T_k) and k = t1·t2 reconstructs exactly.
* Target scalers — the scaler grid of the source layer feeding the target layer, resized
  through the dimension maps: scaler row r takes source block row ``index(0)[r·t1] // t1`` (and
  likewise for columns), i.e. each t1 × t2 block of the target follows the source block holding its
  first neuron. ``resize=interpolate`` resamples the grid bilinearly instead (ignores the maps).
* The relative Frobenius error of the source layer's reconstruction, ‖W − Σ S⊗T‖ / ‖W‖, is
  recorded in ``ctx.cache["wave_error"][target name]``.

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


def _resize_maps(scalers, ctx, t1: int, t2: int):
    rows, cols = ctx.index(0), ctx.index(1)
    if rows is not None:
        scalers = scalers.index_select(1, rows[::t1] // t1)
    if cols is not None:
        scalers = scalers.index_select(2, cols[::t2] // t2)
    return scalers


def _resize_interpolate(scalers, shape, t1: int, t2: int):
    import torch.nn.functional as F

    size = (shape[0] // t1, shape[1] // t2)
    if tuple(scalers.shape[1:]) == size:
        return scalers
    return F.interpolate(scalers[None], size=size, mode="bilinear", align_corners=True)[0]


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
            store[key] = learn_templates(ctx.read, names, t1, t2, k)
        templates = store[key]
        scalers, error = scalers_and_error(ctx.read(), templates)
        ctx.cache.setdefault("wave_error", {})[t.name] = error
        ctx.cache.setdefault("wave_templates", {})[t.name] = templates
        if params.resize == "maps":
            target = _resize_maps(scalers, ctx, t1, t2)
        else:
            target = _resize_interpolate(scalers, ctx.shape, t1, t2)
        return assemble(target, templates.to(torch.float32))
