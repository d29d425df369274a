"""The window against a hub on 127.0.0.1: download with progress, the cache list, offline, cancel.

The real ``huggingface_hub`` client talks to ``fake_hub`` (tests/fake_hub.py); the window is
pointed at it through its Hub URL setting, as a user would point it at a mirror.
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from app.dialogs import open_error_dialogs
from app.qt import QtCore

REPO = "graft-test/tiny-bert"


def _point_at(window, hub, cache) -> None:
    window.sources.set_endpoint(hub.url)
    window.settings.set("sources/cache_dir", str(cache))


def _cache_rows(window) -> list[list[str]]:
    tree = window.sources.cache_list
    return [[tree.topLevelItem(i).text(c) for c in range(3)] for i in range(tree.topLevelItemCount())]


def test_download_from_the_hub_field_then_reopen_from_the_cache_offline(
    qtbot, window, gui, fake_hub, tiny_bert_folder, tmp_path
):
    repo = fake_hub.add_repo(REPO, tiny_bert_folder, {"pytorch_model.bin": b"never fetched"})
    _point_at(window, fake_hub, tmp_path / "cache")
    shown: list[tuple[float, int, bool]] = []  # (fraction, progress bar value, progress row visible)
    window.workspace.open_controller.progressed.connect(
        lambda f, m, eta: shown.append((f, window.sources.progress.value(), window.sources.progress_box.isVisible()))
    )

    window.sources.repo_edit.setText(REPO)
    qtbot.mouseClick(window.sources.download_button, QtCore.Qt.LeftButton)
    plan = gui.plan()
    assert plan.family == "bert" and window.workspace.source.identity["revision"] == repo.sha
    assert "model.safetensors" in fake_hub.downloaded(REPO) and "pytorch_model.bin" not in fake_hub.downloaded(REPO)
    partial = [(f, value, visible) for f, value, visible in shown if 0 < f < 1]
    assert partial and all(visible and value == int(f * 1000) for f, value, visible in partial), shown
    qtbot.waitUntil(lambda: not window.sources.progress_box.isVisible(), timeout=10_000)
    assert window.settings.recent_sources()[0] == REPO

    # The download now shows in the cache list: repo, revision, size.
    qtbot.waitUntil(lambda: _cache_rows(window)[0][0] == REPO, timeout=30_000)
    name, ref, size = _cache_rows(window)[0]
    assert ref == "main" and size.endswith(("KB", "MB"))

    # Offline, a double-click on it opens the cached copy without a single request.
    window.sources.offline_box.setChecked(True)
    window.open_source("demo")
    gui.plan(lambda p: p.family == "bert" and p.target_sizes["hidden"] == 384)
    before = len(fake_hub.requests)
    item = window.sources.cache_list.topLevelItem(0)
    window.sources.cache_list.itemActivated.emit(item, 0)
    gui.plan(lambda p: p.target_sizes["hidden"] == 32)
    assert len(fake_hub.requests) == before
    assert window.workspace.source.identity["revision"] == repo.sha


def test_cancel_a_download_from_the_progress_row(qtbot, window, gui, fake_hub, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    save_file({"w": torch.zeros(512, 1024)}, str(folder / "model.safetensors"), metadata={"format": "pt"})  # 2 MiB
    (folder / "config.json").write_text("{}")
    fake_hub.add_repo("graft-test/big", folder)
    fake_hub.seconds_per_chunk = 0.05  # 32 chunks: about 1.6 s, time enough to press cancel
    _point_at(window, fake_hub, tmp_path / "cache")
    window.sources.repo_edit.setText("graft-test/big")
    window.sources.download_button.click()
    controller = window.workspace.open_controller
    fractions: list[float] = []
    controller.progressed.connect(lambda f, m, eta: fractions.append(f))
    qtbot.waitUntil(lambda: any(0 < f < 1 for f in fractions), timeout=30_000)
    with qtbot.waitSignal(controller.aborted, timeout=30_000):
        qtbot.mouseClick(window.sources.cancel_button, QtCore.Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.sources.progress_box.isVisible(), timeout=10_000)
    assert 1.0 not in fractions
    assert window.workspace.opened is None and not open_error_dialogs(window)  # cancelled, not failed
    assert not list((tmp_path / "cache").rglob("snapshots/*/model.safetensors"))
    assert gui.open_demo().family == "bert"  # the window carries on


def test_a_hub_url_that_is_not_one_is_refused(window):
    window.sources.set_endpoint("huggingface.co")
    (box,) = open_error_dialogs(window.sources)
    assert "https://" in box.text() and window.settings.get("sources/endpoint") == ""
