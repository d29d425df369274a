"""Language-model tasks: causal LM (next token) and masked LM (80/10/10), on packed token rows.

Rows are the data set's documents tokenised with the source model's tokenizer and packed into
``seq_len`` tokens (:func:`core.training.data.pack_documents`); the masked LM wraps documents
across rows, the causal LM does not. Masking is drawn per batch from (seed, step), so every arm
sees the same masks; eval batches draw from negative seeds, never a training batch's.
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import TrainingError
from core.training.data import Split, load_dataset, load_tokenizer, pack_documents
from core.training.tasks.base import TASKS, Task, TaskData


class _LanguageTask(Task):
    wrap = False

    def prepare(self, config, options, tokenizer_dir):
        if tokenizer_dir is None:
            raise TrainingError(
                "a language-model run needs the source model's tokenizer; give its folder (--tokenizer)"
            )
        tokenizer = load_tokenizer(str(tokenizer_dir))
        vocab = config.get("vocab_size")
        if vocab is not None and len(tokenizer) > vocab:
            raise TrainingError(
                f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab}; use the source model's tokenizer"
            )
        limit = config.get("max_position_embeddings") or config.get("n_positions")
        if limit is not None and options.seq_len > limit:
            raise TrainingError(f"seq_len {options.seq_len} exceeds the model's {limit} positions; lower --seq-len")
        docs = load_dataset(options.dataset or self.default_dataset, "text")
        rows = pack_documents(docs, tokenizer, options.seq_len, wrap=self.wrap)
        extra = {
            "mask_id": tokenizer.mask_token_id,
            "vocab": vocab or len(tokenizer),
            "special": sorted(
                {
                    i
                    for i in (
                        tokenizer.cls_token_id,
                        tokenizer.sep_token_id,
                        tokenizer.pad_token_id,
                        tokenizer.bos_token_id,
                        tokenizer.eos_token_id,
                    )
                    if i is not None
                }
            ),
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
    model_class = "AutoModelForCausalLM"

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
    model_class = "AutoModelForMaskedLM"
    wrap = True

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


TASKS.add(CausalLMTask.name, CausalLMTask())
TASKS.add(MaskedLMTask.name, MaskedLMTask())
