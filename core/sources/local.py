"""Local safetensors: one file, a folder with one file, or a sharded folder with an index."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from core.errors import SourceError
from core.sources.base import DTYPE_BYTES, Source, TensorInfo

INDEX_NAME = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_HEADER = 100 << 20


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse a safetensors header and check it against the file size.

    Returns:
        ``(tensors, metadata)`` with absolute byte offsets.

    Raises:
        SourceError: the file is truncated, the header is not JSON, or offsets are inconsistent.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise SourceError(f"{path.name} is too short to be a safetensors file ({size} bytes); re-download or re-export it")
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER or 8 + n > size:
                raise SourceError(f"{path.name} has a corrupt or truncated header; re-download or re-export it")
            raw = fh.read(n)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{path.name} does not start with a valid safetensors header ({exc}); is it really a .safetensors file?") from exc
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + n
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        try:
            dtype = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{path.name}: tensor {name!r} has a malformed header entry; the file is corrupt") from exc
        numel = 1
        for d in shape:
            numel *= d
        width = DTYPE_BYTES.get(dtype)
        if width is None:
            raise SourceError(f"{path.name}: tensor {name!r} has unsupported dtype {dtype}")
        if end - begin != numel * width or begin < 0:
            raise SourceError(f"{path.name}: tensor {name!r} has inconsistent offsets; the file is corrupt")
        if base + end > size:
            raise SourceError(f"{path.name} is truncated: tensor {name!r} ends past the end of the file; re-download or re-export it")
        tensors[name] = TensorInfo(name, dtype, shape, path, (base + begin, base + end))
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _load_config(folder: Path) -> dict | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise SourceError(f"{path} is not valid JSON ({exc}); fix or remove it") from exc


def _pickle_message(path: Path) -> str:
    return (
        f"{path.name} is a pickle checkpoint, which Graft never unpickles by default because loading "
        "it can run arbitrary code; convert it first with 'graft convert "
        f"{path}' (uses torch.load(weights_only=True)) and open the .safetensors it writes"
    )


def open_local(path: Path, identity: dict | None = None) -> Source:
    """Open a .safetensors file or a folder holding one or a sharded set.

    Raises:
        SourceError: nothing usable at ``path``, a pickle file, a missing shard, a corrupt file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise SourceError(f"{path} does not exist; give a .safetensors file, a model folder or a hub repo id")
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise SourceError(_pickle_message(path))
        if path.suffix != ".safetensors":
            raise SourceError(f"{path.name} is not a .safetensors file; give a .safetensors file or a model folder")
        files = [path]
        folder = path.parent
    else:
        folder = path
        index = folder / INDEX_NAME
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(f"{index} is not a valid safetensors index ({exc}); re-download the model") from exc
            names = list(dict.fromkeys(weight_map.values()))
            files = [folder / n for n in names]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise SourceError(f"{folder} is missing shard(s) {', '.join(missing)} listed in {INDEX_NAME}; download the complete model")
        else:
            files = sorted(folder.glob("*.safetensors"))
            if not files:
                pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
                if pickles:
                    raise SourceError(_pickle_message(pickles[0]))
                raise SourceError(f"{folder} holds no .safetensors file; give a model folder or a .safetensors file")
    tensors: dict[str, TensorInfo] = {}
    metadata: dict[str, str] = {}
    for f in files:
        found, meta = read_header(f)
        for name in found:
            if name in tensors:
                raise SourceError(f"tensor {name!r} appears in two shards ({tensors[name].file.name}, {f.name}); the folder mixes two checkpoints")
        tensors.update(found)
        metadata = metadata or meta
    ident = {"kind": "local", "path": str(path.resolve())}
    ident.update(identity or {})
    return Source(root=folder.resolve(), files=[f.resolve() for f in files], tensors=tensors,
                  config=_load_config(folder), identity=ident, metadata=metadata)
