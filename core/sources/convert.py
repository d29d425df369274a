"""Opt-in conversion of a pickle checkpoint (``.bin``, ``.pt``, ``.pth``) to safetensors.

Graft never unpickles anything by default. This module is the one explicit exception, and even
here ``torch.load`` runs with ``weights_only=True``: torch's restricted unpickler, which accepts
tensors and plain containers and refuses to build arbitrary objects or call arbitrary code.

The file is memory-mapped (``mmap=True``) and written tensor by tensor with the streaming
writer, so memory stays near one tensor even for large checkpoints. Tensors that share storage
(tied embeddings, views) are each written out under their own name, which is what safetensors
requires (it refuses shared storage).

The output is written to a hidden temporary sibling (named with this process's owner token, so a
later run sweeps what a killed conversion left, see :mod:`core.atomic`), fsynced and renamed into
place. It is never the input, and ``force`` replaces only a safetensors file Graft wrote, unless
``replace_any`` (:func:`core.outdir.check_out_file`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from core import __version__, atomic
from core.errors import ExportError, SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

log = logging.getLogger(__name__)

#: Keys under which training scripts commonly nest the state dict.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "network", "ema")


def default_output(path: Path) -> Path:
    """``pytorch_model.bin`` → ``model.safetensors`` (so the folder opens as a HF folder); else same stem."""
    if path.name == "pytorch_model.bin":
        return path.with_name("model.safetensors")
    return path.with_suffix(".safetensors")


def _load(path: Path):
    import pickle

    import torch

    try:
        try:
            return torch.load(path, weights_only=True, map_location="cpu", mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc).lower():
                raise
            # Legacy (non-zip) torch.save format cannot be memory-mapped.
            log.debug("mmap load failed for %s (%s); loading into memory", path, exc)
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(
            f"{path.name} holds more than tensors ({first[:160]}); Graft only converts with "
            "torch.load(weights_only=True), which refuses arbitrary objects: re-save it as a plain "
            "state dict with torch.save(model.state_dict(), ...) in a trusted environment"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a corrupt file can fail anywhere inside the unpickler
        raise SourceError(
            f"cannot read {path.name} as a torch checkpoint ({type(exc).__name__}: {str(exc)[:160]}); is the file complete?"
        ) from exc


def _is_tensor(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def find_state_dict(obj) -> dict:
    """The ``name → tensor`` mapping inside a loaded checkpoint.

    Accepts a plain state dict, or one nested under a common key (``state_dict``, ``model``, …).
    Non-tensor entries next to tensors (step counters, config values) are skipped.

    Raises:
        SourceError: no tensors found.
    """
    if isinstance(obj, Mapping):
        tensors = {str(k): v for k, v in obj.items() if _is_tensor(v)}
        if tensors:
            skipped = [str(k) for k, v in obj.items() if not _is_tensor(v)]
            if skipped:
                log.info("skipping %d non-tensor entries: %s", len(skipped), ", ".join(skipped[:5]))
            return tensors
        for key in NESTED_KEYS:
            if isinstance(obj.get(key), Mapping):
                try:
                    return find_state_dict(obj[key])
                except SourceError:
                    continue
        keys = ", ".join(map(str, list(obj)[:8]))
        raise SourceError(
            f"the checkpoint holds no tensors at its top level or under {'/'.join(NESTED_KEYS)} (keys: {keys})"
        )
    raise SourceError(f"the checkpoint is a {type(obj).__name__}, not a state dict of tensors")


def convert_pickle(
    path: str | Path,
    out: str | Path | None = None,
    *,
    force: bool = False,
    replace_any: bool = False,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Path:
    """Convert a pickle checkpoint to a ``.safetensors`` file with ``{"format": "pt"}`` metadata.

    Args:
        path: the ``.bin`` / ``.pt`` / ``.pth`` file; never modified.
        out: the file to write; next to ``path`` by default (see :func:`default_output`).
        force: overwrite ``out`` if it exists and is a safetensors file Graft wrote.
        replace_any: with ``force``, overwrite any regular file at ``out`` (never the input).
        progress: ``progress(fraction, message)``.
        cancel: checked between tensors and chunks; a cancelled conversion leaves no file.

    Returns:
        The written file.

    Raises:
        SourceError: missing or unreadable input, objects other than tensors, no tensors.
        ExportError: ``out`` is the input, not a regular file, exists (without ``force``), was not
            written by Graft (without ``replace_any``), or cannot be written.
        Cancelled: ``cancel`` was triggered.
    """
    from core.outdir import GRAFT_METADATA_KEY, check_out_file
    from core.safetensors_stream import DTYPE_NAMES, SafetensorsStreamWriter, TensorSpec

    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"{path} does not exist or is not a file; give the .bin/.pt/.pth checkpoint to convert")
    target = Path(os.path.abspath(Path(out).expanduser() if out is not None else default_output(path)))
    if target.suffix != ".safetensors":
        raise ExportError(f"{target.name} should end in .safetensors")
    check_out_file(target, inputs=[path], force=force, replace_any=replace_any)

    progress(-1.0, f"loading {path.name} (weights_only)")
    state = find_state_dict(_load(path))
    cancel.check()
    bad = sorted({str(t.dtype) for t in state.values() if t.dtype not in DTYPE_NAMES})
    if bad:
        raise SourceError(f"{path.name} holds tensors of dtype {', '.join(bad)}, which safetensors cannot store")
    # Widest dtypes first, as the reference writer does, so every tensor starts aligned.
    names = sorted(state, key=lambda n: (-state[n].dtype.itemsize, n))
    entries = [TensorSpec(n, tuple(state[n].shape), state[n].dtype) for n in names]
    total = sum(state[n].numel() * state[n].dtype.itemsize for n in names) or 1
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        cancel.check()
        done += n
        progress(min(done / total, 0.999), f"writing {target.name}")

    atomic.sweep(target.parent)  # partial files of killed conversions
    created: list[Path] = []
    tmp = atomic.sibling(target, "tmp")
    moved = False
    try:
        atomic.make_parents(target.parent, created)
        metadata = {"format": "pt", GRAFT_METADATA_KEY: __version__}  # the marker --force looks for
        with SafetensorsStreamWriter(tmp, entries, metadata=metadata) as writer:
            for name in names:
                cancel.check()
                tensor = state[name].detach()
                if tensor.device.type != "cpu":  # map_location="cpu" makes this unreachable in practice
                    tensor = tensor.to("cpu")
                writer.write(name, tensor, on_bytes=on_bytes)
        atomic.fsync_path(tmp)
        # The file may have appeared or changed while we wrote: the same rules, right before the rename.
        check_out_file(target, inputs=[path], force=force, replace_any=replace_any)
        _move(tmp, target, force)
        moved = True
        atomic.fsync_path(target.parent, directory=True)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if not moved:
            _discard(tmp, created)
    progress(1.0, f"wrote {target.name}")
    return target


def _move(tmp: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(tmp, target)
        return
    try:
        atomic.rename_noreplace(tmp, target)
    except FileExistsError as exc:
        raise ExportError(
            f"{target} appeared while converting; remove it, choose another --out or pass --force"
        ) from exc


def _discard(tmp: Path, created: list[Path]) -> None:
    """Remove a partial output and the folders made for it, without masking the real error."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError as exc:  # a read-only folder: there is nothing there to remove anyway
        log.debug("cannot remove %s: %s", tmp, exc)
    atomic.remove_created(created)
