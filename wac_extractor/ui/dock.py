"""The WAC Extractor dock: wires its panels (AOIs, time and recipe, backends, output, jobs) to the task and the map.

Each panel owns its widgets, settings and validation (``panels/``); ``RunMap`` puts a run on the map
and in the project; ``RunOpener`` shows an existing tracker. The dock keeps the run's state (plan,
task, tracker), previews the plan and starts, cancels and ends runs. Run, Cancel, the progress and
the credits (``RunControls``) sit under the scrolled sections, always in view.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsProject
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSlot
from qgis.PyQt.QtWidgets import QFileDialog, QScrollArea, QVBoxLayout, QWidget

from ..core.jobs.backend_spec import check_writable
from ..core.jobs.opened_run import RunState
from ..core.jobs.progress import progress_of, result_counts
from ..core.jobs.run_setup import RunOptions
from ..core.jobs.tracker import TrackerError, open_tracker
from ..core.planning.job_table import plan_aois, summarize
from ..core.planning.tiling import area_km2
from ..definitions import LOG_TAG
from ..qgis_glue.task import ExtractionTask
from .credits_line import CreditsLine
from .panels.aoi import AoiPanel
from .panels.backends import BackendPanel
from .panels.output import OutputPanel
from .panels.run import RunPanel
from .panels.run_controls import RunControls
from .panels.sample import SamplePanel
from .panels.time_recipe import TimeRecipePanel
from .run_map import RunMap
from .run_opener import TRACKER_SUFFIXES, RunOpener
from .wheel_guard import WheelGuard, guard_wheel

HOUR_SECONDS = 3600  # the unit of "Max. time queued"

# What tests, benches and tools reach on the dock itself: plain attributes pointing at the parts' own.
SHARED_NAMES = {
    "aoi_panel": ("aois", "draw_rect", "draw_poly", "from_extent", "from_selection", "layer_combo", "aoi_list",
                  "remove_aoi", "clear_aois", "rect_tool", "poly_tool", "tile_band", "aoi_band", "add_aoi",
                  "add_canvas_geometry", "add_selected_features", "remove_selected_aoi", "clear_all_aois"),
    "time_panel": ("start_date", "end_date", "window_months", "recipe", "s1", "s2", "cloud", "cloud_label", "tile_km",
                   "request"),
    "output_panel": ("output", "tracker_file", "max_queued", "max_credits", "job_budget"),
    "run_controls": ("summary", "problem", "run_button", "cancel_button", "cancel_remote", "progress", "credits",
                     "open_run_button", "outcome", "open_folder"),
    "run_panel": ("model", "table", "job_menu", "retry_job", "job_log_text", "show_job_log"),
    "run_map": ("tile_action", "zoom_to_job", "open_tile_layers", "open_tile_layers_of", "add_band_layers"),
}  # fmt: skip


class WacDock(QgsDockWidget):
    can_retry = staticmethod(RunPanel.can_retry)
    band_list = staticmethod(RunPanel.band_list)

    def __init__(self, iface, parent=None):
        super().__init__("WAC Extractor", parent)
        self.setObjectName("WacExtractorDock")
        self.setMinimumWidth(240)  # fits beside the Layers panel; long forms scroll vertically
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.plan = None
        self.task: Optional[ExtractionTask] = None
        self.tracker = None
        self._last_progress = None
        self._build()
        self.opener = RunOpener(self, self.result_folders, parent=self)
        self.opener.opened.connect(self.on_opened)
        self.opener.failed.connect(lambda message: self._show_problem(message))
        self.run_controls.open_run_requested.connect(self.choose_run)
        self.tracker_file.fileChanged.connect(self.open_run_at_field)
        QgsProject.instance().cleared.connect(self.opener.forget)
        QgsProject.instance().readProject.connect(self.opener.open_project_run)
        self.setAcceptDrops(True)  # a tracker dropped on the dock opens
        self.preview_timer = QTimer(self, singleShot=True, interval=300, timeout=self.update_preview)
        for panel in (self.aoi_panel, self.time_panel, self.backends):
            panel.changed.connect(self.schedule_preview)
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button.clicked.connect(self.cancel_run)
        self.run_panel.zoom_requested.connect(self.run_map.zoom_to_job)
        self.run_panel.tile_layers_requested.connect(self.run_map.open_tile_layers)
        self.run_panel.bands_requested.connect(self.run_map.add_band_layers)
        self.run_panel.job_reset.connect(self._job_reset)
        self.update_preview()
        QTimer.singleShot(0, self.opener.open_at_start)

    def _build(self) -> None:
        self.aoi_panel = AoiPanel(self.iface)
        self.time_panel = TimeRecipePanel()
        self.backends = BackendPanel()
        self.output_panel = OutputPanel()
        self.run_panel = RunPanel(self.results_root)
        self.run_controls = RunControls(self.problem_fields)
        sample = SamplePanel(self.iface, self.output_panel, self.aoi_panel.layer_combo)  # panels/sample.py
        self.panels = (self.aoi_panel, self.time_panel, self.backends, self.output_panel, self.run_panel, sample,
                       self.run_controls)  # fmt: skip
        body = QWidget()
        layout = QVBoxLayout(body)
        for panel in self.panels[:-1]:
            layout.addWidget(panel, 1 if panel is self.run_panel else 0)  # the job table takes the height left
        self.scroll = scroll = QScrollArea(widgetResizable=True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        outer = QWidget()
        column = QVBoxLayout(outer)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(scroll, 1)
        column.addWidget(self.run_controls)  # outside the scroll: always in view
        self.setWidget(outer)
        self.wheel_guard = WheelGuard(self)
        guard_wheel(outer, self.wheel_guard)
        self.credits_line = CreditsLine(self.iface, self.backends, self.output_panel, self.run_controls,
                                        running=lambda: self.task is not None)  # fmt: skip
        self.run_map = RunMap(self.iface, self.run_panel.model, self.output_panel.output.filePath, parent=self)
        for part, names in SHARED_NAMES.items():
            for name in names:
                setattr(self, name, getattr(getattr(self, part), name))

    @property
    def jobs_layer(self):
        return self.run_map.jobs_layer

    @property
    def _log_dialog(self):
        return self.run_panel.log_dialog

    def save_settings(self) -> None:
        for panel in self.panels:
            panel.save_settings()  # backends: URLs, methods and auth-config ids, never a secret

    def problem_fields(self) -> Dict[str, QWidget]:
        fields: Dict[str, QWidget] = {}
        for panel in (self.time_panel, self.aoi_panel, self.backends, self.output_panel):
            fields.update(panel.problem_fields())
        return fields

    def _show_problem(self, problem: str, summary: str = "") -> None:
        state = self.opener.state if self.opener.is_open(self.tracker_file.filePath()) else None
        can_run = state is None or state.work_left > 0
        self.run_controls.show_problem(problem, summary, running=self.task is not None, can_run=can_run)

    # --- preview -------------------------------------------------------------------------------
    def schedule_preview(self, *args) -> None:
        self.preview_timer.start()

    def update_preview(self) -> None:
        if sip.isdeleted(self.tile_band):  # the map canvas went first (QGIS closing): nothing to draw on
            return
        if self.task is not None:  # the running plan is fixed; the preview is for the next run
            name = Path(self.tracker.path).name
            return self._show_problem("", summary=f"Running {name}: changes here apply to the next run.")
        self.cloud.setEnabled(self.s2.isChecked())
        self.aoi_panel.clear_tiles()
        self.plan = None
        tracker_path = self.tracker_file.filePath()
        if tracker_path and Path(tracker_path).exists():
            if not self.opener.is_open(tracker_path) or self.opener.state is None:
                return self._show_problem("", summary=self.opener.waiting_text(tracker_path))
            self.credits_line.show_for_tracker(tracker_path, self.opener.state.progress.credits)
            name, state = Path(tracker_path).name, self.opener.state
            return self._show_problem("", summary=f"Tracker {name}: {state.progress.total} jobs.")  # state: below
        try:
            aois = self.aoi_panel.shapely_aois()
            self.plan = plan_aois(self.time_panel.request(), aois, tile_size=self.time_panel.tile_size_m())
            self.backends.check_dates(*self.time_panel.dates(), self.time_panel.collections())
        except ValueError as exc:
            return self._show_problem(str(exc))
        self.aoi_panel.show_tiles(self.plan)
        self._show_problem("", summary=f"{summarize(self.plan)}; AOIs {area_km2(aois):,.1f} km².")
        self.run_controls.show_credits_note("no estimate yet (the first jobs' costs, or the backend's estimate)")

    def show_credits(self, report) -> None:
        self.credits_line.show(report)

    # --- run -----------------------------------------------------------------------------------
    def start_run(self) -> None:
        """Check what can be checked at once, then hand everything slow to the task.

        Creating the tracker (a GeoPackage of every job with its footprint) took 0.1-0.4 s for 1,000 to
        10,000 jobs, and reading it back for the table as long: both happen in the task now, so the
        click returns at once. Problems the user can fix here (no area, an unwritable folder) are
        still found first and marked at their field.
        """
        tracker_path = self.output_panel.tracker_path()
        try:
            output = self.output_panel.output_folder()
            tracker = open_tracker(tracker_path)
            plan = None
            if not tracker.exists():
                if self.plan is None:
                    return self._show_problem("Nothing to run: add an area of interest.")
                check_writable(Path(tracker_path).parent, "tracker folder")
                plan = self.plan
            check_writable(Path(output), "output folder")
            job_options = self.output_panel.options_text()
            self._run_cancelled = threading.Event()
            backends = self.backends.backends_for_run(cancelled=self._run_cancelled.is_set)
        except (ValueError, OSError, TrackerError) as exc:
            return self._show_problem(str(exc))
        self.save_settings()
        self.tracker = tracker
        self.tracker_file.setFilePath(tracker_path)
        self.model.set_tracker(tracker, refresh=False)  # the task sends the jobs as soon as it has read them
        self.run_map.start(tracker, tracker_path)
        self.opener.shown_by_run(tracker_path)
        max_queued = self.max_queued.value() * HOUR_SECONDS or None
        self.credits_line.run_started()
        options = RunOptions(5.0, max_queued, self.output_panel.credit_cap(), self.output_panel.job_budget_credits(),
                             job_options, self.output_panel.reruns.value())  # fmt: skip
        self.task = ExtractionTask(f"WAC Extractor: {Path(tracker_path).name}", tracker, Path(output), backends,
                                   options, plan=plan)  # fmt: skip
        self.task.tracker_ready.connect(self.on_tracker_ready)
        self.task.progress_changed.connect(self.on_progress)
        self.task.mosaics_changed.connect(self.on_mosaics_changed)
        self.task.run_finished.connect(self.on_finished)
        self.task.run_failed.connect(self.on_failed)
        self.task.job_event.connect(self.on_job_event)
        self.run_controls.set_running(True)
        self.update_preview()
        QgsApplication.taskManager().addTask(self.task)

    def cancel_run(self) -> None:
        if self.task is not None:
            self._run_cancelled.set()  # also ends a sign-in the run is waiting for
            self.task.cancel_remote = self.cancel_remote.isChecked()
            self.task.cancel()

    @pyqtSlot(object)
    def on_tracker_ready(self, tiles_layer) -> None:
        self.run_map.show_jobs_layer(tiles_layer)

    @pyqtSlot(object, object, object, object)
    def on_progress(self, progress, jobs, rows, columns) -> None:
        self._last_progress = progress
        self.run_controls.show_progress(progress)
        changed = self.model.set_jobs(jobs, rows, columns)
        self.show_credits(progress.credits)
        self.backends.run_signed_in()
        if changed:
            self.run_map.repaint_jobs()

    @pyqtSlot(object)
    def on_job_event(self, event) -> None:
        """What the run says once (e.g. a backend's limit of concurrent jobs) goes to the message bar."""
        if event.status == "notice":
            self.iface.messageBar().pushMessage(LOG_TAG, event.message, Qgis.MessageLevel.Info, 0)

    @pyqtSlot(object)
    def on_mosaics_changed(self, shown) -> None:
        self.run_map.show_mosaics(shown)

    def _job_reset(self) -> None:
        if self.task is None:  # Retry outside a run: the preview offers to resume the tracker
            if self.opener.state is not None:
                self.opener.state = RunState(progress_of(self.model.jobs), self.opener.state.folder)
                self.run_controls.show_state(self.opener.state)
            self.update_preview()

    @pyqtSlot(object)
    def on_finished(self, summary) -> None:
        self._run_ended()  # the table already shows the run's last snapshot, sent by the task
        if summary is None:
            return
        state = "cancelled" if summary.cancelled else "finished"
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary.counts.items()))
        clean = not summary.cancelled and set(summary.counts) <= {"finished"} and not summary.downloads_failed
        results = f"{summary.downloaded} results loaded"
        if summary.downloads_failed and self.tracker is not None:  # finished on the backend is not a result here
            results = str(result_counts(self.tracker))
        if summary.cap_reached:
            state, clean = "ended at the credit cap", False
            results += ". " + summary.cap_message().rstrip(".")
        self.iface.messageBar().pushMessage(
            LOG_TAG,
            f"Run {state} ({counts}); {results}.",
            Qgis.MessageLevel.Success if clean else Qgis.MessageLevel.Warning,
            8 if clean else 0,
        )
        QgsMessageLog.logMessage(f"Run {state}: {counts}; {results}", LOG_TAG, Qgis.MessageLevel.Info)

    @pyqtSlot(str)
    def on_failed(self, message: str) -> None:
        self._run_ended()
        if self.tracker is not None and self.tracker.exists():
            self.model.refresh()  # the run may have failed before its first snapshot
        self.iface.messageBar().pushMessage(
            LOG_TAG, f"Run failed: {message}. Run again to resume.", Qgis.MessageLevel.Critical, 0
        )

    def _run_ended(self) -> None:
        self.task = None
        if self._last_progress is not None and self.tracker is not None:
            state = RunState(self._last_progress, Path(self.output_panel.output_folder()))
            self.opener.shown_by_run(str(self.tracker.path), state)
            self.run_controls.show_state(state)
        self.run_controls.set_running(False)
        self.update_preview()

    # --- an existing run -----------------------------------------------------------------------------
    def results_root(self) -> str:
        """The folder the shown tracker's results are in (an opened run's, found; else the output folder)."""
        state = getattr(self, "opener", None) and self.opener.state
        return str(state.folder) if state and state.folder else self.output_panel.output.filePath()

    def result_folders(self) -> list:
        """Where an opened tracker's results may be: the output folder, then the tracker's own folder."""
        folders = [Path(self.output_panel.output.filePath()), Path(self.tracker_file.filePath()).parent]
        return [folder for folder in folders if str(folder) not in ("", ".")]

    def open_run_at_field(self, *args) -> None:
        """The tracker field names an existing tracker: show it (once); a new name plans a new run."""
        path = self.tracker_file.filePath()
        if not (path and Path(path).is_file()):
            self.opener.forget()
        elif self.opener.open(path):
            self.run_controls.show_outcome("")
        self.schedule_preview()

    def choose_run(self) -> None:
        start = self.tracker_file.filePath() or self.output_panel.output.filePath()
        path, _ = QFileDialog.getOpenFileName(self, "Open a run's job tracker", start,
                                              "Job trackers (*.gpkg *.csv)")  # fmt: skip
        if path:
            self.tracker_file.setFilePath(path)  # fileChanged opens another tracker;
            self.open_run_at_field()  # the same one, no longer shown in this project, too

    @pyqtSlot(object)
    def on_opened(self, state: RunState) -> None:
        self.run_controls.show_state(state)
        self.update_preview()

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].toLocalFile().lower().endswith(TRACKER_SUFFIXES):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.tracker_file.setFilePath(event.mimeData().urls()[0].toLocalFile())
        event.acceptProposedAction()

    def disconnect_project(self) -> None:
        """The plugin unloads: a project read later is no business of this dock's (it would reopen its run)."""
        QgsProject.instance().cleared.disconnect(self.opener.forget)
        QgsProject.instance().readProject.disconnect(self.opener.open_project_run)
        self.opener.forget()  # and its tasks: no layer lands in a project after the plugin went

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.aoi_panel.reset_bands()
        super().closeEvent(event)
