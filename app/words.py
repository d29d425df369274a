"""Words for people: strategy names, the per-strategy guide and the shortcuts page.

The strategy registry holds identifiers and one-line summaries but no display labels, so the
labels live in one table here (an unknown strategy shows its identifier). The guide condenses
the project's METHODS notes: what each strategy does, when it wins, and the paper.
"""

from __future__ import annotations

#: strategy identifier → the name the form shows (the identifier goes in the tooltip)
STRATEGY_LABELS = {
    "select": "Weight selection",
    "mean_field": "Mean-field sampling",
    "growth": "Function-preserving growth",
    "distribution": "Distribution fit",
    "covariance": "Covariance sampling",
    "mimetic": "Mimetic attention",
    "templates": "Weight templates (WAVE)",
    "baseline": "Random init (baseline)",
    "first_n": "First N neurons",
    "uniform": "Evenly spaced neurons",
    "random": "Random neurons",
    "iid": "Mean-field draws",
    "cyclic": "Cyclic copies",
    "by_norm": "By weight norm",
    "by_activation": "By activation (calibration)",
}

#: strategy identifier → (what it does, when it wins, the paper)
STRATEGY_GUIDE = {
    "select": (
        "Gathers the source's weights through the shared dimension maps: every tensor keeps the same neurons.",
        "Shrinking a model; gains are largest when source and target sizes are close.",
        "Xu et al., ICLR 2024, “Initializing Models with Larger Ones”.",
    ),
    "mean_field": (
        "Draws Ñ of the N source neurons per dimension (without replacement when shrinking, i.i.d. when "
        "growing, so duplicates are exact copies); rescales the weights reading a grown dimension by source "
        "width ÷ target width (N/Ñ).",
        "Growing or shrinking width when an exact function is not needed; on the demo benchmark it matched "
        "data-aware selection's speed-up.",
        "“A Mean Field Ansatz for Zero-Shot Weight Transfer”, arXiv 2408.08681 (project seed 000).",
    ),
    "growth": (
        "Net2Net / HyperCloning: new neurons clone old ones and their fan-out is split; inserted blocks "
        "get zero output projections, so the grown model computes the source's function at step 0.",
        "Growing a model (width k-fold, depth on pre-LN blocks); on a shrinking target it acts like selection.",
        "Chen et al., ICLR 2016 (Net2Net); Samragh et al., 2024 (HyperCloning): 2–4× fewer GPU hours.",
    ),
    "distribution": (
        "Fits a distribution (Gaussian, Laplace, Student-t, quantile, KDE) to the source and samples the target.",
        "Keeps each tensor's marginal statistics when the structure cannot be mapped; loses every correlation.",
        "Upperwal, 2025, “Transferring Weight Distributions for Efficient Language Model Initialization” (project seed 004).",
    ),
    "covariance": (
        "Matrix-normal sampling with the source's row and column covariances (spatial taps for convolutions).",
        "Convolutional filters and any target whose neurons do not correspond to the source's.",
        "Trockman, Willmott & Kolter, ICLR 2023.",
    ),
    "mimetic": (
        "Builds attention so that per head W_Q W_Kᵀ ≈ αZ + βI and W_V W_O ≈ αZ − βI; needs no source weights.",
        "Attention of vision transformers and small language models trained from scratch.",
        "Trockman & Kolter, ICML 2023, “Mimetic Initialization of Self-Attention Layers”.",
    ),
    "templates": (
        "WAVE: k Kronecker templates shared across layers (nearest Kronecker product) with resized scalers.",
        "Targets of many sizes from one source; pairs with training only the scalers.",
        "“WAVE: Weight Templates for Adaptive Initialization of Variable-sized Models”, arXiv 2406.17503 (project seed 001).",
    ),
    "baseline": (
        "The architecture's own default initialisation, as transformers builds a fresh model.",
        "The reference every validation compares against.",
        "—",
    ),
}


def strategy_label(name: str | None) -> str:
    """The human name of strategy ``name`` (its identifier when the table lacks it)."""
    if name is None:
        return ""
    return STRATEGY_LABELS.get(name, name)


def guide_html(names) -> str:
    """The Help → Strategies page: one short section per strategy in ``names``."""
    parts = ["<h3>Strategies</h3>"]
    for name in names:
        what, when, paper = STRATEGY_GUIDE.get(name, ("", "", ""))
        if not what:
            continue
        parts.append(
            f"<p><b>{strategy_label(name)}</b> <code>{name}</code><br>{what}<br>"
            f"<i>When it wins:</i> {when}<br><i>Paper:</i> {paper}</p>"
        )
    return "".join(parts)


def shortcuts_html(shortcuts) -> str:
    """The Help → Keyboard shortcuts page from ``(keys, what)`` pairs (the window's own actions)."""
    rows = "".join(f"<tr><td><b>{keys}</b></td><td>{what}</td></tr>" for keys, what in shortcuts)
    return f"<h3>Keyboard shortcuts</h3><table cellspacing='6'>{rows}</table>"


#: statistic identifier → (its name for people, how to read it); the registry's own help (core.stats.metrics,
#: carried by the table as ``descriptions``) says what it computes.
METRIC_WORDS = {
    "std": ("weight spread (std)", "how widely the entries spread"),
    "mean": ("mean", "the entries' average"),
    "kurtosis": ("tail weight (excess kurtosis)", "0 for a Gaussian; large means heavy tails"),
    "alpha": ("spectrum power-law α", "2–4 well trained, above 6 close to random"),
    "stable_rank": ("stable rank", "how many directions carry the matrix's energy"),
    "row_corr_excess": ("row correlation beyond noise", "0 when rows are as independent as random ones"),
    "col_corr_excess": ("column correlation beyond noise", "0 when columns are as independent as random ones"),
    "top1_norm_ratio": ("row-norm concentration", "1 when no few rows dominate; above 1, a few rows carry the weight"),
    "top1_norm_share": ("top-1% row-norm share", "the share of the squared norm in the top 1% of rows"),
    "sigma_max": ("largest singular value", "the matrix's gain in its strongest direction"),
    "skewness": ("skewness", "0 for a symmetric distribution"),
    "abs_max": ("largest |entry|", "the biggest weight by size"),
    "frac_3sigma": ("share beyond 3σ", "0.0027 for a Gaussian"),
    "frac_6sigma": ("share beyond 6σ", "about 2e-9 for a Gaussian"),
    "nonfinite": ("NaN/Inf entries", "entries that are not numbers"),
}


def metric_words(metric: str, descriptions: dict | None = None) -> tuple[str, str]:
    """``(name, what it measures; how to read it)`` of a statistic (its identifier if unknown)."""
    label, reading = METRIC_WORDS.get(metric, (metric.replace("_", " "), ""))
    computed = (descriptions or {}).get(metric, "")
    return label, "; ".join(part for part in (computed, reading) if part)


def metric_tooltip(metric: str, descriptions: dict | None = None) -> str:
    label, text = metric_words(metric, descriptions)
    return f"{label} ({metric}): {text}" if text else f"{label} ({metric})"


def short_column(column: str) -> str:
    """A table column for an axis label: ``embed (word_embeddings)`` → ``embed (word)``."""
    role, _, which = column.partition(" (")
    if not which:
        return column
    which = which.rstrip(")")
    for suffix in ("_embeddings", "_embedding", "embeddings"):
        if which.endswith(suffix) and len(which) > len(suffix):
            which = which[: -len(suffix)]
    return f"{role} ({which[:10]}{'…' if len(which) > 10 else ''})"


def form_notes(recipe, source_sizes: dict) -> dict[str, str]:
    """What the form's settings do that a user may not expect, keyed by the setting that causes it
    (``values``: the value strategy, ``index``: the neuron selection), one sentence each."""
    changed = [
        (source_sizes[k], v)
        for k, v in recipe.target.items()
        if source_sizes.get(k) is not None and v != source_sizes[k]
    ]
    grows, shrinks = any(v > s for s, v in changed), any(v < s for s, v in changed)
    notes = {}
    if recipe.values.get("default", {}).get("method") == "growth" and shrinks:
        notes["values"] = (
            "This target only shrinks: function-preserving growth keeps the chosen neurons exactly as weight "
            "selection does, and preserves nothing more."
            if not grows
            else "The dimensions that shrink are selected, not preserved: the grown model does not compute "
            "the source's function exactly."
        )
    index = recipe.index or {}
    if index.get("method") == "iid" and index.get("params", {}).get("replacement") == "always" and shrinks:
        notes["index"] = (
            "i.i.d. draws with replacement repeat neurons when shrinking, so the shrunk matrices lose rank; "
            "replacement=auto draws without replacement there."
        )
    return notes
