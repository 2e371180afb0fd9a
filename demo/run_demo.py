"""Offline demo: the notebook's 8 jobs against the local openEO backend, as a QGIS project and a map.

``make demo`` starts the local backend on a free port as CDSE behaves (its ``cdse`` profile: 2 jobs at
once per account, no estimates, lost Sentinel-1 jobs, memory limits), runs the notebook's grid (2 x 2
windows of 10 km, S1 and S2, 2023-01-01 + 3 months, cloud limit 85) through the plugin's Processing
algorithm asking 4 parallel jobs (the run learns the account's 2 and says so), loads the results into a
QGIS project (``demo/out/demo.qgz``), renders ``demo/out/map.png`` and prints a summary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("WAC_DEMO_OUT") or REPO / "demo" / "out")  # another folder for the tests


def start_backend(work: Path):
    port_file = work / "port"
    process = subprocess.Popen(
        [str(REPO / ".venv-backend" / "bin" / "python"), "-m", "tests.local_backend", "--port", "0",
         "--port-file", str(port_file), "--work-dir", str(work / "backend"), "--profile", "cdse"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the local openEO backend did not start; run 'make setup' first")
        time.sleep(0.2)
    return process, f"http://127.0.0.1:{port_file.read_text().strip()}"


def main() -> int:
    from qgis.core import QgsApplication, QgsRectangle

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins"))  # QGIS's Processing plugin
    from processing.core.Processing import Processing
    from qgis.core import QgsFeature, QgsGeometry, QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer

    from wac_extractor.core.jobs.tracker import open_tracker
    from wac_extractor.processing.provider import WacProcessingProvider
    from wac_extractor.qgis_glue.render import load_run, render_map, save_project

    Processing.initialize()
    provider = WacProcessingProvider()  # keep a Python reference, or sip lets it go
    QgsApplication.processingRegistry().addProvider(provider)
    algorithm = QgsApplication.processingRegistry().algorithmById("wac_extractor:extract")

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="wac-demo-"))
    backend, url = start_backend(work)
    started = time.monotonic()
    # The notebook's grid as a layer: 2 x 2 windows of 10 km, 10 km apart, in UTM 31N; one job per window.
    windows = QgsVectorLayer("Polygon?crs=EPSG:32631", "notebook windows", "memory")
    for west in (664000, 684000):
        for south in (5611120, 5631120):
            feature = QgsFeature()
            feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(west, south, west + 10000, south + 10000)))
            windows.dataProvider().addFeature(feature)

    class Feedback(QgsProcessingFeedback):
        def setProgressText(self, text):
            print(f"  {text}", flush=True)

    os.environ["WAC_PASSWORD"] = "demo"  # the local backend's demo account
    parameters = {
        "AOI": windows, "START": "2023-01-01", "END": "2023-04-01", "WINDOW_MONTHS": 3, "SENSORS": [0, 1],
        "MAX_CLOUD_COVER": 85, "ONE_JOB_PER_FEATURE": True, "BACKEND": url, "PARALLEL_JOBS": 4, "AUTH": 1,
        "USERNAME": "demo", "POLL_SECONDS": 0.5, "OUTPUT_FOLDER": str(OUT / "results"),
        "TRACKER": str(OUT / "jobs.gpkg"),
    }  # fmt: skip
    try:
        _, ok = algorithm.run(parameters, QgsProcessingContext(), Feedback())
    finally:
        backend.terminate()
        backend.wait(10)
    tracker = open_tracker(OUT / "jobs.gpkg")
    counts = tracker.count_by_status()
    downloaded = int(tracker.read()["result_status"].eq("ok").sum())
    layers = load_run("WAC demo", OUT / "jobs.gpkg", OUT / "results")
    save_project(OUT / "demo.qgz")
    render_map(layers, OUT / "map.png")
    files = sorted(p.relative_to(OUT) for p in (OUT / "results").rglob("*.nc"))
    print(f"jobs per status: {counts}; results downloaded and checked: {downloaded}")
    print(f"files: {len(files)} NetCDF; {len(layers) - 1} month-mosaic layers")
    print(f"time: {time.monotonic() - started:.0f} s; project {OUT / 'demo.qgz'}; map {OUT / 'map.png'}")
    app.exitQgis()
    return 0 if ok and set(counts) == {"finished"} else 1


if __name__ == "__main__":
    sys.exit(main())
