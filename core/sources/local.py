"""Local safetensors: one file, a folder with one file, or a sharded folder with an index.

Everything read from the folder goes through :mod:`core.sources.trust` (regular files inside
the folder only) and every header field is checked for its JSON type before it is used: a
hostile file ends in one :class:`SourceError` sentence, never in a traceback or a hang.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from core.dtypes import SOURCE_BYTES
from core.errors import SourceError
from core.sources.base import Source, TensorInfo
from core.sources.shard_index import INDEX_NAME, check_tensors, parse_index
from core.sources.trust import checked_file, json_type, load_json, open_regular, shown

__all__ = ["INDEX_NAME", "PICKLE_SUFFIXES", "open_local", "read_header"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_HEADER = 100 << 20
#: Deepest JSON nesting accepted in config.json or the index (real ones nest a handful of levels).
MAX_JSON_DEPTH = 64


def _brief(value: object) -> str:
    """A short, escaped rendering of a header value for a message."""
    try:
        text = shown(repr(value) if isinstance(value, str) else json.dumps(value))
    except (RecursionError, ValueError):  # nested too deeply to print: its type says enough
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _metadata(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SourceError(f"{where}: __metadata__ is {_brief(value)}, not an object of strings; the file is corrupt")
    for key, item in value.items():
        if not isinstance(item, str):
            raise SourceError(
                f"{where}: __metadata__ entry {key!r} is {_brief(item)}, not a string; the file is corrupt"
            )
    return dict(value)


def _tensor(name: str, entry: object, path: Path, where: str, base: int, size: int) -> TensorInfo:
    """One header entry as a TensorInfo, each field checked for its type and range."""
    if not isinstance(entry, dict):
        raise SourceError(
            f"{where}: tensor {name!r} has a header entry {_brief(entry)}, not an object; the file is corrupt"
        )
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in SOURCE_BYTES:
        raise SourceError(
            f"{where}: tensor {name!r} has unsupported dtype {_brief(dtype)}; Graft reads {', '.join(SOURCE_BYTES)}"
        )
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise SourceError(
            f"{where}: tensor {name!r} has shape {_brief(shape)}, not a list of non-negative integers; the file is corrupt"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise SourceError(
            f"{where}: tensor {name!r} has data_offsets {_brief(offsets)}, not two integers; the file is corrupt"
        )
    begin, end = offsets
    numel = 1
    for d in shape:
        numel *= d
    if begin < 0 or end - begin != numel * SOURCE_BYTES[dtype]:
        raise SourceError(f"{where}: tensor {name!r} has inconsistent offsets; the file is corrupt")
    if base + end > size:
        raise SourceError(
            f"{where} is truncated: tensor {name!r} ends past the end of the file; re-download or re-export it"
        )
    return TensorInfo(name, dtype, tuple(shape), path, (base + begin, base + end))


def read_header(path: Path, name: str | None = None) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse a safetensors header and check it against the file size.

    ``path`` must already have passed :func:`core.sources.trust.checked_file`; it is opened
    without blocking and refused unless it is a regular file.

    Args:
        path: the file; every :class:`TensorInfo` records it as its ``file``.
        name: how messages call it (the name in the model folder when ``path`` is a link's
            target, e.g. a hub cache blob); ``path.name`` if None.

    Returns:
        ``(tensors, metadata)`` with absolute byte offsets.

    Raises:
        SourceError: the file is truncated, the header is not a JSON object of well-formed
            entries, or offsets are inconsistent.
    """
    where = shown(name or path.name)
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise SourceError(
                    f"{where} is too short to be a safetensors file ({size} bytes); re-download or re-export it"
                )
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER or 8 + n > size:
                raise SourceError(f"{where} has a corrupt or truncated header; re-download or re-export it")
            raw = fh.read(n)
    except OSError as exc:
        raise SourceError(f"cannot read {shown(path)}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except RecursionError as exc:
        raise SourceError(
            f"{where} has a header nested too deeply to be a safetensors header; the file is corrupt"
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceError(
            f"{where} does not start with a valid safetensors header ({shown(exc)}); is it really a .safetensors file?"
        ) from exc
    metadata = _metadata(header.pop("__metadata__", None), where)
    base = 8 + n
    tensors = {name: _tensor(name, entry, path, where, base, size) for name, entry in header.items()}
    return tensors, metadata


def _depth_ok(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


def _load_json_object(path: Path, folder: Path, what: str, hint: str) -> object:
    data = load_json(path, folder, what)
    if not _depth_ok(data):
        raise SourceError(
            f"{what} nests its JSON more than {MAX_JSON_DEPTH} levels deep, which no real one does; {hint}"
        )
    return data


def _load_config(folder: Path) -> dict | None:
    path = folder / "config.json"
    if not os.path.lexists(path):
        return None
    hint = "use the config.json that came with the weights"
    config = _load_json_object(path, folder, "config.json", hint)
    if not isinstance(config, dict):
        raise SourceError(f"config.json is not a JSON object (it holds {json_type(config)}); {hint}")
    return config


def _pickle_message(path: Path) -> str:
    return (
        f"{shown(path.name)} is a pickle checkpoint, which Graft never unpickles by default because loading "
        "it can run arbitrary code; convert it first with 'graft convert "
        f"{shown(path)}' (uses torch.load(weights_only=True)) and open the .safetensors it writes"
    )


def _folder_files(folder: Path) -> tuple[list[tuple[str, Path]], dict[str, str] | None]:
    """The weight files of a folder, ``(name in the folder, resolved file)``, and the index's weight map if sharded."""
    index = folder / INDEX_NAME
    if os.path.lexists(index):
        weight_map = parse_index(_load_json_object(index, folder, INDEX_NAME, "re-download the model"))
        names = list(dict.fromkeys(weight_map.values()))
        missing = [shown(n) for n in names if not os.path.lexists(folder / n)]
        if missing:
            raise SourceError(
                f"{shown(folder)} is missing shard(s) {', '.join(missing)} listed in {INDEX_NAME}; download the complete model"
            )
        return [(n, checked_file(folder / n, folder, f"shard {n!r}")) for n in names], weight_map
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise SourceError(_pickle_message(pickles[0]))
        raise SourceError(f"{shown(folder)} holds no .safetensors file; give a model folder or a .safetensors file")
    return [(f.name, checked_file(f, folder, f"weight file {f.name!r}")) for f in files], None


def open_local(path: Path, identity: dict | None = None) -> Source:
    """Open a .safetensors file or a folder holding one or a sharded set.

    A file or folder the user names may itself be a link; what lies inside a folder must be a
    regular file inside it (or a Hugging Face cache blob of the same repo, for a snapshot).

    Raises:
        SourceError: nothing usable at ``path``, a pickle file, a missing shard, a corrupt file,
            an index that does not match its shards, a link leaving the folder, a FIFO or device.
    """
    path = Path(path)
    try:
        path = path.expanduser()
    except RuntimeError:  # "~nosuchuser/…" names a relative folder of that spelling, if any
        pass
    try:
        exists = path.exists()
        is_dir = path.is_dir()
    except OSError as exc:  # a name too long for the file system, …
        raise SourceError(
            f"{str(path)[:120]!r} cannot be opened ({exc.strerror or exc}); give a .safetensors file, a model folder or a hub repo id"
        ) from exc
    if not exists:
        raise SourceError(f"{shown(path)} does not exist; give a .safetensors file, a model folder or a hub repo id")
    weight_map = None
    if is_dir:
        folder = path
        files, weight_map = _folder_files(folder)
    else:
        if path.suffix in PICKLE_SUFFIXES:
            raise SourceError(_pickle_message(path))
        if path.suffix != ".safetensors":
            raise SourceError(
                f"{shown(path.name)} is not a .safetensors file; give a .safetensors file or a model folder"
            )
        files = [(path.name, checked_file(path, None, repr(path.name)))]
        folder = path.parent
    tensors: dict[str, TensorInfo] = {}
    held: dict[str, list[str]] = {}  # name in the folder → its tensors
    held_by: dict[str, str] = {}  # tensor → name in the folder of its file
    metadata: dict[str, str] = {}
    # TensorInfo.file and Source.files are the same resolved paths, so that per-file work (the
    # NaN/Inf scan, hashing) finds every file's tensors whatever path or link led to the file.
    for shard, target in files:
        found, meta = read_header(target, shard)
        for name in found:
            if name in tensors:
                raise SourceError(
                    f"tensor {name!r} appears in two shards ({shown(held_by[name])}, {shown(shard)}); the folder mixes two checkpoints"
                )
            held_by[name] = shard
        tensors.update(found)
        held[shard] = list(found)
        metadata = metadata or meta
    if weight_map is not None:
        check_tensors(weight_map, held)
    ident = {"kind": "local", "path": str(path.resolve())}
    ident.update(identity or {})
    return Source(
        root=folder.resolve(),
        files=[target for _, target in files],
        tensors=tensors,
        config=_load_config(folder),
        identity=ident,
        metadata=metadata,
        file_names={target: shard for shard, target in files},
    )
