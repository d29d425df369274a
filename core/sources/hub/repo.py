"""What names a hub repo, and which of its files Graft needs.

A repo reference is ``owner/name`` (or a legacy ``name``) with an optional ``@revision``. Of a
repo's files Graft takes only root-level ones: the safetensors weights (the shards an index
lists, not every ``*.safetensors`` a repo happens to hold), ``config.json`` and the auxiliary
files of :data:`core.sources.base.AUX_FILE_PATTERNS` (tokenizer, generation, preprocessing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase

from core.sources.base import AUX_FILE_PATTERNS
from core.sources.local import INDEX_NAME, PICKLE_SUFFIXES
from core.sources.shard_index import parse_index

#: What ``download`` may fetch, at the repo root (weights are narrowed further, see ``select_files``).
ALLOW_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "config.json", *AUX_FILE_PATTERNS)

# owner/name or name, then an optional @revision (branch, tag or commit hash).
_REPO_REF = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?)"
    r"(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9._/-]{0,199}))?$"
)
_FILE_SUFFIXES = (".safetensors", ".json", *PICKLE_SUFFIXES)


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
