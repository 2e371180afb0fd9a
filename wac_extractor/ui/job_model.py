"""Table model over a job tracker for the dock's live job view."""

from __future__ import annotations

from typing import List, Optional

import pandas as pd
from qgis.PyQt.QtGui import QStandardItemModel

from ..qgis_glue.job_rows import COLUMNS, STATUS_COLOURS, decorate, display_rows, item_columns

__all__ = ["COLUMNS", "STATUS_COLOURS", "JobTableModel", "display_rows", "item_columns"]


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
        decorate(item, column)

    @property
    def jobs(self) -> pd.DataFrame:
        """The snapshot shown."""
        return self._jobs

    def job(self, row: int) -> Optional[pd.Series]:
        return self._jobs.iloc[row] if 0 <= row < len(self._jobs) else None
