"""Everything about one tensor on its own: moments, fits, spectrum and mean-field measurements.

What ``graft stats <source> --tensor NAME`` prints, and what the app's tensor panel shows
beside the histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.stats.compare import DEFAULT_FITS
from core.stats.fits import FITTERS, Fit
from core.stats.meanfield import MeanFieldStats
from core.stats.metrics import TensorView
from core.stats.moments import Moments
from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED
from core.stats.spectrum import DEFAULT_MAX_SIDE, Spectrum


@dataclass(frozen=True, eq=False)
class TensorStats:
    """One tensor's statistics; ``spectrum`` and ``mean_field`` are None for vectors.

    ``fit_loglik`` is the mean log-likelihood per entry of each fit on the sample (higher is
    better; the fits have 2, 2 and 3 parameters, negligible against ≥10⁴ entries).
    ``nonfinite`` counts the NaN/±Inf entries of the whole tensor: moments and fits describe the
    finite ones (no fits when there are none), the spectrum and mean-field numbers are NaN.
    ``to_dict`` writes NaN and ±Inf as None, so its JSON is standard.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    moments: Moments
    fits: dict[str, Fit]
    fit_loglik: dict[str, float]
    spectrum: Spectrum | None
    mean_field: MeanFieldStats | None
    nonfinite: int = 0

    def to_dict(self, *, singular_values: bool = False) -> dict:
        spec = self.spectrum.to_dict() if self.spectrum else None
        if spec and not singular_values:
            spec.pop("singular_values")
        return _json_numbers(
            {
                "name": self.name,
                "shape": list(self.shape),
                "dtype": self.dtype,
                "nonfinite": self.nonfinite,
                "moments": self.moments.to_dict(),
                "fits": {k: f.to_dict() for k, f in self.fits.items()},
                "fit_loglik": self.fit_loglik,
                "spectrum": spec,
                "mean_field": self.mean_field.to_dict() if self.mean_field else None,
            }
        )


def _json_numbers(value):
    """``value`` with every NaN/±Inf float replaced by None (standard JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_numbers(v) for v in value]
    return value


def tensor_stats(
    tensor,
    name: str = "",
    *,
    fan_in: int | None = 1,
    fits: tuple[str, ...] = DEFAULT_FITS,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> TensorStats:
    """Moments, fits (with their log-likelihoods), spectrum and mean-field stats of one tensor."""
    view = TensorView(tensor, fan_in=fan_in, device=device, seed=seed, max_elements=max_elements, max_side=max_side)
    sample = view.sample.cpu()  # finite entries only
    fitted = {n: FITTERS[n](sample, max_elements=100_000, seed=seed) for n in fits} if sample.numel() else {}
    return TensorStats(
        name=name,
        shape=tuple(view.tensor.shape),
        dtype=str(view.tensor.dtype).replace("torch.", ""),
        moments=view.moments,
        fits=fitted,
        fit_loglik={n: float(f.logpdf(sample.double()).mean()) for n, f in fitted.items()},
        spectrum=view.spectrum if view.is_matrix else None,
        mean_field=view.mean_field if view.is_matrix else None,
        nonfinite=view.nonfinite,
    )
