"""The QgsTask runs the runner in the background; finished results load as styled, time-aware layers."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref

import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsMultiBandColorRenderer, QgsProject, QgsSingleBandPseudoColorRenderer
from qgis.PyQt.QtCore import QDate, QObject, pyqtSlot

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.jobs.runner import BackendSpec
from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.core.platform.heap import heap_frozen
from wac_extractor.core.platform.priority import BACKGROUND_NICE
from wac_extractor.qgis_glue import mosaic_feed
from wac_extractor.qgis_glue import task as task_module
from wac_extractor.qgis_glue.layers import SENSOR_GROUPS, ResultLoader, job_tiles_layer, layer_path
from wac_extractor.qgis_glue.mosaic_feed import MosaicFeed
from wac_extractor.qgis_glue.task import ExtractionTask

from .conftest import niceness, notebook_jobs


class Receiver(QObject):
    """Lives in the main thread, so the task's signals arrive queued, as in the dock."""

    def __init__(self, loader: ResultLoader):
        super().__init__()
        self.loader = loader
        self.layers = []
        self.updates = []
        self.events = []
        self.summary = None
        self.done = False

    @pyqtSlot(object)
    def on_mosaics_changed(self, shown):
        self.updates += [update for update, _ in shown]
        self.layers += self.loader.show(shown)

    @pyqtSlot(object)
    def on_event(self, event):
        self.events.append(event)

    @pyqtSlot(object)
    def on_finished(self, summary):
        self.summary, self.done = summary, True

    @pyqtSlot(str)
    def on_failed(self, message):
        self.done = True


def start_task(backend, tmp_path, jobs):
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    spec = BackendSpec(url=backend.url, parallel_jobs=2)
    backends = [(spec, lambda: connect(backend.url, "basic", "demo", "demo"))]
    task = ExtractionTask("WAC Extractor test run", tracker, tmp_path / "out", backends, poll_interval=0.3)
    receiver = Receiver(ResultLoader("WAC test run", QgsProject.instance()))
    task.mosaics_changed.connect(receiver.on_mosaics_changed)
    task.job_event.connect(receiver.on_event)
    task.run_finished.connect(receiver.on_finished)
    task.run_failed.connect(receiver.on_failed)
    QgsApplication.taskManager().addTask(task)
    return task, receiver


def test_task_loads_results_as_grouped_temporal_layers(backend, tmp_path, qgis_new_project, qtbot, monkeypatch):
    ui_nice = niceness()
    prepared_in = []  # (thread, its nice value) wherever the task opens result layers
    prepare = mosaic_feed.composite_layer
    monkeypatch.setattr(mosaic_feed, "composite_layer", lambda *args, **kwargs: (
        prepared_in.append((threading.current_thread().name, niceness())),
        prepare(*args, **kwargs),
    )[1])  # fmt: skip
    task, receiver = start_task(backend, tmp_path, notebook_jobs().iloc[:2])  # one tile, S1 and S2
    qtbot.waitUntil(lambda: receiver.done, timeout=120_000)
    if sys.platform.startswith("linux"):  # the run's threads yield the CPU to the UI thread (per-thread nice)
        assert len(prepared_in) == 6 and all(name.startswith("wac-download") for name, _ in prepared_in)
        assert {nice for _, nice in prepared_in} == {max(ui_nice, BACKGROUND_NICE)}
        assert niceness() == ui_nice
    assert not receiver.summary.cancelled  # (the task object itself is deleted by the task manager)
    assert receiver.summary.counts == {"finished": 2} and receiver.summary.downloaded == 2

    root = QgsProject.instance().layerTreeRoot().findGroup("WAC test run")
    assert root is not None
    assert sorted(g.name() for g in root.children()) == sorted(SENSOR_GROUPS.values())
    for sentinel in (1, 2):
        sensor_group = root.findGroup(SENSOR_GROUPS[sentinel])
        assert [g.name() for g in sensor_group.children()] == ["2023-01", "2023-02", "2023-03"]
    assert len(receiver.layers) == 6  # a month mosaic per sensor and month, each holding the tile
    assert {update.tiles for update in receiver.updates} == {1}
    for layer in receiver.layers:
        assert layer.isValid() and layer.bandCount() == 3
        renderer = layer.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer)
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 3)
        temporal = layer.temporalProperties()
        assert temporal.isActive()
        month = layer.name().split()[1]
        assert temporal.fixedTemporalRange().begin().toString("yyyy-MM") == month
    s2 = [layer for layer in receiver.layers if layer.name().startswith("S2")]
    assert [s2[0].bandName(i) for i in (1, 2, 3)] == ["Band 1: B04", "Band 2: B03", "Band 3: B02"]
    assert s2[0].source().endswith("_32631.vrt") and s2[0].name() == "S2 2023-01 true colour UTM 31N"
    assert s2[0].dataProvider().bandStatistics(1).mean > 100  # reflectance, clouds masked

    # Resuming (a new feed and loader over the same tracker and project) adds no second layer.
    layer_count = len(QgsProject.instance().mapLayers())
    tracker = task_module.GeoPackageTracker(tmp_path / "jobs.gpkg")
    again = [shown for batch in MosaicFeed(tmp_path / "out", tracker.snapshot()).add_rows(tracker.snapshot())
             for shown in batch]  # fmt: skip
    assert {update.tiles for update, _ in again} == {1} and len(again) == 6
    assert ResultLoader("WAC test run", QgsProject.instance()).show(again) == []
    assert len(QgsProject.instance().mapLayers()) == layer_count
    # Another run's name is another group: its layers are added.
    assert len(ResultLoader("WAC other run", QgsProject.instance()).show(again[:1])) == 1


def test_lcfm_results_load_as_month_true_colour_p50_ndvi_and_s1_db_layers(backend, tmp_path, qgis_new_project, qtbot):
    task, receiver = start_task(backend, tmp_path, notebook_jobs(recipe="lcfm").iloc[:2])  # one tile, S1 and S2
    qtbot.waitUntil(lambda: receiver.done, timeout=180_000)
    assert receiver.summary.counts == {"finished": 2} and receiver.summary.downloaded == 2

    root = QgsProject.instance().layerTreeRoot().findGroup("WAC test run")
    s2_group, s1_group = root.findGroup(SENSOR_GROUPS[2]), root.findGroup(SENSOR_GROUPS[1])
    assert [g.name() for g in s2_group.children()] == ["2023-01", "2023-02", "2023-03", "2023-01..2023-03"]
    assert [g.name() for g in s1_group.children()] == ["2023-01..2023-03"]
    by_name = {layer.name().rsplit(" UTM", 1)[0]: layer for layer in receiver.layers}  # without the zone
    assert sorted(by_name) == [
        "S1 2023-01..2023-03 VV, VH, VH/VV P50 dB",
        "S2 2023-01 true colour",
        "S2 2023-01..2023-03 NDVI P50",
        "S2 2023-01..2023-03 true colour P50",
        "S2 2023-02 true colour",
        "S2 2023-03 true colour",
    ]
    for name, layer in by_name.items():
        assert layer.isValid()
        window = layer.temporalProperties().fixedTemporalRange()
        first, end = name.split()[1].split("..")[0], window.end().toString("yyyy-MM")
        assert window.begin().toString("yyyy-MM") == first
        assert end == (
            "2023-04" if ".." in name else QDate.fromString(first, "yyyy-MM").addMonths(1).toString("yyyy-MM")
        )
    march = by_name["S2 2023-03 true colour"]
    tile = next(layer_path(march).with_suffix(".blocks").glob("*.vrt")).read_text()
    tile_composite = tile.split("<SourceFilename")[1].split(">")[1].split("<")[0]
    copy = gdal.Open(tile_composite)  # the tile's display copy (a COG), not its NetCDF
    assert copy.GetDriver().ShortName == "GTiff" and copy.GetRasterBand(1).GetDescription() == "B04_M3"  # red
    assert isinstance(march.renderer(), QgsMultiBandColorRenderer) and march.bandCount() == 3
    ndvi = by_name["S2 2023-01..2023-03 NDVI P50"]
    assert isinstance(ndvi.renderer(), QgsSingleBandPseudoColorRenderer) and ndvi.bandCount() == 1
    stats = ndvi.dataProvider().bandStatistics(1)
    assert -1 <= stats.minimumValue and stats.maximumValue <= 1 and stats.mean > 0  # NDVI units
    s1 = by_name["S1 2023-01..2023-03 VV, VH, VH/VV P50 dB"]
    vv, vh, ratio = (s1.dataProvider().bandStatistics(band) for band in (1, 2, 3))
    assert -20 < vv.mean < -5 and -30 < vh.mean < -10 and -9 < ratio.mean < -6  # dB, from linear power


def test_job_tile_layer_follows_the_tracker_without_reloading(tmp_path, qgis_new_project):
    """The dock only repaints the tile layer (reopening the GeoPackage per snapshot stalled the UI)."""
    jobs = notebook_jobs()
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    layer = job_tiles_layer(tmp_path / "jobs.gpkg")  # opened before the runner's first write, as in the dock
    assert [f["status"] for f in layer.getFeatures()] == ["not_started"] * len(jobs)

    writer = threading.Thread(target=lambda: [tracker.update_row(i, status="running") for i in (0, 2)])
    writer.start()
    writer.join()
    statuses = [f["status"] for f in layer.getFeatures()]
    assert statuses[:3] == ["running", "not_started", "running"] and len(statuses) == len(jobs)


def test_cancel_from_the_task_manager_stops_the_run(backend, tmp_path, qgis_new_project, qtbot):
    backend.configure(run_seconds=[60, 60])
    task, receiver = start_task(backend, tmp_path, notebook_jobs())
    qtbot.waitUntil(lambda: any(j["status"] == "running" for j in backend.jobs()), timeout=30_000)
    cancelled_at = time.monotonic()
    task.cancel()
    qtbot.waitUntil(lambda: receiver.done, timeout=10_000)
    assert time.monotonic() - cancelled_at < 5
    assert receiver.summary is not None and receiver.summary.cancelled


def test_the_run_starts_its_work_once_the_ui_thread_has_shown_the_job_tiles(backend, tmp_path, qgis_new_project, qtbot):
    """The run's first snapshot held the GIL while QGIS Desktop added the job-tile layer (a 56 ms stall)."""
    backend.configure(run_seconds=[60, 60])
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:2])
    backends = [(BackendSpec(url=backend.url, parallel_jobs=2), lambda: connect(backend.url, "basic", "demo", "demo"))]
    task = ExtractionTask("WAC Extractor test run", tracker, tmp_path / "out", backends, poll_interval=0.3)
    seen = []

    class Dock(QObject):
        @pyqtSlot(object)
        def on_tracker_ready(self, layer):
            time.sleep(0.3)  # QGIS Desktop adding the layer
            seen.append((layer.featureCount(), task.feed, len(backend.jobs())))

    dock, receiver = Dock(), Receiver(ResultLoader("WAC test run", QgsProject.instance()))
    task.tracker_ready.connect(dock.on_tracker_ready)
    task.run_finished.connect(receiver.on_finished)
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: bool(seen), timeout=30_000)
    assert seen == [(2, None, 0)]  # the worker had neither read the tracker nor started a job meanwhile
    qtbot.waitUntil(lambda: bool(backend.jobs()), timeout=30_000)  # and then went on
    task.cancel()
    qtbot.waitUntil(lambda: receiver.done, timeout=10_000)  # its heap_frozen() ended with it


@pytest.fixture(autouse=True)
def _no_leftover_tasks(qgis_app):
    yield
    QgsApplication.taskManager().cancelAll()


def test_runs_hide_the_existing_heap_from_full_collections_and_give_it_back():
    """gc.freeze() while any run goes on (UI stalls of 55-100 ms were full collections); garbage is freed after."""

    class Cycle:
        pass

    garbage = Cycle()
    garbage.self = garbage
    collected = weakref.ref(garbage)
    del garbage
    assert gc.get_freeze_count() == 0
    with heap_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        with heap_frozen():  # a second run (Processing beside the dock) changes nothing
            assert gc.get_freeze_count() == frozen
        gc.collect()
        assert collected() is not None  # frozen: not even a full collection sees it
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert collected() is None
