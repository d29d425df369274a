"""Downloading a model repo from the Hugging Face Hub: only the files Graft reads.

``download`` fetches the files :func:`core.sources.hub.repo.select_files` picks (the weights an
index lists, ``config.json``, the auxiliary files). Progress is fed through ``snapshot_download``'s
``tqdm_class`` hook, which also checks the cancel token on every chunk. ``HF_HUB_OFFLINE`` is
honoured (``huggingface_hub`` reads it at import); ``local_files_only=True`` is the per-call
offline switch; both open the cached snapshot (:mod:`core.sources.hub.cache`), which is also the
fallback when the hub cannot be reached.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from core.errors import Cancelled, SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.sources.hub.cache import cached_snapshot, is_cached
from core.sources.hub.errors import Unreachable, check_commit, garbage, no_weights_error, translate
from core.sources.hub.repo import select_files
from core.sources.hub.timeouts import guard_hub_session
from core.sources.local import INDEX_NAME
from core.sources.trust import load_json, shown

log = logging.getLogger(__name__)


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

    Every request is time-limited (see :mod:`core.sources.hub.timeouts`: ``GRAFT_HUB_TIMEOUT``,
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
        folder = cached_snapshot(repo_id, revision, cache_dir)
        progress(1.0, f"{repo_id}: opened from the local cache")
        return folder
    try:
        return _download_online(repo_id, revision, cache_dir, endpoint, token, progress, cancel)
    except Unreachable as unreachable:
        try:
            folder = cached_snapshot(repo_id, revision, cache_dir)
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

    guard_hub_session()  # time limits on every request (see core.sources.hub.timeouts)
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
            path = hf_hub_download(
                repo_id, INDEX_NAME, revision=sha, cache_dir=cache_dir, endpoint=endpoint, token=token
            )
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, repo_id, revision, endpoint) from exc
        return load_json(Path(path), None, f"{INDEX_NAME} of {repo_id}")

    wanted = select_files(list(sizes), load_index)
    if not wanted:
        raise no_weights_error(repo_id, list(sizes))
    total = sum(sizes.get(n, 0) for n in wanted if not is_cached(repo_id, n, sha, cache_dir))
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
