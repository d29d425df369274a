"""export_checkpoint: HF folders that transformers loads, written atomically."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, BertConfig, BertModel

from core.errors import Cancelled, ExportError
from core.export import ExportEntry, default_model_card, export_checkpoint, plan_shards
from core.progress import CancelToken


@pytest.fixture(scope="module")
def bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
    )
    return BertModel(config).eval()


def _entries(state: dict[str, torch.Tensor]) -> list[ExportEntry]:
    return [ExportEntry(n, tuple(t.shape), t.dtype) for n, t in state.items()]


def _export(out, state, **kwargs):
    kwargs.setdefault("config", None)
    kwargs.setdefault("produce", state.__getitem__)
    return export_checkpoint(out, entries=_entries(state), **kwargs)


def _small_state() -> dict[str, torch.Tensor]:
    return {"a": torch.ones(4, 4), "b": torch.arange(3, dtype=torch.int64), "c": torch.zeros(10)}


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_sharded_export_loads_in_transformers(bert, tmp_path):
    state = bert.state_dict()
    out = tmp_path / "small"
    calls = []
    export_checkpoint(
        out,
        entries=_entries(state),
        produce=lambda n: calls.append(n) or state[n],
        config=bert.config.to_dict(),
        recipe={"strategy": "select", "seed": 0},
        model_card=default_model_card({"source": "org/bert", "strategy": "select", "seed": 0}),
        max_shard_size="50KB",
    )
    assert calls == list(state)  # each tensor asked for once, in file order
    files = sorted(p.name for p in out.iterdir())
    shards = [f for f in files if f.startswith("model-")]
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert "model.safetensors" not in files
    assert {"config.json", "graft_recipe.json", "README.md", "model.safetensors.index.json"} <= set(files)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(state)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in state.values())
    assert _siblings(out) == ["small"]  # no temporary folder left

    loaded = AutoModel.from_pretrained(out).eval()
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).last_hidden_state, bert(ids).last_hidden_state)


def test_single_file_when_it_fits_and_cast_to_entry_dtype(tmp_path):
    state = _small_state()
    entries = [ExportEntry("a", (4, 4), torch.bfloat16), ExportEntry("b", (3,), torch.int64)]
    out = export_checkpoint(
        tmp_path / "o",
        entries=entries,
        produce=state.__getitem__,
        config={"x": 1},
        metadata={"graft.note": "hi"},
    )
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_file(out / "model.safetensors")
    assert loaded["a"].dtype == torch.bfloat16
    torch.testing.assert_close(loaded["a"].float(), state["a"])
    assert json.loads((out / "config.json").read_text()) == {"x": 1}


def test_same_inputs_give_identical_folders(tmp_path):
    state = _small_state()
    a = _export(tmp_path / "a", state, max_shard_size=64, recipe={"seed": 1, "b": [1, 2]})
    b = _export(tmp_path / "b", state, max_shard_size=64, recipe={"b": [1, 2], "seed": 1})
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) > 2
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_produce_runs_at_most_one_tensor_ahead_of_the_writes_across_shards(tmp_path):
    state = {f"t{i}": torch.full((8,), float(i)) for i in range(6)}  # 32 bytes each
    out = tmp_path / "o"
    seen = []

    def produce(name):
        tmp = [p for p in tmp_path.iterdir() if p.name.startswith(".o.graft-tmp")]
        seen.append((name, sum(f.stat().st_size for f in tmp[0].iterdir())))
        return state[name]

    _export(out, state, produce=produce, max_shard_size=64)
    # Two tensors per shard: written bytes grow by 32 per tensor plus a header per new shard.
    # Tensor i is produced while tensor i - 1 is written (a one-tensor pipeline), but only once
    # tensor i - 2 is on disk: the bytes seen grow at every second call at least.
    data = [size for _, size in seen]
    assert all(b >= a for a, b in zip(data, data[1:]))
    assert all(data[i] > data[i - 2] for i in range(2, len(data)))
    assert [n for n, _ in seen] == list(state)


def test_progress_by_bytes(tmp_path):
    seen = []
    _export(tmp_path / "o", _small_state(), progress=lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[0] < 1


def test_non_empty_folder_is_refused_and_untouched(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty; choose another folder or pass --force"):
        _export(out, _small_state())
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert _siblings(out) == ["o"]


def test_empty_folder_is_fine(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    _export(out, _small_state())
    assert (out / "model.safetensors").is_file()


def test_force_replaces_old_folder(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    _export(out, _small_state(), force=True, replace_any=True)  # keep.txt is not Graft's
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert _siblings(out) == ["o"]


def test_force_keeps_old_folder_when_export_fails(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("old")

    def produce(name):
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        _export(out, _small_state(), produce=produce, force=True, replace_any=True)
    assert (out / "keep.txt").read_text() == "old"
    assert _siblings(out) == ["o"]


def test_exception_in_produce_midway_leaves_nothing(tmp_path):
    state = _small_state()
    out = tmp_path / "o"

    def produce(name):
        if name == "c":
            raise RuntimeError("boom")
        return state[name]

    with pytest.raises(RuntimeError, match="boom"):
        _export(out, state, produce=produce, max_shard_size=64)
    assert list(tmp_path.iterdir()) == []


def test_cancel_midway_leaves_nothing(tmp_path):
    state = _small_state()
    token = CancelToken()

    def produce(name):
        if name == "b":
            token.cancel()
        return state[name]

    with pytest.raises(Cancelled):
        _export(tmp_path / "o", state, produce=produce, cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_wrong_produced_tensor_is_an_export_error(tmp_path):
    state = _small_state()
    with pytest.raises(ExportError, match="shape"):
        _export(tmp_path / "o", state, produce=lambda n: torch.zeros(1))
    with pytest.raises(ExportError, match="only floating-point"):
        _export(tmp_path / "o", state, produce=lambda n: state[n].to(torch.int32))
    assert list(tmp_path.iterdir()) == []


def test_aux_files_copied_and_source_folder_protected(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tokenizer.json").write_text('{"t": 1}')
    out = _export(tmp_path / "o", _small_state(), aux_files=[src / "tokenizer.json"])
    assert (out / "tokenizer.json").read_text() == '{"t": 1}'

    for target in (src, tmp_path):
        with pytest.raises(ExportError, match="holds the source file tokenizer.json"):
            _export(target, _small_state(), aux_files=[src / "tokenizer.json"], force=True)
    assert (src / "tokenizer.json").read_text() == '{"t": 1}'

    (src / "config.json").write_text("{}")
    with pytest.raises(ExportError, match="writes its own config.json"):
        _export(tmp_path / "p", _small_state(), config={}, aux_files=[src / "config.json"])
    with pytest.raises(ExportError, match="not a file"):
        _export(tmp_path / "p", _small_state(), aux_files=[src / "missing.json"])


def test_plan_shards_uses_hub_rules():
    entries = [ExportEntry(f"t{i}", (250,), torch.float32) for i in range(5)]  # 1 KB each
    assert list(plan_shards(entries, "5GB")) == ["model.safetensors"]
    shards = plan_shards(entries, "2KB")
    assert list(shards) == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert [len(v) for v in shards.values()] == [2, 2, 1]
    big = [entries[0], ExportEntry("big", (1000,), torch.float32), *entries[1:3]]
    assert [[e.name for e in v] for v in plan_shards(big, "2KB").values()] == [
        ["t0"],
        ["big"],
        ["t1", "t2"],
    ]
    with pytest.raises(ExportError, match="invalid max shard size"):
        plan_shards(entries, "5 parsecs")
    with pytest.raises(ExportError, match="nothing to export"):
        plan_shards([], "5GB")


def test_model_card_mentions_the_facts():
    card = default_model_card(
        {
            "source": "org/model",
            "revision": "abc",
            "family": "bert",
            "target": {"layers": 4, "hidden": 256},
            "strategy": "select",
            "seed": 7,
        }
    )
    assert card.startswith("---\nlibrary_name: transformers")
    for text in (
        "base_model: org/model",
        "`abc`",
        "layers 4, hidden 256",
        "`select`",
        "| Seed | 7 |",
        "AutoModel.from_pretrained",
    ):
        assert text in card


def test_folder_filled_during_export_is_not_replaced_without_force(tmp_path):
    out = tmp_path / "o"
    state = _small_state()

    def produce(name):
        if name == "c":  # someone else writes into the target meanwhile
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")
        return state[name]

    with pytest.raises(ExportError, match="not empty"):
        _export(out, state, produce=produce)
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert _siblings(out) == ["o"]


def test_unsupported_dtype_or_metadata_refused_before_writing(tmp_path):
    entries = [ExportEntry("z", (2,), torch.complex128)]
    with pytest.raises(ExportError, match="cannot store"):
        export_checkpoint(tmp_path / "o", entries=entries, produce=lambda n: None, config=None)
    with pytest.raises(ExportError, match="strings"):
        _export(tmp_path / "o", _small_state(), metadata={"n": 1})
    assert list(tmp_path.iterdir()) == []
