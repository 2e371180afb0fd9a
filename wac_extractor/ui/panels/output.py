"""The dock's "Output" section: output folder, job tracker, max. time queued, credits, job options, re-runs."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtGui import QFontMetrics
from qgis.PyQt.QtWidgets import QDoubleSpinBox, QLabel, QPlainTextEdit, QPushButton, QSpinBox, QWidget

from ...core.jobs.job_options import DEFAULT_MEMORY, parse_options
from ...definitions import settings
from ...definitions.settings import Bound
from .base import SectionPanel, shrinkable

DEFAULTS_TEXT = "\n".join(f"{key}={value}" for key, value in DEFAULT_MEMORY.items())


class OutputPanel(SectionPanel):
    def __init__(self, parent=None):
        super().__init__("Output", parent)
        self.output = QgsFileWidget(storageMode=QgsFileWidget.StorageMode.GetDirectory)
        self.form.addRow("Output folder", self.output)
        self.tracker_file = QgsFileWidget(
            storageMode=QgsFileWidget.StorageMode.SaveFile, filter="GeoPackage (*.gpkg);;CSV (*.csv)"
        )
        self.tracker_file.setToolTip("A new file starts a run; an existing tracker is resumed")
        self.form.addRow("Job tracker", self.tracker_file)
        shrinkable(self.output, self.tracker_file)
        self.max_queued = QSpinBox(minimum=0, maximum=168, suffix=" h", specialValueText="never")
        self.max_queued.setToolTip("Cancel a job the backend keeps queued longer than this; Retry queues it again")
        self.form.addRow("Max. time queued", self.max_queued)
        self.max_credits = self._credits_row(
            "Credit cap", "no cap", 10_000_000,
            "Credit cap for the run: a new job starts only while credits spent + the projected cost of the\n"
            "running jobs + its own stay within it. Running jobs are never cancelled; raise it and Run to go on.",
        )  # fmt: skip
        self.job_budget = self._credits_row(
            "Per-job budget", "none", 1_000_000,
            "Sent as each job's openEO budget: a backend that supports it stops a job above it",
        )  # fmt: skip
        self.credit_balance = self._credits_row(
            "Credit balance", "as the backend says", 10_000_000,
            "Your credit balance, where the backend does not report one (CDSE shows it only on its billing page):\n"
            "a run projected to need more is warned about.",
        )  # fmt: skip
        self.reruns = QSpinBox(minimum=0, maximum=10, suffix=" more times")
        self.reruns.setToolTip(
            "A job the backend lost (a backend error, a result without assets or failing the check) runs again\n"
            "as a new job; out of memory, with 1.5x the memory options. Every attempt is kept in the tracker."
        )
        self.form.addRow("Re-run lost jobs", self.reruns)
        self.job_options = QPlainTextEdit(placeholderText=DEFAULTS_TEXT)
        self.job_options.setMaximumHeight(QFontMetrics(self.job_options.font()).lineSpacing() * 4 + 12)
        self.job_options.setToolTip(
            "openEO job options sent with every job, one KEY=VALUE per line (a tracker row's job_options win).\n"
            "Out-of-memory errors are cured with more memory: executor-memory, executor-memoryOverhead,\n"
            "python-memory. Empty: the backend's defaults (CDSE: executor-memory 2G, -Overhead 1800m)."
        )
        fill = QPushButton("CDSE defaults", toolTip="Write CDSE's default memory options, to edit them")
        fill.clicked.connect(lambda: self.job_options.setPlainText(DEFAULTS_TEXT))
        shrinkable(fill)
        # Under its label, over the whole width: beside it, at 300 px, "executor-memoryOverhead" broke mid-word.
        self.form.addRow(QLabel("Job options"))
        self.form.addRow(self.job_options)
        self.form.addRow(fill)
        self.load_settings()

    def _credits_row(self, label: str, zero_text: str, maximum: float, tooltip: str) -> QDoubleSpinBox:
        """A credits field whose 0 reads as ``zero_text`` ("no cap", "none"...)."""
        box = QDoubleSpinBox(minimum=0, maximum=maximum, decimals=1, suffix=" credits", specialValueText=zero_text)
        box.setToolTip(tooltip)
        self.form.addRow(label, box)
        return box

    def bound_settings(self) -> List[Bound]:
        return [
            Bound(settings.MAX_QUEUED_HOURS, self.max_queued.value, self.max_queued.setValue),
            Bound(settings.MAX_CREDITS, self.max_credits.value, self.max_credits.setValue),
            Bound(settings.JOB_BUDGET, self.job_budget.value, self.job_budget.setValue),
            Bound(settings.CREDIT_BALANCE, self.credit_balance.value, self.credit_balance.setValue),
            Bound(settings.RERUNS, self.reruns.value, self.reruns.setValue),
            Bound(settings.JOB_OPTIONS, self.job_options.toPlainText, self.job_options.setPlainText),
            Bound(settings.OUTPUT, self.output.filePath, self.output.setFilePath),
            Bound(settings.TRACKER, self.tracker_file.filePath, self.tracker_file.setFilePath),
        ]

    def problem_fields(self) -> Dict[str, QWidget]:
        return {
            "Choose an output folder": self.output,
            "output folder": self.output,
            "tracker folder": self.tracker_file,
            "job option": self.job_options,
            "memory": self.job_options,
        }

    def output_folder(self) -> str:
        """The output folder; raises ValueError (named at its field) when there is none."""
        if not self.output.filePath():
            raise ValueError("Choose an output folder.")
        return self.output.filePath()

    def tracker_path(self) -> str:
        """The tracker file, by default ``jobs.gpkg`` in the output folder."""
        return self.tracker_file.filePath() or str(Path(self.output.filePath()) / "jobs.gpkg")

    def credit_cap(self) -> Optional[float]:
        return self.max_credits.value() or None

    def job_budget_credits(self) -> Optional[float]:
        return self.job_budget.value() or None

    def options_text(self) -> Dict[str, object]:
        """The job options typed; raises ValueError naming the line to fix."""
        return parse_options(self.job_options.toPlainText().splitlines())

    def balance(self) -> Optional[float]:
        return self.credit_balance.value() or None
