"""Table model over a job tracker for the dock's live job view."""

from __future__ import annotations

from typing import List, Optional

import pandas as pd
from qgis.PyQt.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel

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


_ROW_FIELDS = ("status", "sentinel", "temporal_extent", "tile_id", "backend_name", "id", "duration", "costs",
               "error_message")  # fmt: skip


def display_rows(jobs: pd.DataFrame) -> List[tuple]:
    """The table's text, one tuple per job (``COLUMNS`` order); made in the task thread for each snapshot.

    Reads whole columns (``tolist``) rather than a dict per row (``to_dict("records")`` of all 20
    tracker columns): this runs every few seconds in the run's thread, holding the GIL.
    """
    fields = [jobs[name].tolist() if name in jobs.columns else [None] * len(jobs) for name in _ROW_FIELDS]
    return [
        (_text(status), f"S{_text(sentinel)}", " .. ".join(window) if isinstance(window, list) else _text(window),
         _text(tile), _text(backend), _text(job_id), _text(duration), _text(costs), _text(message))
        for status, sentinel, window, tile, backend, job_id, duration, costs, message in zip(*fields)
    ]  # fmt: skip


STATUS, MESSAGE = COLUMNS.index("Status"), COLUMNS.index("Message")


def item_columns(rows: List[tuple]) -> List[List[QStandardItem]]:
    """The table's cells as items, one list per column; built in the task thread for a new job list.

    ``QStandardItem`` is no ``QObject``: made in a worker, it can be put into the UI thread's model.
    """
    columns = [[QStandardItem(row[column]) for row in rows] for column in range(len(COLUMNS))]
    for column in (STATUS, MESSAGE):
        for item in columns[column]:
            _decorate(item, column)
    return columns


def _decorate(item: QStandardItem, column: int) -> None:
    """What a cell shows besides its text: the status colour, the full message as tooltip."""
    if column == STATUS:
        colour = STATUS_COLOURS.get(item.text())
        item.setBackground(QBrush(colour) if colour is not None else QBrush())
    elif column == MESSAGE:
        item.setToolTip(item.text())


class JobTableModel(QStandardItemModel):
    """Rows are tracker rows, shown from a snapshot; :meth:`refresh` re-reads the tracker (one SQL query).

    The cells live in C++ (``QStandardItemModel``, no ``data()`` in Python): painting the table needs
    no Python and so never waits for the GIL while the task thread works. A new job list replaces
    the items (built off the UI thread by :func:`item_columns`); a snapshot of the same jobs changes
    just the cells that differ.
    """

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
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

    def set_jobs(
        self, jobs: pd.DataFrame, rows: Optional[List[tuple]] = None, columns: Optional[List[list]] = None
    ) -> bool:
        """Show a snapshot; returns whether anything shown changed.

        ``rows`` (:func:`display_rows`) and ``columns`` (:func:`item_columns`) when the caller made them
        already, off the UI thread.
        """
        rows = display_rows(jobs) if rows is None else rows
        if len(jobs) == len(self._jobs) and jobs.index.equals(self._jobs.index) and len(jobs):
            changed = False
            for row, (old, new) in enumerate(zip(self._rows, rows)):
                if old != new:
                    changed = True
                    for column, (before, text) in enumerate(zip(old, new)):
                        if before != text:
                            self._set_text(row, column, text)
            self._jobs, self._rows = jobs, rows
            return changed
        columns = item_columns(rows) if columns is None else columns
        self.beginResetModel()
        self.blockSignals(True)  # one reset for the view instead of a signal per inserted column
        try:
            self.setColumnCount(0)
            self.setRowCount(0)
            for items in columns:
                self.appendColumn(items)
            if not rows:
                self.setColumnCount(len(COLUMNS))
            self.setHorizontalHeaderLabels(COLUMNS)
        finally:
            self.blockSignals(False)
        self._jobs, self._rows = jobs, rows
        self.endResetModel()
        return True

    def _set_text(self, row: int, column: int, text: str) -> None:
        item = self.item(row, column)
        item.setText(text)
        _decorate(item, column)

    def job(self, row: int) -> Optional[pd.Series]:
        return self._jobs.iloc[row] if 0 <= row < len(self._jobs) else None
