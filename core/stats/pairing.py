"""Which tensor of checkpoint B goes with which tensor of checkpoint A, from headers alone.

Tensors pair by name first. When names differ but both checkpoints are the same family (a
``BertForMaskedLM`` saved with ``bert.`` prefixes against a bare ``BertModel``), the tensors left
over pair by layer, role and the name's last part (``weight``/``bias``), when that key is unique
on both sides; anything still unpaired is listed as only in A or only in B. Roles and layers come
from :func:`core.stats.table.label_tensors` (the architecture spec, or the generic labelling).
Only floating-point parameters are compared; integer tensors and buffers in both are listed as
not compared, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from core.errors import ArchitectureError, StatsError
from core.stats.table import _LAYER, LabelledTensor, select_tensors


@dataclass(frozen=True)
class TensorPair:
    """One tensor of A and its counterpart in B (headers only)."""

    name_a: str
    name_b: str
    layer: int | None
    role: str
    column: str  # the role, told apart when a layer holds several tensors of one role (core.stats.table)
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    matched_by: str  # "name" or "role+layer"

    @property
    def numel_a(self) -> int:
        return math.prod(self.shape_a)

    @property
    def numel_b(self) -> int:
        return math.prod(self.shape_b)

    @property
    def same_shape(self) -> bool:
        return self.shape_a == self.shape_b

    def to_dict(self) -> dict:
        return {
            "name": self.name_a,
            "name_b": self.name_b,
            "layer": self.layer,
            "role": self.role,
            "column": self.column,
            "shape_a": list(self.shape_a),
            "shape_b": list(self.shape_b),
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "same_shape": self.same_shape,
            "matched_by": self.matched_by,
        }


@dataclass(frozen=True)
class Pairing:
    """The pairs, in A's file order, and what is left over."""

    pairs: tuple[TensorPair, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    not_compared: dict[str, str] = field(default_factory=dict)  # in both, not compared: name → why
    family_a: str | None = None
    family_b: str | None = None

    def only(self, names: list[str]) -> Pairing:
        """The same pairing restricted to the pairs holding ``names`` (A's or B's names).

        Raises:
            StatsError: a name is in no pair (the message says where it is, if anywhere).
        """
        wanted = set(names)
        for name in names:
            if any(name in (p.name_a, p.name_b) for p in self.pairs):
                continue
            if name in self.only_a or name in self.only_b:
                side = "A" if name in self.only_a else "B"
                raise StatsError(f"{name} is only in {side}; there is nothing to compare it with")
            if name in self.not_compared:
                raise StatsError(f"{name} is not compared: {self.not_compared[name]}")
            raise StatsError(f"neither checkpoint has a tensor named {name!r}; run 'graft inspect' to list them")
        kept = tuple(p for p in self.pairs if p.name_a in wanted or p.name_b in wanted)
        return replace(self, pairs=kept)


def _family(source) -> str | None:
    from core.architectures import detect

    try:
        return detect(source)[0].family
    except ArchitectureError:
        return None


def _why_not(info_a, info_b, comparable: bool) -> str:
    if not (info_a.is_float and info_b.is_float):
        return f"not floating point ({info_a.dtype} / {info_b.dtype})"
    return "a buffer, not a parameter" if not comparable else ""


def _key(t: LabelledTensor, column: str) -> tuple:
    return (t.layer, column, t.name.rsplit(".", 1)[-1])


def pair_tensors(a, b) -> Pairing:
    """Pair the tensors of two opened sources (see the module docstring); reads headers only."""
    family_a, family_b = _family(a), _family(b)
    comparable_a = _labelled(a)
    comparable_b = _labelled(b)
    pairs: list[TensorPair] = []
    not_compared: dict[str, str] = {}

    def add(name_a: str, name_b: str, how: str) -> None:
        t, column = comparable_a[name_a]
        ia, ib = a.tensors[name_a], b.tensors[name_b]
        pairs.append(TensorPair(name_a, name_b, t.layer, t.role, column, ia.shape, ib.shape, ia.dtype, ib.dtype, how))

    for name in a.tensors:
        if name not in b.tensors:
            continue
        if name in comparable_a and name in comparable_b:
            add(name, name, "name")
        else:
            not_compared[name] = _why_not(a.tensors[name], b.tensors[name], False)
    left_a = [n for n in a.tensors if n not in b.tensors]
    left_b = [n for n in b.tensors if n not in a.tensors]
    if family_a is not None and family_a == family_b:
        keys_a = _unique_keys([n for n in left_a if n in comparable_a], comparable_a)
        keys_b = _unique_keys([n for n in left_b if n in comparable_b], comparable_b)
        matched = {name_a: keys_b[key] for key, name_a in keys_a.items() if key in keys_b}
        for name_a in [n for n in left_a if n in matched]:
            add(name_a, matched[name_a], "role+layer")
        left_a = [n for n in left_a if n not in matched]
        left_b = [n for n in left_b if n not in set(matched.values())]
    order = {n: i for i, n in enumerate(a.tensors)}
    pairs.sort(key=lambda p: order[p.name_a])
    return Pairing(tuple(pairs), tuple(left_a), tuple(left_b), not_compared, family_a, family_b)


def _labelled(source) -> dict[str, tuple[LabelledTensor, str]]:
    """name → (labels, heat-map column) of the float parameters of ``source``."""
    items = [t for t, _ in select_tensors(source, include_vectors=True)]
    return {t.name: (t, c) for t, c in zip(items, column_labels(items))}


def column_labels(items: list[LabelledTensor]) -> list[str]:
    """A heat-map column per tensor, unique within its layer: the role, `` bias`` for a bias, and
    where a layer still has several tensors under that label, the part of their names that differs
    (``norm (attention.output)`` and ``norm (output)`` in a BERT layer)."""
    base = [t.role + (" bias" if t.name.endswith(".bias") else "") for t in items]
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(items):
        groups.setdefault((t.layer, base[i]), []).append(i)
    labels = list(base)
    for members in groups.values():
        if len(members) < 2:
            continue
        paths = [_local_path(items[i].name) for i in members]
        while all(len(p) > 1 for p in paths) and len({p[-1] for p in paths}) == 1:
            paths = [p[:-1] for p in paths]  # drop a common last part ("LayerNorm")
        while all(len(p) > 1 for p in paths) and len({p[0] for p in paths}) == 1:
            paths = [p[1:] for p in paths]  # and a common first part ("embeddings")
        for i, path in zip(members, paths):
            labels[i] = f"{base[i]} ({'.'.join(path)})"
    return labels


def _local_path(name: str) -> list[str]:
    """The name's parts after its layer index, without ``weight``/``bias``."""
    m = _LAYER.search(name)
    parts = (name[m.end() :] if m else name).split(".")
    return parts[:-1] if len(parts) > 1 and parts[-1] in ("weight", "bias") else parts


def _unique_keys(names: list[str], comparable: dict) -> dict[tuple, str]:
    """key → name for the keys only one of ``names`` has."""
    seen: dict[tuple, list[str]] = {}
    for name in names:
        seen.setdefault(_key(*comparable[name]), []).append(name)
    return {key: found[0] for key, found in seen.items() if len(found) == 1}
