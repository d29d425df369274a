"""Models on the Hugging Face Hub and in its local cache.

``download`` fetches only what Graft reads: the safetensors weights (the shards an index lists,
not every ``*.safetensors`` a repo happens to hold), ``config.json`` and the tokenizer,
generation and preprocessing files. Progress is fed through ``snapshot_download``'s
``tqdm_class`` hook, which also checks the cancel token on every chunk. ``HF_HUB_OFFLINE`` is
honoured (``huggingface_hub`` reads it at import); ``local_files_only=True`` is the per-call
offline switch.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from core.errors import Cancelled, SourceError
from core.jobs import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.sources.hub_errors import Unreachable, check_commit, garbage, no_weights_error, translate
from core.sources.hub_net import guard_hub_session
from core.sources.local import INDEX_NAME, PICKLE_SUFFIXES
from core.sources.shard_index import parse_index
from core.sources.trust import load_json, shown

log = logging.getLogger(__name__)

#: What ``download`` may fetch, at the repo root (weights are narrowed further, see ``select_files``).
ALLOW_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "added_tokens.json",
    "generation_config.json",
    "preprocessor_config.json",
    "chat_template.jinja",
)

# owner/name or name, then an optional @revision (branch, tag or commit hash).
_REPO_REF = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?)"
    r"(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9._/-]{0,199}))?$"
)
_FILE_SUFFIXES = (".safetensors", ".json", *PICKLE_SUFFIXES)


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


def parse_repo_ref(text: str) -> tuple[str, str | None] | None:
    """Split ``owner/name[@revision]`` into ``(repo_id, revision)``; None if it cannot be a repo id.

    Strings that look like file names (``x.safetensors``, ``y.bin``) or contain ``--``/``..``
    (forbidden in repo ids) are not repo ids.
    """
    match = _REPO_REF.match(text.strip())
    if match is None:
        return None
    repo = match["repo"]
    if "--" in repo or ".." in repo or repo.endswith((".", "-")) or repo.lower().endswith(_FILE_SUFFIXES):
        return None
    return repo, match["rev"]


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


def select_files(names: list[str], load_index: Callable[[], object]) -> list[str]:
    """The repo files Graft needs, out of ``names`` (the repo's file list).

    Only root-level files. Weights: the index and the shards it lists when the repo has
    ``model.safetensors.index.json``; else ``model.safetensors`` if present; else every root
    ``*.safetensors``. An empty weight list means the repo has no safetensors weights. The
    index's shard names become download patterns and file paths, so they are checked first
    (:func:`core.sources.shard_index.parse_index`: plain ``*.safetensors`` names only).

    Args:
        names: repo-relative file paths.
        load_index: returns the parsed index JSON (called only when the repo has one), or None when
            it cannot be had (then every root ``*.safetensors`` is taken, and opening the folder
            reports the index).

    Raises:
        SourceError: the index is not a valid index, or names a shard outside the repo's root.
    """
    root = [n for n in names if isinstance(n, str) and "/" not in n]
    weights = [n for n in root if n.endswith(".safetensors")]
    if not weights:
        return []
    if INDEX_NAME in root:
        index = load_index()
        if index is not None:
            weights = [INDEX_NAME, *sorted(set(parse_index(index).values()))]
        else:
            weights = [INDEX_NAME, *weights]
    elif "model.safetensors" in weights:
        weights = ["model.safetensors"]
    aux_patterns = [p for p in ALLOW_PATTERNS if "safetensors" not in p]
    aux = [n for n in root if any(fnmatchcase(n, p) for p in aux_patterns)]
    return weights + sorted(aux)


def _exact(name: str) -> str:
    """An fnmatch pattern matching exactly ``name``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _progress_bar_class(progress: ProgressFn, cancel: CancelToken, total: int, label: str):
    """A tqdm class for ``snapshot_download(tqdm_class=...)`` forwarding bytes to ``progress``.

    ``snapshot_download`` builds several bars from it: the aggregated bytes bar (named
    ``huggingface_hub.snapshot_download``) receives every downloaded chunk from the worker
    threads; the others (transfer bytes, files done) only serve as cancel checkpoints.
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    lock = threading.Lock()
    done = [0]

    class GraftBar(hf_tqdm):
        def __init__(self, *args, **kwargs):
            cancel.check()
            self._graft_counts_bytes = kwargs.get("name") == "huggingface_hub.snapshot_download"
            kwargs["disable"] = True  # draw nothing; we only listen
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            cancel.check()
            if self._graft_counts_bytes and n:
                with lock:
                    done[0] += int(n)
                    if total > 0:
                        fraction = min(done[0] / total, 0.999)
                        progress(fraction, f"{label}: {_human(done[0])} of {_human(total)}")
                    else:
                        progress(-1.0, f"{label}: {_human(done[0])}")
            return None

    return GraftBar


def _cache_root(cache_dir: str | Path | None) -> Path:
    from huggingface_hub import constants

    return Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()


def _is_cached(repo_id: str, name: str, commit: str, cache_dir: str | Path | None) -> bool:
    folder = _cache_root(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    return (folder / name).is_file()


def download(
    repo_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Path:
    """Download (or find in the cache) the files Graft needs from a model repo.

    Args:
        repo_id: ``owner/name`` (or a legacy ``name``).
        revision: branch, tag or commit hash; the default branch if None.
        cache_dir: hub cache folder; ``HF_HUB_CACHE`` if None.
        local_files_only: True: never touch the network (in-app offline switch); None/False:
            online unless ``HF_HUB_OFFLINE`` is set.
        endpoint: hub URL; ``HF_ENDPOINT`` if None.
        token: passed to ``huggingface_hub`` (None: the saved login, if any).
        progress: ``progress(fraction, message)``, called from download threads.
        cancel: checked on every downloaded chunk.

    Returns:
        The snapshot folder (its name is the commit hash).

    Every request is time-limited (see :mod:`core.sources.hub_net`: ``GRAFT_HUB_TIMEOUT``,
    ``GRAFT_HUB_STALL_SECONDS``, ``GRAFT_HUB_STALL_KB``), and what the hub answers is checked
    before it is followed (the commit id, the file list, the index's shard names).

    Raises:
        SourceError: repo or revision not found, gated, no safetensors, offline and not cached,
            incomplete cached copy, network failure, a hub that did not answer in time or stopped
            sending data, an answer that is not what a hub sends, a hostile index.
        Cancelled: ``cancel`` was triggered; completed files stay in the cache, partial ones are
            removed, and the snapshot is not reported complete offline.
    """
    from huggingface_hub import constants

    cancel.check()
    if local_files_only or constants.is_offline_mode():
        folder = _from_cache(repo_id, revision, cache_dir)
        progress(1.0, f"{repo_id}: opened from the local cache")
        return folder
    try:
        return _download_online(repo_id, revision, cache_dir, endpoint, token, progress, cancel)
    except Unreachable as unreachable:
        try:
            folder = _from_cache(repo_id, revision, cache_dir)
        except SourceError as cached:
            state = "its cached copy is incomplete" if "incomplete" in str(cached) else "it is not in the local cache"
            raise SourceError(unreachable.message(repo_id, state)) from unreachable.__cause__
        log.warning("hub unreachable (%s); using the cached copy of %s", unreachable.reason, repo_id)
        progress(1.0, f"{repo_id}: hub unreachable, opened from the local cache")
        return folder


def _siblings(info, repo_id: str, endpoint: str | None) -> dict[str, int]:
    """``file name → size`` from a model_info answer (a hub's garbage is refused, not followed)."""
    siblings = getattr(info, "siblings", None) or []
    if not isinstance(siblings, list):
        raise garbage(repo_id, endpoint, f"a file list that is {type(siblings).__name__}")
    sizes = {}
    for sibling in siblings:
        name, size = getattr(sibling, "rfilename", None), getattr(sibling, "size", None)
        if not isinstance(name, str):
            raise garbage(repo_id, endpoint, f"a file list holding the name {shown(repr(name))[:60]}")
        sizes[name] = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0
    return sizes


def _download_online(repo_id, revision, cache_dir, endpoint, token, progress, cancel) -> Path:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    guard_hub_session()  # time limits on every request (see core.sources.hub_net)
    api = HfApi(endpoint=endpoint, token=token)
    progress(-1.0, f"{repo_id}: asking the hub")
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as exc:  # noqa: BLE001 - translated below
        raise translate(exc, repo_id, revision, endpoint) from exc
    cancel.check()
    sha = check_commit(getattr(info, "sha", None), repo_id, endpoint)
    sizes = _siblings(info, repo_id, endpoint)

    def load_index() -> object:
        try:
            path = hf_hub_download(repo_id, INDEX_NAME, revision=sha, cache_dir=cache_dir,
                                   endpoint=endpoint, token=token)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, repo_id, revision, endpoint) from exc
        return load_json(Path(path), None, f"{INDEX_NAME} of {repo_id}")

    wanted = select_files(list(sizes), load_index)
    if not wanted:
        raise no_weights_error(repo_id, list(sizes))
    total = sum(sizes.get(n, 0) for n in wanted if not _is_cached(repo_id, n, sha, cache_dir))
    bar = _progress_bar_class(progress, cancel, total, f"downloading {repo_id}")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            endpoint=endpoint,
            token=token,
            allow_patterns=[_exact(n) for n in wanted],
            tqdm_class=bar,
        )
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - translated below
        raise translate(exc, repo_id, revision, endpoint) from exc
    progress(1.0, f"{repo_id}: downloaded")
    return Path(folder)


def _from_cache(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> Path:
    """The complete cached snapshot of ``repo_id`` at ``revision``, without any network call."""
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
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                        local_files_only=True, allow_patterns=["config.json"]))
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
        listed = ", ".join(shown(n) for n in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise SourceError(incomplete.replace("incomplete,", f"incomplete (missing {listed}),"))
    return folder
