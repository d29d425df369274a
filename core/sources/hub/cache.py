"""The local Hugging Face cache, read without any network call.

:func:`list_cached_models` lists every model snapshot in it (``huggingface_hub.scan_cache_dir``);
:func:`cached_snapshot` finds one complete snapshot of a repo at a revision — the offline way
to open a repo, and ``download``'s fallback when the hub cannot be reached. A snapshot missing a
file Graft needs (an interrupted download) is refused, never half opened.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import SourceError
from core.sources.hub.errors import no_weights_error
from core.sources.hub.repo import select_files
from core.sources.local import INDEX_NAME
from core.sources.trust import load_json, shown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedModel:
    """One snapshot (revision) of a model repo in the local Hugging Face cache."""

    repo_id: str
    revision: str  # commit hash
    refs: tuple[str, ...]  # branch/tag names pointing at it, e.g. ("main",)
    size_bytes: int
    path: Path  # the snapshot folder
    has_safetensors: bool
    last_modified: float  # POSIX timestamp

    @property
    def location(self) -> str:
        """What to give ``open_source`` (with ``local_files_only=True``) to open this snapshot."""
        return f"{self.repo_id}@{self.revision}"


def list_cached_models(cache_dir: str | Path | None = None) -> list[CachedModel]:
    """Every model snapshot in the Hugging Face cache, by repo id then newest first.

    Args:
        cache_dir: the hub cache folder; ``HF_HUB_CACHE`` (``~/.cache/huggingface/hub``) if None.

    Returns:
        One entry per cached revision; an empty list when the cache folder does not exist yet.
    """
    from huggingface_hub import CacheNotFound, scan_cache_dir

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    for warning in info.warnings:
        log.debug("hub cache: %s", warning)
    models = [
        CachedModel(
            repo_id=repo.repo_id,
            revision=rev.commit_hash,
            refs=tuple(sorted(rev.refs)),
            size_bytes=rev.size_on_disk,
            path=Path(rev.snapshot_path),
            has_safetensors=any(f.file_name.endswith(".safetensors") for f in rev.files),
            last_modified=rev.last_modified,
        )
        for repo in info.repos
        if repo.repo_type == "model"
        for rev in repo.revisions
    ]
    models.sort(key=lambda m: (m.repo_id.lower(), -m.last_modified, m.revision))
    return models


def cache_root(cache_dir: str | Path | None) -> Path:
    """The hub cache folder: ``cache_dir``, else ``HF_HUB_CACHE``."""
    from huggingface_hub import constants

    return Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()


def is_cached(repo_id: str, name: str, commit: str, cache_dir: str | Path | None) -> bool:
    """Whether file ``name`` of ``repo_id`` at ``commit`` is already in the cache's snapshot folder."""
    folder = cache_root(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    return (folder / name).is_file()


def cached_snapshot(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> Path:
    """The complete cached snapshot of ``repo_id`` at ``revision``, without any network call.

    Raises:
        SourceError: not in the cache, an incomplete snapshot (the files missing are named), or a
            snapshot without safetensors weights.
    """
    from huggingface_hub import get_cached_repo_tree, snapshot_download
    from huggingface_hub.errors import (
        CachedRepoTreeNotFoundError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
    )

    where = f"{repo_id}" + (f"@{revision}" if revision else "")
    incomplete = (
        f"the cached copy of {where} is incomplete, probably from an interrupted download; "
        "go online and open it again to finish the download"
    )
    try:
        # Resolves the revision through refs/ and returns the snapshot folder if there is one.
        folder = Path(
            snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True, allow_patterns=["config.json"]
            )
        )
    except IncompleteSnapshotError as exc:
        raise SourceError(incomplete) from exc
    except LocalEntryNotFoundError as exc:
        raise SourceError(
            f"{where} is not in the local Hugging Face cache and Graft is offline; go online "
            "(unset HF_HUB_OFFLINE or the offline switch) to download it, or open a local folder"
        ) from exc
    try:
        names = [f.path for f in get_cached_repo_tree(repo_id, revision=folder.name, cache_dir=cache_dir)]
    except CachedRepoTreeNotFoundError:
        # Cache filled by an older client: trust what is on disk; open_local checks shards.
        names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]

    def load_index() -> object:
        if not os.path.lexists(folder / INDEX_NAME):
            return None  # reported below as a missing file of an incomplete snapshot
        return load_json(folder / INDEX_NAME, folder, INDEX_NAME)

    wanted = select_files(names, load_index)
    if not wanted:
        raise no_weights_error(repo_id, names)
    missing = [n for n in wanted if not (folder / n).is_file()]
    if missing:
        listed = ", ".join(shown(n) for n in missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise SourceError(incomplete.replace("incomplete,", f"incomplete (missing {listed}),"))
    return folder
