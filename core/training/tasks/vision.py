"""Image tasks on scikit-learn's digits: image classification (ViT, ConvNeXt) and the generic MLP.

Digits are 8×8 in [0, 1]. For an image model (ViT, ConvNeXt) they are normalised to [-1, 1], resized to the config's
``image_size`` with nearest-neighbour interpolation (each pixel becomes a square block, so a
multiple of 8 is exact) and repeated over ``num_channels``. For the MLP they are flattened to 64
inputs in [0, 1]. Both classify 10 classes; evaluation uses the whole held-out split.
"""

from __future__ import annotations

import torch
from torch import nn

from core.architectures.mlp import mlp_widths
from core.errors import ArchitectureError, TrainingError
from core.training.config import ValidationConfig
from core.training.data import Split, load_dataset
from core.training.tasks.base import TASKS, Task, TaskData

NUM_CLASSES = 10


class _ImageTask(Task):
    data_kind = "images"
    default_dataset = "digits"
    metric = "accuracy"

    def prepare(self, config: dict, options: ValidationConfig, tokenizer_dir: str | None) -> TaskData:
        images, labels = load_dataset(options.dataset or self.default_dataset, "images")
        return TaskData(
            images, labels, Split(len(images), options.seed, max(options.eval_fraction, 0.05)), {"config": config}
        )

    def _rows_batch(self, data: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def batch(self, data, step, options):
        return self._rows_batch(data, data.split.batch_rows(step, options.batch_size))

    def eval_set(self, data, options):
        index = data.split.eval_index
        size = max(options.batch_size, 64)
        return [self._rows_batch(data, index[i : i + size]) for i in range(0, len(index), size)]

    def _classify(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = nn.functional.cross_entropy(logits.float(), labels)
        correct = (logits.argmax(-1) == labels).sum().float()
        return {"loss": loss, "count": torch.tensor(float(labels.numel())), "correct": correct}


class ImageClassificationTask(_ImageTask):
    """The family's image classifier (its spec's ``task_class``, else the Auto class: ConvNeXt's)."""

    name = "image_classification"
    model_class = "AutoModelForImageClassification"

    def model_config(self, config):
        """The config with a 10-class classifier (a source's other label names give way to LABEL_0 …)."""
        labels = config.get("id2label")
        if labels is not None and len(labels) != NUM_CLASSES:
            config = {k: v for k, v in config.items() if k not in ("id2label", "label2id")}
        return {**config, "num_labels": NUM_CLASSES}

    def _rows_batch(self, data, rows):
        config = data.extra["config"]
        size, channels = int(config.get("image_size", 224)), int(config.get("num_channels", 3))
        images = data.inputs[rows].unsqueeze(1) * 2.0 - 1.0  # (B, 1, 8, 8) in [-1, 1]
        images = nn.functional.interpolate(images, size=(size, size), mode="nearest")
        return {"pixel_values": images.expand(-1, channels, -1, -1).contiguous(), "labels": data.labels[rows]}

    def outputs(self, model, batch, *, logits=True):
        # what the classifier's forward does: ConvNeXt's reads the pooled output (the final LayerNorm of
        # the spatial mean), ViT's (whose pooler is absent) the [CLS] token
        out = getattr(model, model.base_model_prefix)(pixel_values=batch["pixel_values"])
        pooled = getattr(out, "pooler_output", None)
        hidden = pooled if pooled is not None else out[0][:, 0]
        return {"hidden": hidden, "logits": model.classifier(hidden) if logits else None}

    def compute(self, model, batch):
        out = self.outputs(model, batch)
        return {**self._classify(out["logits"], batch["labels"]), **out}


class MLPClassificationTask(_ImageTask):
    name = "mlp_classification"

    def model_config(self, config):
        """The config, refused unless the MLP reads the 64 pixels and gives the 10 classes."""
        try:
            widths = mlp_widths(config)
        except ArchitectureError as exc:
            raise TrainingError(str(exc)) from exc
        if widths[0] != 64 or widths[-1] != NUM_CLASSES:
            raise TrainingError(
                f"the digits MLP needs 64 inputs and {NUM_CLASSES} outputs, not {widths[0]} and {widths[-1]}"
            )
        return config

    def _rows_batch(self, data, rows):
        return {"inputs": data.inputs[rows].reshape(len(rows), -1), "labels": data.labels[rows]}

    def outputs(self, model, batch, *, logits=True):
        hidden = model[:-1](batch["inputs"])  # the last Linear's input (the inputs for one layer)
        return {"hidden": hidden, "logits": model[-1](hidden) if logits else None}

    def compute(self, model, batch):
        out = self.outputs(model, batch)
        return {**self._classify(out["logits"], batch["labels"]), **out}


TASKS.add(ImageClassificationTask.name, ImageClassificationTask())
TASKS.add(MLPClassificationTask.name, MLPClassificationTask())
