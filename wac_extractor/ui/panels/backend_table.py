"""The backends table of the sign-in panel: one row per backend, ticked to use it, with its parallel jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAbstractItemView, QHeaderView, QSpinBox, QTableWidget, QTableWidgetItem

from ...core.backends.connect import CDSE_URL

CDSE_LABEL = "Copernicus Data Space Ecosystem"


@dataclass
class BackendEntry:
    """One row of the backends table, as saved in settings (no secrets: ``authcfg`` is an id)."""

    url: str
    parallel: int = 2
    enabled: bool = True
    method: str = "oidc"
    authcfg: str = ""

    @property
    def label(self) -> str:
        return CDSE_LABEL if self.url == CDSE_URL else self.url


class BackendTable(QTableWidget):
    """``parallel_changed``: called when a row's number of parallel jobs changes."""

    def __init__(self, parallel_changed: Callable[[], None], parent=None):
        super().__init__(0, 2, parent)
        self.parallel_changed = parallel_changed
        self.setHorizontalHeaderLabels(["Backend (tick to use)", "Parallel"])
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.verticalHeader().hide()
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setMaximumHeight(96)
        self.setToolTip("Ticked backends share the jobs of a run, each with its own number of parallel jobs")

    def show_entries(self, entries: List[BackendEntry]) -> None:
        """A row per entry, without emitting ``itemChanged`` (nothing the user changed)."""
        self.blockSignals(True)
        self.setRowCount(0)
        for entry in entries:
            row = self.rowCount()
            self.insertRow(row)
            item = QTableWidgetItem(entry.label)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked)
            item.setToolTip(entry.url)
            self.setItem(row, 0, item)
            spin = QSpinBox(minimum=1, maximum=50, value=entry.parallel)
            spin.setToolTip("Parallel jobs on this backend (CDSE: 2 for standard users)")
            spin.valueChanged.connect(self.parallel_changed)
            self.setCellWidget(row, 1, spin)
        self.blockSignals(False)

    def read_into(self, entries: List[BackendEntry]) -> None:
        """The ticks and parallel jobs the user set, into the entries shown."""
        for row, entry in enumerate(entries):
            entry.enabled = self.item(row, 0).checkState() == Qt.CheckState.Checked
            entry.parallel = self.cellWidget(row, 1).value()
