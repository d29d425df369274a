"""The export dialog: folder, shard size, dtype, overwrite."""

from __future__ import annotations

from pathlib import Path

from app.qt import QtWidgets
from core.dtypes import EXPORT_DTYPES

#: the dtype combo box: (label, value); "" keeps the source's dtypes.
DTYPES = (("keep the source's", ""), *((d, d) for d in EXPORT_DTYPES))


class ExportDialog(QtWidgets.QDialog):
    """Asks where and how to export; ``options()`` returns what the workspace's export takes."""

    def __init__(self, folder: str, max_shard_size: str, dtype: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export the target")
        form = QtWidgets.QFormLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.folder_edit = QtWidgets.QLineEdit(folder)
        self.folder_edit.setMinimumWidth(360)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.shard_edit = QtWidgets.QLineEdit(max_shard_size)
        self.shard_edit.setToolTip("largest shard, decimal units as on the Hub (e.g. 5GB, 500MB)")
        form.addRow("Max shard size", self.shard_edit)
        self.dtype_combo = QtWidgets.QComboBox()
        for label, value in DTYPES:
            self.dtype_combo.addItem(label, value)
        self.dtype_combo.setCurrentIndex(max(0, self.dtype_combo.findData(dtype)))
        form.addRow("dtype", self.dtype_combo)
        self.force_box = QtWidgets.QCheckBox("Replace the folder if it exists")
        self.force_box.setToolTip("replace an earlier Graft export in that folder (never the source model)")
        form.addRow("", self.force_box)
        # The second, explicit step (the CLI's --replace-any): a folder Graft did not write is deleted.
        self.replace_any_box = QtWidgets.QCheckBox("…even if Graft did not write it (its files are deleted)")
        self.replace_any_box.setEnabled(False)
        self.force_box.toggled.connect(self._on_force_toggled)
        form.addRow("", self.replace_any_box)
        self.verifiable_box = QtWidgets.QCheckBox("Record every source file's SHA-256 (verifiable recipe)")
        self.verifiable_box.setToolTip(
            "reads the whole source once, beside the transfer, unless the hashes are known already; by default "
            "the recipe records the files' sizes and headers and a SHA-256 of the bytes the transfer read, "
            "which detects any change the export depends on"
        )
        form.addRow("", self.verifiable_box)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.button(QtWidgets.QDialogButtonBox.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _on_force_toggled(self, checked: bool) -> None:
        self.replace_any_box.setEnabled(checked)
        if not checked:
            self.replace_any_box.setChecked(False)

    def _browse(self) -> None:
        start = str(Path(self.folder_edit.text()).parent) if self.folder_edit.text() else ""
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Export into (a new sub-folder is fine)", start)
        if path:
            self.folder_edit.setText(path)

    def options(self) -> dict:
        return {
            "out_dir": self.folder_edit.text().strip(),
            "max_shard_size": self.shard_edit.text().strip() or "5GB",
            "dtype": self.dtype_combo.currentData() or None,
            "force": self.force_box.isChecked(),
            "replace_any": self.force_box.isChecked() and self.replace_any_box.isChecked(),
            "verifiable": self.verifiable_box.isChecked(),
        }
