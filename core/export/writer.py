"""The checkpoint writer: a folder ``transformers`` loads as-is, streamed one tensor at a time.

:func:`export_checkpoint` asks ``produce(name)`` for one tensor at a time, in file order, and
writes its bytes before asking for the next, so peak memory is one tensor. Everything is written to
a hidden temporary sibling folder, fsynced, and swapped into place only when complete; on an error
or a cancel the temporary folder (and any parent folder the export created) is removed and
``out_dir`` is untouched. Which folders may be written or replaced is decided by
:mod:`core.outdir`; the temporary names, the sweep of dead exports' leftovers and the atomic swap
are :mod:`core.atomic`. Shards follow the Hub's rule and its decimal sizes ("5GB" = 5·10⁹ bytes).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import ExportError
from core.outdir import EXPORT, AtomicFolder
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.safetensors_stream import SafetensorsStreamWriter, build_header, nbytes

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
RECIPE_NAME = "graft_recipe.json"
CARD_NAME = "README.md"
INDEX_SUFFIX = ".index.json"
#: the Hub's decimal size units ("5GB" = 5·10⁹ bytes), as ``huggingface_hub`` reads ``max_shard_size``.
SIZE_UNITS = {"TB": 10**12, "GB": 10**9, "MB": 10**6, "KB": 10**3}


def parse_size(size: str | int) -> int:
    """Bytes in a size like ``"5GB"`` or ``"500MB"`` (decimal units, as on the Hub), or an int.

    Raises:
        ValueError: no known unit, or no number before it.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    text = str(size).strip()
    unit = text[-2:].upper()
    if unit not in SIZE_UNITS:
        raise ValueError(f"unit {text[-2:]!r} is not one of {', '.join(SIZE_UNITS)}")
    try:
        return int(float(text[:-2].strip()) * SIZE_UNITS[unit])
    except ValueError:
        raise ValueError(f"{text[:-2].strip()!r} is not a number") from None


@dataclass(frozen=True)
class ExportEntry:
    """One tensor of the exported checkpoint, known before its data exists.

    Attributes:
        name: the tensor's name in the checkpoint (``"encoder.layer.0.attention.self.query.weight"``).
        shape: its shape in the exported file.
        dtype: its dtype in the exported file; :func:`export_checkpoint` casts floats to it.
    """

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return nbytes(self.shape, self.dtype)


def plan_shards(
    entries: Sequence[ExportEntry],
    max_shard_size: int | str = "5GB",
    weights_name: str = "model.safetensors",
) -> dict[str, list[ExportEntry]]:
    """Split entries into shard files in entry order, with Hugging Face's rules and names.

    Args:
        entries: tensors in file order.
        max_shard_size: bytes, or a decimal size string (``"500MB"``, ``"5GB"``) as on the Hub.
        weights_name: the single-file name; shards are ``<stem>-00001-of-0000N<suffix>``.

    Returns:
        File name → its entries in order. One file named ``weights_name`` when everything fits.

    Raises:
        ExportError: a bad size string, or no entries.
    """
    if not entries:
        raise ExportError("there is nothing to export: the plan produced no tensors")
    stem, dot, ext = weights_name.rpartition(".")
    if not dot or not stem:
        raise ExportError(f"weights name {weights_name!r} needs a file extension, like model.safetensors")
    if len({e.name for e in entries}) != len(entries):
        raise ExportError("two exported tensors have the same name; this is a bug in the plan")
    try:
        limit = parse_size(max_shard_size) if isinstance(max_shard_size, str) else int(max_shard_size)
    except ValueError as exc:
        raise ExportError(f"invalid max shard size {max_shard_size!r}: {exc}") from exc
    if limit <= 0:
        raise ExportError(f"the max shard size must be positive, got {max_shard_size!r}")
    # Hugging Face's rule (huggingface_hub.split_state_dict_into_shards_factory), except that a
    # tensor larger than the limit closes the current shard instead of jumping ahead of it, so the
    # files hold the entries in their given order and produce() is called in that order.
    groups: list[list[ExportEntry]] = [[]]
    size = 0
    for entry in entries:
        if groups[-1] and size + entry.nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += entry.nbytes
    if len(groups) == 1:
        return {weights_name: groups[0]}
    n = len(groups)
    return {f"{stem}-{i + 1:05d}-of-{n:05d}.{ext}": group for i, group in enumerate(groups)}


def export_checkpoint(
    out_dir: Path,
    *,
    entries: Sequence[ExportEntry],
    produce: Callable[[str], torch.Tensor],
    config: dict | None,
    aux_files: Sequence[Path] = (),
    aux_texts: Mapping[str, str] | None = None,
    recipe: dict | None = None,
    model_card: str | None = None,
    metadata: dict[str, str] | None = None,
    max_shard_size: int | str = "5GB",
    weights_name: str = "model.safetensors",
    force: bool = False,
    replace_any: bool = False,
    protect: Sequence[Path] = (),
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Path:
    """Write a checkpoint folder atomically.

    Args:
        out_dir: the folder to create. It may exist if empty; a non-empty one needs ``force``,
            and is then replaced only after the new folder is complete (see :mod:`core.outdir`).
        entries: every tensor, in file order.
        produce: ``produce(name) -> tensor``, called once per entry, in file order, in a worker
            thread one tensor ahead of the writing. A floating tensor of another float dtype is
            cast to ``entry.dtype``; anything else must match exactly.
        config: written as ``config.json`` when not None.
        aux_files: tokenizer/generation files copied as-is (by base name).
        aux_texts: file name → text, written instead of copying (an edited tokenizer_config.json).
        recipe: written as ``graft_recipe.json`` when not None.
        model_card: written as ``README.md`` when not None.
        metadata: extra safetensors ``__metadata__`` for every shard (``format: pt`` is added).
        max_shard_size: bytes or a decimal size string (``"500MB"``, ``"5GB"``).
        weights_name: name of the single weights file; shards and index derive from it.
        force: replace a non-empty ``out_dir`` that is an earlier Graft export.
        replace_any: with ``force``, replace a non-empty folder whatever it holds.
        protect: the source's paths (:func:`core.outdir.protected_paths`): ``out_dir`` may not
            be, hold or lie inside any of them, whatever the flags.
        progress: ``progress(fraction, message)`` by bytes written.
        cancel: checked between tensors.

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        ExportError: the folder cannot be written, or a produced tensor does not fit its entry.
        Cancelled: ``cancel`` was set; nothing is left behind.
        Exception: whatever ``produce`` raises, after cleaning up.
    """
    out_dir = Path(os.path.abspath(out_dir))
    shards = plan_shards(entries, max_shard_size, weights_name)
    aux_texts = dict(aux_texts or {})
    aux = _check_aux_files(out_dir, aux_files, weights_name, shards, config, recipe, model_card)
    clash = sorted(set(aux_texts) & ({src.name for src in aux} | set(shards) | {CONFIG_NAME, RECIPE_NAME, CARD_NAME}))
    if clash or any(Path(n).name != n for n in aux_texts):
        raise ExportError(
            f"cannot write {', '.join(clash) or ', '.join(aux_texts)} next to the weights: the name is "
            "taken or not a plain file name; this is a bug in the caller"
        )
    folder = AtomicFolder(out_dir, kind=EXPORT, force=force, replace_any=replace_any, protect=protect)
    folder.check()
    try:  # unsupported dtypes, bad shapes or non-string metadata: refuse before writing anything
        build_header(entries, metadata)
    except ValueError as exc:
        raise ExportError(f"cannot export: {exc}") from exc
    total = sum(e.nbytes for e in entries)

    producing = False  # an OSError raised by produce is the source's, not ours: pass it on
    try:
        tmp = folder.open()  # inside the try: an interrupt right after it still cleans up
        written = 0

        def on_bytes(n: int) -> None:
            nonlocal written
            written += n
            progress(written / total if total else 1.0, f"writing {current}")

        ahead = _Ahead(produce, [e.name for es in shards.values() for e in es])
        try:
            for current, shard_entries in shards.items():
                with SafetensorsStreamWriter(tmp / current, shard_entries, metadata) as writer:
                    for entry in shard_entries:
                        cancel.check()
                        producing = True
                        tensor = ahead.next(entry.name)
                        producing = False
                        tensor = _fit(entry, tensor)
                        writer.write(entry.name, tensor, on_bytes)
                        del tensor
        finally:
            ahead.close()
        cancel.check()
        if len(shards) > 1:
            index = {
                "metadata": {"total_size": total},
                "weight_map": {e.name: f for f, es in shards.items() for e in es},
            }
            _write_json(tmp / (weights_name + INDEX_SUFFIX), index)
        if config is not None:
            _write_json(tmp / CONFIG_NAME, config)
        if recipe is not None:
            _write_json(tmp / RECIPE_NAME, recipe)
        if model_card is not None:
            (tmp / CARD_NAME).write_text(model_card, encoding="utf-8")
        for src in aux:
            shutil.copyfile(src, tmp / src.name)
        for name, text in aux_texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
        cancel.check()
        folder.commit()
    except OSError as exc:
        folder.abort()
        if producing:
            raise
        raise ExportError(f"cannot write the export to {out_dir}: {exc.strerror or exc}") from exc
    except BaseException:
        folder.abort()
        raise
    progress(1.0, f"exported to {out_dir}")
    return out_dir


class _Ahead:
    """``produce`` run one tensor ahead in a worker thread, so reading and computing tensor k + 1
    overlaps writing tensor k (a bounded pipeline: at most one tensor waits to be written).

    One worker calls ``produce`` in file order, as a plain loop would: strategies that share state
    across tensors (a run cache, a read ledger) see the same sequence, so the bytes are the same.
    """

    def __init__(self, produce: Callable[[str], torch.Tensor], names: list[str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._produce = produce
        self._names = names
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="graft-produce")
        self._next = 0
        self._pending = None
        self._submit()

    def _submit(self) -> None:
        if self._next < len(self._names):
            self._pending = (self._names[self._next], self._pool.submit(self._produce, self._names[self._next]))
            self._next += 1
        else:
            self._pending = None

    def next(self, name: str) -> torch.Tensor:
        if self._pending is None or self._pending[0] != name:
            raise ExportError(f"tensor {name!r} was asked out of file order; this is a bug in the exporter")
        tensor = self._pending[1].result()
        self._submit()
        return tensor

    def close(self) -> None:
        """Stop: a tensor being produced is left to finish in the background; nothing more starts."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _fit(entry: ExportEntry, tensor: torch.Tensor) -> torch.Tensor:
    """Cast a produced tensor to its entry's dtype (floats only) after checking its shape."""
    if not isinstance(tensor, torch.Tensor):
        raise ExportError(f"tensor {entry.name!r} was produced as {type(tensor).__name__}, not a tensor")
    if tuple(tensor.shape) != tuple(entry.shape):
        raise ExportError(
            f"tensor {entry.name!r} was produced with shape {tuple(tensor.shape)} but the plan says {entry.shape}"
        )
    if tensor.dtype != entry.dtype:
        if not (tensor.dtype.is_floating_point and entry.dtype.is_floating_point):
            raise ExportError(
                f"tensor {entry.name!r} was produced as {tensor.dtype} but the plan says {entry.dtype}; "
                "only floating-point tensors are cast on export"
            )
        tensor = tensor.to(entry.dtype)
    return tensor


def _check_aux_files(
    out_dir: Path,
    aux_files: Sequence[Path],
    weights_name: str,
    shards: Mapping[str, object],
    config: dict | None,
    recipe: dict | None,
    model_card: str | None,
) -> list[Path]:
    """Validate the files to copy: they exist, do not clash, and do not live in ``out_dir``."""
    generated = set(shards) | {weights_name + INDEX_SUFFIX}
    generated |= {
        n for n, v in ((CONFIG_NAME, config), (RECIPE_NAME, recipe), (CARD_NAME, model_card)) if v is not None
    }
    target = Path(os.path.realpath(out_dir))  # Path.resolve raises on a symlink loop
    seen: set[str] = set()
    checked = []
    for item in aux_files:
        src = Path(item)
        if not src.is_file():
            raise ExportError(f"cannot copy {src}: it is not a file")
        folder = Path(os.path.realpath(src)).parent
        if folder == target or target in folder.parents:
            raise ExportError(
                f"cannot export into {out_dir}: it holds the source file {src.name}, which the export "
                "would overwrite; choose another folder"
            )
        if src.name in generated:
            raise ExportError(f"cannot copy {src.name} from the source: the export writes its own {src.name}")
        if src.name in seen:
            raise ExportError(f"two files to copy are both named {src.name}")
        seen.add(src.name)
        checked.append(src)
    return checked


def _write_json(path: Path, data: Any) -> None:
    # Sorted keys and a fixed indent, as transformers writes config.json: same input, same bytes.
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
