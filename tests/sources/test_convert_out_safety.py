"""``graft convert`` never overwrites its input or a file Graft did not write (issue 12).

A single output file cannot contain a source, so the rules are: never the input (through links,
symbolic or hard), never a folder, FIFO or link, ``--force`` replaces only a safetensors file that
Graft wrote, ``--replace-any`` any regular file; failures are one line, leave nothing behind.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import torch
from cli_expect import fails
from safetensors.torch import load_file, save_file

from app.cli import main
from core.errors import Cancelled
from core.progress import CancelToken
from core.sources.convert import convert_pickle


@pytest.fixture
def pickle_file(tmp_path):
    path = tmp_path / "in" / "pytorch_model.bin"
    path.parent.mkdir()
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}, path)
    return path


def test_out_linked_to_the_input_is_refused(pickle_file, tmp_path, capsys):
    data = pickle_file.read_bytes()
    hard = tmp_path / "hard.safetensors"
    os.link(pickle_file, hard)
    soft = tmp_path / "soft.safetensors"
    soft.symlink_to(pickle_file)
    for out in (hard, soft):
        fails(capsys, ["convert", str(pickle_file), "--out", str(out), "--force", "--replace-any"], None, "input")
    assert pickle_file.read_bytes() == data


def test_force_replaces_only_a_file_graft_wrote(pickle_file, tmp_path, capsys):
    theirs = pickle_file.parent / "model.safetensors"  # the model's own weights, next to the .bin
    save_file({"theirs": torch.ones(3)}, theirs)
    before = theirs.read_bytes()
    fails(capsys, ["convert", str(pickle_file), "--force"], None, "--replace-any")
    assert theirs.read_bytes() == before
    assert main(["convert", str(pickle_file), "--force", "--replace-any"]) == 0
    assert sorted(load_file(theirs)) == ["b", "w"]
    assert main(["convert", str(pickle_file), "--force"]) == 0  # now it is Graft's own output


def test_replace_any_needs_force(pickle_file, capsys):
    save_file({"theirs": torch.ones(3)}, pickle_file.parent / "model.safetensors")
    fails(capsys, ["convert", str(pickle_file), "--replace-any"], None, "--force")


def test_bad_out_paths_are_one_line(pickle_file, tmp_path, capsys):
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    (folder / "keep").write_text("x")
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    link = tmp_path / "link.safetensors"
    link.symlink_to(tmp_path / "elsewhere.safetensors")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out, needle in (
        (folder, "regular file"),
        (fifo, "regular file"),
        (link, "link"),
        (loop / "x.safetensors", str(loop)),
        (a_file / "x.safetensors", str(a_file)),
        (tmp_path / ("a" * 300 + ".safetensors"), "255 bytes"),
    ):
        fails(capsys, ["convert", str(pickle_file), "--out", str(out), "--force", "--replace-any"], None, needle)
    assert (folder / "keep").read_text() == "x" and not (tmp_path / "elsewhere.safetensors").exists()


def test_read_only_folder_is_one_line_and_leaves_nothing(pickle_file, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    try:
        fails(capsys, ["convert", str(pickle_file), "--out", str(ro / "x.safetensors")], ro / "x.safetensors", str(ro))
        fails(capsys, ["convert", str(pickle_file), "--out", str(ro / "new" / "x.safetensors")], ro / "new", str(ro))
        assert list(ro.iterdir()) == []
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
        ro.chmod(0o755)


@pytest.fixture
def read_only_mount(tmp_path):
    """A read-only bind mount (EROFS, as on a read-only disk); skipped where mounting is not allowed."""
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "--bind", "-o", "ro", str(backing), str(mount)], capture_output=True).returncode
    ):
        pytest.skip("cannot mount a read-only folder here (needs root and mount)")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_read_only_file_system_is_one_line(pickle_file, read_only_mount, capsys):
    """There even removing a partial file that was never created fails (EROFS): it must not mask the error."""
    fails(
        capsys,
        ["convert", str(pickle_file), "--out", str(read_only_mount / "x.safetensors")],
        None,
        "Read-only file system",
    )
    assert list(read_only_mount.iterdir()) == []


def test_a_cancelled_conversion_removes_the_folders_it_created(pickle_file, tmp_path):
    token = CancelToken()

    def progress(fraction, message):
        if message.startswith("writing"):
            token.cancel()

    with pytest.raises(Cancelled):
        convert_pickle(pickle_file, tmp_path / "a" / "b" / "x.safetensors", progress=progress, cancel=token)
    assert not (tmp_path / "a").exists()


def test_a_dead_converter_s_partial_file_is_swept(pickle_file, tmp_path):
    import sys

    from core.atomic import owner_of, sibling

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = owner_of(child.pid)
    child.kill()
    child.wait()
    partial = sibling(pickle_file.parent / "model.safetensors", "tmp", owner)
    partial.write_bytes(b"half a file")
    convert_pickle(pickle_file)
    assert sorted(p.name for p in pickle_file.parent.iterdir()) == ["model.safetensors", "pytorch_model.bin"]
