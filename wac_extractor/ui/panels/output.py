"""The dock's "Output" section: output folder, job tracker, max. time queued, credit cap, per-job budget."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QDoubleSpinBox, QSpinBox, QWidget

from ...definitions import settings
from ...definitions.settings import Bound
from .base import SectionPanel, shrinkable


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
        self.max_credits = QDoubleSpinBox(minimum=0, maximum=10_000_000, decimals=1, suffix=" credits",
                                          specialValueText="no cap")  # fmt: skip
        self.max_credits.setToolTip(
            "Credit cap for the run: a new job starts only while credits spent + the projected cost of the\n"
            "running jobs + its own stay within it. Running jobs are never cancelled; raise it and Run to go on."
        )
        self.form.addRow("Credit cap", self.max_credits)
        self.job_budget = QDoubleSpinBox(minimum=0, maximum=1_000_000, decimals=1, suffix=" credits",
                                         specialValueText="none")  # fmt: skip
        self.job_budget.setToolTip("Sent as each job's openEO budget: a backend that supports it stops a job above it")
        self.form.addRow("Per-job budget", self.job_budget)
        self.load_settings()

    def bound_settings(self) -> List[Bound]:
        return [
            Bound(settings.MAX_QUEUED_HOURS, self.max_queued.value, self.max_queued.setValue),
            Bound(settings.MAX_CREDITS, self.max_credits.value, self.max_credits.setValue),
            Bound(settings.JOB_BUDGET, self.job_budget.value, self.job_budget.setValue),
            Bound(settings.OUTPUT, self.output.filePath, self.output.setFilePath),
            Bound(settings.TRACKER, self.tracker_file.filePath, self.tracker_file.setFilePath),
        ]

    def problem_fields(self) -> Dict[str, QWidget]:
        return {
            "Choose an output folder": self.output,
            "output folder": self.output,
            "tracker folder": self.tracker_file,
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
