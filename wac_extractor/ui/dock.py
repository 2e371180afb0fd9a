"""The WAC Extractor dock: AOIs, dates, sensors, backend, preview, run and the live job table."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import shapely
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsMessageLog,
    QgsProject,
    QgsSettings,
)
from qgis.gui import QgsCollapsibleGroupBox, QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox, QgsRubberBand
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QDate, Qt, QTimer, pyqtSlot
from qgis.PyQt.QtGui import QColor, QFont, QFontMetrics
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core.jobs.backend_spec import check_writable
from ..core.jobs.credits import credit_report
from ..core.jobs.progress import result_counts
from ..core.jobs.tracker import TrackerError, open_tracker
from ..core.planning.job_table import PlanRequest, plan_aois, summarize
from ..core.planning.tiling import area_km2
from ..core.recipes import DEFAULT_RECIPE, RECIPE_LABELS, RECIPES
from ..core.recipes.process_graphs import COLLECTIONS
from ..definitions import LOG_TAG
from ..qgis_glue.layers import ResultLoader, band_layers
from ..qgis_glue.mosaic_feed import row_composites
from ..qgis_glue.project_view import give_crs, set_default_view, set_month_steps, utm_crs
from ..qgis_glue.task import ExtractionTask
from ..qgis_glue.tile_action import TileLayersAction
from .job_model import JobTableModel
from .maptools import PolygonTool, RectangleTool
from .panels.backends import BackendPanel

SETTINGS = "wac_extractor/"
HOUR_SECONDS = 3600  # the unit of "Max. time queued"


def _section(title: str) -> Tuple[QgsCollapsibleGroupBox, QFormLayout]:
    box = QgsCollapsibleGroupBox(title)
    form = QFormLayout(box)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    # A narrow dock (beside the Layers panel on a laptop) puts a field under its label, never clips it.
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return box, form


class WacDock(QgsDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__("WAC Extractor", parent)
        self.setObjectName("WacExtractorDock")
        self.setMinimumWidth(240)  # fits beside the Layers panel; long forms scroll vertically
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.aois: List[QgsGeometry] = []  # in EPSG:4326
        self.plan = None
        self.task: Optional[ExtractionTask] = None
        self._budget_warned = False  # a projection over the budget is said once per run
        self.tracker = None
        self.loader: Optional[ResultLoader] = None
        self.jobs_layer = None
        self.tile_action = TileLayersAction(self.open_tile_layers_of, self)
        self._marked_field: Optional[QWidget] = None
        self._marked_tooltip = ""
        self._build()
        self._load_settings()
        self.preview_timer = QTimer(self, singleShot=True, interval=300, timeout=self.update_preview)
        changes = (
            self.start_date.dateChanged,
            self.end_date.dateChanged,
            self.window_months.valueChanged,
            self.recipe.currentIndexChanged,
            self.s1.toggled,
            self.s2.toggled,
            self.cloud.valueChanged,
            self.tile_km.valueChanged,
        )
        for signal in changes:
            signal.connect(self.schedule_preview)
        self.update_preview()

    # --- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)

        aoi_box, aoi_form = _section("Areas of interest")
        buttons = QGridLayout()
        self.draw_rect = QPushButton("Draw rectangle", toolTip="Drag a rectangle on the map (Esc cancels)")
        self.draw_poly = QPushButton("Draw polygon", toolTip="Click vertices, right-click to finish (Esc cancels)")
        self.from_extent = QPushButton("Map extent", toolTip="Use the current map extent as AOI")
        self.from_selection = QPushButton("Selected features", toolTip="Add the selected polygons of the layer below")
        for number, button in enumerate((self.draw_rect, self.draw_poly, self.from_extent, self.from_selection)):
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            buttons.addWidget(button, number // 2, number % 2)
        aoi_form.addRow(buttons)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(Qgis.LayerFilter.PolygonLayer)
        self.layer_combo.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        aoi_form.addRow("Layer", self.layer_combo)
        self.aoi_list = QListWidget()
        self.aoi_list.setMaximumHeight(90)
        aoi_form.addRow(self.aoi_list)
        edit = QHBoxLayout()
        self.remove_aoi = QPushButton("Remove")
        self.clear_aois = QPushButton("Clear all")
        edit.addWidget(self.remove_aoi)
        edit.addWidget(self.clear_aois)
        edit.addStretch(1)
        aoi_form.addRow(edit)
        layout.addWidget(aoi_box)

        time_box, time_form = _section("Time, recipe and sensors")
        self.start_date = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        self.end_date = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        self.window_months = QSpinBox(minimum=1, maximum=24, toolTip="Months per job (the time window of a job)")
        time_form.addRow("Start", self.start_date)
        time_form.addRow("End (exclusive)", self.end_date)
        time_form.addRow("Months per job", self.window_months)
        self.recipe = QComboBox(toolTip="What each job computes")
        for name, label in RECIPE_LABELS.items():
            self.recipe.addItem(label, name)
            self.recipe.setItemData(self.recipe.count() - 1, RECIPES[name], Qt.ItemDataRole.ToolTipRole)
        self.recipe.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        time_form.addRow("Recipe", self.recipe)
        self.s1 = QCheckBox("Sentinel-1 (VV, VH)")
        self.s2 = QCheckBox("Sentinel-2 L2A")
        time_form.addRow(self.s1)
        time_form.addRow(self.s2)
        cloud_row = QHBoxLayout()
        self.cloud = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.cloud_label = QLabel(minimumWidth=QFontMetrics(QFont()).horizontalAdvance("100 %") + 4)
        self.cloud.valueChanged.connect(lambda v: self.cloud_label.setText(f"{v} %"))
        cloud_row.addWidget(self.cloud, 1)
        cloud_row.addWidget(self.cloud_label)
        time_form.addRow("Max cloud cover", cloud_row)
        self.tile_km = QSpinBox(minimum=1, maximum=100, suffix=" km")
        time_form.addRow("Tile size", self.tile_km)
        layout.addWidget(time_box)

        sign_in_box, sign_in_form = _section("Backends and sign-in")
        self.backends = BackendPanel()
        sign_in_form.addRow(self.backends)
        layout.addWidget(sign_in_box)
        backend_box, backend_form = _section("Output")
        self.output = QgsFileWidget(storageMode=QgsFileWidget.StorageMode.GetDirectory)
        backend_form.addRow("Output folder", self.output)
        self.tracker_file = QgsFileWidget(
            storageMode=QgsFileWidget.StorageMode.SaveFile, filter="GeoPackage (*.gpkg);;CSV (*.csv)"
        )
        self.tracker_file.setToolTip("A new file starts a run; an existing tracker is resumed")
        backend_form.addRow("Job tracker", self.tracker_file)
        self.max_queued = QSpinBox(minimum=0, maximum=168, suffix=" h", specialValueText="never")
        self.max_queued.setToolTip("Cancel a job the backend keeps queued longer than this; Retry queues it again")
        backend_form.addRow("Max. time queued", self.max_queued)
        self.max_credits = QDoubleSpinBox(minimum=0, maximum=10_000_000, decimals=1, suffix=" credits",
                                          specialValueText="no cap")  # fmt: skip
        self.max_credits.setToolTip(
            "Credit cap for the run: a new job starts only while credits spent + the projected cost of the\n"
            "running jobs + its own stay within it. Running jobs are never cancelled; raise it and Run to go on."
        )
        backend_form.addRow("Credit cap", self.max_credits)
        self.job_budget = QDoubleSpinBox(minimum=0, maximum=1_000_000, decimals=1, suffix=" credits",
                                         specialValueText="none")  # fmt: skip
        self.job_budget.setToolTip("Sent as each job's openEO budget: a backend that supports it stops a job above it")
        backend_form.addRow("Per-job budget", self.job_budget)
        layout.addWidget(backend_box)

        self.summary = QLabel(wordWrap=True)
        self.problem = QLabel(wordWrap=True)
        self.problem.setStyleSheet("color: #c62828;")
        layout.addWidget(self.summary)
        layout.addWidget(self.problem)
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        run_row.addWidget(self.run_button, 1)
        run_row.addWidget(self.cancel_button)
        layout.addLayout(run_row)
        self.cancel_remote = QCheckBox("Cancel stops backend jobs")
        self.cancel_remote.setToolTip(
            "Unticked, Cancel stops this QGIS run only: jobs already on the backend go on, and Run picks them\n"
            "up again. Ticked, they are cancelled on the backend too (no more credits spent); Retry restarts them."
        )
        layout.addWidget(self.cancel_remote)
        self.progress = QProgressBar(textVisible=True, value=0)
        layout.addWidget(self.progress)
        self.credits = QLabel(wordWrap=True)
        self.credits.setToolTip(
            "Credits the backend reported for ended jobs, and the run's projection: credits per km2·month of\n"
            "each recipe and sensor, from finished jobs (or the backend's estimate) times the jobs left."
        )
        layout.addWidget(self.credits)

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
        layout.addWidget(self.table, 1)

        for widget in (self.output, self.tracker_file, self.start_date, self.end_date):
            widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)

        self.rect_tool = RectangleTool(self.canvas)
        self.poly_tool = PolygonTool(self.canvas)
        self.rect_tool.aoi_drawn.connect(self.add_canvas_geometry)
        self.poly_tool.aoi_drawn.connect(self.add_canvas_geometry)
        self.draw_rect.clicked.connect(lambda: self.canvas.setMapTool(self.rect_tool))
        self.draw_poly.clicked.connect(lambda: self.canvas.setMapTool(self.poly_tool))
        self.from_extent.clicked.connect(lambda: self.add_canvas_geometry(QgsGeometry.fromRect(self.canvas.extent())))
        self.from_selection.clicked.connect(self.add_selected_features)
        self.remove_aoi.clicked.connect(self.remove_selected_aoi)
        self.clear_aois.clicked.connect(self.clear_all_aois)
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button.clicked.connect(self.cancel_run)
        self.backends.changed.connect(self.schedule_preview)
        self.tile_band = QgsRubberBand(self.canvas, Qgis.GeometryType.Polygon)
        self.tile_band.setStrokeColor(QColor(30, 90, 200, 220))
        self.tile_band.setFillColor(QColor(30, 90, 200, 30))
        self.aoi_band = QgsRubberBand(self.canvas, Qgis.GeometryType.Polygon)
        self.aoi_band.setStrokeColor(QColor(255, 120, 0, 230))
        self.aoi_band.setFillColor(QColor(255, 120, 0, 40))
        self.aoi_band.setWidth(2)

    # --- settings ------------------------------------------------------------------------------
    def _load_settings(self) -> None:
        s = QgsSettings()
        self.start_date.setDate(QDate.fromString(s.value(SETTINGS + "start", "2023-01-01"), "yyyy-MM-dd"))
        self.end_date.setDate(QDate.fromString(s.value(SETTINGS + "end", "2023-04-01"), "yyyy-MM-dd"))
        self.window_months.setValue(int(s.value(SETTINGS + "window_months", 3)))
        self.recipe.setCurrentIndex(max(0, self.recipe.findData(s.value(SETTINGS + "recipe", DEFAULT_RECIPE))))
        self.s1.setChecked(s.value(SETTINGS + "s1", True, type=bool))
        self.s2.setChecked(s.value(SETTINGS + "s2", True, type=bool))
        self.cloud.setValue(int(s.value(SETTINGS + "cloud", 85)))
        self.cloud_label.setText(f"{self.cloud.value()} %")
        self.tile_km.setValue(int(s.value(SETTINGS + "tile_km", 10)))
        self.max_queued.setValue(int(s.value(SETTINGS + "max_queued_hours", 0)))
        self.max_credits.setValue(float(s.value(SETTINGS + "max_credits", 0)))
        self.job_budget.setValue(float(s.value(SETTINGS + "job_budget", 0)))
        self.cancel_remote.setChecked(s.value(SETTINGS + "cancel_remote", False, type=bool))
        self.output.setFilePath(s.value(SETTINGS + "output", str(Path.home() / "wac_extractor")))
        self.tracker_file.setFilePath(s.value(SETTINGS + "tracker", ""))

    def save_settings(self) -> None:
        s = QgsSettings()
        s.setValue(SETTINGS + "start", self.start_date.date().toString("yyyy-MM-dd"))
        s.setValue(SETTINGS + "end", self.end_date.date().toString("yyyy-MM-dd"))
        values = {
            "window_months": self.window_months.value(),
            "recipe": self.recipe.currentData(),
            "s1": self.s1.isChecked(),
            "s2": self.s2.isChecked(),
            "cloud": self.cloud.value(),
            "tile_km": self.tile_km.value(),
            "max_queued_hours": self.max_queued.value(),
            "max_credits": self.max_credits.value(),
            "job_budget": self.job_budget.value(),
            "cancel_remote": self.cancel_remote.isChecked(),
            "output": self.output.filePath(),
            "tracker": self.tracker_file.filePath(),
        }
        for key, value in values.items():
            s.setValue(SETTINGS + key, value)
        self.backends.save_settings()  # URLs, methods and auth-config ids: never a secret

    # --- AOIs ----------------------------------------------------------------------------------
    def _to_wgs84(self, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> QgsGeometry:
        geometry = QgsGeometry(geometry)
        transform = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
        geometry.transform(transform)
        return geometry

    @pyqtSlot(QgsGeometry)
    def add_canvas_geometry(self, geometry: QgsGeometry) -> None:
        self.add_aoi(self._to_wgs84(geometry, self.canvas.mapSettings().destinationCrs()))

    def add_selected_features(self) -> None:
        layer = self.layer_combo.currentLayer()
        if layer is None or layer.selectedFeatureCount() == 0:
            self.iface.messageBar().pushMessage(
                LOG_TAG, "Select polygons in the chosen layer first.", Qgis.MessageLevel.Warning, 5
            )
            return
        for feature in layer.selectedFeatures():
            self.add_aoi(self._to_wgs84(feature.geometry(), layer.crs()))

    def add_aoi(self, geometry_wgs84: QgsGeometry) -> None:
        self.aois.append(geometry_wgs84)
        self._refresh_aoi_list()

    def remove_selected_aoi(self) -> None:
        for item in sorted(self.aoi_list.selectedIndexes(), key=lambda i: -i.row()):
            del self.aois[item.row()]
        self._refresh_aoi_list()

    def clear_all_aois(self) -> None:
        self.aois.clear()
        self._refresh_aoi_list()

    def _refresh_aoi_list(self) -> None:
        self.aoi_list.clear()
        self.aoi_band.reset(Qgis.GeometryType.Polygon)
        for number, geometry in enumerate(self.aois, start=1):
            try:
                area = f"{area_km2([(shapely.from_wkt(geometry.asWkt()), 4326)]):,.1f} km²"
            except Exception:
                area = "invalid"
            self.aoi_list.addItem(f"AOI {number}: {area}")
            self.aoi_band.addGeometry(geometry, QgsCoordinateReferenceSystem("EPSG:4326"))
        self.schedule_preview()

    # --- preview -------------------------------------------------------------------------------
    def schedule_preview(self, *args) -> None:
        self.preview_timer.start()

    def request(self) -> PlanRequest:
        sensors = [n for n, box in ((1, self.s1), (2, self.s2)) if box.isChecked()]
        return PlanRequest(self.start_date.date().toString("yyyy-MM-dd"), self.end_date.date().toString("yyyy-MM-dd"),
                           sensors, self.cloud.value(), self.window_months.value(),
                           recipe=self.recipe.currentData())  # fmt: skip

    def update_preview(self) -> None:
        if sip.isdeleted(self.tile_band):  # the map canvas went first (QGIS closing): nothing to draw on
            return
        if self.task is not None:  # the running plan is fixed; the preview is for the next run
            name = Path(self.tracker.path).name
            return self._show_problem("", summary=f"Running {name}: changes here apply to the next run.")
        self.cloud.setEnabled(self.s2.isChecked())
        self.tile_band.reset(Qgis.GeometryType.Polygon)
        self.plan = None
        tracker_path = self.tracker_file.filePath()
        if tracker_path and Path(tracker_path).exists():
            self.show_tracker_credits(tracker_path)
            return self._show_problem("", summary=f"Existing tracker: Run resumes {Path(tracker_path).name}.")
        try:
            if not self.aois:
                raise ValueError("Add at least one area of interest (draw, select or use the map extent).")
            aois = [(shapely.from_wkt(g.asWkt()), 4326) for g in self.aois]
            self.plan = plan_aois(self.request(), aois, tile_size=self.tile_km.value() * 1000)
            sensors = [sentinel for sentinel, box in ((1, self.s1), (2, self.s2)) if box.isChecked()]
            self.backends.check_dates(self.start_date.date().toString("yyyy-MM-dd"),
                                      self.end_date.date().toString("yyyy-MM-dd"),
                                      [COLLECTIONS[s] for s in sensors])  # fmt: skip
        except ValueError as exc:
            return self._show_problem(str(exc))
        summary = summarize(self.plan)
        total_area = area_km2(aois)
        for wkt in self.plan.drop_duplicates("tile_id")["geometry"]:
            self.tile_band.addGeometry(QgsGeometry.fromWkt(wkt), QgsCoordinateReferenceSystem("EPSG:4326"))
        self._show_problem("", summary=f"{summary}; AOIs {total_area:,.1f} km².")
        self.credits.setText("Credits: no estimate yet (the first jobs' costs, or the backend's estimate, give one)")
        self.credits.setStyleSheet("")

    def show_tracker_credits(self, tracker_path: str) -> None:
        """Before resuming: what the tracker's jobs cost so far and what the rest is projected to cost."""
        try:
            report = credit_report(open_tracker(tracker_path).snapshot())
        except (TrackerError, OSError, ValueError, KeyError) as exc:
            self.credits.setText(f"Credits: the tracker cannot be read ({exc})")
            return
        budgets = [r.budget for url, r in self.backends.reports.items() if r.budget is not None]
        report.budget_left = sum(budgets) if budgets else None  # known after Test connection
        report.cap = self.max_credits.value() or None
        if getattr(self, "_budget_checked_for", None) != (tracker_path, report.budget_left):
            self._budget_checked_for = (tracker_path, report.budget_left)
            self._budget_warned = False  # warned before Run, once per tracker and budget
        self.show_credits(report)

    def _field_for(self, problem: str) -> Optional[QWidget]:
        """The input a core error message names (messages start with the field's name)."""
        fields = {
            "start_date": self.start_date,
            "end_date": self.end_date,
            "window_months": self.window_months,
            "recipe": self.recipe,
            "max_cloud_cover": self.cloud,
            "sensors": self.s2,
            "tile_size": self.tile_km,
            "AOI": self.aoi_list,
            "Add at least one area": self.aoi_list,
            "backend": self.backends.table,
            "Choose an output folder": self.output,
            "output folder": self.output,
            "tracker folder": self.tracker_file,
        }
        return next((widget for prefix, widget in fields.items() if problem.startswith(prefix)), None)

    def _show_problem(self, problem: str, summary: str = "") -> None:
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        if self._marked_field is not None:
            self._marked_field.setStyleSheet("")
            self._marked_field.setToolTip(self._marked_tooltip)
            self._marked_field = None
        field = self._field_for(problem) if problem else None
        if field is not None:  # mark the input that needs changing, with the reason as its tooltip
            self._marked_field, self._marked_tooltip = field, field.toolTip()
            field.setStyleSheet("border: 2px solid #c62828;")
            field.setToolTip(problem)
        self.summary.setText(summary)
        running = self.task is not None
        self.run_button.setEnabled(not problem and not running)
        self.run_button.setToolTip(problem or ("A run is in progress" if running else "Start the jobs"))

    # --- run -----------------------------------------------------------------------------------
    def start_run(self) -> None:
        """Check what can be checked at once, then hand everything slow to the task.

        Creating the tracker (a GeoPackage of every job with its footprint) took 0.1-0.4 s for 1,000 to
        10,000 jobs, and reading it back for the table as long: both happen in the task now, so the
        click returns at once. Problems the user can fix here (no area, an unwritable folder) are
        still found first and marked at their field.
        """
        output = self.output.filePath()
        tracker_path = self.tracker_file.filePath() or str(Path(output) / "jobs.gpkg")
        if not output:
            return self._show_problem("Choose an output folder.")
        try:
            tracker = open_tracker(tracker_path)
            plan = None
            if not tracker.exists():
                if self.plan is None:
                    return self._show_problem("Nothing to run: add an area of interest.")
                check_writable(Path(tracker_path).parent, "tracker folder")
                plan = self.plan
            check_writable(Path(output), "output folder")
            self._run_cancelled = threading.Event()
            backends = self.backends.backends_for_run(cancelled=self._run_cancelled.is_set)
        except (ValueError, OSError, TrackerError) as exc:
            return self._show_problem(str(exc))
        self.save_settings()
        self.tracker = tracker
        self.tracker_file.setFilePath(tracker_path)
        self.model.set_tracker(tracker, refresh=False)  # the task sends the jobs as soon as it has read them
        self.loader = ResultLoader(f"WAC {Path(tracker_path).stem}")
        max_queued = self.max_queued.value() * HOUR_SECONDS or None
        self._budget_warned = False
        self.task = ExtractionTask(f"WAC Extractor: {Path(tracker_path).name}", tracker, Path(output),
                                   backends, poll_interval=5.0,
                                   max_queued_seconds=max_queued, plan=plan,
                                   max_credits=self.max_credits.value() or None,
                                   job_budget=self.job_budget.value() or None)  # fmt: skip
        self.task.tracker_ready.connect(self.on_tracker_ready)
        self.task.progress_changed.connect(self.on_progress)
        self.task.mosaics_changed.connect(self.on_mosaics_changed)
        self.task.run_finished.connect(self.on_finished)
        self.task.run_failed.connect(self.on_failed)
        self.cancel_button.setEnabled(True)
        self.run_button.setEnabled(False)
        self.progress.setMaximum(0)  # busy until the first snapshot
        self.update_preview()
        QgsApplication.taskManager().addTask(self.task)

    def cancel_run(self) -> None:
        if self.task is not None:
            self._run_cancelled.set()  # also ends a sign-in the run is waiting for
            self.task.cancel_remote = self.cancel_remote.isChecked()
            self.task.cancel()

    @pyqtSlot(object)
    def on_tracker_ready(self, tiles_layer) -> None:
        """The task created (or opened) the tracker and its job-tile layer: show the layer, frame the run.

        An empty project gets the AOI's UTM zone (not the tiles' EPSG:4326, which draws UTM tiles
        skewed) and the run's extent as its view; a project with layers keeps its own CRS and view.
        """
        if tiles_layer is None:
            return
        project = QgsProject.instance()
        was_empty = not project.mapLayers()
        self.jobs_layer = tiles_layer
        project.addMapLayer(self.jobs_layer)
        self.tile_action.attach(self.jobs_layer)
        self._frame_run(was_empty)
        if was_empty:  # QGIS Desktop's layer tree gives a new project its first layer's CRS and extent,
            QTimer.singleShot(0, lambda: self._frame_run(True))  # on the next event loop: frame it after

    def _frame_run(self, was_empty: bool) -> None:
        project = QgsProject.instance()
        if self.jobs_layer is None or sip.isdeleted(self.jobs_layer):
            return
        give_crs(project, self._run_utm_crs(), was_empty)
        set_default_view(project, self.jobs_layer.extent(), self.jobs_layer.crs())
        if was_empty:
            self.canvas.setDestinationCrs(project.crs())
            self.canvas.setExtent(project.viewSettings().defaultViewExtent())
            self.canvas.refresh()

    def _run_utm_crs(self) -> QgsCoordinateReferenceSystem:
        """The UTM zone of the run's first tile."""
        try:
            return utm_crs(self.tracker.get_by_indices([0]).iloc[0].get("tile_id"))
        except (IndexError, KeyError, TrackerError, OSError):
            return QgsCoordinateReferenceSystem()

    @pyqtSlot(object, object, object, object)
    def on_progress(self, progress, jobs, rows, columns) -> None:
        self.progress.setMaximum(max(1, progress.total))
        self.progress.setValue(progress.done)
        self.progress.setFormat(f"{progress.done}/{progress.total} jobs done")
        changed = self.model.set_jobs(jobs, rows, columns)
        self.show_credits(progress.credits)
        self.backends.run_signed_in()
        if changed and self.jobs_layer is not None:
            # The layer reads the tracker GeoPackage in WAL mode, so a repaint shows the new statuses;
            # reopening it (reloadData) cost 0.1-1 s on the UI thread per snapshot.
            self.jobs_layer.triggerRepaint()

    def show_credits(self, report) -> None:
        """The run's credits under the progress bar; a projection over the budget is said once, in the bar."""
        if report is None:
            self.credits.setText("")
            return
        self.credits.setText(f"Credits: {report.text()}")
        self.credits.setStyleSheet("color: #c62828;" if report.over_budget else "")
        if report.over_budget and not self._budget_warned:
            self._budget_warned = True
            self.iface.messageBar().pushMessage(
                LOG_TAG,
                f"This run is projected to need {report.projected_total - report.spent:,.1f} more credits, "
                f"more than the {report.budget_left:,.1f} left in your budget: set a credit cap, or cancel.",
                Qgis.MessageLevel.Warning,
                0,
            )

    @pyqtSlot(object)
    def on_mosaics_changed(self, shown) -> None:
        """New month mosaics as layers (then the time steps cover their months), or a reload of those there."""
        if self.loader is None:
            return
        if self.loader.show(shown) and self.loader.months:
            set_month_steps(QgsProject.instance(), *self.loader.months, canvas=self.canvas)

    # --- job table actions ---------------------------------------------------------------------
    def job_menu(self, position) -> None:
        row = self.table.indexAt(position).row()
        job = self.model.job(row)
        if job is None:
            return
        menu = QMenu(self.table)
        menu.addAction("Show log / message", lambda: self.show_job_log(row))
        menu.addAction("Zoom to tile", lambda: self.zoom_to_job(row))
        tile_layers = menu.addAction("Open tile layers", lambda: self.open_tile_layers(row))
        tile_layers.setEnabled(job.get("result_status") == "ok")
        retry = menu.addAction("Retry job", lambda: self.retry_job(row))
        retry.setEnabled(self.can_retry(job))
        has_result = job.get("result_status") == "ok"
        band_menu = menu.addMenu("Add band")
        band_menu.setEnabled(has_result)
        for base, variables in self.band_list(job).items():
            target = band_menu.addMenu(base) if len(variables) > 1 else band_menu
            for variable in variables:
                target.addAction(variable, lambda v=variable: self.add_band_layers(row, [v]))
        all_bands = menu.addAction("Add all bands", lambda: self.add_band_layers(row))
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
        if self.task is None:
            self.update_preview()

    def zoom_to_job(self, row: int) -> None:
        job = self.model.job(row)
        if job is None:
            return
        footprint = self.model.tracker.get_by_indices([job.name]).iloc[0].get("geometry")
        if not isinstance(footprint, str):
            return
        geometry = QgsGeometry.fromWkt(footprint)
        transform = QgsCoordinateTransform(
            QgsCoordinateReferenceSystem("EPSG:4326"), self.canvas.mapSettings().destinationCrs(), QgsProject.instance()
        )
        geometry.transform(transform)
        extent = geometry.boundingBox()
        extent.scale(1.2)
        self.canvas.setExtent(extent)
        self.canvas.refresh()

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
        self._log_dialog = dialog  # keep a reference while it is open

    def open_tile_layers(self, row: int) -> None:
        """One tile's own layers (the map shows month mosaics), from the job table or the job-tile layer."""
        job = self.model.job(row)
        if job is not None:
            self.open_tile_layers_of(int(job.name))

    def open_tile_layers_of(self, index: int) -> None:
        if self.model.tracker is None:
            return
        job = self.model.tracker.get_by_indices([index]).iloc[0]
        label = str(job.get("tile_id") or job.get("title") or index)
        if job.get("result_status") != "ok":
            self.iface.messageBar().pushMessage(
                LOG_TAG, f"{label}: no result yet (status {job.get('status')}).", Qgis.MessageLevel.Info, 5
            )
            return
        if self.loader is None:
            self.loader = ResultLoader(f"WAC {Path(str(self.model.tracker.path)).stem}")
        try:
            layers = self.loader.add(row_composites(job, Path(self.output.filePath())), tile_label=label)
        except (OSError, RuntimeError, ValueError) as exc:
            message = f"{label}: its layers could not be opened: {exc}. Retry the job to download it again."
            self.iface.messageBar().pushMessage(LOG_TAG, message, Qgis.MessageLevel.Warning, 0)
            return
        if not layers:
            self.iface.messageBar().pushMessage(LOG_TAG, f"{label}: no result files found.", Qgis.MessageLevel.Info, 5)

    @staticmethod
    def band_list(job) -> Dict[str, List[str]]:
        """The result's variables by band: {"B04": ["B04_P10", ..., "B04_M3"], "VH_VV": [...]}."""
        from ..core.recipes.process_graphs import expected_variables

        grouped: Dict[str, List[str]] = {}
        for variable in expected_variables(job):
            base = variable.rsplit("_", 1)[0] if re.search(r"_(P\d+|M\d+)$", variable) else variable
            grouped.setdefault(base, []).append(variable)
        return grouped

    def add_band_layers(self, row: int, variables: Optional[List[str]] = None) -> None:
        """Single-band layers of a job's result (every variable, or those given); the first time step."""
        job = self.model.job(row)
        if job is None or self.loader is None:
            return
        from ..core.recipes.process_graphs import expected_variables

        variables = variables or expected_variables(job)
        for relative in json.loads(job.get("result_files") or "[]"):
            path = Path(self.output.filePath()) / relative
            layers = band_layers(path, variables, 1, str(job.get("tile_id") or ""))
            group = self.loader.run_group().addGroup(f"Bands {job.get('tile_id')} S{job.get('sentinel')}")
            for layer in layers:
                QgsProject.instance().addMapLayer(layer, False)
                group.addLayer(layer)

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
        self.cancel_button.setEnabled(False)
        self.update_preview()

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.tile_band.reset(Qgis.GeometryType.Polygon)
        self.aoi_band.reset(Qgis.GeometryType.Polygon)
        super().closeEvent(event)
