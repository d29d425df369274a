"""A task head the arm's checkpoint lacks, initialised from its body instead of drawn at random.

The demo model (a sentence-transformers encoder) has no masked-LM head, so a masked-LM validation
used to start every transferred arm with a random ``cls.predictions`` block: the body was
transferred, yet the eval loss at step 0 was ≈ ln(vocab) ≈ 10.3 and the first steps went to learning
the head. With ``head_init="auto"`` (the default) such a head starts as a readout of the body:

* **transform** (``dense`` → GELU → LayerNorm): ``dense = a·I`` with bias ``b·1`` (a = 1/(8·rms of the
  body's output), b = 6), so GELU runs in its linear region (Φ(6 ± 1) > 0.9999) and the LayerNorm
  that follows undoes the shift and the scale: the transform is the identity up to normalisation;
* **LayerNorm**: the body's final norm statistics (γ, β of its last LayerNorm), times a scale ``s``;
* **decoder**: tied to the word embeddings (as the architecture ties it), so logit_v = s·h·e_v + bias_v;
* **bias**: log unigram frequencies of the tokens in the *training* split (add-one smoothed, the
  special tokens that are never targets left out), centred;
* **s**: the value in :data:`SCALES` with the lowest masked-LM loss on the first two training
  batches (s = 0 is the unigram predictor; the search costs one body forward per batch).

Only the head's own parameters change, and only where they were missing from the arm; the baseline
arm (no tensors at all) keeps the architecture's random head. ``head_init="random"`` restores the old
behaviour. The benchmark (``benchmarks/bench_strategies.py``) reports both.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

log = logging.getLogger(__name__)

#: the readout scales tried (LayerNorm γ and β multiplied by s).
SCALES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0)
CALIBRATION_BATCHES = 2


def _mlm_head(model: nn.Module):
    """``(dense, norm, bias parameter, decoder)`` of a BERT- or RoBERTa-style MLM head, or None."""
    cls = getattr(model, "cls", None)
    if cls is not None and hasattr(cls, "predictions"):
        p = cls.predictions
        return p.transform.dense, p.transform.LayerNorm, p.bias, p.decoder
    head = getattr(model, "lm_head", None)
    if head is not None and all(hasattr(head, n) for n in ("dense", "layer_norm", "decoder", "bias")):
        return head.dense, head.layer_norm, head.bias, head.decoder
    return None


def _final_norm(base: nn.Module) -> nn.LayerNorm | None:
    norms = [m for m in base.modules() if isinstance(m, nn.LayerNorm)]
    return norms[-1] if norms else None


def unigram_log_probs(data, vocab: int, exclude: list[int]) -> torch.Tensor:
    """Centred log p(token) over the training rows, add-one smoothed; ``exclude`` ids get the smoothing floor."""
    rows = data.inputs[torch.as_tensor(data.split.train_index, dtype=torch.long)]
    counts = torch.bincount(rows.reshape(-1).clamp(0, vocab - 1), minlength=vocab).to(torch.float64)
    if exclude:
        counts[torch.as_tensor(exclude, dtype=torch.long)] = 0.0
    logp = torch.log((counts + 1.0) / (counts.sum() + vocab))
    return (logp - logp.mean()).to(torch.float32)


def init_missing_head(task, model: nn.Module, report, data, options) -> dict | None:
    """Initialise the masked-LM head in place when its parameters were missing from the arm.

    Returns a summary (``method``, ``scale``, the calibration losses) or None when there was
    nothing to do (the arm had its head, the task has no such head, or the arm is the baseline).
    """
    if task.name != "masked_lm" or report.loaded == 0:
        return None
    parts = _mlm_head(model)
    if parts is None:
        return None
    dense, norm, bias, decoder = parts
    head_names = {n for n, p in model.named_parameters() if any(p is q for q in (dense.weight, norm.weight, bias))}
    if not head_names & set(report.missing):
        return None
    base = getattr(model, model.base_model_prefix)
    body_norm = _final_norm(base)
    if body_norm is None or decoder.weight.shape[1] != dense.weight.shape[0]:
        return None
    batches = [task.batch(data, step, options) for step in range(CALIBRATION_BATCHES)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        hidden = []
        for batch in batches:
            h = base(input_ids=batch["input_ids"])[0]
            hidden.append((h[batch["labels"] != -100], batch["labels"][batch["labels"] != -100]))
        rms = float(torch.cat([h for h, _ in hidden]).pow(2).mean().sqrt()) or 1.0
        width = dense.weight.shape[0]
        dense.weight.copy_(torch.eye(width) / (8.0 * rms))
        dense.bias.fill_(6.0)
        gamma, beta = body_norm.weight.detach().clone(), body_norm.bias.detach().clone()
        bias.copy_(unigram_log_probs(data, bias.shape[0], data.extra.get("special", [])))
        losses = {}
        for s in SCALES:
            norm.weight.copy_(gamma * s)
            norm.bias.copy_(beta * s)
            total = count = 0.0
            for h, labels in hidden:
                logits = decoder(norm(_transform_act(model)(dense(h))))
                total += float(nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
                count += labels.numel()
            losses[s] = total / max(count, 1)
        best = min(losses, key=lambda s: (losses[s], s))
        norm.weight.copy_(gamma * best)
        norm.bias.copy_(beta * best)
    model.train(was_training)
    summary = {
        "method": "tied",
        "scale": best,
        "calibration_loss": losses[best],
        "unigram_loss": losses[0.0],
        "random_loss": math.log(bias.shape[0]),
    }
    log.info(
        "masked-LM head initialised from the body: scale %.2f, calibration loss %.3f (unigram %.3f)",
        best,
        losses[best],
        losses[0.0],
    )
    return summary


def _transform_act(model: nn.Module):
    cls = getattr(model, "cls", None)
    if cls is not None and hasattr(cls, "predictions"):
        return cls.predictions.transform.transform_act_fn
    return nn.functional.gelu  # RobertaLMHead applies gelu between dense and layer_norm
