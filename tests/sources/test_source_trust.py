"""Graft reads only regular files inside the source: hostile shard names, links and FIFOs are refused.

Each case is a real pico checkpoint saved by ``transformers`` with one thing made hostile, run
through the CLI as a user would (``graft inspect`` / ``graft transfer``): it must end in one
``graft: error:`` sentence, exit 2, write nothing, and never hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from cli_expect import fails

from app.cli import main
from core.errors import SourceError
from core.sources import open_source

INDEX = "model.safetensors.index.json"
TRANSFER = ["--layers", "1", "--hidden", "16", "--heads", "2", "--ffn", "32"]


@pytest.fixture
def bert_dir(tiny_model):
    folder = tiny_model("bert")[0]
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    return folder


@pytest.fixture
def sharded(tmp_path):
    """A pico llama in several shards with the index transformers writes."""
    from tiny_models import build_tiny

    folder = tmp_path / "sharded"
    model, _ = build_tiny("llama", folder)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="20KB")
    (folder / "model.safetensors").unlink(missing_ok=True)
    assert len(set(json.loads((folder / INDEX).read_text())["weight_map"].values())) > 2
    return folder


def _index(folder: Path) -> dict:
    return json.loads((folder / INDEX).read_text())


def _write_index(folder: Path, index) -> None:
    (folder / INDEX).write_text(json.dumps(index))


# -- 1. shard names -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "../x.safetensors",
        "ABSOLUTE",
        "/etc/passwd",
        "sub/x.safetensors",
        "..\\x.safetensors",
        "x.bin",
        "..",
        "model\x1b[31m.safetensors",
    ],
)
def test_index_naming_anything_but_a_plain_shard_file_is_refused(sharded, tmp_path, capsys, bad):
    outside = tmp_path / "x.safetensors"  # where "../x.safetensors" leads from the folder
    index = _index(sharded)
    shutil.copy(sharded / sorted(set(index["weight_map"].values()))[0], outside)
    (sharded / "sub").mkdir()
    shutil.copy(outside, sharded / "sub" / "x.safetensors")
    if bad == "ABSOLUTE":
        bad = str(outside)
    # Every tensor of the first shard is sent to the hostile name (what it holds: it would open).
    first = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"] = {k: (bad if v == first else v) for k, v in index["weight_map"].items()}
    _write_index(sharded, index)
    line = fails(capsys, ["inspect", str(sharded)], None, INDEX, repr(bad), "plain *.safetensors file names")
    assert "\x1b" not in line
    fails(capsys, ["transfer", str(sharded), *TRANSFER, "--out", str(tmp_path / "o")], tmp_path / "o", repr(bad))


@pytest.mark.parametrize(
    "index, needle",
    [
        ([], "holds a list, not an object"),
        (5, "holds a number, not an object"),
        ({}, "has no weight_map"),
        ({"weight_map": ["model-00001-of-00002.safetensors"]}, "weight_map that is a list"),
        ({"weight_map": "model.safetensors"}, "weight_map that is a string"),
        ({"weight_map": {}}, "lists no tensors"),
        ({"weight_map": {"w": 5}}, "maps tensor 'w' to a number"),
        ({"weight_map": {"w": ["model.safetensors"]}}, "maps tensor 'w' to a list"),
        ({"weight_map": {"w": None}}, "maps tensor 'w' to null"),
        ("DEEP", "nests its JSON"),
        ("NOTJSON", "not valid JSON"),
        ("NOTUTF8", "not UTF-8 text"),
    ],
)
def test_index_of_the_wrong_shape_is_one_sentence(sharded, capsys, index, needle):
    if index == "DEEP":
        (sharded / INDEX).write_text("[" * 100_000 + "]" * 100_000)
    elif index == "NOTJSON":
        (sharded / INDEX).write_text("<html>not an index</html>")
    elif index == "NOTUTF8":
        (sharded / INDEX).write_bytes(b"\x89PNG not an index")
    else:
        _write_index(sharded, index)
    fails(capsys, ["inspect", str(sharded)], None, INDEX, needle)


def test_index_listing_only_some_numbered_shards_is_refused(sharded, capsys):
    index = _index(sharded)
    shards = sorted(set(index["weight_map"].values()))
    last = shards[-1]
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != last}
    _write_index(sharded, index)
    # Before: open_source opened it silently without the last shard's tensors.
    with pytest.raises(SourceError, match="the model would open with part of its tensors"):
        open_source(sharded)
    fails(capsys, ["inspect", str(sharded)], None, f"lists shard {shards[0]!r} but not {last!r}")


def test_index_putting_a_tensor_in_the_wrong_shard_is_refused(sharded, capsys):
    index = _index(sharded)
    shards = sorted(set(index["weight_map"].values()))
    name = next(k for k, v in index["weight_map"].items() if v == shards[1])
    index["weight_map"][name] = shards[0]
    _write_index(sharded, index)
    fails(
        capsys,
        ["inspect", str(sharded)],
        None,
        f"shard {shards[1]!r} holds tensor {name!r}",
        f"puts in shard {shards[0]!r}",
    )


def test_index_listing_a_tensor_no_shard_holds_is_refused(sharded, capsys):
    index = _index(sharded)
    shard = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"]["model.ghost.weight"] = shard
    _write_index(sharded, index)
    fails(
        capsys,
        ["inspect", str(sharded)],
        None,
        f"lists tensor 'model.ghost.weight' in shard {shard!r}, which does not hold it",
    )


def test_shard_holding_a_tensor_the_index_does_not_list_is_refused(sharded, capsys):
    index = _index(sharded)
    shards = list(index["weight_map"].values())
    name, shard = next((k, v) for k, v in index["weight_map"].items() if shards.count(v) > 1)
    del index["weight_map"][name]
    _write_index(sharded, index)
    fails(
        capsys, ["inspect", str(sharded)], None, f"shard {shard!r} holds tensor {name!r}, which {INDEX} does not list"
    )


def test_a_consistent_sharded_folder_still_opens(sharded):
    source = open_source(sharded)
    assert set(source.tensors) == set(_index(sharded)["weight_map"])


# -- 2. links -----------------------------------------------------------------------------------
@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "elsewhere" / "id_rsa"
    path.parent.mkdir()
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    return path


def test_tokenizer_link_leaving_the_folder_is_not_copied_into_the_export(bert_dir, secret, tmp_path, capsys):
    (bert_dir / "tokenizer.json").unlink()
    (bert_dir / "tokenizer.json").symlink_to(secret)
    out = tmp_path / "o"
    fails(
        capsys,
        ["transfer", str(bert_dir), *TRANSFER, "--out", str(out)],
        out,
        "tokenizer.json",
        "is a link to",
        "outside the model folder",
        "copy the real file into the folder",
    )
    copies = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink() and p != secret and "OPENSSH" in p.read_text(errors="replace")
    ]
    assert copies == []


def test_links_inside_the_folder_are_followed(bert_dir, tmp_path, capsys):
    real = bert_dir / "tokenizers" / "tok.json"
    real.parent.mkdir()
    (bert_dir / "tokenizer.json").rename(real)
    (bert_dir / "tokenizer.json").symlink_to(Path("tokenizers") / "tok.json")
    out = tmp_path / "o"
    assert main(["transfer", str(bert_dir), *TRANSFER, "--out", str(out)]) == 0
    copied = out / "tokenizer.json"
    assert not copied.is_symlink() and copied.read_text() == real.read_text()


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer_config.json"])
def test_weights_config_and_aux_links_leaving_the_folder_are_refused(bert_dir, tmp_path, capsys, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if (bert_dir / name).exists():
        shutil.move(bert_dir / name, elsewhere / name)
    else:
        (elsewhere / name).write_text("{}")
    (bert_dir / name).symlink_to(elsewhere / name)
    out = tmp_path / "o"
    fails(
        capsys,
        ["transfer", str(bert_dir), *TRANSFER, "--out", str(out)],
        out,
        repr(name) if name == "model.safetensors" else name,
        "outside the model folder",
    )


def test_index_link_leaving_the_folder_is_refused(sharded, tmp_path, capsys):
    shutil.move(sharded / INDEX, tmp_path / INDEX)
    (sharded / INDEX).symlink_to(tmp_path / INDEX)
    fails(capsys, ["inspect", str(sharded)], None, INDEX, "outside the model folder")


def test_broken_config_link_is_refused(bert_dir, capsys):
    (bert_dir / "config.json").unlink()
    (bert_dir / "config.json").symlink_to(bert_dir / "gone.json")
    fails(capsys, ["inspect", str(bert_dir)], None, "config.json", "broken link")


def _cache_snapshot(cache: Path, repo: str, files: dict[str, bytes], commit: str = "a" * 40) -> Path:
    """A hub-cache layout as huggingface_hub writes it: blobs/<sha256> and snapshots/<commit>/<name> → ../../blobs/<sha256>."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (storage / "blobs" / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    return snapshot


def test_hub_cache_blob_links_are_allowed_and_other_repos_blobs_are_not(bert_dir, tmp_path, capsys):
    files = {p.name: p.read_bytes() for p in bert_dir.iterdir()}
    cache = tmp_path / "hub"
    snapshot = _cache_snapshot(cache, "graft-test/tiny", files)
    source = open_source(snapshot)
    assert {p.name for p in source.aux_files()} == {"tokenizer.json"}
    assert source.config["model_type"] == "bert"

    other = _cache_snapshot(cache, "graft-test/other", {"config.json": files["config.json"]}, commit="b" * 40)
    blob = (snapshot / "model.safetensors").resolve()
    (other / "model.safetensors").symlink_to(
        Path("..") / ".." / ".." / "models--graft-test--tiny" / "blobs" / blob.name
    )
    fails(capsys, ["inspect", str(other)], None, "'model.safetensors'", "outside its Hugging Face cache repo")


# -- 3. only regular files ----------------------------------------------------------------------
def _run_within(argv: list[str], fifo: Path | None, seconds: float = 20.0) -> int:
    """``main(argv)`` in a thread; a hang fails the test (after freeing the reader of ``fifo``)."""
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("code", main(argv)), daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if fifo is not None:  # give the blocked open() a writer, then EOF, so the thread can end
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            worker.join(10)
        pytest.fail(f"graft {' '.join(argv)} hung on a FIFO")
    return result["code"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("name", ["model.safetensors", "config.json", INDEX])
def test_a_fifo_never_hangs_graft(bert_dir, capsys, name):
    (bert_dir / name).unlink(missing_ok=True)
    os.mkfifo(bert_dir / name)
    capsys.readouterr()
    code = _run_within(["inspect", str(bert_dir)], bert_dir / name)
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("graft: error: ")]
    assert len(errors) == 1 and "named pipe (FIFO), not a regular file" in errors[0] and name in errors[0], err


def test_a_socket_or_a_folder_named_like_weights_is_refused(bert_dir, tmp_path, capsys):
    (bert_dir / "model.safetensors").unlink()
    (bert_dir / "model.safetensors").mkdir()
    fails(capsys, ["inspect", str(bert_dir)], None, "'model.safetensors' is a folder, not a regular file")
    (bert_dir / "model.safetensors").rmdir()
    short = Path(f"/tmp/graft-sock-{os.getpid()}")  # AF_UNIX paths are limited to ~100 characters
    short.mkdir(exist_ok=True)
    try:
        for p in bert_dir.iterdir():
            shutil.move(p, short / p.name)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(short / "model.safetensors"))
            fails(capsys, ["inspect", str(short)], None, "'model.safetensors' is a socket, not a regular file")
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_a_device_named_like_weights_is_refused(bert_dir, capsys):
    (bert_dir / "model.safetensors").unlink()
    try:
        os.mknod(bert_dir / "model.safetensors", 0o600 | 0o020000, os.makedev(1, 3))  # like /dev/null
    except (PermissionError, OSError, AttributeError) as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    fails(capsys, ["inspect", str(bert_dir)], None, "'model.safetensors' is a character device, not a regular file")


def test_a_fifo_given_directly_is_refused(tmp_path):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="named pipe"):
        open_source(fifo)


# -- the files Graft opened are the files it scans ---------------------------------------------
def test_the_nan_scan_sees_every_file_whatever_path_or_link_led_to_it(tmp_path, monkeypatch):
    # TensorInfo.file used to be the path as given (relative, or the snapshot's link) while
    # Source.files held resolved paths: the NaN/Inf scan matched no tensor and said "all finite".
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "nan-model"
    folder.mkdir()
    save_file(
        {"0.weight": torch.full((4, 4), float("nan")), "0.bias": torch.zeros(4)},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    snapshot = _cache_snapshot(
        tmp_path / "hub", "graft-test/nan", {"model.safetensors": (folder / "model.safetensors").read_bytes()}
    )
    (tmp_path / "linked").symlink_to(folder)
    monkeypatch.chdir(tmp_path)
    for location in ("nan-model", "linked", str(snapshot)):
        source = open_source(location)
        assert {t.file for t in source.tensors.values()} == set(source.files)
        assert source.scan().nonfinite == {"0.weight": 16}, location
