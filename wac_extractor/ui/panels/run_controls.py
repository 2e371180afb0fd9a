"""The dock's always-visible foot: summary and problem, Run/Cancel, progress, credits, failures, the outcome.

It sits outside the scrolled sections, so Run, Cancel and the run's state stay in view however long
the form is. A problem is shown under the summary and marked at the field it names.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

from qgis.PyQt.QtCore import QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ...core.jobs.failures import failure_summary
from ...definitions import settings
from ...definitions.settings import Bound
from .base import Panel, shrinkable

ERROR_STYLE = "border: 2px solid #c62828;"


class RunControls(Panel):
    """``fields()``: every panel's problem fields, to mark the input a problem names."""

    open_run_requested = pyqtSignal()

    def __init__(self, fields: Callable[[], Dict[str, QWidget]], parent=None):
        super().__init__(parent)
        self.fields = fields
        self._marked_field: Optional[QWidget] = None
        self._marked_tooltip = ""
        self.results_folder = ""
        self.column.setContentsMargins(4, 2, 4, 4)  # under the scrolled form, off the dock's edges
        self.summary = QLabel(wordWrap=True)
        self.problem = QLabel(wordWrap=True)
        self.problem.setStyleSheet("color: #c62828;")
        self.column.addWidget(self.summary)
        self.column.addWidget(self.problem)
        self._build_buttons()
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
        outcome_row = QHBoxLayout()
        self.outcome = QLabel(wordWrap=True, visible=False)  # "Finished: 18 of 18, results in <folder>"
        self.open_folder = QPushButton("Open folder", visible=False, toolTip="Open the results folder")
        self.open_folder.clicked.connect(self.open_results_folder)
        outcome_row.addWidget(self.outcome, 1)
        outcome_row.addWidget(self.open_folder)
        self.column.addLayout(outcome_row)
        self.load_settings()

    def _build_buttons(self) -> None:
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.open_run_button = QPushButton("Open run…", toolTip="Open an existing job tracker (.gpkg or .csv)")
        self.open_run_button.clicked.connect(self.open_run_requested)
        shrinkable(self.run_button, self.cancel_button, self.open_run_button)
        run_row.addWidget(self.run_button, 2)
        run_row.addWidget(self.cancel_button, 1)
        run_row.addWidget(self.open_run_button, 1)
        self.column.addLayout(run_row)
        self.cancel_remote = QCheckBox("Cancel stops backend jobs")
        self.cancel_remote.setToolTip(
            "Unticked, Cancel stops this QGIS run only: jobs already on the backend go on, and Run picks them\n"
            "up again. Ticked, they are cancelled on the backend too (no more credits spent); Retry restarts them."
        )
        self.column.addWidget(self.cancel_remote)

    def bound_settings(self) -> List[Bound]:
        return [Bound(settings.CANCEL_REMOTE, self.cancel_remote.isChecked, self.cancel_remote.setChecked)]

    def show_problem(self, problem: str, summary: str = "", running: bool = False, can_run: bool = True) -> None:
        """The problem (or none) under the summary, marked at the field it names; Run only without one.

        ``can_run`` False: nothing is left to run (a finished tracker), so Run is off without a problem."""
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
        self.run_button.setEnabled(not problem and not running and can_run)
        tip = problem or ("A run is in progress" if running else "Start the jobs" if can_run else "Nothing left to run")
        self.run_button.setToolTip(tip)

    def _field_for(self, problem: str) -> Optional[QWidget]:
        return next((widget for prefix, widget in self.fields().items() if problem.startswith(prefix)), None)

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.open_run_button.setEnabled(not running)
        if running:
            self.run_button.setEnabled(False)
            self.progress.setMaximum(0)  # busy until the first snapshot
            self.show_outcome("")

    def show_progress(self, progress) -> None:
        self.progress.setMaximum(max(1, progress.total))
        self.progress.setValue(progress.done)
        waiting = f", {progress.downloading} downloading" if progress.downloading > 0 else ""
        self.progress.setFormat(f"{progress.done}/{progress.total} jobs done{waiting}")  # done: results checked
        failed = failure_summary(progress.jobs) if progress.jobs is not None else ""
        self.failures.setText(failed)
        self.failures.setVisible(bool(failed))

    def show_outcome(self, text: str, folder: str = "") -> None:
        """A run's end (or an opened run's state), with a button that opens its results folder."""
        self.outcome.setText(text)
        self.outcome.setVisible(bool(text))
        self.results_folder = folder
        self.open_folder.setVisible(bool(text and folder))

    def show_state(self, state) -> None:
        """A run's state (``opened_run.RunState``), with the button to its results once there are some."""
        self.show_outcome(state.text(), str(state.results or ""))

    def open_results_folder(self) -> None:
        if self.results_folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.results_folder))

    def show_credits(self, report) -> None:
        if report is None:
            self.credits.setText("")
            return
        self.credits.setText(f"Credits: {report.text()}")
        self.credits.setStyleSheet("color: #c62828;" if report.over_budget else "")

    def show_credits_note(self, note: str) -> None:
        self.credits.setText(f"Credits: {note}")
        self.credits.setStyleSheet("")
