"""Table model over a job tracker for the dock's live job view."""

from __future__ import annotations

from typing import List, Optional

import pandas as pd
from qgis.PyQt.QtCore import QAbstractTableModel, QModelIndex, Qt
from qgis.PyQt.QtGui import QColor

STATUS_COLOURS = {
    "not_started": QColor("#9e9e9e"),
    "created": QColor("#90caf9"),
    "queued_for_start": QColor("#90caf9"),
    "queued": QColor("#64b5f6"),
    "running": QColor("#ffb74d"),
    "finished": QColor("#66bb6a"),
    "error": QColor("#e53935"),
    "start_failed": QColor("#e53935"),
    "skipped": QColor("#e53935"),
    "canceled": QColor("#6d4c41"),
}
COLUMNS = ["Status", "Sensor", "Window", "Tile", "Backend", "Job id", "Duration", "Credits", "Message"]


def _text(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def display_rows(jobs: pd.DataFrame) -> List[tuple]:
    """The table's text, one tuple per job (``COLUMNS`` order); cheap to call in the task thread."""
    rows = []
    for job in jobs.to_dict("records"):
        window = job.get("temporal_extent")
        rows.append(tuple(_text(value) for value in (
            job.get("status"),
            f"S{_text(job.get('sentinel'))}",
            " .. ".join(window) if isinstance(window, list) else _text(window),
            job.get("tile_id"),
            job.get("backend_name"),
            job.get("id"),
            job.get("duration"),
            job.get("costs"),
            job.get("error_message"),
        )))  # fmt: skip
    return rows


class JobTableModel(QAbstractTableModel):
    """Rows are tracker rows, shown from a snapshot; :meth:`refresh` re-reads the tracker (one SQL query).

    ``data()`` only indexes precomputed tuples: the view calls it for every visible cell on each
    repaint. A new snapshot of the same jobs emits ``dataChanged`` rather than resetting the view.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._jobs = pd.DataFrame()
        self._rows: List[tuple] = []
        self.tracker = None

    def set_tracker(self, tracker, refresh: bool = True) -> None:
        self.tracker = tracker
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        """Re-read the tracker (outside a run; during a run the task sends snapshots: :meth:`set_jobs`)."""
        exists = self.tracker is not None and self.tracker.exists()
        self.set_jobs(self.tracker.snapshot() if exists else pd.DataFrame())

    def set_jobs(self, jobs: pd.DataFrame, rows: Optional[List[tuple]] = None) -> bool:
        """Show a snapshot; returns whether anything shown changed.

        ``rows``: ``display_rows(jobs)`` when the caller computed it already (off the UI thread). For the
        same jobs only the rows that differ are signalled, so the view repaints just those.
        """
        rows = display_rows(jobs) if rows is None else rows
        if len(jobs) == len(self._jobs) and jobs.index.equals(self._jobs.index) and len(jobs):
            changed = [row for row, (old, new) in enumerate(zip(self._rows, rows)) if old != new]
            self._jobs, self._rows = jobs, rows
            if changed:
                self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], len(COLUMNS) - 1))
            return bool(changed)
        self.beginResetModel()
        self._jobs, self._rows = jobs, rows
        self.endResetModel()
        return True

    def job(self, row: int) -> Optional[pd.Series]:
        return self._jobs.iloc[row] if 0 <= row < len(self._jobs) else None

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        row = index.row()
        if not 0 <= row < len(self._rows):
            return None
        text = self._rows[row][index.column()]
        column = COLUMNS[index.column()]
        if role == Qt.DisplayRole:
            return text
        if role == Qt.BackgroundRole and column == "Status":
            return STATUS_COLOURS.get(text)
        if role == Qt.ToolTipRole and column == "Message":
            return text
        return None
