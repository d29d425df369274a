"""The Sources panel: drag and drop, recent sources, the (empty) cache, the hub field."""

from __future__ import annotations

from graft_gui_driver import await_result

from app.jobs import JobController
from app.panels.sources import SourcesPanel, human_bytes
from app.qt import QtCore, QtGui
from app.settings import Settings


def make_panel(qtbot, runner, tmp_path):
    settings = Settings()
    settings.set("sources/cache_dir", str(tmp_path / "empty-hub-cache"))
    panel = SourcesPanel(settings, JobController(runner))
    qtbot.addWidget(panel)
    return panel, settings


def test_drop_a_file_requests_it(qtbot, runner, tmp_path):
    panel, _ = make_panel(qtbot, runner, tmp_path)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"")
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(model))])
    event = QtGui.QDropEvent(
        QtCore.QPointF(5, 5), QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier
    )
    with qtbot.waitSignal(panel.source_requested, timeout=1000) as blocker:
        panel.dropEvent(event)
    assert blocker.args == [str(model)]


def test_recent_sources_are_listed_and_reopen(qtbot, runner, tmp_path):
    panel, settings = make_panel(qtbot, runner, tmp_path)
    settings.add_recent_source("/models/a")
    settings.add_recent_source("demo")
    panel.show_recent()
    assert [panel.recent_list.item(i).text() for i in range(panel.recent_list.count())] == [
        "Demo model (MiniLM-L6)",
        "/models/a",
    ]
    with qtbot.waitSignal(panel.source_requested, timeout=1000) as blocker:
        panel.recent_list.itemActivated.emit(panel.recent_list.item(1))
    assert blocker.args == ["/models/a"]


def test_empty_cache_is_a_message_not_an_error(qtbot, runner, tmp_path):
    panel, _ = make_panel(qtbot, runner, tmp_path)
    await_result(qtbot, panel.refresh_cache(), timeout=30_000)
    assert panel.cache_list.topLevelItem(0).text(0) == "no models cached yet"


def test_hub_field_and_progress(qtbot, runner, tmp_path):
    panel, _ = make_panel(qtbot, runner, tmp_path)
    panel.repo_edit.setText("  owner/name@main ")
    with qtbot.waitSignal(panel.source_requested, timeout=1000) as blocker:
        panel.download_button.click()
    assert blocker.args == ["owner/name@main"]
    panel.show_busy("owner/name")
    panel.show_progress(0.5, "model.safetensors 50 MB / 100 MB", 12.0)
    assert panel.progress.value() == 500 and "12 s left" in panel.progress.format()
    with qtbot.waitSignal(panel.cancel_requested, timeout=1000):
        panel.cancel_button.click()
    assert human_bytes(1_500_000) == "1.5 MB"
