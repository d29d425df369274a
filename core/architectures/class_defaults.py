"""The transformers config-class defaults a spec reads, as a table: no transformers import to open a checkpoint.

A config.json that omits ``tie_word_embeddings`` (or a MoE ``num_experts_per_tok``, or a partial rotary
factor) gets its transformers class's default, and Gemma ties where Llama does not. Asking transformers
costs importing it and torch (~4 s on a 2-core machine; ``graft inspect`` took 4.3 s, 0.4 s without), so
the defaults of every family's model types are written down here, for the transformers major version
they were read from. :func:`class_default` answers from the table when the installed transformers has that
major version (read from its package metadata, not by importing it), else asks transformers.
``tests/architectures/test_class_defaults.py`` compares the table with the installed transformers;
regenerate it with ``python -m core.architectures.class_defaults``.
"""

from __future__ import annotations

#: The transformers major version the table was read from.
TRANSFORMERS_MAJOR = 5
#: The config fields a spec asks the class for.
KEYS = ("tie_word_embeddings", "rope_parameters", "num_experts_per_tok")
#: model_type → {key: the class's default, None where the class has none}.
DEFAULTS: dict[str, dict] = {
    "bert": {"tie_word_embeddings": True, "rope_parameters": None, "num_experts_per_tok": None},
    "camembert": {"tie_word_embeddings": True, "rope_parameters": None, "num_experts_per_tok": None},
    "convnext": {"tie_word_embeddings": None, "rope_parameters": None, "num_experts_per_tok": None},
    "convnextv2": {"tie_word_embeddings": None, "rope_parameters": None, "num_experts_per_tok": None},
    "deit": {"tie_word_embeddings": None, "rope_parameters": None, "num_experts_per_tok": None},
    "gemma": {
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "gemma2": {
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "gemma3_text": {
        "tie_word_embeddings": True,
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        "num_experts_per_tok": None,
    },
    "gpt2": {"tie_word_embeddings": True, "rope_parameters": None, "num_experts_per_tok": None},
    "gpt_neox": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.25, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "llama": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "mistral": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "mixtral": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
        "num_experts_per_tok": 2,
    },
    "opt": {"tie_word_embeddings": True, "rope_parameters": None, "num_experts_per_tok": None},
    "phi3": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 1.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "qwen2": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "qwen2_moe": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": 4,
    },
    "qwen3": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": None,
    },
    "qwen3_moe": {
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "num_experts_per_tok": 8,
    },
    "roberta": {"tie_word_embeddings": True, "rope_parameters": None, "num_experts_per_tok": None},
    "vit": {"tie_word_embeddings": None, "rope_parameters": None, "num_experts_per_tok": None},
    "xlm-roberta": {"tie_word_embeddings": True, "rope_parameters": None, "num_experts_per_tok": None},
}
_UNKNOWN = object()


def _table_applies() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("transformers").split(".")[0]) == TRANSFORMERS_MAJOR
    except (PackageNotFoundError, ValueError):
        return False


def from_transformers(model_type, key: str):
    """``key``'s default in the transformers config class of ``model_type``, None if it has none or is unknown."""
    try:
        from transformers import CONFIG_MAPPING

        return getattr(CONFIG_MAPPING[model_type](), key, None)
    except Exception:  # noqa: BLE001 - an unknown or unbuildable config class: no default
        return None


def class_default(model_type, key: str, fallback):
    """``key``'s default in the transformers config class of ``model_type`` (``fallback`` if it has none)."""
    row = DEFAULTS.get(model_type) if key in KEYS and _table_applies() else None
    value = row[key] if row is not None else from_transformers(model_type, key)
    return fallback if value is None else value


def generate(model_types) -> dict[str, dict]:
    """The table read from the installed transformers, for ``model_types`` it knows."""
    from transformers import CONFIG_MAPPING

    return {mt: {k: from_transformers(mt, k) for k in KEYS} for mt in sorted(model_types) if mt in CONFIG_MAPPING}


if __name__ == "__main__":  # pragma: no cover - regenerates DEFAULTS
    from core.architectures.spec import FAMILIES

    types = {mt for name in FAMILIES.names() for mt in FAMILIES.get(name).model_types} | set(DEFAULTS)
    for mt, row in generate(types).items():
        print(f"    {mt!r}: {row!r},".replace("'", '"'))
