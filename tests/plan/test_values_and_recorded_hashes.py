"""NaN/Inf weights are reported and refused; a recipe replayed on changed bytes stops; recipes are typed.

Each used to pass silently: NaNs were exported with exit 0, a replay on a changed source gave
other bytes with exit 0 (the hash cache trusted path + size + mtime), and ``hidden: 128.9`` or
``layers: true`` were coerced to 128 and 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch
from cli_expect import digest, fails
from safetensors.torch import load_file, save_file

from app.cli import main
from core.sources import demo_model_path, open_source

QUERY = "encoder.layer.1.attention.self.key.weight"
DOWN = "encoder.layer.2.output.dense.weight"


@pytest.fixture
def demo_copy(tmp_path):
    folder = tmp_path / "src"
    shutil.copytree(demo_model_path(), folder)
    return folder


@pytest.fixture
def nan_source(demo_copy):
    tensors = load_file(demo_copy / "model.safetensors")
    tensors[QUERY][3, 5] = float("nan")
    tensors[QUERY][7, 7] = float("inf")
    tensors[DOWN][0, 0] = float("-inf")
    save_file(tensors, demo_copy / "model.safetensors", metadata={"format": "pt"})
    return demo_copy


@pytest.mark.parametrize(
    "dtype, code",
    [
        (torch.bfloat16, "BF16"),
        (torch.float16, "F16"),
        (torch.float64, "F64"),
        (torch.float8_e4m3fn, "F8_E4M3"),
        (torch.float8_e5m2, "F8_E5M2"),
    ],
)
def test_the_bit_level_count_agrees_with_torch_in_every_float_dtype(dtype, code):
    from core.sources.scan import count_nonfinite

    x = torch.randn(4099, dtype=torch.float32) * 3
    x[::97] = float("nan")
    if dtype not in (torch.float8_e4m3fn,):  # E4M3 has no Inf: a cast saturates to NaN
        x[5::101] = float("inf")
        x[7::103] = float("-inf")
    y = x.to(dtype)
    expected = int((~torch.isfinite(y.float())).sum())
    raw = memoryview(y.view(torch.uint8).numpy().tobytes())
    assert count_nonfinite(raw, code) == expected > 0


def test_inspect_reports_the_count_and_the_first_tensor(nan_source, capsys):
    # by default no weight is read: a count is shown once some scan has cached it
    assert main(["inspect", str(nan_source)]) == 0
    assert "values: not scanned yet (--scan reads all 0.09 GB once" in capsys.readouterr().out
    assert main(["inspect", str(nan_source), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nonfinite"] is None
    assert main(["inspect", str(nan_source), "--scan"]) == 0
    captured = capsys.readouterr()
    assert f"values: 3 NaN/Inf value(s) in 2 tensor(s), first '{QUERY}' (2 of 147,456)" in captured.out
    assert "--allow-nonfinite" in captured.err
    assert main(["inspect", str(nan_source), "--json"]) == 0  # cached now: shown without --scan
    report = json.loads(capsys.readouterr().out)
    assert report["nonfinite"] == {"total": 3, "tensors": {QUERY: 2, DOWN: 1}}


def test_transfer_refuses_nonfinite_weights_unless_told_to_go_on(nan_source, tmp_path, capsys):
    out = tmp_path / "out"
    before = digest(nan_source)
    fails(
        capsys,
        ["transfer", str(nan_source), "--hidden", "256", "--heads", "8", "--out", str(out)],
        out,
        "3 NaN/Inf",
        QUERY,
        "--allow-nonfinite",
    )
    assert (
        main(["transfer", str(nan_source), "--hidden", "256", "--heads", "8", "--out", str(out), "--allow-nonfinite"])
        == 0
    )
    exported = load_file(out / "model.safetensors")
    assert not torch.isfinite(exported[QUERY]).all()  # the user asked for it: the values go through
    assert digest(nan_source) == before


def test_finite_sources_are_scanned_once(demo_copy, tmp_path, capsys):
    from core.sources.scan import cached_scan

    source = open_source(demo_copy)
    assert cached_scan(source.files[0]) is None
    assert source.scan().nonfinite == {}
    hit = cached_scan(source.files[0])
    assert hit is not None and hit.sha256 == source.file_hashes()["model.safetensors"]
    # the demo's 90 MB span several 16 MB blocks hashed in a second thread: same digest as one pass
    assert hit.sha256 == hashlib.sha256(source.files[0].read_bytes()).hexdigest()


def _rewrite_keeping_mtime(path, offset: int, data: bytes) -> None:
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime moves


def _tensor_offset(folder, name: str) -> int:
    """Byte offset of the middle of ``name``'s data in the folder's weight file."""
    begin, end = open_source(folder).tensors[name].offsets
    return (begin + end) // 2 // 4 * 4


KEPT = "encoder.layer.1.attention.self.query.weight"  # read by a --layers 2 shrink
DROPPED = "encoder.layer.5.attention.self.query.weight"  # not read by it


def test_a_recipe_replayed_on_changed_bytes_it_reads_stops(demo_copy, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["transfer", str(demo_copy), "--layers", "2", "--out", str(first)]) == 0
    recipe = first / "graft_recipe.json"
    recorded = json.loads(recipe.read_text())["provenance"]
    # a first run hashes no whole file: the files' sizes and headers, and the bytes it read
    assert recorded["verify"] == "reads" and "shards" not in recorded
    assert set(recorded["files"]) == {"model.safetensors"}
    tensors = open_source(demo_copy).tensors
    kept = sum(t.nbytes for n, t in tensors.items() if not any(f"layer.{i}." in n for i in range(2, 6)))
    assert recorded["reads"]["bytes"] == kept < os.path.getsize(demo_copy / "model.safetensors")  # 2 of 6 layers
    _rewrite_keeping_mtime(demo_copy / "model.safetensors", _tensor_offset(demo_copy, KEPT), b"\x00\x00\x80\x3f")
    again = tmp_path / "again"
    fails(
        capsys,
        ["transfer", "--recipe", str(recipe), "--out", str(again)],
        again,
        "changed since this recipe was written",
        "--allow-changed-source",
    )
    assert main(["transfer", "--recipe", str(recipe), "--out", str(again), "--allow-changed-source"]) == 0
    new = json.loads((again / "graft_recipe.json").read_text())["provenance"]["reads"]
    assert new["sha256"] != recorded["reads"]["sha256"]  # the export records what it read


def test_a_change_the_output_does_not_depend_on_replays_to_the_same_bytes(demo_copy, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["transfer", str(demo_copy), "--layers", "2", "--out", str(first)]) == 0
    _rewrite_keeping_mtime(demo_copy / "model.safetensors", _tensor_offset(demo_copy, DROPPED), b"\x00\x00\x80\x3f")
    assert main(["transfer", "--recipe", str(first / "graft_recipe.json"), "--out", str(again)]) == 0
    assert digest(first) == digest(again)


def test_a_verifiable_recipe_records_every_shard_and_sees_any_change(demo_copy, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["transfer", str(demo_copy), "--layers", "2", "--out", str(first), "--verifiable"]) == 0
    recorded = json.loads((first / "graft_recipe.json").read_text())["provenance"]
    whole = hashlib.sha256((demo_copy / "model.safetensors").read_bytes()).hexdigest()
    assert recorded["verify"] == "files" and recorded["shards"] == {"model.safetensors": whole}
    _rewrite_keeping_mtime(demo_copy / "model.safetensors", _tensor_offset(demo_copy, DROPPED), b"\x00\x00\x80\x3f")
    again = tmp_path / "again"
    fails(
        capsys,
        ["transfer", "--recipe", str(first / "graft_recipe.json"), "--out", str(again)],
        again,
        "changed since this recipe was written",
        "model.safetensors",
    )


def test_a_changed_header_or_size_stops_before_any_tensor_is_read(demo_copy, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["transfer", str(demo_copy), "--layers", "2", "--out", str(first)]) == 0
    with open(demo_copy / "model.safetensors", "ab") as fh:
        fh.write(b"\x00" * 8)
    again = tmp_path / "again"
    fails(
        capsys,
        ["transfer", "--recipe", str(first / "graft_recipe.json"), "--out", str(again)],
        again,
        "changed since this recipe was written",
        "model.safetensors has",
    )


def test_nonfinite_values_in_bytes_a_shrink_reads_are_refused_without_a_prior_scan(nan_source, tmp_path, capsys):
    from core.sources.scan import cached_scan

    assert cached_scan(nan_source / "model.safetensors") is None  # the check is on the way, not a scan first
    out = tmp_path / "out"
    fails(capsys, ["transfer", str(nan_source), "--layers", "2", "--out", str(out)], out, "NaN/Inf", QUERY)


def test_an_unchanged_source_replays_to_the_same_bytes(demo_copy, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    assert (
        main(["transfer", str(demo_copy), "--layers", "2", "--hidden", "256", "--heads", "8", "--out", str(first)]) == 0
    )
    assert main(["transfer", "--recipe", str(first / "graft_recipe.json"), "--out", str(again)]) == 0
    assert digest(first) == digest(again)


def test_the_hf_cache_blob_name_is_the_hash_without_reading_the_file(tmp_path):
    """A snapshot file links to blobs/<sha256>: the hash is its name (a wrong name shows it is not read)."""
    repo = tmp_path / "models--o--m"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    fake = "f" * 64
    shutil.copy(demo_model_path() / "model.safetensors", repo / "blobs" / fake)
    (snapshot / "model.safetensors").symlink_to(f"../../blobs/{fake}")
    shutil.copy(demo_model_path() / "config.json", snapshot / "config.json")
    assert open_source(snapshot).file_hashes() == {"model.safetensors": fake}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"target": {"hidden": 128.9}}, "hidden must be a whole number"),
        ({"target": {"layers": True}}, "layers must be a whole number"),
        ({"target": [4]}, "target must be"),
        ({"seed": "3"}, "seed must be"),
        ({"seed": 1.5}, "seed must be"),
        ({"layers": [0, "a"]}, "layers must be"),
        ({"layers": 3}, "layers must be"),
        ({"values": {"default": "select"}}, "'method'"),
        ({"values": {"default": {"method": "select", "params": [1]}}}, "params"),
        ({"index": "first_n"}, "index must be"),
        ({"device": 0}, "device must be"),
        ({"source": 7}, "source must be"),
        ({"revision": 3}, "revision must be"),
        ({"max_shard_size": True}, "max_shard_size"),
        ({"validation": []}, "validation must be"),
        ({"provenance": "x"}, "provenance must be"),
    ],
)
def test_recipe_fields_of_the_wrong_type_are_refused(tmp_path, capsys, change, needle):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"graft_recipe": 1, "source": "demo", **change}))
    fails(capsys, ["transfer", "--recipe", str(path), "--out", str(tmp_path / "o")], tmp_path / "o", needle)


def test_a_nan_in_the_last_tensor_read_is_refused_before_the_export_is_made(demo_copy, tmp_path, capsys):
    """The NaN/Inf count runs in the ledger's thread, one read behind: the last read is checked at the end."""
    from core.plan import TargetSizes, make_plan

    plan = make_plan(open_source(demo_copy), TargetSizes(layers=2))
    last = next(t.source_name for t in reversed(plan.tensors) if t.source_name)
    tensors = load_file(demo_copy / "model.safetensors")
    tensors[last].view(-1)[-1] = float("nan")
    save_file(tensors, demo_copy / "model.safetensors", metadata={"format": "pt"})
    # as a hub-cache snapshot: the blob names are the file hashes, so no digest of the reads is
    # taken (whose wait would also surface the count) and the ledger's check is the only one
    snapshot = tmp_path / "hub" / "models--o--nan" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for path in demo_copy.iterdir():
        if path.is_file():
            blob = snapshot.parents[1] / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
            blob.parent.mkdir(exist_ok=True)
            shutil.copy(path, blob)
            (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    assert open_source(snapshot).file_hashes()["model.safetensors"] == blob_name(demo_copy / "model.safetensors")
    out = tmp_path / "out"
    fails(capsys, ["transfer", str(snapshot), "--layers", "2", "--out", str(out)], out, "NaN/Inf", last)
    assert main(["transfer", str(snapshot), "--layers", "2", "--out", str(out), "--allow-nonfinite"]) == 0


def blob_name(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_read_ledger_raises_a_nan_at_the_next_read_or_at_finish_and_never_at_close(demo_copy):
    from core.errors import SourceError
    from core.provenance import ReadLedger

    source = open_source(demo_copy)
    ledger = ReadLedger(source)
    ledger.record("a", b"", torch.tensor([1.0, float("nan")]))
    with pytest.raises(SourceError, match="'a'"):
        ledger.record("b", b"", torch.ones(3))
    ledger.record("c", b"", torch.tensor([float("inf")], dtype=torch.bfloat16))
    with pytest.raises(SourceError, match="'c'"):
        ledger.finish()
    ledger.record("d", b"", torch.tensor([float("nan")]))
    ledger.close()  # an export that failed on its own error: the ledger's thread just stops
    quiet = ReadLedger(source, allow_nonfinite=True)
    quiet.record("e", b"", torch.tensor([float("nan")]))
    quiet.finish()
    quiet.close()
