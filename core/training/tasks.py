"""Training tasks by model family: what model to build, what a batch is, what the loss is.

A task is found through a registry keyed by ``model_type`` (``task_for("bert")``):

========================  ============================  =====================  ============
task                      model types                   model                  eval metric
========================  ============================  =====================  ============
``causal_lm``             llama, mistral, qwen2/3,      AutoModelForCausalLM   perplexity
                          gemma, gpt2
``masked_lm``             bert, roberta                 AutoModelForMaskedLM   perplexity
``image_classification``  vit, deit                     ViTForImageClassif.    accuracy
``mlp_classification``    mlp                           nn.Sequential          accuracy
========================  ============================  =====================  ============

Every batch is a pure function of (data, seed, step): arms and DDP ranks see the same batches.
A task's :meth:`Task.loss_module` wraps the model in an ``nn.Module`` whose ``forward(**batch)``
returns ``{"loss": mean, "count": n, "correct": k, "logits", "hidden"}``, so DistributedDataParallel
can wrap it; ``logits`` and ``hidden`` (final hidden states) are the tensors the loss was computed
from, at its positions (masked tokens, next-token positions, the [CLS] token), which a distillation
term (:mod:`core.training.teacher`) matches without a second forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from core.errors import TrainingError
from core.training.config import ValidationConfig
from core.training.data import Split, load_dataset, load_tokenizer, pack_documents

_TASKS: dict[str, Task] = {}
_BY_MODEL_TYPE: dict[str, str] = {}


def register_task(task: Task) -> Task:
    """Register ``task`` under its name and each of its ``model_types``."""
    _TASKS[task.name] = task
    for model_type in task.model_types:
        _BY_MODEL_TYPE[model_type] = task.name
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise TrainingError(f"task {name!r} is unknown; use one of {', '.join(sorted(_TASKS))}") from None


def task_for(model_type: str) -> Task:
    """The task that trains a model of ``model_type`` (from its config.json)."""
    name = _BY_MODEL_TYPE.get(model_type)
    if name is None:
        raise TrainingError(f"no validation task for model type {model_type!r}; supported: {', '.join(sorted(_BY_MODEL_TYPE))}")
    return _TASKS[name]


@dataclass
class TaskData:
    """Prepared examples: ``inputs`` rows (token ids or images), optional ``labels``, the split."""

    inputs: torch.Tensor
    labels: torch.Tensor | None
    split: Split
    extra: dict = field(default_factory=dict)


class _LossModule(nn.Module):
    """``forward(**batch) -> {"loss", "count", "correct"}`` around ``model`` (DDP-wrappable)."""

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, **batch):
        return self._fn(self.model, batch)


class Task:
    """Base of the tasks; subclasses set the class attributes and the model/batch/loss methods."""

    name: str = ""
    model_types: tuple[str, ...] = ()
    data_kind: str = "text"  # "text" or "images"
    default_dataset: str = "pydoc"
    metric: str = "perplexity"  # "perplexity" or "accuracy"

    # -- model ---------------------------------------------------------------------------------
    def hf_config(self, config: dict):
        """A transformers config object from a config dict (config.json's content)."""
        from transformers import AutoConfig

        values = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "transformers_version", "_name_or_path")}
        try:
            return AutoConfig.for_model(config["model_type"], **values)
        except Exception as exc:
            raise TrainingError(f"cannot build a {config.get('model_type')} config: {exc}") from exc

    def build_model(self, config: dict) -> nn.Module:
        """A freshly initialised model (the architecture's default init; seed set by the caller)."""
        raise NotImplementedError

    def loss_module(self, model: nn.Module) -> nn.Module:
        return _LossModule(model, self.compute)

    # -- data ----------------------------------------------------------------------------------
    def prepare(self, config: dict, options: ValidationConfig, tokenizer_dir: str | None) -> TaskData:
        raise NotImplementedError

    def batch(self, data: TaskData, step: int, options: ValidationConfig) -> dict[str, torch.Tensor]:
        """Training batch ``step`` (0-based) on the CPU."""
        raise NotImplementedError

    def eval_set(self, data: TaskData, options: ValidationConfig) -> list[dict[str, torch.Tensor]]:
        """The fixed evaluation batches (the same for every arm and every eval step)."""
        raise NotImplementedError

    def compute(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """``{"loss", "count", "correct", "logits", "hidden"}``: the loss and the tensors it was
        computed from, at the positions the loss uses (what distillation matches, no extra forward)."""
        raise NotImplementedError

    def outputs(self, model: nn.Module, batch: dict, *, logits: bool = True) -> dict[str, torch.Tensor | None]:
        """The final hidden states ``(N, H)`` or ``(B, T, H)`` and the logits at the loss's positions.

        ``logits=False`` may skip the output layer (a teacher matched on hidden states needs none);
        ``"logits"`` is then None.
        """
        raise TrainingError(f"task {self.name!r} does not expose its hidden states and logits, so it cannot be distilled")

    def metric_value(self, loss: float, correct: float, count: float) -> float:
        if self.metric == "accuracy":
            return correct / max(count, 1)
        return math.exp(min(loss, 50.0))


# -- language models --------------------------------------------------------------------------


class _LanguageTask(Task):
    wrap = False

    def prepare(self, config, options, tokenizer_dir):
        if tokenizer_dir is None:
            raise TrainingError("a language-model run needs the source model's tokenizer; give its folder (--tokenizer)")
        tokenizer = load_tokenizer(str(tokenizer_dir))
        vocab = config.get("vocab_size")
        if vocab is not None and len(tokenizer) > vocab:
            raise TrainingError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab}; use the source model's tokenizer")
        limit = config.get("max_position_embeddings") or config.get("n_positions")
        if limit is not None and options.seq_len > limit:
            raise TrainingError(f"seq_len {options.seq_len} exceeds the model's {limit} positions; lower --seq-len")
        docs = load_dataset(options.dataset or self.default_dataset, "text")
        rows = pack_documents(docs, tokenizer, options.seq_len, wrap=self.wrap)
        extra = {
            "mask_id": tokenizer.mask_token_id,
            "vocab": vocab or len(tokenizer),
            "special": sorted({i for i in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) if i is not None}),
        }
        return TaskData(rows, None, Split(len(rows), options.seed, options.eval_fraction), extra)

    def _rows_batch(self, data: TaskData, rows: torch.Tensor, seed: int, options) -> dict[str, torch.Tensor]:
        return {"input_ids": data.inputs[rows]}

    def batch(self, data, step, options):
        rows = data.split.batch_rows(step, options.batch_size)
        return self._rows_batch(data, rows, options.seed * 1_000_003 + step + 1, options)

    def eval_set(self, data, options):
        index = data.split.eval_index
        batches = []
        for b in range(options.eval_batches):
            rows = index[b * options.batch_size : (b + 1) * options.batch_size]
            if len(rows) == 0:
                break
            batches.append(self._rows_batch(data, rows, -(options.seed * 1_000_003 + b + 1), options))
        return batches


class CausalLMTask(_LanguageTask):
    name = "causal_lm"
    model_types = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gpt2")

    def build_model(self, config):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(self.hf_config(config))

    def outputs(self, model, batch, *, logits=True):
        ids = batch["input_ids"]
        if not logits:  # the body alone: its output is the final (normed) hidden state
            return {"hidden": getattr(model, model.base_model_prefix)(input_ids=ids)[0][:, :-1], "logits": None}
        out = model(input_ids=ids, output_hidden_states=True)
        return {"hidden": out.hidden_states[-1][:, :-1], "logits": out.logits[:, :-1]}

    def compute(self, model, batch):
        out = self.outputs(model, batch)
        logits, target = out["logits"], batch["input_ids"][:, 1:]
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
        return {"loss": loss, "count": torch.tensor(float(target.numel())), "correct": torch.tensor(0.0), **out}


class MaskedLMTask(_LanguageTask):
    """Masked LM with the 80/10/10 rule; the MLM head runs on the masked positions only.

    Running the vocabulary projection on the ~15% masked tokens instead of all of them makes a
    step about twice as fast on the demo model; the loss is the same as the full forward's.
    """

    name = "masked_lm"
    model_types = ("bert", "roberta")
    wrap = True

    def build_model(self, config):
        from transformers import AutoModelForMaskedLM

        return AutoModelForMaskedLM.from_config(self.hf_config(config))

    def _rows_batch(self, data, rows, seed, options):
        ids = data.inputs[rows].clone()
        if data.extra["mask_id"] is None:
            raise TrainingError("masked LM needs a tokenizer with a mask token")
        gen = torch.Generator().manual_seed(seed % (2**63))
        maskable = ~torch.isin(ids, torch.tensor(data.extra["special"], dtype=torch.long))
        chosen = (torch.rand(ids.shape, generator=gen) < options.mlm_probability) & maskable
        if not chosen.any():  # at least one target per batch
            chosen.view(-1)[int(maskable.view(-1).nonzero()[0])] = True
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        roll = torch.rand(ids.shape, generator=gen)
        random_ids = torch.randint(0, data.extra["vocab"], ids.shape, generator=gen)
        ids = torch.where(chosen & (roll < 0.8), torch.full_like(ids, data.extra["mask_id"]), ids)
        ids = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, ids)
        return {"input_ids": ids, "labels": labels}

    def outputs(self, model, batch, *, logits=True):
        selected = batch["labels"] != -100
        head = getattr(model, "cls", None)
        if head is None:
            head = getattr(model, "lm_head", None)
        if head is None:  # an unknown head layout: the full forward
            out = model(input_ids=batch["input_ids"], output_hidden_states=True)
            return {"hidden": out.hidden_states[-1][selected], "logits": out.logits[selected]}
        hidden = getattr(model, model.base_model_prefix)(input_ids=batch["input_ids"])[0][selected]
        return {"hidden": hidden, "logits": head(hidden) if logits else None}

    def compute(self, model, batch):
        out = self.outputs(model, batch)
        target = batch["labels"][batch["labels"] != -100]
        loss = nn.functional.cross_entropy(out["logits"].float(), target)
        return {"loss": loss, "count": torch.tensor(float(target.numel())), "correct": torch.tensor(0.0), **out}


register_task(CausalLMTask())
register_task(MaskedLMTask())

from core.training import vision as _vision  # noqa: E402,F401  (registers the image tasks)
