"""``--force`` never loses the source and replaces only what Graft wrote (issue 12, defect 1 and 4).

Every refusal is checked the way a user sees it: one ``graft: error:`` line, exit 2, no
traceback, and every byte of the source (and of anything next to it) still there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import torch
from cli_expect import digest, fails

from app.cli import main
from core.errors import ExportError
from core.export import ExportEntry, export_checkpoint


@pytest.fixture
def src(tiny_model):
    folder, _, _ = tiny_model("bert")  # config.json and model.safetensors, no tokenizer files
    return folder


def _transfer(source, out, *flags) -> list[str]:
    return ["transfer", str(source), "--layers", "1", "--out", str(out), *flags]


def _tree(folder) -> dict:
    """SHA-256 of every file under ``folder``, by folder (to prove nothing was touched)."""
    return {os.path.relpath(d, folder): digest(type(folder)(d)) for d, _, _ in os.walk(folder)}


# -- the source is never replaced ---------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--force"], ["--force", "--replace-any"]])
def test_out_is_the_source_folder(src, capsys, flags):
    before = digest(src)
    fails(capsys, _transfer(src, src, *flags), None, "source")
    assert digest(src) == before


def test_out_is_the_parent_of_the_source(src, capsys):
    parent = src.parent
    (parent / "unrelated.txt").write_text("mine")
    before = _tree(parent)
    fails(capsys, _transfer(src, parent, "--force", "--replace-any"), None, "source")
    assert _tree(parent) == before


def test_file_source_its_folder_is_refused(src, capsys):
    before = digest(src)
    fails(capsys, _transfer(src / "model.safetensors", src, "--force", "--replace-any"), None, "model.safetensors")
    assert digest(src) == before


def test_out_inside_the_source_folder_is_refused_even_when_new(src, capsys):
    fails(capsys, _transfer(src, src / "small"), src / "small", "inside the source")


def test_file_source_may_export_into_a_new_folder_next_to_it(src, capsys):
    assert main(_transfer(src / "model.safetensors", src.parent / "small")) == 0


def test_symlinks_are_resolved_both_ways(src, tmp_path, capsys):
    before = digest(src)
    alias = tmp_path / "alias"  # a link to the folder that holds the source
    alias.symlink_to(src.parent, target_is_directory=True)
    fails(capsys, _transfer(src, alias / src.name, "--force", "--replace-any"), None, "source")
    inner = tmp_path / "inner"  # a link into the source folder
    inner.symlink_to(src, target_is_directory=True)
    fails(capsys, _transfer(src, inner / "small"), None, "source")
    linked_source = tmp_path / "linked-source"  # the source opened through a link
    linked_source.symlink_to(src, target_is_directory=True)
    fails(capsys, _transfer(linked_source, src, "--force", "--replace-any"), None, "source")
    assert digest(src) == before


def test_hub_cache_layout_blobs_are_protected(src, tmp_path, capsys):
    """A cache snapshot links to ``blobs/``: neither the repo folder nor ``blobs`` may be replaced."""
    repo = tmp_path / "hub" / "models--org--tiny"
    blobs, snap = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(src / name, blobs / f"blob-{name}")
        (snap / name).symlink_to(os.path.join("..", "..", "blobs", f"blob-{name}"))
    before = digest(blobs)
    for out in (blobs, repo, snap):
        fails(capsys, _transfer(snap, out, "--force", "--replace-any"), None, "source")
    assert digest(blobs) == before


# -- only a Graft export is replaced by --force alone ---------------------------------------------


def test_force_replaces_a_previous_graft_export(src, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_transfer(src, out)) == 0
    assert main(_transfer(src, out, "--force")) == 0
    assert json.loads((out / "graft_recipe.json").read_text())["graft_recipe"]


def test_force_alone_refuses_a_folder_graft_did_not_write(src, tmp_path, capsys):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    fails(capsys, _transfer(src, out, "--force"), None, "--replace-any")
    assert (out / "thesis.tex").read_text() == "years of work"
    assert main(_transfer(src, out, "--force", "--replace-any")) == 0
    assert not (out / "thesis.tex").exists() and (out / "graft_recipe.json").is_file()


def test_a_graft_export_with_a_file_added_is_not_replaced_by_force_alone(src, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_transfer(src, out)) == 0
    (out / "notes.txt").write_text("my notes")
    fails(capsys, _transfer(src, out, "--force"), None, "notes.txt")
    (out / "notes.txt").unlink()
    (out / "checkpoint-500").mkdir()
    fails(capsys, _transfer(src, out, "--force"), None, "checkpoint-500")
    assert (out / "checkpoint-500").is_dir()


def test_an_export_graft_validate_wrote_into_is_still_graft_s(src, tmp_path, capsys):
    """``graft validate EXPORT`` leaves its run in EXPORT/validation: --force may replace that export."""
    from core.training.report import CURVES_NAME, JSON_NAME, VERDICT_NAME

    out = tmp_path / "out"
    assert main(_transfer(src, out)) == 0
    (out / "validation").mkdir()
    for name in (JSON_NAME, CURVES_NAME, VERDICT_NAME, "validation_curves.png"):
        (out / "validation" / name).write_text("{}")
    assert main(_transfer(src, out, "--force")) == 0
    (out / "validation").mkdir()
    (out / "validation" / "my-notes.md").write_text("mine")
    fails(capsys, _transfer(src, out, "--force"), None, "validation/my-notes.md")


def test_a_recipe_file_that_is_not_graft_s_does_not_count(src, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "graft_recipe.json").write_text('{"anything": 1}')
    (out / "config.json").write_text("{}")
    fails(capsys, _transfer(src, out, "--force"), None, "--replace-any")
    assert (out / "config.json").read_text() == "{}"


def test_replace_any_needs_force(src, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    fails(capsys, _transfer(src, out, "--replace-any"), None, "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_force_never_replaces_the_home_or_working_folder(src, tmp_path, capsys, monkeypatch):
    home = tmp_path / "people" / "me"
    home.mkdir(parents=True)
    (home / ".bashrc").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    fails(capsys, _transfer(src, tmp_path / "people", "--force", "--replace-any"), None, "home")
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    (work / "data.csv").write_text("1,2")
    monkeypatch.chdir(work)
    fails(capsys, _transfer(src, tmp_path / "work", "--force", "--replace-any"), None, "working folder")
    assert (home / ".bashrc").read_text() == "mine" and (work / "data.csv").read_text() == "1,2"


def test_demo_refuses_out_being_its_bundled_source(capsys):
    from core.sources import demo_model_path

    folder = demo_model_path()
    fails(capsys, ["demo", "--out", str(folder), "--force"], None, "source")


# -- bad --out paths: one sentence, exit 2 --------------------------------------------------------


def test_bad_out_paths_are_one_line(src, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    fifo = tmp_path / "a-fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for out, needle in (
        (a_file, "not a folder"),
        (fifo, "not a folder"),
        (loop, "link"),
        (loop / "sub", str(loop)),
        (a_file / "sub", str(a_file)),
        (dangling, "link"),
        (tmp_path / ("a" * 300), "255 bytes"),
        (tmp_path / ("b" * 300) / "sub", "255 bytes"),
    ):
        fails(capsys, _transfer(src, out, "--force", "--replace-any"), None, needle)
    assert a_file.read_text() == "x" and loop.is_symlink()


def test_read_only_parent_is_one_line(src, tmp_path, capsys, read_only):
    parent = tmp_path / "ro"
    parent.mkdir()
    read_only(parent)
    fails(capsys, _transfer(src, parent / "out"), parent / "out", str(parent))
    fails(capsys, _transfer(src, parent / "new" / "out"), None, str(parent))


# -- the same rules in core, for the app ---------------------------------------------------------


def _entries():
    return [ExportEntry("a", (2, 2), torch.float32)]


def test_core_refuses_protected_paths_and_foreign_folders(tmp_path):
    from core.outdir import protected_paths
    from core.sources import open_source

    source_dir = tmp_path / "src"
    source_dir.mkdir()
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2, 2)}, source_dir / "model.safetensors")
    source = open_source(str(source_dir))
    produce = {"a": torch.ones(2, 2)}.__getitem__
    for out in (source_dir, tmp_path, source_dir / "sub"):
        with pytest.raises(ExportError, match="source"):
            export_checkpoint(
                out,
                entries=_entries(),
                produce=produce,
                config=None,
                force=True,
                replace_any=True,
                protect=protected_paths(source),
            )
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="replace-any"):
        export_checkpoint(foreign, entries=_entries(), produce=produce, config=None, force=True)
    assert (foreign / "keep.txt").read_text() == "mine"
    export_checkpoint(foreign, entries=_entries(), produce=produce, config=None, force=True, replace_any=True)
    assert not (foreign / "keep.txt").exists()


def test_chattr_helper_really_makes_a_folder_read_only(tmp_path, read_only):
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder)
    with pytest.raises(OSError):
        (folder / "x").write_text("x")


@pytest.fixture
def read_only(request):
    """Make a folder read-only for this process, as root too (``chattr +i``); undone afterwards."""
    made = []

    def make(folder):
        folder.chmod(0o555)
        made.append(folder)
        if os.geteuid() == 0:
            try:
                subprocess.run(["chattr", "+i", str(folder)], check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError):
                pytest.skip("running as root without chattr: cannot make a folder read-only")

    yield make
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)
