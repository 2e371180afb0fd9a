"""Table model over a job tracker for the dock's live job view."""

from __future__ import annotations

from typing import Optional

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


class JobTableModel(QAbstractTableModel):
    """Rows are tracker rows; :meth:`refresh` re-reads the tracker (cheap: one SQL query)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._jobs = pd.DataFrame()
        self.tracker = None

    def set_tracker(self, tracker) -> None:
        self.tracker = tracker
        self.refresh()

    def refresh(self) -> None:
        """Re-read the tracker (outside a run; during a run the task sends snapshots: :meth:`set_jobs`)."""
        exists = self.tracker is not None and self.tracker.exists()
        self.set_jobs(self.tracker.snapshot() if exists else pd.DataFrame())

    def set_jobs(self, jobs: pd.DataFrame) -> None:
        self.beginResetModel()
        self._jobs = jobs
        self.endResetModel()

    def job(self, row: int) -> Optional[pd.Series]:
        return self._jobs.iloc[row] if 0 <= row < len(self._jobs) else None

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent=QModelIndex()):
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        job = self.job(index.row())
        if job is None:
            return None
        column = COLUMNS[index.column()]
        if role == Qt.BackgroundRole and column == "Status":
            return STATUS_COLOURS.get(job.get("status"))
        if role == Qt.ToolTipRole and column == "Message":
            return _text(job.get("error_message"))
        if role != Qt.DisplayRole:
            return None
        window = job.get("temporal_extent")
        values = {
            "Status": job.get("status"),
            "Sensor": f"S{_text(job.get('sentinel'))}",
            "Window": " .. ".join(window) if isinstance(window, list) else _text(window),
            "Tile": job.get("tile_id"),
            "Backend": job.get("backend_name"),
            "Job id": job.get("id"),
            "Duration": job.get("duration"),
            "Credits": job.get("costs"),
            "Message": job.get("error_message"),
        }
        return _text(values[column])
