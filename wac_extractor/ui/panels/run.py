"""The dock's live job table: its columns, its menu, a job's log, Retry.

The table's menu asks for what touches the map or the project (zoom, layers) through signals; the
dock answers them. The header's menu shows or hides columns (status, sensor, tile, window and
credits by default), remembered in the settings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pandas as pd
from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMenu,
    QPlainTextEdit,
    QTableView,
    QVBoxLayout,
)

from ...definitions import LOG_TAG, settings
from ..job_model import COLUMNS, JobTableModel
from .base import Panel

# What openEO backends report under a job's ``usage`` (openeo's job manager makes each a tracker column).
USAGE_COLUMNS = ("duration", "cpu", "memory", "max_executor_memory", "input_pixel", "network_received", "sentinelhub")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


class RunPanel(Panel):
    """The job table of the current or opened run."""

    zoom_requested = pyqtSignal(int)  # a row of the job table
    tile_layers_requested = pyqtSignal(int)
    bands_requested = pyqtSignal(int, object)  # the row, and its variables (None: all of them)
    job_reset = pyqtSignal()  # Retry put a job back to not started

    def __init__(self, results_folder: Callable[[], str], parent=None):
        """``results_folder()``: the folder the tracker's result files are relative to."""
        super().__init__(parent)
        self.results_folder = results_folder
        self.log_dialog: Optional[QDialog] = None
        self._build_table()

    def _build_table(self) -> None:
        self.model = JobTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)  # a double-click shows the job's log
        # Sized to the contents when the job list changes (JobTableModel.modelReset), not on every status
        # change: ResizeToContents re-measured the cells on each snapshot, stalling the UI.
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setResizeContentsPrecision(20)  # size columns from 20 rows, not all
        self.model.modelReset.connect(self.table.resizeColumnsToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(140)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self.job_menu)
        self.table.doubleClicked.connect(lambda index: self.show_job_log(index.row()))
        header = self.table.horizontalHeader()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self.column_menu)
        self.show_columns(settings.JOB_COLUMNS.read().split(","))
        self.column.addWidget(self.table, 1)

    # --- columns ---------------------------------------------------------------------------------------
    def shown_columns(self) -> List[str]:
        return [name for i, name in enumerate(COLUMNS) if not self.table.isColumnHidden(i)]

    def show_columns(self, names: List[str]) -> None:
        shown = [name for name in names if name in COLUMNS] or ["Status"]  # never an empty table
        for i, name in enumerate(COLUMNS):
            self.table.setColumnHidden(i, name not in shown)

    def toggle_column(self, name: str, shown: bool) -> None:
        names = [n for n in self.shown_columns() if n != name] + ([name] if shown else [])
        self.show_columns(names)
        settings.JOB_COLUMNS.write(",".join(self.shown_columns()))

    def column_menu(self, position) -> None:
        menu = QMenu(self.table)
        for name in COLUMNS:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name in self.shown_columns())
            action.toggled.connect(lambda checked, n=name: self.toggle_column(n, checked))
        menu.exec(self.table.horizontalHeader().viewport().mapToGlobal(position))

    # --- job table -------------------------------------------------------------------------------------
    def job_menu(self, position) -> None:
        row = self.table.indexAt(position).row()
        job = self.model.job(row)
        if job is None:
            return
        menu = QMenu(self.table)
        menu.addAction("Show log / message", lambda: self.show_job_log(row))
        menu.addAction("Zoom to tile", lambda: self.zoom_requested.emit(row))
        tile_layers = menu.addAction("Open tile layers", lambda: self.tile_layers_requested.emit(row))
        tile_layers.setEnabled(job.get("result_status") == "ok")
        retry = menu.addAction("Retry job", lambda: self.retry_job(row))
        retry.setEnabled(self.can_retry(job))
        has_result = job.get("result_status") == "ok"
        band_menu = menu.addMenu("Add band")
        band_menu.setEnabled(has_result)
        for base, variables in self.band_list(job).items():
            target = band_menu.addMenu(base) if len(variables) > 1 else band_menu
            for variable in variables:
                target.addAction(variable, lambda v=variable: self.bands_requested.emit(row, [v]))
        all_bands = menu.addAction("Add all bands", lambda: self.bands_requested.emit(row, None))
        all_bands.setEnabled(has_result)
        menu.exec(self.table.viewport().mapToGlobal(position))

    @staticmethod
    def can_retry(job) -> bool:
        return (
            job.get("status") in ("error", "start_failed", "skipped", "canceled")
            or job.get("result_status") == "failed"
        )

    def retry_job(self, row: int) -> None:
        job = self.model.job(row)
        if job is None or not self.can_retry(job):
            return
        self.model.tracker.reset_job(int(job.name))
        self.model.refresh()
        QgsMessageLog.logMessage(
            f"{job.get('title')}: will be created again on the next run", LOG_TAG, Qgis.MessageLevel.Info
        )
        self.job_reset.emit()

    @staticmethod
    def band_list(job) -> Dict[str, List[str]]:
        """The result's variables by band: {"B04": ["B04_P10", ..., "B04_M3"], "VH_VV": [...]}."""
        from ...core.recipes.process_graphs import expected_variables

        grouped: Dict[str, List[str]] = {}
        for variable in expected_variables(job):
            base = variable.rsplit("_", 1)[0] if re.search(r"_(P\d+|M\d+)$", variable) else variable
            grouped.setdefault(base, []).append(variable)
        return grouped

    def job_log_text(self, job) -> str:
        """A job's state, what it cost and used (as the backend reported), its files, its message and log."""
        tracker_path = Path(str(getattr(self.model.tracker, "path", "")))
        log_file = tracker_path.with_name(tracker_path.stem + "_logs") / f"{job.get('id')}.json"
        head = f"status: {job.get('status')}  job id: {job.get('id') or '-'}  backend: {_text(job.get('backend_name'))}"
        parts = [f"{job.get('title')}\n{head}"]
        costs = pd.to_numeric(job.get("costs"), errors="coerce")
        figures = [] if pd.isna(costs) else [f"costs: {costs:g} credits"]
        figures += [f"{key}: {job[key]}" for key in USAGE_COLUMNS if _text(job.get(key))]
        if figures:
            parts.append("\n".join(figures))
        files = self.result_files(job)
        if files:
            parts.append("files:\n" + "\n".join(files))
        if isinstance(job.get("error_message"), str):
            parts.append(job["error_message"])
        if log_file.exists():
            parts.append(log_file.read_text())
        return "\n\n".join(parts)

    def result_files(self, job) -> List[str]:
        """The job's checked result files with their sizes, where they are on disk."""
        cell = job.get("result_files")
        folder = Path(self.results_folder())
        lines = []
        for relative in json.loads(cell) if isinstance(cell, str) and cell else []:
            path = folder / relative
            size = f"{path.stat().st_size / 1e6:,.1f} MB" if path.exists() else "missing"
            lines.append(f"  {path} ({size})")
        return lines

    def show_job_log(self, row: int) -> None:
        job = self.model.job(row)
        if job is None:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Job {job.get('id') or job.name}")
        layout = QVBoxLayout(dialog)
        text = QPlainTextEdit(self.job_log_text(job), readOnly=True)
        layout.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout.addWidget(buttons)
        dialog.resize(640, 400)
        dialog.show()
        self.log_dialog = dialog  # keep a reference while it is open
