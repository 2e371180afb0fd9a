"""The Processing algorithm ``wac_extractor:extract``: the dock's workflow for the toolbox, batch, modeler
and ``qgis_process``; the run itself is set up as everywhere (``core.jobs.run_setup``)."""

from __future__ import annotations

import os
import queue
from pathlib import Path

import shapely
from openeo.rest import OpenEoClientException
from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
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
)
from qgis.PyQt.QtGui import QIcon

from ..core.backends.connect import CDSE_URL
from ..core.backends.signin import SECRET_METHODS, SignIn, SignInRequiredError
from ..core.jobs.failures import failure_summary
from ..core.jobs.job_options import parse_options
from ..core.jobs.progress import RunSummary
from ..core.jobs.reruns import DEFAULT_RERUNS
from ..core.jobs.run_setup import Backends, RunOptions, backend_logins, prepare_run
from ..core.jobs.signin_recovery import SignInLostError
from ..core.jobs.tracker import GeoPackageTracker, Tracker, TrackerError, create_tracker, open_tracker
from ..core.planning.job_table import PlanRequest, plan_aois, plan_features, summarize
from ..core.platform.heap import heap_frozen
from ..core.platform.priority import call_in_background_thread
from ..core.recipes import DEFAULT_RECIPE, RECIPE_LABELS, RECIPES
from ..definitions import resources_dir
from ..qgis_glue.credentials import CredentialsError, sign_in_for
from ..qgis_glue.layers import JOB_TILES_NAME, job_tiles_uri
from .post_processors import StyleJobTiles, load_mosaics

SENSOR_OPTIONS = ["Sentinel-1 monthly mosaic (VV, VH)", "Sentinel-2 L2A monthly median"]
AUTH_OPTIONS = ["oidc", "basic", "none", "client_credentials"]  # appended: saved models keep their index


def icon() -> QIcon:
    return QIcon(str(resources_dir() / "icon.svg"))


class ExtractAlgorithm(QgsProcessingAlgorithm):
    AOI, START, END, WINDOW, SENSORS, CLOUD = "AOI", "START", "END", "WINDOW_MONTHS", "SENSORS", "MAX_CLOUD_COVER"
    RECIPE = "RECIPE"
    TILE, PER_FEATURE, BACKEND, PARALLEL = "TILE_SIZE", "ONE_JOB_PER_FEATURE", "BACKEND", "PARALLEL_JOBS"
    AUTH, USERNAME, AUTHCFG, POLL = "AUTH", "USERNAME", "AUTHCFG", "POLL_SECONDS"
    MAX_QUEUED = "MAX_QUEUED_HOURS"
    MAX_CREDITS = "MAX_CREDITS"
    JOB_BUDGET = "JOB_BUDGET"
    JOB_OPTIONS, RERUNS = "JOB_OPTIONS", "RERUNS"
    OUTPUT_FOLDER, TRACKER = "OUTPUT_FOLDER", "TRACKER"

    def name(self):
        return "extract"

    def displayName(self):
        return "Extract Sentinel-1/2 features (LCFM) or monthly composites"

    def group(self):
        return ""

    def groupId(self):
        return ""

    def shortHelpString(self):
        return (
            "Tiles the AOI polygons on the UTM grid (or uses each feature as one job extent), runs one openEO "
            "batch job per tile, time window and sensor (recipe 'LCFM features': the LCFM project's Sentinel-1 "
            "percentiles and masked Sentinel-2 percentiles and monthly medians; 'Monthly composites': quick looks) "
            "with openEO's MultiBackendJobManager, and downloads "
            "and checks the NetCDF results into the output folder. The tracker (GeoPackage or CSV) remembers "
            "every job: running the algorithm again with the same tracker resumes without creating jobs twice. "
            "OpenID Connect uses the sign-in stored by the WAC Extractor dock (or 'python -m wac_extractor login'). "
            "Basic-auth passwords and client secrets come from a QGIS authentication configuration (or "
            "WAC_PASSWORD for qgis_process), never from a parameter. Comma-separated backend URLs and parallel "
            "jobs run on several backends at once."
        )

    def icon(self):
        return icon()

    def createInstance(self):
        return ExtractAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.AOI, "Areas of interest", [Qgis.ProcessingSourceType.VectorPolygon]
            )
        )
        date = Qgis.ProcessingDateTimeParameterDataType.Date
        self.addParameter(QgsProcessingParameterDateTime(self.START, "Start date", date, "2023-01-01"))
        self.addParameter(QgsProcessingParameterDateTime(self.END, "End date (exclusive)", date, "2023-04-01"))
        integer, double = Qgis.ProcessingNumberParameterType.Integer, Qgis.ProcessingNumberParameterType.Double
        self.addParameter(QgsProcessingParameterNumber(self.WINDOW, "Months per job", integer, 3, False, 1, 24))
        recipes = [RECIPE_LABELS[name] for name in RECIPES]
        self.addParameter(
            QgsProcessingParameterEnum(self.RECIPE, "Recipe", recipes, defaultValue=list(RECIPES).index(DEFAULT_RECIPE))
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.SENSORS, "Sensors", SENSOR_OPTIONS, allowMultiple=True, defaultValue=[0, 1])
        )
        self.addParameter(QgsProcessingParameterNumber(self.CLOUD, "Max cloud cover (%)", double, 85, False, 0, 100))
        self.addParameter(QgsProcessingParameterNumber(self.TILE, "Tile size (m)", integer, 10000, False, 1000))
        self.addParameter(
            QgsProcessingParameterBoolean(self.PER_FEATURE, "One job per feature (no tiling)", defaultValue=False)
        )
        self.addParameter(
            QgsProcessingParameterString(self.BACKEND, "openEO backend URL(s), comma-separated", CDSE_URL)
        )
        self.addParameter(
            QgsProcessingParameterString(self.PARALLEL, "Parallel jobs (per backend, comma-separated)", "2")
        )
        self.addParameter(QgsProcessingParameterEnum(self.AUTH, "Sign in", AUTH_OPTIONS, defaultValue=0))
        self.addParameter(QgsProcessingParameterString(self.USERNAME, "User (basic)", optional=True))
        self.addParameter(
            QgsProcessingParameterAuthConfig(self.AUTHCFG, "Credentials (basic or client credentials)", optional=True)
        )
        poll = QgsProcessingParameterNumber(self.POLL, "Seconds between status polls", double, 10, False, 0.1)
        max_queued = QgsProcessingParameterNumber(
            self.MAX_QUEUED, "Cancel jobs still queued after (hours, 0 = never)", double, 0, False, 0
        )
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_CREDITS, "Credit cap for the run (0 = no cap): new jobs start only within it", double, 0, False, 0
        ))  # fmt: skip
        job_budget = QgsProcessingParameterNumber(
            self.JOB_BUDGET, "Per-job budget in credits, sent to the backend (0 = none)", double, 0, False, 0
        )
        job_options = QgsProcessingParameterString(
            self.JOB_OPTIONS,
            "Job options sent with every job (KEY=VALUE; KEY=VALUE, e.g. executor-memory=4G)",
            optional=True,
        )
        reruns = QgsProcessingParameterNumber(
            self.RERUNS, "Run a job the backend lost again up to (times)", integer, DEFAULT_RERUNS, False, 0, 10
        )
        for advanced in (poll, max_queued, job_budget, job_options, reruns):
            advanced.setFlags(advanced.flags() | Qgis.ProcessingParameterFlag.Advanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addParameter(
            QgsProcessingParameterFileDestination(self.TRACKER, "Job tracker", "GeoPackage (*.gpkg);;CSV (*.csv)")
        )
        self.addOutput(QgsProcessingOutputVectorLayer("TRACKER_LAYER", "Job tiles"))
        self.addOutput(QgsProcessingOutputFolder("RESULTS", "Results folder"))

    def _sign_in(self, parameters, context, auth: str) -> SignIn:
        username = self.parameterAsString(parameters, self.USERNAME, context)
        authcfg = self.parameterAsString(parameters, self.AUTHCFG, context)
        if auth in SECRET_METHODS and authcfg:
            return sign_in_for(auth, authcfg)
        if auth == "basic" and username and "WAC_PASSWORD" in os.environ:
            return SignIn(auth, username, os.environ["WAC_PASSWORD"])
        if auth in SECRET_METHODS:
            raise QgsProcessingException("Sign-in needs credentials: choose an authentication configuration.")
        return SignIn(auth)  # OIDC: the stored refresh token only; nobody could answer a prompt here

    def _backends(self, parameters, context, sign_in: SignIn) -> Backends:
        urls = [u.strip() for u in self.parameterAsString(parameters, self.BACKEND, context).split(",") if u.strip()]
        text = self.parameterAsString(parameters, self.PARALLEL, context) or "2"
        try:
            parallel = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise QgsProcessingException(
                f"Parallel jobs: {text!r} is not a number (or comma-separated numbers)."
            ) from None
        if not urls or len(parallel) not in (1, len(urls)) or min(parallel) < 1:
            raise QgsProcessingException(
                "Parallel jobs: give one number of at least 1, or one per backend URL (comma-separated)."
            )
        parallel = parallel * len(urls) if len(parallel) == 1 else parallel
        return backend_logins(urls, parallel, sign_in)

    def processAlgorithm(self, parameters, context, feedback):
        tracker_path = Path(self.parameterAsFileOutput(parameters, self.TRACKER, context))
        output = Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        auth = AUTH_OPTIONS[self.parameterAsEnum(parameters, self.AUTH, context)]
        try:
            tracker = self._plan_or_resume(parameters, context, feedback, tracker_path)
            options = self._options(parameters, context)
            backends = self._backends(parameters, context, self._sign_in(parameters, context, auth))
        except (ValueError, TrackerError, FileExistsError, CredentialsError) as exc:
            raise QgsProcessingException(str(exc)) from None
        summary = self._run(feedback, tracker, output, backends, options)
        feedback.pushInfo(
            f"{'Cancelled' if summary.cancelled else 'Done'} in {summary.seconds:.0f} s: {summary.counts}; "
            f"{summary.downloaded} results downloaded and checked"
        )
        if summary.credits is not None:
            feedback.pushInfo(f"Credits: {summary.credits.text()}")
        failed = failure_summary(tracker.snapshot())
        if failed:
            feedback.reportError(failed, fatalError=False)
        if summary.cap_reached:
            feedback.reportError(summary.cap_message(), fatalError=False)
        if isinstance(tracker, GeoPackageTracker):  # shown when the algorithm ends, coloured as in the dock
            layer = job_tiles_uri(tracker_path)
            details = QgsProcessingContext.LayerDetails(JOB_TILES_NAME, context.project(), "TRACKER_LAYER")
            details.setPostProcessor(StyleJobTiles.create(tracker))
            context.addLayerToLoadOnCompletion(layer, details)
        else:
            layer = str(tracker_path)
        load_mosaics(tracker, output, Path(str(tracker_path)).stem, context, feedback)
        return {"TRACKER_LAYER": layer, "RESULTS": str(output), self.TRACKER: str(tracker_path),
                self.OUTPUT_FOLDER: str(output)}  # fmt: skip

    def _plan_or_resume(self, parameters, context, feedback, tracker_path: Path) -> Tracker:
        """The tracker to run: an existing one (resumed), or a new one with the planned jobs."""
        tracker = open_tracker(tracker_path)
        if tracker.exists():
            feedback.pushInfo(f"Resuming {tracker_path}: {tracker.count_by_status()}")
            return tracker
        source = self.parameterAsSource(parameters, self.AOI, context)
        if source is None:
            raise QgsProcessingException("Areas of interest: choose a polygon layer.")
        crs = source.sourceCrs().authid() or source.sourceCrs().toWkt()
        aois = [(shapely.from_wkt(f.geometry().asWkt()), crs) for f in source.getFeatures() if f.hasGeometry()]
        request = PlanRequest(
            self.parameterAsDateTime(parameters, self.START, context).date().toString("yyyy-MM-dd"),
            self.parameterAsDateTime(parameters, self.END, context).date().toString("yyyy-MM-dd"),
            [i + 1 for i in self.parameterAsEnums(parameters, self.SENSORS, context)],
            self.parameterAsDouble(parameters, self.CLOUD, context),
            self.parameterAsInt(parameters, self.WINDOW, context),
            recipe=list(RECIPES)[self.parameterAsEnum(parameters, self.RECIPE, context)],
        )
        if self.parameterAsBool(parameters, self.PER_FEATURE, context):
            table = plan_features(request, aois)
        else:
            table = plan_aois(request, aois, tile_size=self.parameterAsInt(parameters, self.TILE, context))
        tracker = create_tracker(tracker_path, table)
        feedback.pushInfo(f"Planned {summarize(table)} -> {tracker_path}")
        return tracker

    def _options(self, parameters, context) -> RunOptions:
        return RunOptions(
            poll_interval=self.parameterAsDouble(parameters, self.POLL, context),
            max_queued_seconds=self.parameterAsDouble(parameters, self.MAX_QUEUED, context) * 3600 or None,
            max_credits=self.parameterAsDouble(parameters, self.MAX_CREDITS, context) or None,
            job_budget=self.parameterAsDouble(parameters, self.JOB_BUDGET, context) or None,
            job_options=parse_options(self.parameterAsString(parameters, self.JOB_OPTIONS, context).split(";")),
            reruns=self.parameterAsInt(parameters, self.RERUNS, context),
        )

    def _run(self, feedback, tracker: Tracker, output: Path, backends: Backends, options: RunOptions) -> RunSummary:
        said = [""]

        def progress(p):
            if p.total:
                feedback.setProgress(100.0 * p.done / p.total)
            text = f"{p.done}/{p.total} jobs done: {dict(sorted(p.counts.items()))}"
            if text != said[0]:  # polled every few seconds: the log gets a line when something changed
                said[0] = text
                feedback.setProgressText(text)

        def event(e):
            if e.status == "notice":
                feedback.pushInfo(e.message)
            elif e.status == "rerun":
                feedback.pushInfo(f"{e.title}: {e.message}"[:300])
            elif e.status in ("error", "download_failed", "skipped"):
                feedback.reportError(f"{e.title}: {e.status}: {e.message}"[:300])

        reports = queue.SimpleQueue()  # the feedback is this thread's: the run's reports are handed back to it
        runner = prepare_run(
            tracker,
            output,
            backends,
            options,
            on_progress=lambda p: reports.put(lambda: progress(p)),
            on_event=lambda e: reports.put(lambda: event(e)),
            cancel_check=feedback.isCanceled,
        )  # polled: a signal would queue to this thread; fmt: skip
        try:
            with heap_frozen():  # as the dock's task: no long full collections, the UI thread wins the CPU
                return call_in_background_thread(runner.run, "wac-run", reports)
        except SignInRequiredError as exc:
            raise QgsProcessingException(
                f"{exc} Sign in with the WAC Extractor dock (Backend: Sign in) or 'python -m wac_extractor login', "
                "then run again."
            ) from None
        except (SignInLostError, OpenEoClientException) as exc:
            raise QgsProcessingException(f"{exc} The tracker keeps every job: run again to resume.") from None
