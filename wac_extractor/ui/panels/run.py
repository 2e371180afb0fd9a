"""The dock's run part: summary and problem, Run/Cancel, progress, credits, and the live job table.

The table's menu asks for what touches the map or the project (zoom, layers) through signals; the
dock answers them. A problem is shown under the summary and marked at the field it names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...core.jobs.failures import failure_summary
from ...definitions import LOG_TAG, settings
from ...definitions.settings import Bound
from ..job_model import JobTableModel
from .base import Panel

ERROR_STYLE = "border: 2px solid #c62828;"


class RunPanel(Panel):
    """``fields()``: every panel's problem fields, to mark the input a problem names."""

    zoom_requested = pyqtSignal(int)  # a row of the job table
    tile_layers_requested = pyqtSignal(int)
    bands_requested = pyqtSignal(int, object)  # the row, and its variables (None: all of them)
    job_reset = pyqtSignal()  # Retry put a job back to not started

    def __init__(self, fields: Callable[[], Dict[str, QWidget]], parent=None):
        super().__init__(parent)
        self.fields = fields
        self._marked_field: Optional[QWidget] = None
        self._marked_tooltip = ""
        self.log_dialog: Optional[QDialog] = None
        self._build_controls()
        self._build_table()
        self.load_settings()

    def _build_controls(self) -> None:
        self.summary = QLabel(wordWrap=True)
        self.problem = QLabel(wordWrap=True)
        self.problem.setStyleSheet("color: #c62828;")
        self.column.addWidget(self.summary)
        self.column.addWidget(self.problem)
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        run_row.addWidget(self.run_button, 1)
        run_row.addWidget(self.cancel_button)
        self.column.addLayout(run_row)
        self.cancel_remote = QCheckBox("Cancel stops backend jobs")
        self.cancel_remote.setToolTip(
            "Unticked, Cancel stops this QGIS run only: jobs already on the backend go on, and Run picks them\n"
            "up again. Ticked, they are cancelled on the backend too (no more credits spent); Retry restarts them."
        )
        self.column.addWidget(self.cancel_remote)
        self.progress = QProgressBar(textVisible=True, value=0)
        self.column.addWidget(self.progress)
        self.credits = QLabel(wordWrap=True)
        self.credits.setToolTip(
            "Credits the backend reported for ended jobs, and the run's projection: credits per km2·month of\n"
            "each recipe and sensor, from finished jobs (or the backend's estimate) times the jobs left."
        )
        self.column.addWidget(self.credits)
        self.failures = QLabel(wordWrap=True, visible=False)  # "3 failed: 2 out of memory, ...; 1 no assets"
        self.failures.setStyleSheet("color: #c62828;")
        self.column.addWidget(self.failures)

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
        self.column.addWidget(self.table, 1)

    def bound_settings(self) -> List[Bound]:
        return [Bound(settings.CANCEL_REMOTE, self.cancel_remote.isChecked, self.cancel_remote.setChecked)]

    # --- state of the run ----------------------------------------------------------------------------
    def show_problem(self, problem: str, summary: str = "", running: bool = False) -> None:
        """The problem (or none) under the summary, marked at the field it names; Run only without one."""
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        if self._marked_field is not None:
            self._marked_field.setStyleSheet("")
            self._marked_field.setToolTip(self._marked_tooltip)
            self._marked_field = None
        field = self._field_for(problem) if problem else None
        if field is not None:  # mark the input that needs changing, with the reason as its tooltip
            self._marked_field, self._marked_tooltip = field, field.toolTip()
            field.setStyleSheet(ERROR_STYLE)
            field.setToolTip(problem)
        self.summary.setText(summary)
        self.run_button.setEnabled(not problem and not running)
        self.run_button.setToolTip(problem or ("A run is in progress" if running else "Start the jobs"))

    def _field_for(self, problem: str) -> Optional[QWidget]:
        return next((widget for prefix, widget in self.fields().items() if problem.startswith(prefix)), None)

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self.run_button.setEnabled(False)
            self.progress.setMaximum(0)  # busy until the first snapshot

    def show_progress(self, progress) -> None:
        self.progress.setMaximum(max(1, progress.total))
        self.progress.setValue(progress.done)
        self.progress.setFormat(f"{progress.done}/{progress.total} jobs done")
        failed = failure_summary(progress.jobs) if progress.jobs is not None else ""
        self.failures.setText(failed)
        self.failures.setVisible(bool(failed))

    def show_credits(self, report) -> None:
        if report is None:
            self.credits.setText("")
            return
        self.credits.setText(f"Credits: {report.text()}")
        self.credits.setStyleSheet("color: #c62828;" if report.over_budget else "")

    def show_credits_note(self, note: str) -> None:
        self.credits.setText(f"Credits: {note}")
        self.credits.setStyleSheet("")

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
        tracker_path = Path(str(getattr(self.model.tracker, "path", "")))
        log_file = tracker_path.with_name(tracker_path.stem + "_logs") / f"{job.get('id')}.json"
        parts = [f"{job.get('title')}\nstatus: {job.get('status')}  job id: {job.get('id') or '-'}"]
        if isinstance(job.get("error_message"), str):
            parts.append(job["error_message"])
        if log_file.exists():
            parts.append(log_file.read_text())
        return "\n\n".join(parts)

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
