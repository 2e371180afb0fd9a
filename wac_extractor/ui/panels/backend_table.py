"""The backends table of the sign-in panel: one row per backend, ticked to use it, with its parallel jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFont, QFontMetrics
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QInputDialog,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ...core.backends.connect import CDSE_URL
from ..wheel_guard import WheelGuard, guard_wheel

CDSE_LABEL = "Copernicus Data Space Ecosystem"
ADD_TITLE = "Add openEO backend"
# Room a window manager takes beside a dialog's title (icon, close/maximise buttons, padding): the title of a
# QInputDialog as narrow as its field was cut (issue 24).
TITLE_DECORATION_PX = 160
URL_CHARS = 52  # https://openeo.dataspace.copernicus.eu/openeo/1.2 and a little more, visible whole


def title_width(title: str) -> int:
    """The width a dialog needs for ``title`` whole in a (bold) title bar, with the window manager's buttons."""
    font = QFont()
    font.setBold(True)
    return QFontMetrics(font).horizontalAdvance(title) + TITLE_DECORATION_PX


def url_dialog(parent: QWidget) -> QInputDialog:
    """The *Add backend* dialog: its title whole, its field as wide as a backend URL."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(ADD_TITLE)
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    dialog.setLabelText("Backend URL (https://…):")
    dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
    # The dialog's layout sizes it to its field (QInputDialog constrains it to the layout's minimum): widen the field.
    field = dialog.findChild(QLineEdit)
    field.setMinimumWidth(max(title_width(ADD_TITLE), field.fontMetrics().horizontalAdvance("x" * URL_CHARS)))
    return dialog


def ask_url(parent: QWidget) -> Optional[str]:
    """The URL typed into the *Add backend* dialog, or None when cancelled or left empty."""
    dialog = url_dialog(parent)
    try:
        ok = dialog.exec()
        return dialog.textValue().strip() if ok and dialog.textValue().strip() else None
    finally:
        dialog.deleteLater()


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
        # The spin boxes are made anew with the rows, after the dock guarded its fields: guarded here.
        self.wheel_guard = WheelGuard(self)

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
        guard_wheel(self, self.wheel_guard)
        self.blockSignals(False)

    def tick_only(self, row: int) -> None:
        """Tick ``row`` and untick the others (a backend just added is the one the user wants to use)."""
        for other in range(self.rowCount()):
            checked = Qt.CheckState.Checked if other == row else Qt.CheckState.Unchecked
            self.item(other, 0).setCheckState(checked)

    def read_into(self, entries: List[BackendEntry]) -> None:
        """The ticks and parallel jobs the user set, into the entries shown."""
        for row, entry in enumerate(entries):
            entry.enabled = self.item(row, 0).checkState() == Qt.CheckState.Checked
            entry.parallel = self.cellWidget(row, 1).value()
