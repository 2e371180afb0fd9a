"""The WAC Extractor dock: wires its panels (AOIs, time and recipe, backends, output, run) to the task and the map.

Each panel owns its widgets, settings and validation (``panels/``); ``RunMap`` puts a run on the map
and in the project. The dock keeps the run's state (plan, task, tracker), previews the plan and
starts, cancels and ends runs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSlot
from qgis.PyQt.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from ..core.jobs.backend_spec import check_writable
from ..core.jobs.credits import credit_report
from ..core.jobs.progress import result_counts
from ..core.jobs.run_setup import RunOptions
from ..core.jobs.tracker import TrackerError, open_tracker
from ..core.planning.job_table import plan_aois, summarize
from ..core.planning.tiling import area_km2
from ..definitions import LOG_TAG
from ..qgis_glue.task import ExtractionTask
from .panels.aoi import AoiPanel
from .panels.backends import BackendPanel
from .panels.output import OutputPanel
from .panels.run import RunPanel
from .panels.time_recipe import TimeRecipePanel
from .run_map import RunMap
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
    "run_panel": ("summary", "problem", "run_button", "cancel_button", "cancel_remote", "progress", "credits", "model",
                  "table", "job_menu", "retry_job", "job_log_text", "show_job_log"),
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
        self._budget_warned = False  # a projection over the budget is said once per run
        self._build()
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

    def _build(self) -> None:
        self.aoi_panel = AoiPanel(self.iface)
        self.time_panel = TimeRecipePanel()
        self.backends = BackendPanel()
        self.output_panel = OutputPanel()
        self.run_panel = RunPanel(self.problem_fields)
        self.panels = (self.aoi_panel, self.time_panel, self.backends, self.output_panel, self.run_panel)
        body = QWidget()
        layout = QVBoxLayout(body)
        for panel in self.panels:
            layout.addWidget(panel, 1 if panel is self.run_panel else 0)  # the job table takes the height left
        scroll = QScrollArea(widgetResizable=True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self.wheel_guard = WheelGuard(self)
        guard_wheel(body, self.wheel_guard)
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
        self.run_panel.show_problem(problem, summary, running=self.task is not None)

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
            self.show_tracker_credits(tracker_path)
            return self._show_problem("", summary=f"Existing tracker: Run resumes {Path(tracker_path).name}.")
        try:
            aois = self.aoi_panel.shapely_aois()
            self.plan = plan_aois(self.time_panel.request(), aois, tile_size=self.time_panel.tile_size_m())
            self.backends.check_dates(*self.time_panel.dates(), self.time_panel.collections())
        except ValueError as exc:
            return self._show_problem(str(exc))
        self.aoi_panel.show_tiles(self.plan)
        self._show_problem("", summary=f"{summarize(self.plan)}; AOIs {area_km2(aois):,.1f} km².")
        self.run_panel.show_credits_note("no estimate yet (the first jobs' costs, or the backend's estimate, give one)")

    def show_tracker_credits(self, tracker_path: str) -> None:
        """Before resuming: what the tracker's jobs cost so far and what the rest is projected to cost."""
        try:
            report = credit_report(open_tracker(tracker_path).snapshot())
        except (TrackerError, OSError, ValueError, KeyError) as exc:
            self.credits.setText(f"Credits: the tracker cannot be read ({exc})")
            return
        budgets = [r.budget for url, r in self.backends.reports.items() if r.budget is not None]
        report.budget_left = sum(budgets) if budgets else None  # known after Test connection
        report.cap = self.output_panel.credit_cap()
        if getattr(self, "_budget_checked_for", None) != (tracker_path, report.budget_left):
            self._budget_checked_for = (tracker_path, report.budget_left)
            self._budget_warned = False  # warned before Run, once per tracker and budget
        self.show_credits(report)

    def show_credits(self, report) -> None:
        """The run's credits under the progress bar; a projection over the budget is said once, in the bar.

        Where the backend reports no budget (CDSE), the balance the user typed, less what this run spent."""
        balance = self.output_panel.balance()
        if report is not None and report.budget_left is None and balance is not None:
            if self.task is not None and getattr(self, "_spent_at_start", None) is None:
                self._spent_at_start = report.spent
            spent_now = report.spent - (self._spent_at_start if self.task is not None else report.spent)
            report.budget_left = balance - max(0.0, spent_now)
        self.run_panel.show_credits(report)
        if report is not None and report.over_budget and not self._budget_warned:
            self._budget_warned = True
            self.iface.messageBar().pushMessage(
                LOG_TAG,
                f"This run is projected to need {report.projected_total - report.spent:,.1f} more credits, "
                f"more than the {report.budget_left:,.1f} left in your budget: set a credit cap, or cancel.",
                Qgis.MessageLevel.Warning,
                0,
            )

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
        max_queued = self.max_queued.value() * HOUR_SECONDS or None
        self._budget_warned = False
        options = RunOptions(5.0, max_queued, self.output_panel.credit_cap(), self.output_panel.job_budget_credits(),
                             job_options, self.output_panel.reruns.value())  # fmt: skip
        self._spent_at_start = None  # the first report of the run gives it (no tracker read on the UI thread)
        self.task = ExtractionTask(f"WAC Extractor: {Path(tracker_path).name}", tracker, Path(output), backends,
                                   options, plan=plan)  # fmt: skip
        self.task.tracker_ready.connect(self.on_tracker_ready)
        self.task.progress_changed.connect(self.on_progress)
        self.task.mosaics_changed.connect(self.on_mosaics_changed)
        self.task.run_finished.connect(self.on_finished)
        self.task.run_failed.connect(self.on_failed)
        self.task.job_event.connect(self.on_job_event)
        self.run_panel.set_running(True)
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
        self.run_panel.show_progress(progress)
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
        self.run_panel.set_running(False)
        self.update_preview()

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.aoi_panel.reset_bands()
        super().closeEvent(event)
