"""The background ``QgsTask`` that drives the runner; the UI never waits on the network."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from osgeo import gdal, ogr, osr  # noqa: F401  (see below)
from qgis.core import Qgis, QgsMessageLog, QgsTask, QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal, pyqtSlot

from ..core.jobs.progress import JobEvent, RunProgress, RunSummary
from ..core.jobs.run_setup import RunOptions, prepare_run
from ..core.jobs.tracker import GeoPackageTracker, Tracker
from ..core.platform.heap import heap_frozen
from ..core.platform.priority import call_in_background_thread
from ..definitions import LOG_TAG
from .job_rows import display_rows, item_columns
from .layers import job_tiles_layer, to_ui_thread
from .mosaic_feed import MosaicFeed

# GDAL's Python modules are imported above, with this module (when the dock first opens), on the UI
# thread: the core imports them where it first needs them, and that first import inside a run's task
# held the GIL for 70-500 ms (a measured UI stall at the start of a first run, when QGIS's Processing
# had not imported them yet).

_log = logging.getLogger(__name__)


class ExtractionTask(QgsTask):
    """Runs a tracker's jobs; reports progress, job events and ready-to-load composites by signal.

    Signals are delivered to the main thread (queued connections), where the dock updates its
    table and loads layers. Cancel (task manager or dock) stops the runner within seconds.
    """

    # The tracker file exists (created by the task when given a plan); with it the job-tile layer, opened
    # here (a GeoPackage layer with its renderer cost the UI thread ~25 ms), or None for a CSV tracker.
    tracker_ready = pyqtSignal(object)
    # RunProgress, jobs snapshot (no footprints), table rows, table items when the job list is new (else None)
    progress_changed = pyqtSignal(object, object, object, object)
    job_event = pyqtSignal(object)  # JobEvent
    mosaics_changed = pyqtSignal(object)  # [(MosaicUpdate, new layer or None)] (mosaic_feed.Shown)
    run_finished = pyqtSignal(object)  # RunSummary or None
    run_failed = pyqtSignal(str)
    _ui_ping = pyqtSignal()  # posted after tracker_ready: its slot runs once the UI thread has handled that

    UI_WAIT_S = 1.0  # at most, for the UI thread to show the job tiles before the run's own work starts

    def __init__(self, description: str, tracker: Tracker, output_dir: Path, backends: Sequence[tuple],
                 options: Optional[RunOptions] = None, *, plan: Optional[pd.DataFrame] = None,
                 cancel_remote: bool = False, **option_values):  # fmt: skip
        """``plan``: the job table of a new tracker, written here rather than on the UI thread.

        ``options`` (or its fields as keywords: ``poll_interval=0.3``) as for every run (``prepare_run``).
        """
        super().__init__(description, QgsTask.Flag.CanCancel)
        self._table_index: Optional[pd.Index] = None  # the jobs of the last snapshot sent
        self.cancel_remote = cancel_remote
        self.feed: Optional[MosaicFeed] = None
        self.summary: Optional[RunSummary] = None
        self.error: Optional[str] = None
        self._ui_caught_up = threading.Event()
        self._ui_ping.connect(self._on_ui_ping)
        options = options or RunOptions(**option_values)
        self.runner = prepare_run(tracker, output_dir, backends, options, plan=plan,
                                  on_progress=self._on_progress, on_event=self._on_event)  # fmt: skip

    def _tiles_layer(self) -> Optional[QgsVectorLayer]:
        tracker = self.runner.tracker
        return to_ui_thread(job_tiles_layer(tracker.path)) if isinstance(tracker, GeoPackageTracker) else None

    def _let_ui_show_tiles(self) -> None:
        """Wait until the UI thread has put the job tiles in the project (at most :data:`UI_WAIT_S`).

        Adding the layer took QGIS Desktop about 27 ms on the CPU; the tracker snapshot below, read meanwhile, held
        the GIL against it (a 56 ms stall in the Desktop bench). Signals from one thread arrive in order,
        so the ping's slot runs after the dock's.
        """
        if self.receivers(self.tracker_ready) > 0:
            self._ui_ping.emit()
            self._ui_caught_up.wait(self.UI_WAIT_S)

    @pyqtSlot()
    def _on_ui_ping(self) -> None:
        self._ui_caught_up.set()

    def _on_progress(self, progress: RunProgress) -> None:
        if progress.total:
            self.setProgress(100.0 * progress.done / progress.total)
        # The snapshot was read and turned into table text (and, for a new job list, table items) here,
        # in the worker thread: the job table costs the UI thread neither a read nor per-cell work.
        rows = display_rows(progress.jobs)
        columns = None
        if not progress.jobs.index.equals(self._table_index):
            columns, self._table_index = item_columns(rows), progress.jobs.index
        self.progress_changed.emit(progress, progress.jobs, rows, columns)

    def _on_event(self, event: JobEvent) -> None:
        self.job_event.emit(event)
        if event.status == "downloaded" and self.feed is not None:
            row = self.runner.tracker.get_by_indices([event.index]).iloc[0]
            try:
                shown = self.feed.add_row(row)  # VRTs written and new layers opened here, not on the UI thread
            except Exception as exc:  # the result is kept and checked; only its layers are missing: say so
                _log.exception("layers of %s", event.title)
                message = f"{event.title}: downloaded, but its layers could not be built: {exc}"
                QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Warning)
                return
            if shown:
                self.mosaics_changed.emit(shown)
        if event.status == "notice":
            QgsMessageLog.logMessage(event.message, LOG_TAG, Qgis.MessageLevel.Warning)
        if event.status in ("error", "download_failed", "skipped"):
            QgsMessageLog.logMessage(
                f"{event.title}: {event.status}: {event.message}", LOG_TAG, Qgis.MessageLevel.Warning
            )

    def _show_earlier_results(self) -> None:
        """Results of an earlier run of this tracker into the mosaics (same files: no duplicates)."""
        try:
            for shown in self.feed.add_rows(self.runner.tracker.get_by_status(["finished"])):
                self.mosaics_changed.emit(shown)
        except Exception:  # the run goes on; the earlier results stay on disk and in the tracker
            _log.exception("earlier results not shown")

    def run(self) -> bool:
        return call_in_background_thread(self._run, "wac-run")  # the download threads inherit its priority

    def _run(self) -> bool:
        try:
            with heap_frozen():
                self.runner.write_plan()
                self.tracker_ready.emit(self._tiles_layer())
                self._let_ui_show_tiles()
                self.feed = MosaicFeed(self.runner.output_dir, self.runner.tracker.snapshot())
                earlier = threading.Thread(target=self._show_earlier_results, name="wac-mosaics", daemon=True)
                earlier.start()  # alongside the run: a resumed run starts its jobs at once
                self.summary = self.runner.run()
                earlier.join()
            return not self.summary.cancelled
        except Exception as exc:  # reported in the message bar; the tracker keeps every job
            _log.exception("run failed")
            self.error = f"{type(exc).__name__}: {exc}"
            return False

    def cancel(self) -> None:
        self.runner.cancel(cancel_remote=self.cancel_remote)
        if self.cancel_remote and self.status() == QgsTask.TaskStatus.Queued:
            # QGIS drops a queued task without running it, and the backend's jobs would go on: let it
            # start instead; the stopped run cancels them first and then ends at once.
            return
        super().cancel()

    def finished(self, result: bool) -> None:
        if self.error:
            QgsMessageLog.logMessage(f"Run failed: {self.error}", LOG_TAG, Qgis.MessageLevel.Critical)
            self.run_failed.emit(self.error)
        else:
            self.run_finished.emit(self.summary)
