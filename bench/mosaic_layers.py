"""Results to layers at the size of real runs: month mosaics vs per-tile layers (issue 18).

``python -m bench.mosaic_layers [TILES] [BASELINE_TILES]`` (own process: own QGIS app and memory);
prints JSON. The local backend runs TILES tiles x 3 months, Sentinel-1 and Sentinel-2 (monthly
recipe, 200 m tiles so that 2,000 jobs take minutes). Then, as the dock's task does, a worker thread
turns each finished job into mosaic updates and the UI thread shows them, with a 10 ms watchdog on
the UI thread and the process's RSS read before and after. The baseline is the loading of before
(a layer per tile, month and style, opened in the worker) on the first BASELINE_TILES tiles.
"First picture": from one more job's result to its pixels drawn from the month mosaic.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def rss_mb() -> float:
    """The process's resident memory now (not its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_jobs(work: Path, tiles: int):
    """The jobs on the local backend; returns the tracker."""
    import requests

    from demo.run_demo import start_backend
    from wac_extractor.core.backends.signin import connect
    from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
    from wac_extractor.core.jobs.tracker import create_tracker
    from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

    backend, url = start_backend(work)
    try:
        requests.post(f"{url}/_control/config", json={"queue_seconds": [0, 0], "run_seconds": [0, 0]}, timeout=10)
        request = PlanRequest("2023-01-01", "2023-04-01", ["s1", "s2"], 85, 3, recipe="monthly")
        cols = 40 if tiles >= 40 else tiles
        table = plan_grid(request, 600000, 5600000, "EPSG:32631", window=200, gap=0, rows=tiles // cols, cols=cols)
        tracker = create_tracker(work / "jobs.gpkg", table)
        spec = BackendSpec(url=url, parallel_jobs=16)
        started = time.perf_counter()
        ExtractionRunner(tracker, work / "out", [(spec, lambda: connect(url, "basic", "demo", "demo"))],
                         poll_interval=0.2).run()  # fmt: skip
        return tracker, time.perf_counter() - started
    finally:
        backend.terminate()
        backend.wait(10)


class Relay:
    """Carries what a worker thread made to the UI thread (a queued signal, as the task's)."""

    def __init__(self, slot):
        from qgis.PyQt.QtCore import QObject, pyqtSignal

        class _Relay(QObject):
            made = pyqtSignal(object)

        self.qobject = _Relay()
        self.qobject.made.connect(slot)

    def emit(self, value) -> None:
        self.qobject.made.emit(value)


def watched(work, app) -> dict:
    """Run ``work(emit)`` in a worker thread while the UI thread shows what it emits; UI gaps recorded."""
    from bench.ui_watchdog import STALL_MS, GapWatchdog
    from wac_extractor.core.platform.priority import lower_thread_priority

    watchdog, done = GapWatchdog(), threading.Event()
    # At the priority of the task's threads (call_in_background_thread), as in the dock.
    worker = threading.Thread(target=lambda: (lower_thread_priority(), work(), done.set()), name="wac-bench-worker")
    before = rss_mb()
    started = time.perf_counter()
    watchdog.start()
    worker.start()
    while not done.is_set():
        app.processEvents()
        time.sleep(0.002)
    settle = time.monotonic() + 1.0  # the last signals and the mosaics' delayed reload
    while time.monotonic() < settle:
        app.processEvents()
        time.sleep(0.002)
    watchdog.stop()
    gaps = watchdog.gaps or [0]
    return {
        "seconds": time.perf_counter() - started,
        "rss_growth_mb": rss_mb() - before,
        "ui_worst_gap_ms": max(gaps),
        "ui_gaps_over_50ms": sum(gap > STALL_MS for gap in gaps),
        "ui_ticks": len(gaps),
    }


def first_picture(feed, loader, row, app) -> float:
    """Seconds from a job's result to its tile's pixels drawn from the month mosaic (S2, first month)."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings, QgsRectangle
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    from wac_extractor.core.platform.priority import lower_thread_priority
    from wac_extractor.core.recipes.process_graphs import decode_cell

    shown = threading.Event()
    relay = Relay(lambda value: (loader.show(value), shown.set()))
    extent = decode_cell(row["spatial_extent"])
    area = QgsRectangle(extent["west"], extent["south"], extent["east"], extent["north"])
    started = time.perf_counter()
    threading.Thread(target=lambda: (lower_thread_priority(), relay.emit(feed.add_row(row)))).start()
    while not shown.is_set():
        app.processEvents()
        time.sleep(0.001)
    layer = next(layer for layer in loader._layers_by_source().values() if layer.name().startswith("S2 2023-01"))
    while True:  # until the reloaded layer draws the tile
        app.processEvents()
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(layer.crs())
        settings.setExtent(area)
        settings.setOutputSize(QSize(32, 32))
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        image = job.renderedImage()
        white = QColor("white")  # any pixel of the tile (its centre may be masked: NaN is transparent)
        if any(QColor(image.pixel(x, y)) != white for x in range(32) for y in range(32)):
            return time.perf_counter() - started
        if time.perf_counter() - started > 30:
            return float("nan")
        time.sleep(0.01)


def main(tiles: int = 1000, baseline_tiles: int = 100) -> dict:
    from qgis.core import QgsApplication, QgsProject

    app = QgsApplication([], False)
    app.initQgis()
    from wac_extractor.qgis_glue.layers import ResultLoader, prepare_layers
    from wac_extractor.qgis_glue.mosaic_feed import MosaicFeed, finished_rows, row_composites

    reuse = os.environ.get("WAC_BENCH_REUSE")  # a finished earlier run's folder: measure the loading only
    if reuse:
        from wac_extractor.core.jobs.tracker import open_tracker

        work, run_seconds = Path(reuse), float("nan")
        tracker = open_tracker(work / "jobs.gpkg")
        shutil.rmtree(work / "out" / "mosaics", ignore_errors=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="wac-bench-mosaics-"))
        tracker, run_seconds = run_jobs(work, tiles)
    jobs = tracker.snapshot()
    rows = finished_rows(jobs)
    last_s2 = rows[rows["sentinel"].eq(2)].index[-1]  # held back for the first-picture measurement
    rows, held_back = rows.drop(index=last_s2), rows.loc[last_s2]
    project = QgsProject.instance()
    result = {"tiles": tiles, "months": 3, "sensors": 2, "jobs": len(rows), "run_seconds_local_backend": run_seconds}

    # Baseline: before this change, every tile's composites became layers of their own.
    base_rows = rows[rows["tile_id"].isin(sorted(set(rows["tile_id"]))[:baseline_tiles])]
    loader = ResultLoader("baseline", project)
    relay = Relay(lambda prepared: loader.add(prepared, tile_label="tile"))
    measured = watched(
        lambda: [relay.emit(prepare_layers(row_composites(row, work / "out"))) for _, row in base_rows.iterrows()],
        app,
    )
    result["baseline_per_tile_layers"] = {
        "tiles": baseline_tiles,
        "jobs": len(base_rows),
        "layers_added": len(project.mapLayers()),
        **measured,
    }
    project.clear()

    # Ours: month mosaics, fed as the task does (a worker makes VRTs and new layers, the UI shows them).
    loader = ResultLoader("mosaics", project)
    feed = MosaicFeed(work / "out", jobs)
    relay = Relay(loader.show)
    measured = watched(lambda: [relay.emit(feed.add_row(row)) for _, row in rows.iterrows()], app)
    styles = len({composite.kind for composite in feed.mosaics.mosaics()})
    result["month_mosaics"] = {
        "tiles": tiles,
        "jobs": len(rows),
        "layers_added": len(project.mapLayers()),
        "layer_bound_months_x_sensors_x_styles": 3 * 2 * styles,
        **measured,
    }
    result["first_picture_s"] = first_picture(feed, loader, held_back, app)
    result["target"] = (
        "layers <= months x sensors x styles; RSS growth < 200 MB; no UI gap > 50 ms; first picture < 1 s"
    )
    project.clear()
    app.exitQgis()
    return result


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(main(*args)))
