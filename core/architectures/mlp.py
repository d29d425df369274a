"""The generic MLP: a chain of Linear layers saved from ``nn.Sequential``, inferred from shapes.

Tensor names are ``<i>.weight`` / ``<i>.bias`` with i the module index in the Sequential (the
activations in between have no tensors). Widths are named ``in``, ``h0`` … ``h{n-2}``, ``out``;
the hidden widths are resizable, ``in`` and ``out`` are fixed by the data.

The MLP has no ``transformers`` class: its export is a folder without ``config.json`` whose
safetensors metadata records the layer widths and activation (:func:`mlp_metadata`), from which
:func:`load_mlp` rebuilds the ``nn.Sequential`` (torch is imported only by those functions).

:class:`MLPSpec` is the family's whole difference from the transformers families, in one place:
no repeated blocks (``layered=False``: a fixed depth, every width a global dimension), its own
size rule (``--hidden`` sets every hidden width) and target config (the widths list), the
Sequential as its model, and the digits task. :data:`MLP` is the registered template that
:func:`infer_mlp` fills in with one checkpoint's tensors.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.architectures.spec import FAMILIES, ArchitectureSpec, TensorRule
from core.errors import ArchitectureError, ExportError, PlanError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<prefix>.*?)(?P<index>\d+)\.(?P<kind>weight|bias)$")
#: activation name → the ``torch.nn`` class between the Linear layers.
_ACTIVATION_CLASSES = {"relu": "ReLU", "gelu": "GELU", "tanh": "Tanh", "silu": "SiLU", "sigmoid": "Sigmoid"}
ACTIVATIONS = tuple(_ACTIVATION_CLASSES)
#: safetensors metadata keys of an exported MLP.
MLP_WIDTHS_KEY = "graft.mlp.widths"
MLP_ACTIVATION_KEY = "graft.mlp.activation"


def hidden_dims(n_linear: int) -> list[str]:
    return [f"h{i}" for i in range(n_linear - 1)]


def mlp_widths(config: dict) -> list[int]:
    """Layer widths of an MLP config: ``widths`` (or ``layer_sizes``/``sizes``/``dims``), input first."""
    for key in ("widths", "layer_sizes", "sizes", "dims"):
        if key in config:
            return [int(w) for w in config[key]]
    raise ArchitectureError("the MLP config has no 'widths' list (input, hidden…, output)")


def _activation(config: dict) -> str:
    return str(config.get("activation", "relu")).lower()


@dataclass(frozen=True)
class MLPSpec(ArchitectureSpec):
    """The generic MLP's spec: what differs from a transformers family (module docstring)."""

    def resolve_sizes(self, src: dict[str, int], asked: dict[str, int], fields: dict | None = None) -> dict[str, int]:
        """``--hidden`` sets every hidden width; the depth is fixed."""
        bad = set(asked) - {"hidden", "layers"}
        if bad:
            raise PlanError(f"the generic MLP only takes --hidden (its hidden widths); not {', '.join(sorted(bad))}")
        if "layers" in asked and asked["layers"] != src["layers"]:
            raise PlanError(f"the generic MLP keeps its depth ({src['layers']} Linear layers); change --hidden only")
        tgt = dict(src)
        for d in self.resizable:
            tgt[d] = asked.get("hidden", src[d])
        return tgt

    def target_size_names(self) -> frozenset[str]:
        return frozenset({"hidden"})

    def target_config(self, source_config: dict, sizes: dict[str, int]) -> dict:
        """The source's pseudo-config with the new hidden widths (input and output stay)."""
        hidden = sorted(self.resizable, key=lambda d: int(d[1:]))
        widths = [source_config["widths"][0], *[sizes[d] for d in hidden], source_config["widths"][-1]]
        return {**source_config, "widths": widths, **{d: sizes[d] for d in hidden}}

    def build_model(self, config: dict, model_class: str | None = None):
        """``nn.Sequential(Linear, act, …, Linear)`` (:func:`build_mlp`); there is no model class to choose."""
        try:
            return build_mlp(mlp_widths(config), _activation(config), bias=bool(config.get("bias", True)))
        except ExportError as exc:  # bad widths or activation
            raise ArchitectureError(f"cannot build the MLP: {exc}") from exc

    def model_keys(self, config: dict, names: list[str]) -> dict[str, str]:
        """The k-th Linear of the checkpoint (module ``module_indices[k]``, under any prefix) is module
        2k of the built Sequential."""
        indices = config.get("module_indices") or [2 * k for k in range(len(mlp_widths(config)) - 1)]
        position = {int(index): k for k, index in enumerate(indices)}
        out = {}
        for name in names:
            m = _NAME.match(name)
            if m and int(m["index"]) in position:
                out[name] = f"{2 * position[int(m['index'])]}.{m['kind']}"
        return out

    def export_files(self, config: dict) -> tuple[None, dict[str, str]]:
        """No config.json: the widths and activation go in the safetensors metadata."""
        return None, mlp_metadata(mlp_widths(config), _activation(config))

    def config_from_metadata(self, metadata: dict[str, str]) -> dict | None:
        if MLP_WIDTHS_KEY not in metadata:
            return None
        return {
            "model_type": "mlp",
            "widths": json.loads(metadata[MLP_WIDTHS_KEY]),
            "activation": metadata.get(MLP_ACTIVATION_KEY, "relu"),
        }


#: The registered family; :func:`infer_mlp` fills in a checkpoint's tensors, widths and prefix.
MLP = MLPSpec(
    family="mlp",
    model_types=("mlp",),
    rules=(),
    config_fields={},
    layers_field="num_linear",
    tied_field=None,
    resizable=frozenset(),
    layered=False,
    task="mlp_classification",
    library="safetensors",
    loader=("core.export", "load_mlp"),
    normalised=False,
    activation_rule="reconstruction",
    notes="the depth is fixed; hidden widths h0… are resizable (--hidden sets them all).",
)
FAMILIES.add(MLP.family, MLP)


def infer_mlp(shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> tuple[ArchitectureSpec, dict]:
    """Build a spec and a pseudo-config for a Sequential of Linear layers.

    Returns:
        ``(spec, config)`` where config has ``widths`` (in, hidden…, out) and ``activation``.

    Raises:
        ArchitectureError: the tensors do not form a chain of Linear layers.
    """
    layers: dict[int, dict[str, tuple[int, ...]]] = {}
    prefix = None
    for name, shape in shapes.items():
        m = _NAME.match(name)
        if not m or (prefix is not None and m["prefix"] != prefix):
            raise ArchitectureError(f"tensor {name!r} is not part of an nn.Sequential of Linear layers")
        prefix = m["prefix"]
        layers.setdefault(int(m["index"]), {})[m["kind"]] = shape
    order = sorted(layers)
    widths: list[int] = []
    for i in order:
        w = layers[i].get("weight")
        if w is None or len(w) != 2:
            raise ArchitectureError(f"module {i} of the MLP has no 2-D weight; only Linear layers are supported")
        if widths and w[1] != widths[-1]:
            raise ArchitectureError(
                f"module {i} takes {w[1]} inputs but the previous layer gives {widths[-1]}; not a chain"
            )
        if not widths:
            widths.append(w[1])
        widths.append(w[0])
        if "bias" in layers[i] and layers[i]["bias"] != (w[0],):
            raise ArchitectureError(f"module {i}'s bias does not match its weight")
    dims = ["in", *hidden_dims(len(order)), "out"]
    rules = []
    for k, i in enumerate(order):
        role = "mlp.in" if k == 0 else ("mlp.out" if k == len(order) - 1 else "mlp.hidden")
        rules.append(TensorRule(f"{i}.weight", role, ((dims[k + 1],), (dims[k],)), fan_in=1))
        rules.append(TensorRule(f"{i}.bias", role, ((dims[k + 1],),), optional=True))
    activation = metadata.get(MLP_ACTIVATION_KEY, "relu")
    if activation not in ACTIVATIONS:
        raise ArchitectureError(f"unknown MLP activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    if MLP_WIDTHS_KEY in metadata and json.loads(metadata[MLP_WIDTHS_KEY]) != widths:
        raise ArchitectureError("the MLP's recorded widths disagree with its tensor shapes; the file is inconsistent")
    spec = replace(
        MLP,
        rules=tuple(rules),
        config_fields={d: d for d in hidden_dims(len(order))},
        prefixes=(prefix or "",),
        resizable=frozenset(hidden_dims(len(order))),
    )
    config = {
        "model_type": "mlp",
        "widths": widths,
        "activation": activation,
        "num_linear": len(order),
        "module_indices": order,
        **{d: widths[k + 1] for k, d in enumerate(hidden_dims(len(order)))},
    }
    return spec, config


# --- the model: built, exported and loaded ------------------------------------------------------


def mlp_metadata(widths: list[int], activation: str) -> dict[str, str]:
    """Safetensors metadata that lets :func:`load_mlp` rebuild an MLP.

    Args:
        widths: ``[in, hidden_1, …, out]``, at least two positive sizes.
        activation: one of ``relu``, ``gelu``, ``tanh``, ``silu``, ``sigmoid``.
    """
    _check_mlp(widths, activation)
    return {MLP_WIDTHS_KEY: json.dumps([int(w) for w in widths]), MLP_ACTIVATION_KEY: activation}


def mlp_entries(widths: list[int], dtype=None, bias: bool = True) -> list:
    """The :class:`~core.export.ExportEntry` list of an MLP as ``nn.Sequential(Linear, Act, Linear, …)``
    names them (``dtype`` defaults to float32)."""
    import torch

    from core.export.writer import ExportEntry

    dtype = torch.float32 if dtype is None else dtype
    out = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        out.append(ExportEntry(f"{2 * i}.weight", (fan_out, fan_in), dtype))
        if bias:
            out.append(ExportEntry(f"{2 * i}.bias", (fan_out,), dtype))
    return out


def build_mlp(widths: list[int], activation: str, bias: bool = True):
    """``nn.Sequential(Linear, Act, Linear, …, Linear)`` with no activation after the last layer."""
    import torch

    _check_mlp(widths, activation)
    layers: list = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(getattr(torch.nn, _ACTIVATION_CLASSES[activation])())
        layers.append(torch.nn.Linear(fan_in, fan_out, bias=bias))
    return torch.nn.Sequential(*layers)


def load_mlp(path: str | os.PathLike[str], activation: str | None = None):
    """Rebuild an exported generic MLP and load its weights strictly.

    The widths and activation come from the safetensors metadata Graft writes. A file without
    that metadata is refused, unless ``activation`` is given: then the widths are inferred from
    the weight shapes (a warning is logged). Graft never guesses an activation silently.

    Args:
        path: a ``.safetensors`` file, or an export folder (single file or sharded).
        activation: overrides the recorded activation; required when none is recorded.

    Returns:
        The model, in the dtype of the stored weights, in eval mode.

    Raises:
        ExportError: missing file, missing metadata, or weights that do not fit the widths.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    files = _weight_files(Path(path))
    try:
        with safe_open(str(files[0]), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = {}
        for f in files:
            state.update(load_file(str(f)))
    except (OSError, RuntimeError, ValueError) as exc:  # safetensors raises its own subclasses
        raise ExportError(f"cannot read the MLP weights in {path}: {exc}") from exc
    names = sorted({k.split(".")[0] for k in state}, key=lambda s: int(s) if s.isdigit() else -1)
    if not names or any(not n.isdigit() or f"{n}.weight" not in state for n in names):
        raise ExportError(f"{path} is not an nn.Sequential MLP: expected tensors named 0.weight, 2.weight, …")
    inferred = [state[f"{names[0]}.weight"].shape[1]] + [state[f"{n}.weight"].shape[0] for n in names]
    if MLP_WIDTHS_KEY in meta:
        try:
            widths = [int(w) for w in json.loads(meta[MLP_WIDTHS_KEY])]
        except (ValueError, TypeError) as exc:
            raise ExportError(f"{path}: unreadable {MLP_WIDTHS_KEY} metadata {meta[MLP_WIDTHS_KEY]!r}") from exc
    elif activation is not None:
        log.warning("%s records no MLP widths; inferring %s from the weight shapes", path, inferred)
        widths = inferred
    else:
        raise ExportError(
            f"{path} has no {MLP_WIDTHS_KEY}/{MLP_ACTIVATION_KEY} metadata, so its layers and activation "
            "are unknown; it was not exported by Graft (pass the activation to load it anyway)"
        )
    act = activation or meta.get(MLP_ACTIVATION_KEY)
    if act is None:
        raise ExportError(f"{path} records no activation; pass one of {', '.join(ACTIVATIONS)}")
    bias = all(f"{n}.bias" in state for n in names)
    model = build_mlp(widths, act, bias=bias)
    dtype = state[f"{names[0]}.weight"].dtype
    model = model.to(dtype)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"the weights in {path} do not fit an MLP of widths {widths}: {exc}") from exc
    return model.eval()


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        index = path / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            return [path / f for f in dict.fromkeys(weight_map.values())]
        single = path / "model.safetensors"
        if single.is_file():
            return [single]
    raise ExportError(f"no MLP weights at {path}: expected a .safetensors file or an export folder")


def _check_mlp(widths: Sequence[int], activation: str) -> None:
    if len(widths) < 2 or any(int(w) <= 0 for w in widths):
        raise ExportError(f"MLP widths must be at least two positive sizes, got {list(widths)}")
    if activation not in ACTIVATIONS:
        raise ExportError(f"unknown MLP activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
