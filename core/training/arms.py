"""Arms: the named initial states a validation run compares.

An arm is a target config plus where its weights come from: an export folder (``config.json`` +
safetensors), a state dict in memory, or nothing — the **baseline**, the architecture's own
default init. Every arm is built the same way: ``torch.manual_seed(seed)``, the task's model from
the config (the baseline init), then the arm's tensors loaded over it. Tensors the arm lacks (a
new classifier) therefore get the very same draw in every arm, which keeps the A/B comparison
about the transferred tensors alone — except a masked-LM head the source never had, which by
default (``head_init="auto"``) starts as a readout of the arm's own body
(:mod:`core.training.heads`); the baseline, which has no tensors, keeps its random head.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from core.errors import TrainingError

log = logging.getLogger(__name__)

BASELINE = "baseline"


@dataclass
class Arm:
    """A named initial state. Build with :meth:`from_export`, :meth:`from_state` or :meth:`baseline`."""

    name: str
    config: dict
    state_dict: dict[str, torch.Tensor] | None = None
    path: Path | None = None
    description: str = ""
    #: with a teacher matched on hidden states: the source channel feeding each target hidden
    #: channel (the plan's ``dims["hidden"].index``); None = the first channels.
    teacher_map: list[int] | None = None
    #: with a teacher: whether this arm adds the distillation term (False: a plain arm beside them).
    distill: bool = True

    @classmethod
    def baseline(cls, config: dict, name: str = BASELINE) -> Arm:
        return cls(name, dict(config), None, None, "the architecture's default init")

    @classmethod
    def from_state(cls, name: str, config: dict, state_dict: dict[str, torch.Tensor], description: str = "") -> Arm:
        return cls(name, dict(config), state_dict, None, description or "in-memory state dict")

    @classmethod
    def from_export(cls, folder: str | Path, name: str | None = None) -> Arm:
        """An export folder: ``config.json`` and ``*.safetensors`` (single or sharded)."""
        folder = Path(folder).expanduser()
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise TrainingError(f"{folder} has no .safetensors files; give an export folder written by 'graft export'")
        config_path = folder / "config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text())
        else:  # a family without config.json (the generic MLP) records it in the safetensors metadata
            config = _metadata_config(files[0])
            if config is None:
                raise TrainingError(f"{folder} has no config.json; give an export folder written by 'graft export'")
        return cls(name or folder.name, config, None, folder, f"export {folder}")

    @property
    def is_baseline(self) -> bool:
        return self.state_dict is None and self.path is None

    @property
    def model_type(self) -> str:
        try:
            return str(self.config["model_type"])
        except KeyError:
            raise TrainingError(f"arm {self.name!r}: its config has no model_type") from None

    def tensors(self) -> dict[str, torch.Tensor] | None:
        """The arm's tensors (read from the folder if it is an export), or None for the baseline."""
        if self.path is None:
            return self.state_dict
        from safetensors.torch import load_file

        state: dict[str, torch.Tensor] = {}
        for file in sorted(self.path.glob("*.safetensors")):
            state.update(load_file(str(file)))
        return state


def _metadata_config(file: Path) -> dict | None:
    """The config recorded in an export's safetensors metadata (:func:`core.architectures.config_from_metadata`)."""
    from safetensors import safe_open

    from core.architectures import config_from_metadata

    with safe_open(str(file), framework="pt") as fh:
        meta = fh.metadata() or {}
    return config_from_metadata(meta)


@dataclass
class LoadReport:
    """What loading an arm's tensors did: counts and the names that did not load."""

    loaded: int = 0
    missing: list[str] = field(default_factory=list)  # in the model, not in the arm: default init
    unexpected: list[str] = field(default_factory=list)  # in the arm, not in the model: ignored
    mismatched: list[str] = field(default_factory=list)  # same name, other shape: default init
    head: dict | None = None  # how a missing task head was initialised (core.training.heads)

    def to_dict(self) -> dict:
        return {
            "loaded": self.loaded,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": self.mismatched,
            "head": self.head,
        }


def _candidates(names: list[str], prefix: str) -> list[dict[str, str]]:
    """Ways to rename checkpoint keys onto model keys: as is, with or without the base prefix."""
    out = [{n: n for n in names}]
    if prefix:
        out.append({n: f"{prefix}.{n}" for n in names})
        out.append({n: n[len(prefix) + 1 :] for n in names if n.startswith(prefix + ".")})
    return out


def _hf_renamed(model: nn.Module, names: list[str]) -> dict[str, str] | None:
    """Checkpoint keys renamed the way ``from_pretrained`` renames them, or None when nothing changes.

    transformers 5 keeps saving some families under their legacy names (ViT:
    ``vit.encoder.layer.N.attention.attention.query``) while the module tree uses new ones
    (``vit.layers.N.attention.q_proj``); ``from_pretrained`` maps them through the library's
    checkpoint conversion table, which is what this applies (renamings only: a key that would need
    a tensor conversion keeps its name). Older transformers have no table: None.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import (
            WeightConverter,
            WeightRenaming,
            rename_source_key,
        )
    except ImportError:
        return None
    try:
        transforms = get_model_conversion_mapping(model)
    except Exception as exc:  # a model transformers cannot map: load the names as they are
        log.debug("no checkpoint conversion table for %s: %s", type(model).__name__, exc)
        return None
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    if not renamings:
        return None
    own = model.state_dict()
    prefix = getattr(model, "base_model_prefix", None)
    out = {}
    for name in names:
        new, converted = rename_source_key(name, renamings, converters, prefix, own)
        out[name] = new if converted is None else name
    return out if any(k != v for k, v in out.items()) else None


def match_keys(model: nn.Module, names: list[str]) -> dict[str, str]:
    """Checkpoint name → the model's state-dict key it loads into (possibly not one of its keys).

    Of the ways to spell the names — as they are, with or without the base prefix (a bare encoder's
    ``embeddings.…`` into a task model's ``bert.embeddings.…`` and back), renamed as
    ``from_pretrained`` renames them — the one that hits the most of the model's keys.
    """
    own = model.state_dict()
    prefix = getattr(model, "base_model_prefix", "") or ""
    candidates = _candidates(names, prefix)
    renamed = _hf_renamed(model, names)
    if renamed is not None:
        candidates.append(renamed)
    return max(candidates, key=lambda m: sum(1 for v in m.values() if v in own))


def _family_state(model: nn.Module, state: dict, own: dict, config: dict | None) -> tuple[dict, set[str]]:
    """The family's conversions of ``state`` (:meth:`~core.architectures.ArchitectureSpec.model_state`:
    state-dict key → tensor, and the checkpoint names they consume), the family found from ``config``
    (else the model's own transformers config); none for a model of no known family."""
    from core.architectures import spec_for_model_type

    if config is None:
        hf = getattr(model, "config", None)
        config = hf.to_dict() if hasattr(hf, "to_dict") else {}
    spec = spec_for_model_type(config.get("model_type"))
    if spec is None:
        return {}, set()
    return spec.model_state(config, state, own)


def load_tensors(model: nn.Module, state: dict[str, torch.Tensor], config: dict | None = None) -> LoadReport:
    """Copy ``state`` into ``model`` (dtype cast) the way ``from_pretrained`` loads a checkpoint.

    Tensors the family holds in another form (an MoE layer's per-expert tensors, stacked by
    transformers 5 into fused expert parameters) are converted by the family's spec
    (:meth:`~core.architectures.ArchitectureSpec.model_state`, its family from ``config`` or the
    model's own config); the others load by name, their keys matched by :func:`match_keys`.
    """
    own = model.state_dict()
    converted, consumed = _family_state(model, state, own, config)
    state = {n: t for n, t in state.items() if n not in consumed}
    best = match_keys(model, list(state)) if state else {}
    report = LoadReport()
    accepted: dict[str, torch.Tensor] = {k: v for k, v in converted.items() if k in own}
    for src, dst in best.items():
        if dst not in own:
            report.unexpected.append(src)
        elif tuple(own[dst].shape) != tuple(state[src].shape):
            report.mismatched.append(dst)
        else:
            accepted[dst] = state[src]
    report.unexpected += [n for n in state if n not in best]
    with torch.no_grad():
        for name, value in accepted.items():
            own[name].copy_(value.to(own[name].dtype))
    report.loaded = len(accepted)
    loaded_ptrs = {own[n].data_ptr() for n in accepted}
    report.missing = sorted(n for n in own if n not in accepted and own[n].data_ptr() not in loaded_ptrs)
    if report.loaded == 0:
        raise TrainingError(
            "none of the arm's tensors match the model; check that the config and weights belong together"
        )
    return report


def build_arm_model(task, arm: Arm, seed: int, *, data=None, options=None) -> tuple[nn.Module, LoadReport]:
    """The arm's model: default init under ``torch.manual_seed(seed)``, then its tensors loaded.

    With ``data`` (the task's prepared data) and ``options`` (``head_init="auto"``), a task head
    the arm's tensors lack is initialised from its body (:func:`core.training.heads.init_missing_head`).
    """
    torch.manual_seed(seed)
    model = task.build_model(arm.config)
    state = arm.tensors()
    if state is None:
        return model, LoadReport(loaded=0)
    report = load_tensors(model, state, arm.config)
    if data is not None and options is not None and options.head_init == "auto":
        from core.training.heads import init_missing_head

        report.head = init_missing_head(task, model, report, data, options)
    log.info(
        "arm %s: %d tensors loaded, %d missing, %d mismatched",
        arm.name,
        report.loaded,
        len(report.missing),
        len(report.mismatched),
    )
    return model, report
