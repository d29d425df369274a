"""Trusting a source before its weights are transferred: the recipe's hashes, and finite values.

An export's recipe records where its source came from and enough to detect a changed source.
Replaying that recipe on a source whose bytes changed would give other bytes with no warning, so
the replay compares first and stops on a mismatch unless the user says to go on. Two ways to
record, named in the recipe's ``provenance.verify``:

- ``"files"``: the SHA-256 of every shard. Free when it is known without reading (a Hugging Face
  cache blob is named after it; a file scanned before is in the scan cache), else computed only
  when the user asks for a verifiable recipe (``--verifiable``), in a pass beside the transfer.
- ``"reads"`` (the default when the hashes are not known): every shard's size and header hash,
  plus one SHA-256 of every source byte the transfer read (:class:`ReadLedger`, computed in the
  same pass as the transfer; a shrink reads a fraction of the source). A replay checks the sizes
  and headers before anything else, and the digest of what it read before the export is made
  visible: a change in any byte the output depends on stops it, at no extra read.

:func:`check_finite` stops a transfer of a source holding NaN or Inf weights (which would export
NaNs, or train to NaN) unless the user opts in. Known from the scan cache, it is checked at once;
otherwise the ledger checks every value the transfer reads, on the way (NaNs in bytes no target
tensor depends on do not matter), and on a hit scans the whole source once to say where they are.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
from pathlib import Path

from core.errors import RecipeError, SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

log = logging.getLogger(__name__)

CHANGED_FLAG = "--allow-changed-source"
NONFINITE_FLAG = "--allow-nonfinite"


VERIFIABLE_FLAG = "--verifiable"


def header_digest(path: Path) -> str:
    """SHA-256 of a safetensors file's header (length prefix and JSON): names, shapes, dtypes, offsets."""
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        (size,) = struct.unpack("<Q", prefix) if len(prefix) == 8 else (0,)
        return hashlib.sha256(prefix + fh.read(min(size, 100 << 20))).hexdigest()


def file_facts(source) -> dict[str, dict]:
    """Every weight file's size and header hash, by file name (reads the headers only)."""
    return {
        source.file_name(path): {"size": path.stat().st_size, "header_sha256": header_digest(path)}
        for path in source.files
    }


def record(source) -> dict:
    """Identity of the source and what detects a change of it (see the module docstring).

    The shard hashes when known without reading; else the files' sizes and header hashes, to which
    the export adds the :class:`ReadLedger` digest (or, asked for a verifiable recipe, the hashes
    :class:`BackgroundHashes` computes beside the transfer).
    """
    from core.sources.scan import known_file_hashes

    known = known_file_hashes(source)
    if known is not None:
        return {"identity": dict(source.identity), "verify": "files", "shards": known}
    return {"identity": dict(source.identity), "verify": "reads", "files": file_facts(source)}


class BackgroundHashes:
    """The shard hashes (and NaN/Inf scan) of a source computed in a thread beside the transfer."""

    def __init__(self, source) -> None:
        self._source = source
        self._result: dict[str, str] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="graft-verifiable-hashes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._source.file_hashes()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> dict[str, str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return dict(self._result or {})


class ReadLedger:
    """Every source byte an export's strategies read, hashed in the order read and checked for NaN/Inf.

    The transfer reads in plan order, one tensor after another (one producer thread), so the same
    recipe on the same source gives the same digest; the request (tensor name, the rows and columns
    asked for) is hashed with the bytes, so a source change that moves a plan's choice is seen too.

    Args:
        source: the opened source (for the full scan that names NaN/Inf positions on a hit).
        check_finite: check every value read (False when the scan cache already answered).
        allow_nonfinite: log instead of raising.
        hashing: compute the digest (False when neither the recipe read nor the one written needs it).
    """

    def __init__(
        self, source, *, check_finite: bool = True, allow_nonfinite: bool = False, hashing: bool = True
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.source = source
        self.bytes = 0
        self.reads = 0
        self._hash = hashlib.sha256()
        self._check = check_finite
        self._hashing = hashing
        self._allow = allow_nonfinite
        self._warned = False
        # One thread (hashlib and numpy release the GIL): tensor k is hashed and its NaN/Inf
        # counted while k + 1 is read and transformed, in order; at most one waits, so the bytes
        # held for it stay bounded. A NaN/Inf is raised at the next read or at finish(), before
        # the export is made visible (on 2 cores the count took 1.9 s of the producer's 13.5 s
        # in a covariance shrink of the Llama-2-7B shape).
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="graft-read-hash")
        self._pending = None

    @property
    def digest(self) -> str:
        self._drain()
        return self._hash.hexdigest()

    def _drain(self) -> None:
        """Wait for the last read's hash and NaN/Inf count; raise (or warn) if it had NaN/Inf."""
        if self._pending is not None:
            bad = self._pending.result()
            self._pending = None
            if bad is not None:
                self._nonfinite(bad)

    def finish(self) -> None:
        """Every read hashed and checked: raises SourceError here if the last one had NaN/Inf."""
        self._drain()

    def summary(self) -> dict:
        """What the recipe records: ``{"sha256", "bytes", "reads"}``."""
        return {"sha256": self.digest, "bytes": self.bytes, "reads": self.reads}

    def watch(self, source):
        """``source`` seen through this ledger: its reads are recorded."""
        return _Watched(source, self)

    def record(self, name: str, request: bytes, tensor) -> None:
        from core.safetensors_stream import DTYPE_NAMES, tensor_bytes

        if not (self._hashing or self._check):
            return
        data = tensor_bytes(tensor)
        head = None
        if self._hashing:
            head = f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode() + hashlib.sha256(request).digest()
        dtype = DTYPE_NAMES.get(tensor.dtype, "") if self._check and tensor.is_floating_point() else None
        self._drain()
        self._pending = self._hasher.submit(self._consume, name, head, data, dtype)
        self.bytes += len(data)
        self.reads += 1

    def _consume(self, name: str, head: bytes | None, data: memoryview, dtype: str | None) -> str | None:
        """Hash one read and count its NaN/Inf (on the raw bits, numpy: ten times faster than
        torch.isfinite on bf16), in the ledger's thread; returns ``name`` when it has any."""
        from core.sources.scan import count_nonfinite

        if head is not None:
            self._hash.update(head)
            self._hash.update(data)
        return name if dtype is not None and count_nonfinite(data, dtype) else None

    def close(self) -> None:
        """Stop the ledger's thread (after the last read's work; a NaN/Inf it found is not raised
        here: a finished export raised it in :meth:`finish`, a failed one has its own error)."""
        if self._pending is not None:
            self._pending.exception()
            self._pending = None
        self._hasher.shutdown(wait=False)

    def _nonfinite(self, name: str) -> None:
        if self._allow:
            if not self._warned:
                log.warning("transferring a source with NaN/Inf values (first read in %s)", name)
                self._warned = True
            return
        check_finite(self.source)  # one scan of the whole source names every tensor affected
        raise SourceError(
            f"the source has NaN/Inf values in {name!r}; repair or re-download it, or pass {NONFINITE_FLAG} "
            "to transfer it anyway"
        )

    def verify(self, recorded: dict | None, *, allow_changed: bool = False) -> list[str]:
        """Compare the digest with a recipe's recorded ``provenance.reads`` (nothing recorded: nothing to do).

        Raises:
            RecipeError: they differ and ``allow_changed`` is False.
        """
        expected = ((recorded or {}).get("reads") or {}).get("sha256")
        if not expected or expected == self.digest:
            return []
        problem = (
            f"the source bytes this recipe reads have SHA-256 {self.digest[:12]}… but the recipe recorded "
            f"{str(expected)[:12]}…"
        )
        if not allow_changed:
            raise RecipeError(
                f"the source {self.source.display_name} changed since this recipe was written: {problem}; "
                f"open the recorded source, or pass {CHANGED_FLAG} to go on"
            )
        log.warning("source changed since the recipe was written: %s", problem)
        return [problem]


class _Watched:
    """A source whose reads go through a :class:`ReadLedger` (everything else is the source's)."""

    def __init__(self, source, ledger: ReadLedger) -> None:
        self._source = source
        self._ledger = ledger

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def read(self, name: str):
        out = self._source.read(name)
        self._ledger.record(name, b"all", out)
        return out

    def read_slice(self, name: str, index: tuple):
        out = self._source.read_slice(name, index)
        self._ledger.record(name, repr(index).encode(), out)
        return out

    def read_gather(self, name: str, rows, cols):
        out = self._source.read_gather(name, rows, cols)
        request = b"rows:" + (b"all" if rows is None else rows.tobytes())
        request += b"|cols:" + (b"all" if cols is None else cols.tobytes())
        self._ledger.record(name, request, out)
        return out


def verify_recorded_hashes(recorded: dict | None, source, *, allow_changed: bool = False) -> list[str]:
    """Compare a recipe's recorded shard hashes with ``source``'s.

    Args:
        recorded: the recipe's ``provenance`` (may be empty: nothing to verify).
        allow_changed: log the differences instead of raising.

    Returns:
        The differences found (empty when the source is the recorded one).

    Raises:
        RecipeError: the source differs and ``allow_changed`` is False.
    """
    if (recorded or {}).get("verify") == "reads":
        return _verify_files(recorded, source, allow_changed=allow_changed)
    shards = (recorded or {}).get("shards")
    if not shards:
        return []
    if not isinstance(shards, dict) or not all(isinstance(v, str) for v in shards.values()):
        raise RecipeError(
            "the recipe's provenance.shards must map file names to SHA-256 strings; "
            "remove the provenance block to replay it without verification"
        )
    current = source.file_hashes()
    problems = []
    for name, digest in shards.items():
        if name not in current:
            problems.append(f"{name} is no longer part of the source")
        elif current[name] != digest:
            problems.append(f"{name} has SHA-256 {current[name][:12]}… but the recipe recorded {digest[:12]}…")
    problems += [f"{name} is new" for name in current if name not in shards]
    return _changed(problems, source, allow_changed=allow_changed)


def _verify_files(recorded: dict, source, *, allow_changed: bool) -> list[str]:
    """The ``"reads"`` mode's first half: same files, sizes and headers (the digest is checked by the export)."""
    files = recorded.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise RecipeError(
            "the recipe's provenance.files must map file names to their size and header hash; "
            "remove the provenance block to replay it without verification"
        )
    current = file_facts(source)
    problems = []
    for name, facts in files.items():
        now = current.get(name)
        if now is None:
            problems.append(f"{name} is no longer part of the source")
        elif now["size"] != facts.get("size"):
            problems.append(f"{name} has {now['size']:,} bytes but the recipe recorded {facts.get('size')}")
        elif now["header_sha256"] != facts.get("header_sha256"):
            problems.append(f"{name} has another header (tensor names, shapes or dtypes) than the recipe recorded")
    problems += [f"{name} is new" for name in current if name not in files]
    return _changed(problems, source, allow_changed=allow_changed)


def _changed(problems: list[str], source, *, allow_changed: bool) -> list[str]:
    """Raise on the first of ``problems`` (a changed source) unless ``allow_changed``; else log them."""
    if problems and not allow_changed:
        more = f" (and {len(problems) - 1} more difference(s))" if len(problems) > 1 else ""
        raise RecipeError(
            f"the source {source.display_name} changed since this recipe was written: "
            f"{problems[0]}{more}; open the recorded source, or pass {CHANGED_FLAG} to go on"
        )
    for problem in problems:
        log.warning("source changed since the recipe was written: %s", problem)
    return problems


def scans_cached(source) -> bool:
    """Whether every weight file's NaN/Inf scan is in the cache (checking costs no read then)."""
    from core.sources.scan import cached_scan

    return all(cached_scan(path) is not None for path in source.files)


def check_finite(
    source, *, allow_nonfinite: bool = False, progress: ProgressFn = no_progress, cancel: CancelToken = NEVER_CANCELLED
):
    """Scan ``source``'s values (cached after the first time) and refuse NaN/Inf weights.

    Returns:
        The :class:`~core.sources.base.SourceScan`.

    Raises:
        SourceError: non-finite values and ``allow_nonfinite`` is False.
    """
    scan = source.scan(progress=progress, cancel=cancel)
    if scan.nonfinite and not allow_nonfinite:
        raise SourceError(
            f"the source has {scan.summary()}; repair or re-download it, or pass {NONFINITE_FLAG} to transfer it anyway"
        )
    if scan.nonfinite:
        log.warning("transferring a source with %s", scan.summary())
    return scan
