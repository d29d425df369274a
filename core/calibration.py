"""Activation scores and Block Influence of the source, measured on calibration data (one pass, cached).

Data-aware selection (Minitron, Muralidharan et al. 2024; ShortGPT, Men et al. 2024; METHODS.md §9)
keeps the neurons and layers that matter *on data*. :func:`activation_profile` runs the source
model, loaded whole in float32 (the task's model built from the source config under a fixed seed,
then :func:`core.training.arms.load_tensors`), on the first ``samples`` rows of the task's
training split — pydoc text for language models, digits for images and the generic MLP, or the
user's data set; never an eval row of a validation run with the same data set, seed and eval
fraction — and measures (the hooks are in :mod:`core.calibration_pass`):

* **Neuron scores**, generically from the architecture spec: the *input* of every linear module
  (``nn.Linear``; transformers' ``Conv1D`` for GPT-2) whose weight is a source tensor with a
  fan-in axis is hooked, and the axis' atoms say which dimension each input channel carries:
  ``hidden`` (the norm outputs feeding q/k/v/up/gate/head in pre-LN models, the LayerNorm
  outputs in post-LN BERT), ``ffn`` (the input of mlp.down: the activation after the
  nonlinearity), ``heads × head_dim`` (the input of attn.o: each head's output), ``h0``, ``h1`` …
  for the MLP. Rule ``magnitude`` (default): a channel scores mean |x| over tokens; on a
  composite axis an index scores the mean over tokens of the L2 norm of its block (a head: its
  head_dim entries — Minitron's "norm of the head's output"). Rule ``reconstruction``: the
  greedy order that best reconstructs each reader's output (hidden, ffn, the MLP's widths).
* **Aggregation over readers.** Per-layer dimensions (``ffn``, ``heads``, ``kv_heads``) keep
  per-layer scores, keyed by source layer. A global dimension (``hidden``, ``head_dim``, the MLP's
  widths) is read in many places: readers that see the very same input tensor (q, k and v of one
  layer; gate and up) count once, and each distinct input's vector is normalised to mean 1 before
  the vectors are averaged (:func:`core.calibration_pass.combine_readers`). Why: norm outputs
  differ in scale from layer to layer (their learned weights grow with depth; the final norm
  before the head is often several times larger), so a plain sum would let one layer's input
  decide which hidden channels survive, while every layer's input goes through the same channels.
* **kv_heads** under grouped-query attention: no linear layer reads the kv heads directly, so a kv
  group scores the sum of its query heads' scores (groups are kept whole); families without a kv
  axis get the heads' scores (as :mod:`core.strategies.scores` does).
* **Expert usage** (mixture-of-experts families): ``experts@3`` scores each expert of source
  layer 3 by the mean routing weight it gets per calibration token, after top-k (and the
  renormalisation, where the model renormalises): see :mod:`core.calibration_pass` for why that
  rule. The model's experts are loaded into transformers' fused expert parameters
  (:meth:`~core.architectures.families._moe.MoESpec.fused_expert_state`), so every router sees the
  hidden states of the real model.
* **Block Influence** (ShortGPT): BI_l = 1 − mean over tokens of cos(x_in, x_out) of layer l. The
  block's own input and output are hooked rather than read from ``output_hidden_states``: in
  pre-LN models the last entry of ``hidden_states`` is already the final norm's output, which
  would make the last layer look influential. For the other layers it is the same number.

The profile is cached under ``$GRAFT_CACHE_DIR/activations`` (``~/.cache/graft/activations``),
keyed by SHA-256 over the source's shard hashes (the cached scan of :mod:`core.sources.scan`), its
config, the calibration rows' bytes, the parameters and :data:`FORMAT`; a second call is a file
read (plus preparing the rows: about 0.5 s of tokenising pydoc). The whole model is loaded, so
scoring is refused above ``GRAFT_SCORE_MAX_BYTES`` (8 GiB of float32 by default): a larger model
would have to be scored layer by layer, which Graft does not do yet. The pass runs on the CPU:
the demo model (22M parameters, 64 × 128 tokens) takes about 6 s on 2 cores.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from core.calibration_pass import RULES, aggregate, check_gram_memory, find_readers, find_routers, run_pass
from core.errors import PlanError, TrainingError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

log = logging.getLogger(__name__)

FORMAT = "activations-v1"
#: how the ``experts`` dimension is scored (part of the cache key: a new rule is a new entry).
EXPERT_USAGE_RULE = "mean-topk-routing-weight"
DEFAULT_MAX_BYTES = 8 << 30
MAX_BYTES_ENV = "GRAFT_SCORE_MAX_BYTES"


@dataclass
class ActivationProfile:
    """What one calibration pass measured.

    Attributes:
        family: the source's architecture family.
        dims: score vectors by key: ``hidden``, ``head_dim``, ``h0`` … for global dimensions,
            ``ffn@3``, ``heads@3``, ``kv_heads@3`` per source layer (float64).
        sizes: the source's dimension sizes (for dimensions nothing reads: ones).
        block_influence: BI_l per source layer (empty for the MLP).
        samples, tokens: calibration rows used, and tokens (or images) they held.
        cached: whether this profile was read from the cache.
    """

    family: str
    dims: dict
    sizes: dict[str, int]
    block_influence: list[float] = field(default_factory=list)
    samples: int = 0
    tokens: int = 0
    cached: bool = False

    def scores(self, dim: str, source_layer: int | None = None):
        """Scores (N,) of the neurons of ``dim`` (at ``source_layer`` for per-layer dimensions)."""
        import torch

        from core.architectures import FAMILIES

        key = f"{dim}@{source_layer}" if FAMILIES.get(self.family).per_layer(dim) else dim
        found = self.dims.get(key)
        if found is None:
            log.info("no linear layer reads %s: its activation scores are all equal", key)
            return torch.ones(self.sizes[dim], dtype=torch.float64)
        return found.clone()

    def to_state(self) -> dict:
        return {
            "format": FORMAT,
            "family": self.family,
            "dims": self.dims,
            "sizes": self.sizes,
            "block_influence": self.block_influence,
            "samples": self.samples,
            "tokens": self.tokens,
        }

    @classmethod
    def from_state(cls, state: dict) -> ActivationProfile:
        if state.get("format") != FORMAT:
            raise ValueError("another format")
        return cls(
            state["family"],
            dict(state["dims"]),
            dict(state["sizes"]),
            list(state["block_influence"]),
            int(state["samples"]),
            int(state["tokens"]),
            cached=True,
        )


# -- the model and its data --------------------------------------------------------------------------
def max_bytes() -> int:
    text = os.environ.get(MAX_BYTES_ENV)
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        return int(text)
    except ValueError:
        raise PlanError(
            f"{MAX_BYTES_ENV}={text!r} is not a number of bytes; set it to e.g. 17179869184 (16 GiB)"
        ) from None


def _check_size(source) -> None:
    need, limit = 4 * source.num_parameters, max_bytes()
    if need > limit:
        raise PlanError(
            f"scoring activations loads the whole source in float32 ({need / 2**30:.1f} GiB), above the "
            f"{limit / 2**30:.1f} GiB limit ({MAX_BYTES_ENV}); models this large must be scored layer by "
            "layer, which Graft does not do yet — use by_norm or first_n, or raise the limit if this "
            "machine has the memory"
        )


def _max_tokens(config: dict, seq_len: int) -> int:
    """``seq_len`` capped at the model's positions (RoBERTa's position ids start after the pad id)."""
    limit = config.get("max_position_embeddings") or config.get("n_positions")
    if limit is None:
        return seq_len
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        limit -= int(config.get("pad_token_id") or 1) + 1
    return max(8, min(seq_len, int(limit)))


def _rows(task, config: dict, source, dataset, samples, seq_len, batch_size, seed, eval_fraction):
    """The first ``samples`` training rows of the task's data, as model input batches."""
    from core.training.config import ValidationConfig

    try:
        options = ValidationConfig(
            dataset=dataset or None, seq_len=seq_len, batch_size=batch_size, seed=seed, eval_fraction=eval_fraction
        )
        data = task.prepare(config, options, str(source.root))
    except TrainingError as exc:
        raise PlanError(f"the calibration data for data-aware selection cannot be prepared: {exc}") from exc
    rows = data.split.train_index[:samples]
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        if task.data_kind == "text":
            batches.append({"input_ids": data.inputs[chunk]})
        else:  # the image tasks' own preprocessing (resize for ViT, flatten for the MLP)
            batch = task._rows_batch(data, chunk)
            batches.append({k: v for k, v in batch.items() if k != "labels"})
    return batches


def _state_names(source, spec, config, model) -> dict[str, str]:
    """Source tensor name → the model's state-dict key: as the family fixes it (the MLP's k-th Linear is
    module 2k), else matched to the model's keys (with or without the base prefix, transformers' renamings)."""
    from core.training.arms import match_keys

    own = model.state_dict()
    keys = spec.model_keys(config, list(source.tensors))
    if keys is None:
        keys = match_keys(model, list(source.tensors))
    return {n: key for n, key in keys.items() if key in own}


def _load_model(source, spec, config, task, seed: int):
    import torch

    from core.training.arms import load_tensors

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = task.build_model(config)
        except TrainingError as exc:
            raise PlanError(f"data-aware selection cannot run this source: {exc}") from exc
    model = model.float().eval()
    own = model.state_dict()
    names = {n: key for n, key in _state_names(source, spec, config, model).items() if key in own}
    bad = [n for n, key in names.items() if tuple(own[key].shape) != tuple(source.tensors[n].shape)]
    if bad:
        raise PlanError(
            f"the source's tensor {bad[0]!r} does not fit the {config.get('model_type')} model built "
            "from its config, so its activations cannot be measured; use by_norm or first_n"
        )
    absent = [n for n in source.tensors if n not in names]
    if absent:  # e.g. a pooler the task model has no use for: not run, so not scored
        log.info("not part of the %s task model, not scored: %s", config.get("model_type"), ", ".join(absent[:5]))
    load_tensors(model, {key: source.read(n) for n, key in names.items()})
    fused = getattr(spec, "fused_expert_state", None)  # MoE: transformers' stacked expert parameters
    if fused is not None:
        with torch.no_grad():
            for key, value in fused(source, own).items():
                own[key].copy_(value.to(own[key].dtype))
    return model, names


def _described(source, spec):
    from core.architectures import describe

    return describe(source, spec)


def _cache_path(key: str):
    from core.sources.base import cache_dir

    return cache_dir() / "activations" / f"{key}.pt"


def _key(source, config, batches, params: dict) -> str:
    digest = hashlib.sha256()
    head = {"format": FORMAT, "shards": sorted(source.file_hashes().items()), "config": config, "params": params}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for batch in batches:
        for name in sorted(batch):
            tensor = batch[name].contiguous()
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _read_cache(key: str) -> ActivationProfile | None:
    import torch

    path = _cache_path(key)
    try:
        return ActivationProfile.from_state(torch.load(path, weights_only=True))
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged or older entry is recomputed
        log.info("ignoring the activation cache entry %s: %s", path.name, exc)
        return None


def _write_cache(key: str, profile: ActivationProfile) -> None:
    import torch

    path = _cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        torch.save(profile.to_state(), tmp)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs a recomputation next time
        log.warning("cannot write the activation cache %s: %s", path, exc)


def activation_profile(
    source,
    *,
    dataset: str | None = None,
    samples: int = 64,
    seq_len: int = 128,
    batch_size: int = 16,
    seed: int = 0,
    eval_fraction: float = 0.1,
    rule: str = "magnitude",
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> ActivationProfile:
    """Run the source on calibration data; the per-dimension scores and per-layer Block Influence.

    Args:
        source: an opened :class:`core.sources.Source` (any supported family or the generic MLP).
        dataset: a registered data set name or a text path (validation's ``--dataset``); None or
            "" for the task's own (pydoc text, digits images).
        samples: calibration rows (sequences of ``seq_len`` tokens, or images) from the training split.
        seq_len: tokens per row (capped at the model's positions).
        batch_size: rows per forward pass.
        seed, eval_fraction: the train/eval split (validation's: calibration rows are never its eval rows).
        rule: ``magnitude`` (Minitron's mean |activation|) or ``reconstruction`` (greedy selection
            that best reconstructs each reader's output; hidden, ffn and the MLP's widths), see
            :mod:`core.calibration_pass`.
        progress: ``(fraction, message)`` per batch.
        cancel: checked before every batch.

    Returns:
        The :class:`ActivationProfile` (from the cache when the same source, data and parameters
        were scored before).

    Raises:
        PlanError: the source is too large to load whole, or cannot be run on the task's data, or
            ``rule`` is unknown.
        Cancelled: ``cancel`` was triggered.
    """
    from core.architectures import detect
    from core.training.tasks import task_for

    if rule not in RULES:
        raise PlanError(f"activation rule {rule!r} is unknown; use {' or '.join(RULES)}")
    spec, config = detect(source)
    sizes = spec.sizes(config)
    _check_size(source)
    try:
        task = task_for(config["model_type"])
    except TrainingError as exc:
        raise PlanError(f"data-aware selection cannot run this source: {exc}") from exc
    seq_len = _max_tokens(config, seq_len) if task.data_kind == "text" else seq_len
    progress(-1.0, "preparing calibration data")
    batches = _rows(task, config, source, dataset, samples, seq_len, batch_size, seed, eval_fraction)
    params = {
        "dataset": dataset or "",
        "samples": samples,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "seed": seed,
        "eval_fraction": eval_fraction,
        "rule": rule,
        "experts": EXPERT_USAGE_RULE,
    }
    key = _key(source, config, batches, params)
    hit = _read_cache(key)
    if hit is not None:
        progress(1.0, "activation scores from the cache")
        return hit
    cancel.check()
    progress(-1.0, "loading the source to score its activations")
    model, names = _load_model(source, spec, config, task, seed)
    readers = find_readers(_described(source, spec), sizes, model, names)
    reconstruct = rule == "reconstruction"
    if reconstruct:
        check_gram_memory(readers, max_bytes())
    n_layers = sizes.get("layers", 0) if spec.layered else 0
    routing = getattr(spec, "routing", None)  # MoE families: top-k and renormalisation of the router
    routers = find_routers(_described(source, spec), model, names, *routing(config)) if routing else []
    influence, grams = run_pass(
        model, batches, readers, n_layers, grams=reconstruct, progress=progress, cancel=cancel, routers=routers
    )
    first = [next(iter(b.values())) for b in batches]
    rows = sum(len(x) for x in first)
    tokens = sum(x.numel() for x in first) if task.data_kind == "text" else rows
    dims = aggregate(readers, spec, sizes, grams if reconstruct else None)
    dims.update({f"experts@{r.layer}": r.usage() for r in routers if r.tokens})
    profile = ActivationProfile(spec.family, dims, dict(sizes), influence, rows, tokens)
    _write_cache(key, profile)
    return profile


def lazy_profile(source, **kwargs) -> Callable[[], ActivationProfile]:
    """A function that computes :func:`activation_profile` on its first call and returns it after."""
    return functools.lru_cache(maxsize=1)(lambda: activation_profile(source, **kwargs))


def expert_usage_score_fn(
    profile: Callable[[], ActivationProfile], others: Callable[[str, int | None], object]
) -> Callable[[str, int | None], object]:
    """``score_fn`` whose ``experts`` scores are the profile's routing usage and every other dimension's ``others``'.

    For an index strategy with ``experts=usage``: the calibration pass runs only when a plan asks
    for the experts' scores (an MoE source whose expert count changes).
    """

    def scores(dim: str, source_layer: int | None):
        return profile().scores(dim, source_layer) if dim == "experts" else others(dim, source_layer)

    return scores


def activation_score_fn(profile: Callable[[], ActivationProfile]) -> Callable[[str, int | None], object]:
    """``(dim, source_layer) -> scores`` for :func:`core.plan.make_plan`'s ``score_fn``."""

    def scores(dim: str, source_layer: int | None):
        return profile().scores(dim, source_layer)

    return scores
