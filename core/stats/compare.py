"""The interactive per-tensor bundle: source vs target histograms, moments, fits and distances.

This is what the app's live preview asks for each time the user picks a tensor or changes a
strategy. Each side is sampled once (stratified, fixed seed, ≤2M entries); moments and
histograms use that sample, the KS/Wasserstein distances a ≤2^18 sub-sample of it, the fits a
≤50,000 sub-sample (enough for ν of a Student-t to ±0.05). See ``benchmarks/bench_stats.py``
for its cost on a 4096×11008 bf16 tensor. NaN/±Inf entries are counted in the moments
(``nonfinite``) and left out of everything else; a side with no finite entry gets no fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.stats.distances import Distances, kl_of_pair, ks_and_wasserstein
from core.stats.fits import FITTERS, Fit
from core.stats.histogram import HistogramPair, histogram_pair_of_samples
from core.stats.moments import Moments, moments_of_sample
from core.stats.sampling import (
    DEFAULT_MAX_DISTANCE_ELEMENTS,
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_SEED,
    finite_values,
    flat_sample,
)

DEFAULT_FITS = ("gaussian", "laplace", "student-t")


@dataclass(frozen=True, eq=False)
class TensorComparison:
    """Everything the preview shows for one source tensor and its target counterpart.

    ``histogram.fits`` holds the fitted pdfs on the bin centres, labelled ``"<side> <fit>"``.
    """

    histogram: HistogramPair
    source: Moments
    target: Moments
    distances: Distances
    source_fits: dict[str, Fit]
    target_fits: dict[str, Fit]

    def to_dict(self) -> dict:
        return {
            "histogram": self.histogram.to_dict(),
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "distances": self.distances.to_dict(),
            "source_fits": {k: f.to_dict() for k, f in self.source_fits.items()},
            "target_fits": {k: f.to_dict() for k, f in self.target_fits.items()},
        }


def compare_tensors(
    source,
    target,
    *,
    bins: int | None = None,
    clip_sigma: float | None = 8.0,
    fits: Sequence[str] = DEFAULT_FITS,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    max_distance_elements: int | None = DEFAULT_MAX_DISTANCE_ELEMENTS,
    max_fit_elements: int | None = 50_000,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> TensorComparison:
    """Compare the value distributions of a source tensor and a target tensor.

    Args:
        source, target: tensors or arrays of any shapes and float dtypes.
        bins, clip_sigma: histogram binning (see :mod:`core.stats.histogram`).
        fits: distributions fitted on each side (names in ``core.stats.fits.FITTERS``).
        max_elements: entries sampled per side for moments and histograms.
        max_distance_elements: entries per side for KS and Wasserstein.
        max_fit_elements: entries per side for the fits.
        seed: subsample seed.
        device: "cpu" or "cuda".
    """
    a = flat_sample(source, max_elements, seed=seed, device=device)
    b = flat_sample(target, max_elements, seed=seed, device=device)
    ma, mb = moments_of_sample(a), moments_of_sample(b)  # these count the NaN/±Inf entries ...
    a, b = finite_values(a), finite_values(b)  # ... which nothing below looks at
    fitted = {}
    for side, x in (("source", a), ("target", b)):
        x_fit = flat_sample(x, max_fit_elements, seed=seed).cpu() if x.numel() else x
        fitted[side] = {name: FITTERS[name](x_fit, max_elements=None) for name in fits} if x.numel() else {}
    labelled = {f"{side} {name}": f for side, by_name in fitted.items() for name, f in by_name.items()}
    hist = histogram_pair_of_samples(a, b, bins=bins, clip_sigma=clip_sigma, fits=labelled, moments=(ma, mb))
    da = flat_sample(a, max_distance_elements, seed=seed) if a.numel() else a
    db = flat_sample(b, max_distance_elements, seed=seed) if b.numel() else b
    ks, w1 = ks_and_wasserstein(da, db)
    return TensorComparison(
        histogram=hist,
        source=ma,
        target=mb,
        distances=Distances(ks, w1, kl_of_pair(hist), da.numel(), db.numel()),
        source_fits=fitted["source"],
        target_fits=fitted["target"],
    )
