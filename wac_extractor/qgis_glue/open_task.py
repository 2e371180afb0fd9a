"""Opening an existing run in the background: its job table, job tiles, progress, credits and month mosaics.

The same signals as the run's task (``ExtractionTask``), so the dock shows an opened run with the
slots it shows a running one with; nothing is read or drawn on the UI thread but the layers' adding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.jobs.credits import credit_report
from ..core.jobs.opened_run import RunState, results_folder
from ..core.jobs.progress import progress_of
from ..core.jobs.tracker import GeoPackageTracker, Tracker
from .job_rows import display_rows, item_columns
from .layers import job_tiles_layer, to_ui_thread
from .mosaic_feed import MosaicFeed

_log = logging.getLogger(__name__)


class OpenRunTask(QgsTask):
    """``folders``: where the results may be (the dock's output folder first); the first holding them wins."""

    tracker_ready = pyqtSignal(object)  # the job-tile layer (None for a CSV tracker)
    progress_changed = pyqtSignal(object, object, object, object)  # as ExtractionTask's
    mosaics_changed = pyqtSignal(object)
    opened = pyqtSignal(object)  # RunState
    open_failed = pyqtSignal(str)

    def __init__(self, tracker: Tracker, folders: Sequence[Path]):
        super().__init__(f"WAC Extractor: opening {Path(str(tracker.path)).name}", QgsTask.Flag.CanCancel)
        self.tracker = tracker
        self.folders = list(folders)
        self.state: Optional[RunState] = None
        self.error = ""

    def run(self) -> bool:
        try:
            jobs = self.tracker.snapshot()
            folder = results_folder(jobs, self.folders)
            progress = progress_of(jobs, credit_report(jobs))
            layer = job_tiles_layer(self.tracker.path) if isinstance(self.tracker, GeoPackageTracker) else None
            self.tracker_ready.emit(to_ui_thread(layer) if layer is not None else None)
            rows = display_rows(jobs)
            self.progress_changed.emit(progress, jobs, rows, item_columns(rows))
            if folder is not None:
                for shown in MosaicFeed(folder, jobs).add_rows(jobs):
                    if self.isCanceled():
                        return False
                    self.mosaics_changed.emit(shown)
            self.state = RunState(progress, folder or (self.folders[0] if self.folders else None))
            return True
        except Exception as exc:  # a damaged tracker or results: said in the dock, nothing changed
            _log.exception("opening %s", self.tracker.path)
            self.error = f"{type(exc).__name__}: {exc}"
            return False

    def finished(self, result: bool) -> None:
        if result and self.state is not None:
            self.opened.emit(self.state)
        elif self.error:
            self.open_failed.emit(self.error)
