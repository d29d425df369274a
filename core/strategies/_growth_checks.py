"""When function-preserving growth cannot be exact: refuse, or say so in ``plan.warnings``.

Called once per plan (:func:`growth_exactness`, from ``core.plan.make_plan``). Two cases are
refused unless every growth tensor concerned sets ``allow_inexact``, because no choice of
weights in the grown architecture fixes them:

* **post-LN depth growth** (BERT): with zero output projections an inserted block maps the
  residual vector x to ``LN₂(LN₁(x))``, so it is the identity only if a LayerNorm (with some γ′,
  β′) gives back x for every x the previous block can emit. Those are ``x = γ ⊙ n + β`` with n
  normalised (mean 0, variance 1 over the hidden vector); their mean is mean(β) but their
  variance, c² + var(β) + 2c·cov(n, β) even for γ = c·1, depends on n unless β is constant too.
  So an exact post-LN insertion exists only when the previous LayerNorm's γ and β are both
  constant vectors (then γ′ = γ, β′ = β give x back, up to eps) — never the case in a trained model,
  so Graft does not try.
* **rotary head_dim growth** (llama family): pair j of a head of size d̃ rotates at
  ``base^(-2j/d̃)``; a cloned pair j ← i keeps its source's angle only when ``i·d̃ = j·d``. The
  cyclic map (j ← j mod d/2) fails that for every pair but the first. (An exact construction does
  exist — map pair k·i ← i, zero the queries of the other pairs and scale by √k — but it is not
  a copy of neurons, and Graft's maps do not draw it.)
  With partial rotary (gpt_neox) the same holds for the rotary part: d is rotary_dims there.

The others are warnings, because the user chose them through the sizes or the index: maps that
leave source neurons or layers out (a shrink, ``iid``, ``by_norm``), a hidden size that is not a
multiple of the source's (LayerNorm/RMSNorm see other statistics), a tied head kept tied.
"""

from __future__ import annotations

from core.architectures.spec import axis_atoms
from core.errors import PlanError

ALLOW = "set growth's allow_inexact to true (--param allow_inexact=true) to go on anyway"


def growth_exactness(plan, spec) -> list[str]:
    """The plan's warnings about inexact growth; raises for the cases growth refuses.

    Args:
        plan: a finished :class:`core.plan.Plan`.
        spec: its :class:`core.architectures.spec.ArchitectureSpec`.

    Returns:
        One sentence per way the grown model will differ from the source (empty when exact, or
        when no tensor is filled by ``growth``).

    Raises:
        PlanError: post-LN depth growth, or a rotary head_dim change, without ``allow_inexact``.
    """
    grown = [t for t in plan.tensors if t.strategy == "growth"]
    if not grown:
        return []
    warnings: list[str] = []

    def refuse_or_warn(tensors, what: str, instead: str) -> None:
        if tensors and all(t.params.get("allow_inexact") for t in tensors):
            warnings.append(
                f"{what}, so the grown model does not compute the source's function exactly (allow_inexact)"
            )
        elif tensors:
            raise PlanError(f"{what}, so growth cannot keep the model's function; {instead}, or {ALLOW}")

    src_layers, tgt_layers = plan.source_sizes.get("layers"), plan.target_sizes.get("layers")
    if spec.norm_placement_for(plan.target_config) == "post" and any(link.new for link in plan.layer_map):
        refuse_or_warn(
            [t for t in grown if t.new_layer],
            f"{spec.family} blocks are post-LN, and a block inserted to grow depth {src_layers}→{tgt_layers} "
            "passes the residual stream through its LayerNorms even with zero output projections",
            "keep the depth and grow the width only",
        )
    head_dim = plan.dims.get("head_dim")
    if spec.rotary and head_dim is not None and head_dim.source_size != head_dim.target_size:
        # The rotary part: all of head_dim, or its first rotary_dims channels (partial rotary, gpt_neox).
        d = plan.source_sizes.get("rotary_dims", head_dim.source_size)
        new_d = plan.target_sizes.get("rotary_dims", head_dim.target_size)
        moved = sum(1 for j, i in enumerate(head_dim.index[: new_d // 2]) if i * new_d != j * d)
        refuse_or_warn(
            [t for t in grown if t.role in ("attn.q", "attn.k", "attn.qkv")],
            f"head_dim {head_dim.source_size}→{head_dim.target_size} changes the rotary frequency of {moved} "
            f"of the {new_d // 2} rotary pairs (pair j turns at base^(-2j/{new_d}), its source pair i at base^(-2i/{d}))",
            "keep head_dim and grow the number of heads instead",
        )
    warnings += _chosen_inexact(plan, spec, grown)
    return warnings


def _chosen_inexact(plan, spec, grown) -> list[str]:
    """Warnings for inexact growth the sizes or the index map asked for."""
    from core.strategies.growth import tied_growth_warning

    out: list[str] = []
    keys = {k for t in grown for axis in t.axes for k in axis_atoms(axis)}
    dropped = sorted(
        {
            k.split("@")[0]
            for k in keys
            if k in plan.dims and set(plan.dims[k].index) != set(range(plan.dims[k].source_size))
        }
    )
    if dropped:
        out.append(
            f"the {plan.index.get('method')} maps of {', '.join(dropped)} leave some source neurons out, "
            "so growth is not exact; use the cyclic index with target sizes at least the source's"
        )
    kept_layers = {link.source for link in plan.layer_map}
    if spec.layered and len(kept_layers) < plan.source_sizes.get("layers", 0):
        out.append(
            f"the target keeps {len(kept_layers)} of the source's {plan.source_sizes['layers']} layers, "
            "so growth is not exact; keep every layer to preserve the function"
        )
    # The normalised widths: hidden, or a staged family's per-stage widths (hidden.0 …, ConvNeXt).
    for key in sorted(k for k in keys if k == "hidden" or k.startswith("hidden.")):
        hidden = plan.dims.get(key)
        if hidden is None or dropped:
            continue
        counts = set(hidden.counts())
        if len(counts) > 1:
            n = hidden.source_size
            out.append(
                f"{key} {n}→{hidden.target_size} is not a multiple of {n}, so the norms over the {key} "
                f"vector see other statistics and growth is not exact; choose a multiple of {n} "
                f"such as {n * max(2, -(-hidden.target_size // n))}"
            )
    tied = tied_growth_warning(plan)
    if tied:
        out.append(tied)
    return out
