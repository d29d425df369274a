"""Export: write a Hugging Face checkpoint folder that ``transformers`` loads as-is.

The folder holds ``config.json``, ``model.safetensors`` (or HF-named shards and
``model.safetensors.index.json``), the tokenizer/generation files copied from the source, the
recipe (``graft_recipe.json``) and a short model card (``README.md``).

- :mod:`core.export.writer`: the streamed, atomic folder writer (:func:`export_checkpoint`).
- :mod:`core.export.card`: the model card.

The generic MLP's own model (built, exported with metadata, loaded back by ``load_mlp``) is its
family module, :mod:`core.architectures.mlp`; its names are re-exported here because exported
model cards tell users ``from core.export import load_mlp``.
"""

from core.architectures.mlp import build_mlp, load_mlp, mlp_entries, mlp_metadata
from core.export.card import default_model_card
from core.export.writer import (
    CARD_NAME,
    CONFIG_NAME,
    INDEX_SUFFIX,
    RECIPE_NAME,
    ExportEntry,
    export_checkpoint,
    parse_size,
    plan_shards,
)

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "INDEX_SUFFIX",
    "RECIPE_NAME",
    "ExportEntry",
    "build_mlp",
    "default_model_card",
    "export_checkpoint",
    "load_mlp",
    "mlp_entries",
    "mlp_metadata",
    "parse_size",
    "plan_shards",
]
