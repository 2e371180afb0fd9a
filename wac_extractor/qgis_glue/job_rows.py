"""The job table's rows and cells, made off the UI thread (the task) for the dock's model (``ui.job_model``)."""

from __future__ import annotations

from typing import List

import pandas as pd
from qgis.PyQt.QtGui import QBrush, QColor, QStandardItem

from ..core.jobs.failures import CAUSE_COLUMN, LABELS

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
               "error_message", CAUSE_COLUMN)  # fmt: skip


def _message(message, cause) -> str:
    """The message cell: the failure's cause first ("out of memory: ..."), so the table reads by cause."""
    label = LABELS.get(cause) if isinstance(cause, str) else None
    return f"{label}: {_text(message)}" if label else _text(message)


def display_rows(jobs: pd.DataFrame) -> List[tuple]:
    """The table's text, one tuple per job (``COLUMNS`` order); made in the task thread for each snapshot.

    Reads whole columns (``tolist``) rather than a dict per row (``to_dict("records")`` of all 20
    tracker columns): this runs every few seconds in the run's thread, holding the GIL.
    """
    fields = [jobs[name].tolist() if name in jobs.columns else [None] * len(jobs) for name in _ROW_FIELDS]
    return [
        (_text(status), f"S{_text(sentinel)}", " .. ".join(window) if isinstance(window, list) else _text(window),
         _text(tile), _text(backend), _text(job_id), _text(duration), _text(costs), _message(message, cause))
        for status, sentinel, window, tile, backend, job_id, duration, costs, message, cause in zip(*fields)
    ]  # fmt: skip


STATUS, MESSAGE = COLUMNS.index("Status"), COLUMNS.index("Message")


def item_columns(rows: List[tuple]) -> List[List[QStandardItem]]:
    """The table's cells as items, one list per column; built in the task thread for a new job list.

    ``QStandardItem`` is no ``QObject``: made in a worker, it can be put into the UI thread's model.
    """
    columns = [[QStandardItem(row[column]) for row in rows] for column in range(len(COLUMNS))]
    for column in (STATUS, MESSAGE):
        for item in columns[column]:
            decorate(item, column)
    return columns


def decorate(item: QStandardItem, column: int) -> None:
    """What a cell shows besides its text: the status colour, the full message as tooltip."""
    if column == STATUS:
        colour = STATUS_COLOURS.get(item.text())
        item.setBackground(QBrush(colour) if colour is not None else QBrush())
    elif column == MESSAGE:
        item.setToolTip(item.text())
