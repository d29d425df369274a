"""Sources: the demo model, local files and folders, the Hugging Face cache, a hub repo id."""

from __future__ import annotations

import time
from pathlib import Path

from app.dialogs import show_error
from app.jobs import JobController, factories, flow
from app.qt import QtCore, QtGui, QtWidgets
from app.settings import Settings
from core.errors import Cancelled


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class SourcesPanel(QtWidgets.QWidget):
    """Signals:
    source_requested(location): the user picked something to open.
    cancel_requested(): the user cancelled a running open/download.
    """

    source_requested = QtCore.Signal(str)
    cancel_requested = QtCore.Signal()

    def __init__(self, settings: Settings, cache_controller: JobController, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.cache_controller = cache_controller
        self.setAcceptDrops(True)
        layout = QtWidgets.QVBoxLayout(self)

        title = QtWidgets.QLabel("<b>Sources</b>")
        layout.addWidget(title)
        self.demo_button = QtWidgets.QPushButton("Demo model (MiniLM-L6)")
        self.demo_button.setToolTip("sentence-transformers/all-MiniLM-L6-v2, shipped with Graft")
        self.demo_button.clicked.connect(lambda: self.source_requested.emit("demo"))
        layout.addWidget(self.demo_button)
        row = QtWidgets.QHBoxLayout()
        self.file_button = QtWidgets.QPushButton("File…")
        self.file_button.setToolTip("Open a .safetensors file (Ctrl+O)")
        self.file_button.clicked.connect(self.choose_file)
        self.folder_button = QtWidgets.QPushButton("Folder…")
        self.folder_button.setToolTip("Open a model folder (Ctrl+Shift+O)")
        self.folder_button.clicked.connect(self.choose_folder)
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
        layout.addLayout(row)

        hub = QtWidgets.QGroupBox("Hugging Face Hub")
        hub_layout = QtWidgets.QVBoxLayout(hub)
        repo_row = QtWidgets.QHBoxLayout()
        self.repo_edit = QtWidgets.QLineEdit()
        self.repo_edit.setPlaceholderText("owner/name[@revision]")
        self.repo_edit.returnPressed.connect(self._open_repo)
        self.download_button = QtWidgets.QPushButton("Get")
        self.download_button.setToolTip("Download the safetensors weights and config (or open them from the cache)")
        self.download_button.clicked.connect(self._open_repo)
        repo_row.addWidget(self.repo_edit, 1)
        repo_row.addWidget(self.download_button)
        hub_layout.addLayout(repo_row)
        progress_row = QtWidgets.QHBoxLayout()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setText("✕")
        self.cancel_button.setToolTip("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_box = QtWidgets.QWidget()
        self.progress_box.setLayout(progress_row)
        progress_row.setContentsMargins(0, 0, 0, 0)
        self.progress_box.hide()
        hub_layout.addWidget(self.progress_box)
        self.offline_box = QtWidgets.QCheckBox("Offline (cache only)")
        self.offline_box.setChecked(settings.get("sources/offline"))
        self.offline_box.toggled.connect(lambda on: settings.set("sources/offline", on))
        self.endpoint_button = QtWidgets.QToolButton()
        self.endpoint_button.setText("Hub URL…")
        self.endpoint_button.clicked.connect(self.choose_endpoint)
        self._show_endpoint()
        options_row = QtWidgets.QHBoxLayout()
        options_row.addWidget(self.offline_box, 1)
        options_row.addWidget(self.endpoint_button)
        hub_layout.addLayout(options_row)
        layout.addWidget(hub)

        cache_header = QtWidgets.QHBoxLayout()
        cache_header.addWidget(QtWidgets.QLabel("In the local cache"))
        cache_header.addStretch(1)
        self.refresh_button = QtWidgets.QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Scan the Hugging Face cache again")
        self.refresh_button.clicked.connect(lambda: self.refresh_cache())
        cache_header.addWidget(self.refresh_button)
        layout.addLayout(cache_header)
        self.cache_list = QtWidgets.QTreeWidget()
        self.cache_list.setHeaderLabels(["Repo", "Rev", "Size"])
        self.cache_list.setRootIsDecorated(False)
        self.cache_list.setUniformRowHeights(True)
        self.cache_list.itemActivated.connect(
            lambda item, _: self.source_requested.emit(item.data(0, QtCore.Qt.UserRole))
        )
        layout.addWidget(self.cache_list, 2)

        layout.addWidget(QtWidgets.QLabel("Recent"))
        self.recent_list = QtWidgets.QListWidget()
        self.recent_list.itemActivated.connect(lambda item: self.source_requested.emit(item.data(QtCore.Qt.UserRole)))
        layout.addWidget(self.recent_list, 1)
        self.hint = QtWidgets.QLabel("Drop a .safetensors file or a model folder here")
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)
        layout.addWidget(self.hint)

        self.show_recent()

    # -- actions -----------------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Open a safetensors file",
            self.settings.get("sources/last_folder"),
            "Checkpoints (*.safetensors *.bin *.pt *.pth);;All files (*)",
        )
        if path:
            self._request_path(path)

    def choose_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Open a model folder", self.settings.get("sources/last_folder")
        )
        if path:
            self._request_path(path)

    def _request_path(self, path: str) -> None:
        self.settings.set("sources/last_folder", str(Path(path).parent))
        self.source_requested.emit(path)

    def _open_repo(self) -> None:
        text = self.repo_edit.text().strip()
        if text:
            self.source_requested.emit(text)

    def choose_endpoint(self) -> None:
        """Ask for the hub to download from (a mirror or a private hub; empty: the default)."""
        text, ok = QtWidgets.QInputDialog.getText(
            self,
            "Hub URL",
            "Download models from this hub (empty: HF_ENDPOINT or https://huggingface.co):",
            QtWidgets.QLineEdit.Normal,
            self.settings.get("sources/endpoint"),
        )
        if ok:
            self.set_endpoint(text)

    def set_endpoint(self, url: str) -> None:
        url = url.strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            show_error(
                self, "Hub URL", f"{url!r} is not a web address; give one that starts with https:// (or leave it empty)"
            )
            return
        self.settings.set("sources/endpoint", url)
        self._show_endpoint()

    def _show_endpoint(self) -> None:
        url = self.settings.get("sources/endpoint")
        self.endpoint_button.setToolTip(
            f"Downloading from {url}"
            if url
            else "Downloading from the default hub "
            "(HF_ENDPOINT or https://huggingface.co); click to use a mirror or a private hub"
        )

    @flow
    async def refresh_cache(self) -> None:
        """Scan the Hugging Face cache (in the background) and list the models in it."""
        self._cache_message("scanning…")
        try:
            models = await self.cache_controller.run(factories.list_cache_job(self.settings.get("sources/cache_dir")))
        except Cancelled:
            return
        except Exception as exc:
            self._cache_message(f"cannot scan the cache: {exc}")
            return
        self._show_cache(models)

    # -- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self._request_path(urls[0].toLocalFile())

    # -- views -------------------------------------------------------------------------------
    def show_recent(self) -> None:
        self.recent_list.clear()
        for location in self.settings.recent_sources():
            label = "Demo model (MiniLM-L6)" if location == "demo" else location
            item = QtWidgets.QListWidgetItem(label)
            item.setData(QtCore.Qt.UserRole, location)
            item.setToolTip(location)
            self.recent_list.addItem(item)

    def _cache_message(self, text: str) -> None:
        self.cache_list.clear()
        item = QtWidgets.QTreeWidgetItem([text])
        item.setFlags(QtCore.Qt.NoItemFlags)
        self.cache_list.addTopLevelItem(item)
        item.setFirstColumnSpanned(True)

    def _show_cache(self, models: list) -> None:
        self.cache_list.clear()
        if not models:
            self._cache_message("no models cached yet")
            return
        for m in models:
            ref = ",".join(m.refs) or m.revision[:7]
            item = QtWidgets.QTreeWidgetItem([m.repo_id, ref, human_bytes(m.size_bytes)])
            item.setData(0, QtCore.Qt.UserRole, m.location)
            tip = f"{m.repo_id}@{m.revision}\n{m.path}\nmodified {time.strftime('%Y-%m-%d %H:%M', time.localtime(m.last_modified))}"
            if not m.has_safetensors:
                tip += "\nno safetensors weights: Graft cannot open it without conversion"
                item.setForeground(0, self.palette().brush(QtGui.QPalette.Disabled, QtGui.QPalette.Text))
            item.setToolTip(0, tip)
            self.cache_list.addTopLevelItem(item)
        self.cache_list.resizeColumnToContents(1)

    def show_busy(self, location: str | None) -> None:
        """Show (location) or hide (None) the open/download progress row."""
        self.progress_box.setVisible(location is not None)
        if location is not None:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"opening {location}")

    def show_progress(self, fraction: float, message: str, eta: float) -> None:
        if fraction < 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        suffix = f" · {eta:.0f} s left" if eta >= 0 else ""
        self.progress.setFormat((message or "%p%") + suffix)
