"""Offline demo: the notebook's 8 jobs against the local openEO backend, as a QGIS project and a map.

``make demo`` starts the local backend on a free port, plans the notebook's grid (2 x 2 windows
of 10 km, S1 and S2, 2023-01-01 + 3 months, cloud limit 85), runs it, loads the results into a
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
OUT = REPO / "demo" / "out"


def start_backend(work: Path):
    port_file = work / "port"
    process = subprocess.Popen(
        [str(REPO / ".venv-backend" / "bin" / "python"), "-m", "tests.local_backend", "--port", "0",
         "--port-file", str(port_file), "--work-dir", str(work / "backend")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the local openEO backend did not start; run 'make setup' first")
        time.sleep(0.2)
    return process, f"http://127.0.0.1:{port_file.read_text().strip()}"


def main() -> int:
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from wac_extractor.core.composites import month_composites
    from wac_extractor.core.connect import connect
    from wac_extractor.core.planning import PlanRequest, plan_grid, summarize
    from wac_extractor.core.runner import BackendSpec, ExtractionRunner
    from wac_extractor.core.tracker import create_tracker
    from wac_extractor.render import load_run, render_map, save_project

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="wac-demo-"))
    backend, url = start_backend(work)
    started = time.monotonic()
    try:
        request = PlanRequest("2023-01-01", "2023-04-01", ["s1", "s2"], 85, 3)
        table = plan_grid(request, west=664000, south=5611120, crs="EPSG:32631")
        print(f"plan: {summarize(table)}")
        tracker = create_tracker(OUT / "jobs.gpkg", table)
        spec = BackendSpec(url=url, parallel_jobs=2, name="local")
        runner = ExtractionRunner(
            tracker, OUT / "results", [(spec, lambda: connect(url, "basic", "demo", "demo"))], poll_interval=0.5,
            on_progress=lambda p: print(f"  {p.done}/{p.total} done {dict(sorted(p.counts.items()))}", flush=True),
        )  # fmt: skip
        summary = runner.run()
    finally:
        backend.terminate()
    composites = []
    for _, row in tracker.get_by_status(["finished"]).iterrows():
        for nc in sorted((OUT / "results" / row["id"]).glob("*.nc")):
            composites += month_composites(nc, int(row["sentinel"]))
    layers = load_run("WAC demo", OUT / "jobs.gpkg", composites)
    save_project(OUT / "demo.qgz")
    render_map(layers, OUT / "map.png")
    files = sorted(p.relative_to(OUT) for p in (OUT / "results").rglob("*.nc"))
    print(f"jobs per status: {summary.counts}; results checked: {summary.downloaded}")
    print(f"files: {len(files)} NetCDF, {len(composites)} month composites")
    print(f"time: {time.monotonic() - started:.0f} s; project {OUT / 'demo.qgz'}; map {OUT / 'map.png'}")
    app.exitQgis()
    return 0 if set(summary.counts) == {"finished"} else 1


if __name__ == "__main__":
    sys.exit(main())
