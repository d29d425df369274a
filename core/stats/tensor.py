"""Everything about one tensor on its own: moments, fits, spectrum and mean-field measurements.

What ``graft stats <source> --tensor NAME`` prints, and what the app's tensor panel shows
beside the histogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.stats.compare import DEFAULT_FITS
from core.stats.fits import FITTERS, Fit
from core.stats.meanfield import MeanFieldStats
from core.stats.metrics import TensorView
from core.stats.moments import Moments
from core.stats.sampling import DEFAULT_MAX_ELEMENTS, DEFAULT_SEED
from core.stats.spectrum import DEFAULT_MAX_ROWS, Spectrum


@dataclass(frozen=True, eq=False)
class TensorStats:
    """One tensor's statistics; ``spectrum`` and ``mean_field`` are None for vectors.

    ``fit_loglik`` is the mean log-likelihood per entry of each fit on the sample (higher is
    better; the fits have 2, 2 and 3 parameters, negligible against ≥10⁴ entries).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    moments: Moments
    fits: dict[str, Fit]
    fit_loglik: dict[str, float]
    spectrum: Spectrum | None
    mean_field: MeanFieldStats | None

    def to_dict(self, *, singular_values: bool = False) -> dict:
        spec = self.spectrum.to_dict() if self.spectrum else None
        if spec and not singular_values:
            spec.pop("singular_values")
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "moments": self.moments.to_dict(),
            "fits": {k: f.to_dict() for k, f in self.fits.items()},
            "fit_loglik": self.fit_loglik,
            "spectrum": spec,
            "mean_field": self.mean_field.to_dict() if self.mean_field else None,
        }


def tensor_stats(
    tensor,
    name: str = "",
    *,
    fan_in: int | None = 1,
    fits: tuple[str, ...] = DEFAULT_FITS,
    max_elements: int | None = DEFAULT_MAX_ELEMENTS,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    seed: int = DEFAULT_SEED,
    device: str | torch.device = "cpu",
) -> TensorStats:
    """Moments, fits (with their log-likelihoods), spectrum and mean-field stats of one tensor."""
    view = TensorView(tensor, fan_in=fan_in, device=device, seed=seed, max_elements=max_elements, max_rows=max_rows)
    sample = view.sample.cpu()
    fitted = {n: FITTERS[n](sample, max_elements=100_000, seed=seed) for n in fits}
    return TensorStats(
        name=name,
        shape=tuple(view.tensor.shape),
        dtype=str(view.tensor.dtype).replace("torch.", ""),
        moments=view.moments,
        fits=fitted,
        fit_loglik={n: float(f.logpdf(sample.double()).mean()) for n, f in fitted.items()},
        spectrum=view.spectrum if view.is_matrix else None,
        mean_field=view.mean_field if view.is_matrix else None,
    )
