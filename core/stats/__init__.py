"""The numbers behind every picture: histograms, fits, distances, correlation maps, spectra.

Core returns data — numpy arrays and small frozen dataclasses — never pictures; the app and
``graft report`` draw them. Every function takes torch tensors (any float dtype, any device) or
numpy arrays, computes in fp32 (float64 where precision matters), on ``device``, on fixed-seed
subsamples of large tensors (see :mod:`core.stats.sampling`). NaN/±Inf entries never raise:
value statistics use the finite entries and count the others, matrix statistics of a matrix with
any are NaN.

Per tensor:
    compare_tensors(source, target) -> TensorComparison   # the live preview bundle
    histogram_pair(source, target) -> HistogramPair        # shared bins + fitted pdfs
    moments(x) -> Moments; distances(a, b) -> Distances
    fit_gaussian / fit_laplace / fit_student_t(x) -> fits with pdf/logpdf/sample/to_dict
    correlation_map(W, "rows"|"cols", order=None|"cluster"|"spectral") -> CorrelationMap
    head_maps(q, k, v, o, num_heads, num_kv_heads) -> HeadMaps  # per-head QKᵀ and VO
    spectrum(W) -> Spectrum (singular values, ESD α, stable rank)
    powerlaw_fit(eigenvalues, method="weightwatcher"|"csn") -> PowerLawFit
    mean_field_stats(W) -> MeanFieldStats (+ .suggestions)
    tensor_stats(x) -> TensorStats (all of the above for one tensor)
Per model:
    model_table(source, metrics, roles, progress=, cancel=) -> ModelTable (layer × role)
"""

from core.stats.compare import DEFAULT_FITS, TensorComparison, compare_tensors
from core.stats.correlation import CorrelationMap, correlation_map
from core.stats.distances import Distances, distances, histogram_kl, ks_and_wasserstein
from core.stats.fits import (
    FITTERS,
    GaussianFit,
    LaplaceFit,
    StudentTFit,
    fit_all,
    fit_gaussian,
    fit_laplace,
    fit_student_t,
)
from core.stats.heads import HeadMaps, head_maps
from core.stats.histogram import HistogramPair, histogram_pair
from core.stats.meanfield import MeanFieldStats, mean_field_stats, suggest
from core.stats.metrics import (
    DEFAULT_METRICS,
    MEAN_FIELD_METRICS,
    METRICS,
    TensorView,
    register_metric,
)
from core.stats.moments import Moments, moments
from core.stats.powerlaw import ALPHA_METHODS, PowerLawFit, powerlaw_fit
from core.stats.spectrum import Spectrum, singular_values, spectrum, stable_rank
from core.stats.summary import TensorSummary, summarise
from core.stats.table import ModelTable, TensorRow, iter_tensor_metrics, model_table
from core.stats.tensor import TensorStats, tensor_stats

__all__ = [
    "TensorSummary",
    "summarise",
    "ALPHA_METHODS",
    "DEFAULT_FITS",
    "DEFAULT_METRICS",
    "FITTERS",
    "MEAN_FIELD_METRICS",
    "METRICS",
    "CorrelationMap",
    "Distances",
    "GaussianFit",
    "HeadMaps",
    "HistogramPair",
    "LaplaceFit",
    "MeanFieldStats",
    "ModelTable",
    "Moments",
    "PowerLawFit",
    "Spectrum",
    "StudentTFit",
    "TensorComparison",
    "TensorRow",
    "TensorStats",
    "TensorView",
    "compare_tensors",
    "correlation_map",
    "distances",
    "fit_all",
    "fit_gaussian",
    "fit_laplace",
    "fit_student_t",
    "head_maps",
    "histogram_kl",
    "histogram_pair",
    "iter_tensor_metrics",
    "ks_and_wasserstein",
    "mean_field_stats",
    "model_table",
    "moments",
    "powerlaw_fit",
    "register_metric",
    "singular_values",
    "spectrum",
    "stable_rank",
    "suggest",
    "tensor_stats",
]
