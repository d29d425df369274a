"""Data sets that need no network, a registry of them by name (:data:`DATASETS`), and user files.

Two kinds: ``text`` (a list of documents, tokenised later with the source model's own tokenizer
and packed into fixed-length sequences) and ``images`` (``(images (n, h, w) float in [0, 1],
labels (n,) int)``). Built in: ``pydoc`` (Python's own documentation topics, English prose that
ships with every CPython) and ``digits`` (scikit-learn's 8×8 handwritten digits, 10 classes).
User data: a text file, a folder of ``.txt``/``.md`` files, or a JSONL file with a ``"text"``
field per line.

The train/eval split and the batch order are pure functions of the seed (see :class:`Split`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import TrainingError
from core.registry import Registry


@dataclass(frozen=True)
class DataSet:
    """A registered data set: ``kind`` is "text" (``load() -> list[str]``) or "images"."""

    name: str
    kind: str
    load: Callable[[], object]


#: Every registered data set by name (the built-in ones below; a benchmark may add its own).
DATASETS: Registry[DataSet] = Registry("data set", TrainingError)


def register_dataset(name: str, kind: str) -> Callable:
    """Decorator: register ``loader()`` under ``name``; ``kind`` is "text" or "images"."""
    if kind not in ("text", "images"):
        raise ValueError(f"dataset kind must be 'text' or 'images', not {kind!r}")

    def wrap(loader: Callable[[], object]) -> Callable[[], object]:
        DATASETS.add(name, DataSet(name, kind, loader))
        return loader

    return wrap


def dataset_names(kind: str | None = None) -> list[str]:
    """Registered data set names, optionally of one kind."""
    return [n for n, d in sorted(DATASETS.items()) if kind is None or d.kind == kind]


@register_dataset("pydoc", "text")
def pydoc_documents() -> list[str]:
    """Python's documentation topics (``pydoc_data.topics.topics``), sorted by topic name."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


@register_dataset("digits", "images")
def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits: images (1797, 8, 8) scaled to [0, 1], labels (1797,) in 0..9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32) / 16.0
    return images, torch.tensor(bunch.target, dtype=torch.long)


def read_text_files(path: str | Path) -> list[str]:
    """Documents from a text file, a folder of .txt/.md files (recursive, sorted) or JSONL."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", ".md") and p.is_file())
        docs = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        docs = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    docs.append(str(json.loads(line)["text"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise TrainingError(
                        f"{path.name} line {number} has no 'text' field; each line must be a JSON object with one"
                    ) from exc
    elif path.is_file():
        docs = [path.read_text(encoding="utf-8", errors="replace")]
    else:
        raise TrainingError(
            f"data set {str(path)!r} is neither a registered name ({', '.join(dataset_names())}) nor an existing file or folder"
        )
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise TrainingError(f"{path} holds no text; give .txt/.md files or JSONL lines with a 'text' field")
    return docs


def load_dataset(spec: str, kind: str):
    """A registered data set by name, or user files (text only) by path."""
    found = DATASETS.find(spec)
    if found is not None:
        if found.kind != kind:
            raise TrainingError(
                f"data set {spec!r} holds {found.kind}, but this task needs {kind}; choose one of {', '.join(dataset_names(kind))}"
            )
        return found.load()
    if kind != "text":
        raise TrainingError(f"image data must be a registered data set ({', '.join(dataset_names('images'))})")
    return read_text_files(spec)


# -- text -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def load_tokenizer(folder: str):
    """The tokenizer in ``folder`` (tokenizer.json / vocab files), offline."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds here
        raise TrainingError(
            f"cannot load a tokenizer from {folder}: {exc}; point --tokenizer at the source model's folder"
        ) from exc


def pack_documents(docs: list[str], tokenizer, seq_len: int, *, wrap: bool) -> torch.Tensor:
    """Tokenise ``docs`` and cut the stream into rows of ``seq_len`` tokens.

    Documents are joined with the tokenizer's separator (eos, else sep). With ``wrap`` (masked
    LM), each row is ``[cls] … [sep]`` around ``seq_len - 2`` tokens. The tail is dropped.

    Returns:
        (rows, seq_len) int64.
    """
    inner = seq_len - 2 if wrap else seq_len
    if wrap and (tokenizer.cls_token_id is None or tokenizer.sep_token_id is None):
        raise TrainingError("masked LM needs a tokenizer with cls and sep tokens")
    joiner = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    # verbose=False: documents longer than the model's positions are expected, the stream is cut below
    encoded = tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        if joiner is not None:
            stream.append(joiner)
    rows = len(stream) // inner
    if rows < 2:
        raise TrainingError(
            f"the text has {len(stream)} tokens, too few for sequences of {seq_len}; give more text or a smaller --seq-len"
        )
    body = torch.tensor(stream[: rows * inner], dtype=torch.long).view(rows, inner)
    if not wrap:
        return body
    cls = torch.full((rows, 1), tokenizer.cls_token_id, dtype=torch.long)
    sep = torch.full((rows, 1), tokenizer.sep_token_id, dtype=torch.long)
    return torch.cat([cls, body, sep], dim=1)


# -- split and batch order --------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """A seeded train/eval split of ``n`` examples and a seeded, epoch-wise batch order."""

    n: int
    seed: int
    eval_fraction: float

    @functools.cached_property
    def _perm(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))

    @property
    def n_eval(self) -> int:
        return max(1, int(round(self.n * self.eval_fraction))) if self.eval_fraction > 0 else 0

    @property
    def eval_index(self) -> torch.Tensor:
        return self._perm[: self.n_eval]

    @property
    def train_index(self) -> torch.Tensor:
        index = self._perm[self.n_eval :]
        if len(index) == 0:
            raise TrainingError("no training examples left after the eval split; lower eval_fraction")
        return index

    def batch_rows(self, step: int, batch_size: int) -> torch.Tensor:
        """Rows (into the full data) of training batch ``step`` (0-based): epochs of seeded permutations."""
        train = self.train_index
        per_epoch = len(train)
        start = step * batch_size
        out = []
        while len(out) < batch_size:
            epoch, offset = divmod(start + len(out), per_epoch)
            order = _epoch_order(per_epoch, self.seed, epoch)
            take = min(batch_size - len(out), per_epoch - offset)
            out.extend(train[order[offset : offset + take]].tolist())
        return torch.tensor(out, dtype=torch.long)


@functools.lru_cache(maxsize=8)
def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1))


def batch_digest(batch: dict[str, torch.Tensor]) -> str:
    """A short hash of a batch's tensors (names, shapes, bytes): same digest, same batch."""
    digest = hashlib.blake2b(digest_size=8)
    for key in sorted(batch):
        tensor = batch[key].detach().cpu().contiguous()
        digest.update(f"{key}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
