"""Temporary folders never outlive an export (issue 12, defect 3).

SIGTERM is handled like Ctrl-C; what kill -9 leaves is swept by the next run, but only when it is
provably Graft's and its process provably dead; created parents go with a failed export; every
file is fsynced before the rename; a forced replace never leaves the out folder missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from app.cli import main
from core.errors import ExportError
from core.export import ExportEntry, export_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A BERT of ~50 MB (a wide vocabulary, one layer): its export takes long enough to be caught."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("big") / "bert"
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30000,
        hidden_size=384,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=384,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture
def small(tmp_path_factory) -> Path:
    from tiny_models import build_tiny

    folder = tmp_path_factory.mktemp("small") / "bert"
    build_tiny("bert", folder)
    return folder


def _temps(parent: Path) -> list[Path]:
    try:
        return [p for p in parent.iterdir() if ".graft-" in p.name]
    except FileNotFoundError:
        return []


def _start_and_freeze(source: Path, out: Path) -> subprocess.Popen:
    """Run ``graft transfer`` in a child; stop it (SIGSTOP) as soon as its temp folder appears."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "transfer", str(source), "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if _temps(out.parent):
            os.kill(proc.pid, signal.SIGSTOP)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.0005)
    else:
        proc.kill()
        pytest.fail("the export never created its temporary folder")
    if proc.poll() is not None or out.exists():
        proc.kill()
        pytest.fail(f"the export finished before it could be stopped: {proc.communicate()}")
    assert _temps(out.parent) and not out.exists()
    return proc


def test_sigterm_mid_export_cleans_up_and_exits_143(big, tmp_path):
    out = tmp_path / "new" / "deeper" / "out"  # both parents are created by the export
    proc = _start_and_freeze(big, out)
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.startswith("graft:")]
    assert lines == ["graft: terminated"] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []  # no temp folder, no out, no created parents


def test_kill_9_leaves_a_temp_folder_that_the_next_run_sweeps(big, small, tmp_path):
    out = tmp_path / "out"
    proc = _start_and_freeze(big, out)
    proc.kill()
    proc.communicate(timeout=60)
    stale = _temps(tmp_path)
    assert len(stale) == 1 and stale[0].is_dir()  # nothing can clean up after SIGKILL itself
    assert main(["transfer", str(small), "--out", str(tmp_path / "other")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    assert main(["transfer", str(small), "--out", str(out)]) == 0


def _dead_owner() -> str:
    from core.atomic import owner_of

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = owner_of(child.pid)
    child.kill()
    child.wait()
    assert owner is not None
    return owner


def test_sweep_removes_only_provably_dead_graft_temps(small, tmp_path):
    from core.atomic import owner_of, sibling

    me = owner_of(os.getpid())
    pid, start = me.split(".")[2:4]
    reused = me.replace(f".{pid}.{start}", f".{pid}.{int(start) + 1}")  # my pid, another start time
    live = sibling(tmp_path / "a", "tmp", me)
    dead = sibling(tmp_path / "b", "tmp", _dead_owner())
    recycled = sibling(tmp_path / "c", "tmp", reused)
    dead_file = sibling(tmp_path / "d.safetensors", "tmp", _dead_owner())
    legacy = tmp_path / ".e.graft-tmp-0badcafe"  # no owner recorded: cannot be proven dead
    elsewhere = tmp_path / "elsewhere"
    link = sibling(tmp_path / "f", "tmp", _dead_owner())  # a link with a Graft name: never followed
    for folder in (live, dead, recycled, legacy, elsewhere):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x" * 10)
    dead_file.write_bytes(b"partial")
    link.symlink_to(elsewhere, target_is_directory=True)
    assert main(["transfer", str(small), "--out", str(tmp_path / "out")]) == 0
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {live.name, legacy.name, elsewhere.name, link.name, "out"}
    assert (elsewhere / "model.safetensors").is_file()


def test_a_lone_old_folder_of_a_dead_export_is_restored(small, tmp_path):
    from core.atomic import sibling

    old = sibling(tmp_path / "x", "old", _dead_owner())  # killed between the two renames
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"previous export")
    done = sibling(tmp_path / "y", "old", _dead_owner())  # killed after the swap, before clean-up
    done.mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "model.safetensors").write_bytes(b"new export")
    assert main(["transfer", str(small), "--out", str(tmp_path / "z")]) == 0
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == b"previous export"
    assert (tmp_path / "y" / "model.safetensors").read_bytes() == b"new export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "y", "z"]


def _entries():
    return [ExportEntry("a", (4, 4), torch.float32), ExportEntry("b", (3,), torch.float32)]


def _produce(name):
    return torch.ones(4, 4) if name == "a" else torch.zeros(3)


def test_a_failed_export_removes_the_parents_it_created(tmp_path):
    def broken(name):
        raise RuntimeError("source broke")

    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError, match="source broke"):
        export_checkpoint(tmp_path / "kept" / "a" / "b" / "out", entries=_entries(), produce=broken, config=None)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())


def test_every_file_and_the_folders_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    out = tmp_path / "out"
    export_checkpoint(
        out,
        entries=_entries(),
        produce=_produce,
        config={"a": 1},
        recipe={"r": 1},
        model_card="card",
        max_shard_size=40,
    )
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 6  # two shards, the index, config, recipe, card
    tmp = Path(synced[0]).parent
    assert tmp.parent == tmp_path and ".out.graft-tmp-" in tmp.name  # synced while still temporary
    assert sorted(Path(s).name for s in synced if Path(s).parent == tmp) == files
    assert synced[-2:] == [str(tmp), str(tmp_path)]  # the folder before the rename, the parent after


def test_a_forced_replace_never_leaves_the_out_folder_missing(tmp_path):
    """A watcher that sees ``out`` missing for an instant would have seen the gap a kill can hit."""
    out = tmp_path / "out"
    recipe = {"graft_recipe": 1, "graft_version": "test"}
    export_checkpoint(out, entries=_entries(), produce=_produce, config=None, recipe=recipe)
    missing, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if not os.path.isdir(out):
                missing.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(60):
            export_checkpoint(out, entries=_entries(), produce=_produce, config=None, recipe=recipe, force=True)
    finally:
        stop.set()
        watcher.join()
    assert not missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_export_refuses_cleanly_when_the_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="file"):
        export_checkpoint(tmp_path / "file" / "out", entries=_entries(), produce=_produce, config=None)
    assert (tmp_path / "file").read_text() == "x"


def test_without_renameat2_the_portable_fallback_replaces_too(tmp_path, monkeypatch):
    """As on macOS (no renameat2): two renames, and the replaced folder is gone afterwards."""
    from core import atomic

    monkeypatch.setattr(atomic, "_renameat2", lambda: None)  # the platform probe, not the logic
    out = tmp_path / "out"
    recipe = {"graft_recipe": 1, "graft_version": "test"}
    export_checkpoint(out, entries=_entries(), produce=_produce, config=None, recipe=recipe)
    export_checkpoint(
        out, entries=_entries(), produce=lambda n: 2 * _produce(n), config=None, recipe=recipe, force=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_text() == "b" and (tmp_path / "a").exists()
