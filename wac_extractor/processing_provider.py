"""Processing provider "WAC Extractor": the dock's workflow as an algorithm (toolbox, batch, modeler, qgis_process)."""

from __future__ import annotations

import os
from pathlib import Path

import shapely
from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingProvider,
)
from qgis.PyQt.QtGui import QIcon

from .core.connect import CDSE_URL, connect
from .core.planning import PlanRequest, plan_aois, plan_features, summarize
from .core.runner import BackendSpec, ExtractionRunner
from .core.tracker import TrackerError, create_tracker, open_tracker

SENSOR_OPTIONS = ["Sentinel-1 monthly mosaic (VV, VH)", "Sentinel-2 L2A monthly median"]
AUTH_OPTIONS = ["oidc", "basic", "none"]


def _icon() -> QIcon:
    from .plugin import resources_dir

    return QIcon(str(resources_dir() / "icon.svg"))


class ExtractAlgorithm(QgsProcessingAlgorithm):
    AOI, START, END, WINDOW, SENSORS, CLOUD = "AOI", "START", "END", "WINDOW_MONTHS", "SENSORS", "MAX_CLOUD_COVER"
    TILE, PER_FEATURE, BACKEND, PARALLEL = "TILE_SIZE", "ONE_JOB_PER_FEATURE", "BACKEND", "PARALLEL_JOBS"
    AUTH, USERNAME, AUTHCFG, POLL = "AUTH", "USERNAME", "AUTHCFG", "POLL_SECONDS"
    OUTPUT_FOLDER, TRACKER = "OUTPUT_FOLDER", "TRACKER"

    def name(self):
        return "extract"

    def displayName(self):
        return "Extract Sentinel-1/2 monthly composites"

    def group(self):
        return ""

    def groupId(self):
        return ""

    def shortHelpString(self):
        return (
            "Tiles the AOI polygons on the UTM grid (or uses each feature as one job extent), runs one openEO "
            "batch job per tile, time window and sensor with openEO's MultiBackendJobManager, and downloads "
            "and checks the NetCDF results into the output folder. The tracker (GeoPackage or CSV) remembers "
            "every job: running the algorithm again with the same tracker resumes without creating jobs twice. "
            "Basic-auth passwords come from a QGIS authentication configuration (or WAC_PASSWORD for "
            "qgis_process), never from a parameter."
        )

    def icon(self):
        return _icon()

    def createInstance(self):
        return ExtractAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFeatureSource(self.AOI, "Areas of interest", [QgsProcessing.TypeVectorPolygon])
        )
        date = QgsProcessingParameterDateTime.Date
        self.addParameter(QgsProcessingParameterDateTime(self.START, "Start date", date, "2023-01-01"))
        self.addParameter(QgsProcessingParameterDateTime(self.END, "End date (exclusive)", date, "2023-04-01"))
        integer, double = QgsProcessingParameterNumber.Integer, QgsProcessingParameterNumber.Double
        self.addParameter(QgsProcessingParameterNumber(self.WINDOW, "Months per job", integer, 3, False, 1, 24))
        self.addParameter(
            QgsProcessingParameterEnum(self.SENSORS, "Sensors", SENSOR_OPTIONS, allowMultiple=True, defaultValue=[0, 1])
        )
        self.addParameter(QgsProcessingParameterNumber(self.CLOUD, "Max cloud cover (%)", double, 85, False, 0, 100))
        self.addParameter(QgsProcessingParameterNumber(self.TILE, "Tile size (m)", integer, 10000, False, 1000))
        self.addParameter(
            QgsProcessingParameterBoolean(self.PER_FEATURE, "One job per feature (no tiling)", defaultValue=False)
        )
        self.addParameter(QgsProcessingParameterString(self.BACKEND, "openEO backend URL", CDSE_URL))
        self.addParameter(QgsProcessingParameterNumber(self.PARALLEL, "Parallel jobs", integer, 2, False, 1, 50))
        self.addParameter(QgsProcessingParameterEnum(self.AUTH, "Sign in", AUTH_OPTIONS, defaultValue=0))
        self.addParameter(QgsProcessingParameterString(self.USERNAME, "User (basic)", optional=True))
        self.addParameter(QgsProcessingParameterAuthConfig(self.AUTHCFG, "Credentials (basic)", optional=True))
        poll = QgsProcessingParameterNumber(self.POLL, "Seconds between status polls", double, 10, False, 0.1)
        poll.setFlags(poll.flags() | poll.FlagAdvanced)
        self.addParameter(poll)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addParameter(
            QgsProcessingParameterFileDestination(self.TRACKER, "Job tracker", "GeoPackage (*.gpkg);;CSV (*.csv)")
        )
        self.addOutput(QgsProcessingOutputVectorLayer("TRACKER_LAYER", "Job tiles"))
        self.addOutput(QgsProcessingOutputFolder("RESULTS", "Results folder"))

    def _credentials(self, parameters, context, auth: str):
        username = self.parameterAsString(parameters, self.USERNAME, context)
        if auth != "basic":
            return username, None
        authcfg = self.parameterAsString(parameters, self.AUTHCFG, context)
        if authcfg:
            config = QgsAuthMethodConfig()
            QgsApplication.authManager().loadAuthenticationConfig(authcfg, config, True)
            return config.config("username") or username, config.config("password")
        if "WAC_PASSWORD" in os.environ:
            return username, os.environ["WAC_PASSWORD"]
        raise QgsProcessingException("Basic sign-in needs credentials: choose an authentication configuration.")

    def processAlgorithm(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, self.AOI, context)
        if source is None:
            raise QgsProcessingException("Areas of interest: choose a polygon layer.")
        crs = source.sourceCrs().authid() or source.sourceCrs().toWkt()
        aois = [(shapely.from_wkt(f.geometry().asWkt()), crs) for f in source.getFeatures() if f.hasGeometry()]
        tracker_path = Path(self.parameterAsFileOutput(parameters, self.TRACKER, context))
        output = Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        sensors = [i + 1 for i in self.parameterAsEnums(parameters, self.SENSORS, context)]
        auth = AUTH_OPTIONS[self.parameterAsEnum(parameters, self.AUTH, context)]
        try:
            tracker = open_tracker(tracker_path)
            if tracker.exists():
                feedback.pushInfo(f"Resuming {tracker_path}: {tracker.count_by_status()}")
            else:
                request = PlanRequest(
                    self.parameterAsDateTime(parameters, self.START, context).date().toString("yyyy-MM-dd"),
                    self.parameterAsDateTime(parameters, self.END, context).date().toString("yyyy-MM-dd"),
                    sensors,
                    self.parameterAsDouble(parameters, self.CLOUD, context),
                    self.parameterAsInt(parameters, self.WINDOW, context),
                )
                if self.parameterAsBool(parameters, self.PER_FEATURE, context):
                    table = plan_features(request, aois)
                else:
                    table = plan_aois(request, aois, tile_size=self.parameterAsInt(parameters, self.TILE, context))
                tracker = create_tracker(tracker_path, table)
                feedback.pushInfo(f"Planned {summarize(table)} -> {tracker_path}")
            url = self.parameterAsString(parameters, self.BACKEND, context)
            username, password = self._credentials(parameters, context, auth)
            spec = BackendSpec(url=url, parallel_jobs=self.parameterAsInt(parameters, self.PARALLEL, context))
        except (ValueError, TrackerError, FileExistsError) as exc:
            raise QgsProcessingException(str(exc)) from None

        def progress(p):
            if p.total:
                feedback.setProgress(100.0 * p.done / p.total)
            feedback.setProgressText(f"{p.done}/{p.total} jobs done: {dict(sorted(p.counts.items()))}")

        def event(e):
            if e.status in ("error", "download_failed", "skipped"):
                feedback.reportError(f"{e.title}: {e.status}: {e.message}")

        runner = ExtractionRunner(
            tracker,
            output,
            [(spec, lambda: connect(url, auth, username, password))],
            poll_interval=self.parameterAsDouble(parameters, self.POLL, context),
            on_progress=progress,
            on_event=event,
            cancel_check=feedback.isCanceled,  # polled: a signal would queue to this worker thread
        )
        summary = runner.run()
        feedback.pushInfo(
            f"{'Cancelled' if summary.cancelled else 'Done'} in {summary.seconds:.0f} s: {summary.counts}; "
            f"{summary.downloaded} results downloaded and checked"
        )
        layer = f"{tracker_path}|layername=jobs" if tracker_path.suffix.lower() == ".gpkg" else str(tracker_path)
        return {"TRACKER_LAYER": layer, "RESULTS": str(output), self.TRACKER: str(tracker_path),
                self.OUTPUT_FOLDER: str(output)}  # fmt: skip


class WacProcessingProvider(QgsProcessingProvider):
    def id(self):
        return "wac_extractor"

    def name(self):
        return "WAC Extractor"

    def icon(self):
        return _icon()

    def loadAlgorithms(self):
        self.addAlgorithm(ExtractAlgorithm())
