"""The index of a sharded checkpoint (``model.safetensors.index.json``), checked before it is followed.

The index maps every tensor name to the shard file that holds it. Graft follows those names to
open files, and ``download`` turns them into the hub's ``allow_patterns``, so a hostile index
could point Graft at ``../x.safetensors`` or ``/etc/passwd``. :func:`parse_index` accepts only
plain file names inside the folder. :func:`check_complete` catches an index that lists shard 1
of 2 but not shard 2 (it would open with half the tensors), and :func:`check_tensors` that every
tensor the index lists is in the shard it names and every tensor of a shard is listed there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PureWindowsPath

from core.errors import SourceError
from core.sources.trust import json_type

INDEX_NAME = "model.safetensors.index.json"

# The names huggingface_hub / transformers give shards: model-00001-of-00003.safetensors.
_NUMBERED = re.compile(r"^(?P<prefix>.+)-(?P<i>\d{1,9})-of-(?P<n>\d{1,9})\.safetensors$")
_FIX = "re-download the model, or rebuild the index from its shards"


def shard_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a shard file of the folder, or None if it is a plain file name."""
    if not name:
        return "it is empty"
    if not name.isprintable():
        return "it holds control characters"
    if "/" in name or "\\" in name:
        return "it is a path, not a plain file name"
    if ".." in name:
        return "it holds '..'"
    if PureWindowsPath(name).drive:
        return "it names a drive"
    if not name.endswith(".safetensors"):
        return "it does not end in .safetensors"
    return None


def parse_index(data: object, where: str = INDEX_NAME) -> dict[str, str]:
    """The ``weight_map`` of a parsed index, once its shape and every shard name are checked.

    Args:
        data: the parsed JSON of the index.
        where: how to name the index in messages.

    Returns:
        ``tensor name → shard file name`` (plain names inside the folder).

    Raises:
        SourceError: not an object, no ``weight_map`` or one of the wrong type, an empty one, a
            shard name that is not a string or not a plain ``*.safetensors`` name, shards missing
            from a numbered set (see :func:`check_complete`).
    """
    if not isinstance(data, dict):
        raise SourceError(f"{where} holds {json_type(data)}, not an object with a weight_map; {_FIX}")
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict):
        what = "has no weight_map" if weight_map is None else f"has a weight_map that is {json_type(weight_map)}"
        raise SourceError(f"{where} {what}, not an object mapping tensor names to shard files; {_FIX}")
    if not weight_map:
        raise SourceError(f"{where} lists no tensors (its weight_map is empty); {_FIX}")
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str):
            raise SourceError(f"{where} maps tensor {tensor!r} to {json_type(shard)}, not a shard file name; {_FIX}")
        problem = shard_name_problem(shard)
        if problem:
            raise SourceError(
                f"{where} maps tensor {tensor!r} to shard {shard!r}, which Graft refuses because {problem} "
                f"(shards must be plain *.safetensors file names inside the model folder); {_FIX}"
            )
    check_complete(weight_map, where)
    return dict(weight_map)


def check_complete(weight_map: Mapping[str, str], where: str = INDEX_NAME) -> None:
    """Refuse an index naming shard k of N (``…-0000k-of-0000N.safetensors``) but not all N.

    Raises:
        SourceError: the first shard of a numbered set the index does not list.
    """
    shards = set(weight_map.values())
    seen: set[tuple[str, str, int]] = set()
    for shard in sorted(shards):
        match = _NUMBERED.match(shard)
        if match is None:
            continue
        key = (match["prefix"], match["n"], len(match["i"]))
        if key in seen:
            continue
        seen.add(key)
        prefix, total, width = key
        if not 0 < int(match["i"]) <= int(total):
            raise SourceError(
                f"{where} names shard {shard!r}, but a set of {int(total)} shards has no such number; {_FIX}"
            )
        for number in range(1, int(total) + 1):  # stops at the first gap: at most len(shards) + 1 steps
            expected = f"{prefix}-{number:0{width}d}-of-{total}.safetensors"
            if expected not in shards:
                raise SourceError(
                    f"{where} lists shard {shard!r} but not {expected!r} (shard {number} of {int(total)}), so the "
                    f"model would open with part of its tensors; {_FIX}"
                )


def check_tensors(weight_map: Mapping[str, str], held: Mapping[str, Iterable[str]], where: str = INDEX_NAME) -> None:
    """Every tensor the index lists is in the shard it names, and every tensor of a shard is listed there.

    Args:
        weight_map: from :func:`parse_index`.
        held: shard file name → names of the tensors its header holds, in file order.

    Raises:
        SourceError: the first mismatch, named.
    """
    inside: dict[str, set[str]] = {}
    for shard, names in held.items():
        inside[shard] = set()
        for name in names:
            listed = weight_map.get(name)
            if listed != shard:
                said = "does not list" if listed is None else f"puts in shard {listed!r}"
                raise SourceError(f"shard {shard!r} holds tensor {name!r}, which {where} {said}; {_FIX}")
            inside[shard].add(name)
    for name, shard in weight_map.items():
        if name not in inside.get(shard, ()):
            raise SourceError(f"{where} lists tensor {name!r} in shard {shard!r}, which does not hold it; {_FIX}")
