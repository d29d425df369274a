"""The generic MLP: a chain of Linear layers saved from ``nn.Sequential``, inferred from shapes.

Tensor names are ``<i>.weight`` / ``<i>.bias`` with i the module index in the Sequential (the
activations in between have no tensors). Widths are named ``in``, ``h0`` … ``h{n-2}``, ``out``;
the hidden widths are resizable, ``in`` and ``out`` are fixed by the data.
"""

from __future__ import annotations

import json
import re

from core.architectures.spec import ArchitectureSpec, TensorRule
from core.errors import ArchitectureError

_NAME = re.compile(r"^(?P<prefix>.*?)(?P<index>\d+)\.(?P<kind>weight|bias)$")
ACTIVATIONS = ("relu", "gelu", "tanh", "silu", "sigmoid")


def hidden_dims(n_linear: int) -> list[str]:
    return [f"h{i}" for i in range(n_linear - 1)]


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
            raise ArchitectureError(f"module {i} takes {w[1]} inputs but the previous layer gives {widths[-1]}; not a chain")
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
    activation = metadata.get("graft.mlp.activation", "relu")
    if activation not in ACTIVATIONS:
        raise ArchitectureError(f"unknown MLP activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    if "graft.mlp.widths" in metadata and json.loads(metadata["graft.mlp.widths"]) != widths:
        raise ArchitectureError("the MLP's recorded widths disagree with its tensor shapes; the file is inconsistent")
    spec = ArchitectureSpec(
        family="mlp",
        model_types=("mlp",),
        rules=tuple(rules),
        config_fields={d: d for d in hidden_dims(len(order))},
        layers_field="num_linear",
        prefixes=(prefix or "",),
        tied_field=None,
        resizable=frozenset(hidden_dims(len(order))),
        notes="the depth is fixed; hidden widths h0… are resizable (--hidden sets them all).",
    )
    config = {"model_type": "mlp", "widths": widths, "activation": activation, "num_linear": len(order),
              "module_indices": order, **{d: widths[k + 1] for k, d in enumerate(hidden_dims(len(order)))}}
    return spec, config
