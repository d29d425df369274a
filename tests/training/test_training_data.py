import json

import pytest
import torch

from core.errors import TrainingError
from core.training.data import (
    Split,
    batch_digest,
    dataset_names,
    load_dataset,
    load_tokenizer,
    pack_documents,
    read_text_files,
)


def test_registry_has_the_builtin_sets():
    assert "pydoc" in dataset_names("text") and "digits" in dataset_names("images")
    docs = load_dataset("pydoc", "text")
    assert len(docs) > 50 and all(isinstance(d, str) for d in docs)
    images, labels = load_dataset("digits", "images")
    assert images.shape[1:] == (8, 8) and 0 <= images.min() and images.max() <= 1
    assert set(labels.tolist()) == set(range(10))
    with pytest.raises(TrainingError, match="needs images"):
        load_dataset("pydoc", "images")


def test_user_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello world")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# title\nmore")
    (tmp_path / "skip.bin").write_text("nope")
    assert read_text_files(tmp_path) == ["hello world", "# title\nmore"]
    assert read_text_files(tmp_path / "a.txt") == ["hello world"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    assert load_dataset(str(jsonl), "text") == ["one", "two"]
    jsonl.write_text('{"body": "x"}\n')
    with pytest.raises(TrainingError, match="line 1"):
        read_text_files(jsonl)
    with pytest.raises(TrainingError, match="neither"):
        read_text_files(tmp_path / "missing")


def test_packing_wraps_rows_for_masked_lm(tokenizer_dir):
    tok = load_tokenizer(str(tokenizer_dir))
    rows = pack_documents(["the quick brown fox " * 40, "jumps over"], tok, 16, wrap=True)
    assert rows.shape[1] == 16 and rows.dtype == torch.long
    assert (rows[:, 0] == tok.cls_token_id).all() and (rows[:, -1] == tok.sep_token_id).all()
    plain = pack_documents(["the quick brown fox " * 40], tok, 16, wrap=False)
    assert plain.shape[1] == 16 and not (plain[:, 0] == tok.cls_token_id).all()
    with pytest.raises(TrainingError, match="too few"):
        pack_documents(["tiny"], tok, 64, wrap=True)


def test_split_is_seeded_disjoint_and_batches_cover_epochs():
    split = Split(100, seed=3, eval_fraction=0.1)
    again = Split(100, seed=3, eval_fraction=0.1)
    other = Split(100, seed=4, eval_fraction=0.1)
    assert torch.equal(split.eval_index, again.eval_index)
    assert not torch.equal(split.eval_index, other.eval_index)
    assert set(split.eval_index.tolist()).isdisjoint(split.train_index.tolist())
    assert len(split.eval_index) == 10
    # 90 training rows, batches of 30: three batches are one epoch, each row exactly once.
    epoch = torch.cat([split.batch_rows(s, 30) for s in range(3)])
    assert sorted(epoch.tolist()) == sorted(split.train_index.tolist())
    assert torch.equal(split.batch_rows(5, 30), again.batch_rows(5, 30))
    # a batch that straddles two epochs is still full
    assert len(split.batch_rows(1, 60)) == 60


def test_batch_digest_tells_batches_apart():
    a = {"input_ids": torch.arange(6).view(2, 3)}
    assert batch_digest(a) == batch_digest({"input_ids": torch.arange(6).view(2, 3)})
    assert batch_digest(a) != batch_digest({"input_ids": torch.arange(6).view(3, 2)})
    assert batch_digest(a) != batch_digest({"input_ids": torch.arange(1, 7).view(2, 3)})
