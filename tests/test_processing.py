"""The Processing algorithm: same core and runner as the dock, progress through feedback, cancel honoured."""

from __future__ import annotations

import json
import sys
import time

import pytest
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)

from wac_extractor.core.jobs.downloads import ResultFetcher
from wac_extractor.core.jobs.tracker import open_tracker
from wac_extractor.core.platform.priority import BACKGROUND_NICE
from wac_extractor.ui.job_model import STATUS_COLOURS

from .conftest import daemon_thread, fresh_processing_provider, niceness

NOTEBOOK_WINDOWS = [(664000, 5611120), (664000, 5631120), (684000, 5611120), (684000, 5631120)]


@pytest.fixture(scope="module")
def algorithm(qgis_app):
    return fresh_processing_provider().algorithmById("wac_extractor:extract")


def windows_layer() -> QgsVectorLayer:
    layer = QgsVectorLayer("Polygon?crs=EPSG:32631", "notebook windows", "memory")
    features = []
    for west, south in NOTEBOOK_WINDOWS:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromWkt(
            f"POLYGON(({west} {south}, {west + 10000} {south}, {west + 10000} {south + 10000}, "
            f"{west} {south + 10000}, {west} {south}))"))  # fmt: skip
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def parameters(backend, tmp_path, **extra):
    return {
        "AOI": windows_layer(),
        "START": "2023-01-01",
        "END": "2023-04-01",
        "WINDOW_MONTHS": 3,
        "SENSORS": [0, 1],
        "MAX_CLOUD_COVER": 85,
        "ONE_JOB_PER_FEATURE": True,
        "BACKEND": backend.url,
        "PARALLEL_JOBS": 2,
        "AUTH": 1,
        "USERNAME": "demo",
        "POLL_SECONDS": 0.3,
        "OUTPUT_FOLDER": str(tmp_path / "out"),
        "TRACKER": str(tmp_path / "jobs.gpkg"),
        "RECIPE": 1,
        **extra,
    }  # fmt: skip  (RECIPE 1: the light monthly recipe; test_the_recipe_parameter checks the default)


class Feedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.progress_values, self.errors = [], []
        self.progressChanged.connect(self.progress_values.append)

    def reportError(self, error, fatalError=False):  # noqa: N803  (QGIS signature)
        self.errors.append(error)


def test_algorithm_runs_the_notebook_windows(algorithm, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("WAC_PASSWORD", "demo")
    caller_nice, downloads_nice = niceness(), []
    download = ResultFetcher._download
    monkeypatch.setattr(ResultFetcher, "_download", lambda *a: (downloads_nice.append(niceness()), download(*a)))
    feedback, context = Feedback(), QgsProcessingContext()
    results, ok = algorithm.run(parameters(backend, tmp_path), context, feedback)
    assert ok, feedback.errors
    if sys.platform.startswith("linux"):  # as the dock's task: the run's threads yield the CPU to QGIS's UI
        assert len(downloads_nice) == 8 and set(downloads_nice) == {max(caller_nice, BACKGROUND_NICE)}
        assert niceness() == caller_nice  # the calling (pooled Processing) thread keeps its priority
    assert results["TRACKER"] == str(tmp_path / "jobs.gpkg")
    layer = QgsVectorLayer(results["TRACKER_LAYER"], "jobs", "ogr")
    assert layer.isValid() and layer.featureCount() == 8
    # Processing adds the job tiles to the project when the algorithm ends, coloured by status as in the dock
    to_load = context.layersToLoadOnCompletion()
    assert list(to_load)[0] == results["TRACKER_LAYER"] and to_load[results["TRACKER_LAYER"]].name == "WAC job tiles"
    project = QgsProject.instance()
    project.clear()
    to_load[results["TRACKER_LAYER"]].postProcessor().postProcessLayer(layer, context, feedback)
    assert {c.value() for c in layer.renderer().categories()} == set(STATUS_COLOURS) | {"download_failed"}
    assert project.crs().authid() == "EPSG:32631"  # the tiles' UTM zone, not the layer's EPSG:4326
    assert project.viewSettings().defaultViewExtent().width() > 20_000  # the four windows, in metres
    # ... and the run's month mosaics: a layer per sensor and month (monthly recipe), not one per result.
    mosaics = {key: details for key, details in to_load.items() if key != results["TRACKER_LAYER"]}
    assert sorted(details.name for details in mosaics.values()) == sorted(
        f"{sensor} 2023-{month:02d} {style} UTM 31N"
        for sensor, style in (("S1", "VV, VH, VV/VH dB"), ("S2", "true colour")) for month in (1, 2, 3)
    )  # fmt: skip
    for key, details in mosaics.items():
        mosaic = context.temporaryLayerStore().mapLayer(key)
        assert mosaic.isValid() and details.groupName == "WAC jobs"
        details.postProcessor().postProcessLayer(mosaic, context, feedback)
    months = project.timeSettings().temporalRange()
    assert (months.begin().toString("yyyy-MM-dd"), months.end().toString("yyyy-MM-dd")) == ("2023-01-01", "2023-04-01")
    context.temporaryLayerStore().removeAllMapLayers()
    project.clear()
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert jobs["status"].eq("finished").all() and jobs["result_status"].eq("ok").all()
    corners = sorted({(e["west"], e["south"]) for e in jobs["spatial_extent"]})
    assert corners == sorted(NOTEBOOK_WINDOWS)
    assert feedback.progress_values and feedback.progress_values[-1] == 100


def test_algorithm_refuses_bad_input_with_a_message(algorithm, backend, tmp_path, monkeypatch):
    monkeypatch.delenv("WAC_PASSWORD", raising=False)
    feedback = Feedback()
    params = parameters(backend, tmp_path, END="2022-12-01")
    with pytest.raises(Exception, match="end_date"):
        algorithm.run(params, QgsProcessingContext(), feedback, catchExceptions=False)
    with pytest.raises(Exception, match="authentication configuration"):
        algorithm.run(parameters(backend, tmp_path / "b"), QgsProcessingContext(), feedback, catchExceptions=False)


def test_algorithm_honours_cancel(algorithm, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("WAC_PASSWORD", "demo")
    backend.configure(run_seconds=[60, 60])
    feedback = Feedback()
    outcome = {}
    worker = daemon_thread(
        lambda: outcome.update(result=algorithm.run(parameters(backend, tmp_path), QgsProcessingContext(), feedback))
    )  # a daemon: if the algorithm ignores the cancel, the failed test ends and pytest exits
    try:
        deadline = time.monotonic() + 30
        while not any(j["status"] == "running" for j in backend.jobs()) and time.monotonic() < deadline:
            time.sleep(0.2)
        running = [j["id"] for j in backend.jobs() if j["status"] == "running"]
        assert running, "no job ran before the cancel: the test would prove nothing"
        cancelled_at = time.monotonic()
        feedback.cancel()
        worker.join(15)
        assert not worker.is_alive(), "the algorithm still runs 15 s after the cancel"
        assert time.monotonic() - cancelled_at < 5
    finally:
        feedback.cancel()
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert len(jobs) == 8 and "finished" not in set(jobs["status"])  # stopped mid-run, every job kept
    kept = jobs.set_index("id")["status"]
    assert all(kept.get(job_id) in ("queued", "running") for job_id in running)  # the running ones still tracked


def test_algorithm_runs_inside_a_model(algorithm, backend, tmp_path, monkeypatch):
    """The graphical modeler's way: the algorithm as a child of a QgsProcessingModelAlgorithm."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
    )

    monkeypatch.setenv("WAC_PASSWORD", "demo")
    model = QgsProcessingModelAlgorithm("wac model", "tests")
    fields = QgsProcessingParameterFeatureSource("fields", "Fields")
    model.addModelParameter(fields, QgsProcessingModelParameter("fields"))
    child = QgsProcessingModelChildAlgorithm("wac_extractor:extract")
    child.setChildId("extract")
    fixed = parameters(backend, tmp_path, SENSORS=[1])
    fixed.pop("AOI")
    for name, value in fixed.items():
        values = value if isinstance(value, list) else [value]
        sources = [QgsProcessingModelChildParameterSource.fromStaticValue(v) for v in values]
        child.addParameterSources(name, sources)
    child.addParameterSources("AOI", [QgsProcessingModelChildParameterSource.fromModelParameter("fields")])
    model.addChildAlgorithm(child)
    feedback = Feedback()
    results, ok = model.run({"fields": windows_layer()}, QgsProcessingContext(), feedback)
    assert ok, feedback.errors
    assert open_tracker(tmp_path / "jobs.gpkg").count_by_status() == {"finished": 4}


def plan_then_cancel(algorithm, backend, params) -> None:
    """Run the algorithm until the backend has a job, then cancel: for tests about what was planned."""
    backend.configure(run_seconds=[60, 60])
    feedback = Feedback()
    worker = daemon_thread(lambda: algorithm.run(params, QgsProcessingContext(), feedback))
    deadline = time.monotonic() + 30
    while not backend.jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    feedback.cancel()
    worker.join(15)
    assert not worker.is_alive(), "the algorithm still runs 15 s after the cancel"


def test_the_recipe_parameter_defaults_to_lcfm_and_goes_into_the_tracker(algorithm, backend, tmp_path, monkeypatch):
    definition = algorithm.parameterDefinition("RECIPE")
    assert definition.options() == ["LCFM features", "Monthly composites (quick look)"]
    assert definition.defaultValue() == 0
    monkeypatch.setenv("WAC_PASSWORD", "demo")
    params = parameters(backend, tmp_path)
    del params["RECIPE"]
    plan_then_cancel(algorithm, backend, params)
    assert set(open_tracker(tmp_path / "jobs.gpkg").read()["recipe"]) == {"lcfm"}


def test_client_credentials_from_an_auth_configuration_on_two_backends(algorithm, backend, tmp_path, monkeypatch):
    """AUTH 3 (client credentials) from a QGIS authentication configuration; BACKEND and PARALLEL_JOBS lists."""
    from wac_extractor.qgis_glue.credentials import save_credentials

    from .conftest import unlock_auth_database

    monkeypatch.delenv("WAC_PASSWORD", raising=False)
    unlock_auth_database()
    authcfg = save_credentials("WAC service account", "wac-service", "service-secret", backend.url)
    other = backend.url.replace("127.0.0.1", "localhost")
    params = parameters(backend, tmp_path, AUTH=3, AUTHCFG=authcfg, USERNAME="", BACKEND=f"{backend.url},{other}",
                        PARALLEL_JOBS="1,2")  # fmt: skip
    feedback = Feedback()
    _, ok = algorithm.run(params, QgsProcessingContext(), feedback)
    assert ok, feedback.errors
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert set(jobs["status"]) == {"finished"} and len(jobs) == 8
    assert set(jobs["backend_name"]) == {backend.url.split("//")[1], other.split("//")[1]}
    assert "service-secret" not in (tmp_path / "jobs.gpkg").read_bytes().decode("latin-1")


def test_tile_size_mode_tiles_the_layer_on_the_utm_grid(algorithm, backend, tmp_path, monkeypatch):
    """ONE_JOB_PER_FEATURE off: the four 10 km windows (south edge 5611120, off the 5 km grid) tiled on the
    5 km UTM grid: 3 x 3 tiles each (S1 only, one month)."""
    monkeypatch.setenv("WAC_PASSWORD", "demo")
    params = parameters(backend, tmp_path, ONE_JOB_PER_FEATURE=False, TILE_SIZE=5000, SENSORS=[0], END="2023-02-01",
                        WINDOW_MONTHS=1)  # fmt: skip
    plan_then_cancel(algorithm, backend, params)
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert len(jobs) == 36 and jobs["tile_id"].nunique() == 36
    extents = [e if isinstance(e, dict) else json.loads(e) for e in jobs["spatial_extent"]]
    assert all(e["east"] - e["west"] == 5000 and e["north"] - e["south"] == 5000 for e in extents)
    assert all(e["west"] % 5000 == 0 and e["south"] % 5000 == 0 for e in extents)  # on the grid, not the windows
