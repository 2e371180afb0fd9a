"""``make bench``: planning and tracker benchmarks, each beside a baseline measured in the same run.

Writes ``bench/results.json``, then regenerates ``bench/README.md``'s tables from it
(``bench/report.py``). Not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import shapely
from openeo.extra.job_management import CsvJobDatabase, ParquetJobDatabase
from shapely.geometry import box

from wac_extractor.core.jobs.tracker import GeoPackageTracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_aois

OUT = Path(__file__).resolve().parent / "results.json"


def timed(function, repeat: int = 5) -> dict:
    """Median, best and worst wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "best_s": min(times), "worst_s": max(times), "runs": repeat}


def bench_planning() -> dict:
    # ~50,000 km2 in Belgium/Netherlands (UTM 31N): 2.2 x 3.1 degrees, about 500 10-km tiles.
    big = [(box(3.0, 50.5, 6.2, 52.5), "EPSG:4326")]
    request = PlanRequest("2023-01-01", "2024-01-01", ["s1", "s2"], 85, 1, max_jobs=100_000)
    table = plan_aois(request, big)
    # 1,000 small field polygons (about 1 km2 each) spread over the same area, in EPSG:4326.
    fields = [
        (shapely.Polygon([(x, y), (x + 0.014, y), (x + 0.014, y + 0.009), (x, y + 0.009)]), "EPSG:4326")
        for x in [3.0 + 0.1 * i for i in range(40)]
        for y in [50.5 + 0.08 * j for j in range(25)]
    ]
    layer_table = plan_aois(request, fields)
    return {
        "aoi_50000_km2": {
            "tiles": int(table["tile_id"].nunique()),
            "jobs": len(table),
            **timed(lambda: plan_aois(request, big)),
        },  # fmt: skip
        "layer_1000_polygons": {
            "tiles": int(layer_table["tile_id"].nunique()),
            "jobs": len(layer_table),
            **timed(lambda: plan_aois(request, fields)),
        },  # fmt: skip
        "target": "plan under 1 s",
    }


def synthetic_jobs(count: int) -> pd.DataFrame:
    rows = []
    for i in range(count):
        west, south = 600000 + 10000 * (i % 100), 5600000 + 10000 * (i // 100)
        lon = i % 100 * 0.1
        rows.append(
            {
                "title": f"S2 32631_{west}_{south} 2023-01-01..2023-04-01",
                "sentinel": 2,
                "tile_id": f"32631_{west}_{south}",
                "spatial_extent": {
                    "west": west,
                    "south": south,
                    "east": west + 10000,
                    "north": south + 10000,
                    "crs": 32631,
                },  # fmt: skip
                "temporal_extent": ["2023-01-01", "2023-04-01"],
                "max_cloud_cover": 85,
                "geometry": f"POLYGON(({lon} 50, {lon + 0.1} 50, {lon + 0.1} 50.1, {lon} 50.1, {lon} 50))",
            }
        )
    return pd.DataFrame(rows)


def bench_tracker(sizes=(1_000, 10_000, 100_000)) -> dict:
    results = {}
    for size in sizes:
        jobs = synthetic_jobs(size)
        folder = Path(tempfile.mkdtemp(prefix=f"wac-bench-{size}-"))
        entry = {}
        databases = {
            "geopackage (ours)": GeoPackageTracker(folder / "jobs.gpkg"),
            "openeo CsvJobDatabase": CsvJobDatabase(folder / "jobs.csv"),
            "openeo ParquetJobDatabase": ParquetJobDatabase(folder / "jobs.parquet"),
        }
        for name, database in databases.items():
            frame = jobs if name.startswith("geopackage") else jobs.drop(columns=["geometry"])
            started = time.perf_counter()
            database.initialize_from_df(frame)
            created = time.perf_counter() - started
            counter = iter(range(10**9))

            def one_status_change(db=database, counter=counter, size=size):
                index = next(counter) % size
                row = db.get_by_indices([index]).copy()
                row["status"] = "running"
                db.persist(row)

            entry[name] = {"create_s": created, **timed(one_status_change, repeat=7)}
        entry["speedup_vs_csv"] = entry["openeo CsvJobDatabase"]["median_s"] / entry["geopackage (ours)"]["median_s"]
        results[str(size)] = entry
    gpkg = [results[str(s)]["geopackage (ours)"]["median_s"] for s in sizes]
    results["geopackage_growth_1k_to_100k"] = gpkg[-1] / gpkg[0]
    results["target"] = "at least 20x faster than CSV at 10,000 jobs, not growing linearly with size"
    return results


def bench_result_layers(tiles: int = 100) -> dict:
    """100 finished NetCDF tiles from the local backend, loaded as layers: ours vs one by one per variable."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    from demo.run_demo import start_backend
    from wac_extractor.core.backends.signin import connect
    from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
    from wac_extractor.core.jobs.tracker import create_tracker
    from wac_extractor.core.planning.job_table import plan_grid
    from wac_extractor.core.results.composites import month_composites

    app = QgsApplication([], False)
    app.initQgis()
    from wac_extractor.qgis_glue.layers import ResultLoader, prepare_layers

    work = Path(tempfile.mkdtemp(prefix="wac-bench-layers-"))
    backend, url = start_backend(work)
    try:
        import requests

        requests.post(f"{url}/_control/config", json={"queue_seconds": [0, 0], "run_seconds": [0, 0]}, timeout=10)
        # The monthly recipe: its NetCDF has a time dimension, one layer a month (the per-tile loading measured).
        request = PlanRequest("2023-01-01", "2023-02-01", ["s1"], 85, 1, recipe="monthly")
        table = plan_grid(request, 600000, 5600000, "EPSG:32631", window=10000, gap=0, rows=10, cols=tiles // 10)
        tracker = create_tracker(work / "jobs.gpkg", table)
        spec = BackendSpec(url=url, parallel_jobs=8)
        started = time.perf_counter()
        ExtractionRunner(tracker, work / "out", [(spec, lambda: connect(url, "basic", "demo", "demo"))],
                         poll_interval=0.2).run()  # fmt: skip
        run_seconds = time.perf_counter() - started
    finally:
        backend.terminate()
        backend.wait(10)
    files = sorted((work / "out").glob("*/*.nc"))
    project = QgsProject.instance()

    started = time.perf_counter()
    for path in files:  # baseline: what iface.addRasterLayer does, one layer per NetCDF variable
        for variable in ("VV", "VH"):
            project.addMapLayer(QgsRasterLayer(f'NETCDF:"{path}":{variable}', f"{path.parent.name} {variable}", "gdal"))
    baseline = time.perf_counter() - started
    project.clear()

    started = time.perf_counter()
    composites = [c for path in files for c in month_composites(path, 1)]  # in the task thread in the plugin
    vrt_seconds = time.perf_counter() - started
    started = time.perf_counter()
    # In a worker thread, as in the task (QGIS reads data to set up the stretch), with the UI thread watched.
    prepared, prepare_gaps = _in_worker_watched(lambda: prepare_layers(composites))
    prepare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ResultLoader("bench", project).add(prepared, tile_label="tile")  # the only part on the UI thread
    layer_seconds = time.perf_counter() - started
    result = {
        "tiles": len(files),
        "run_seconds_local_backend": run_seconds,
        "baseline_addRasterLayer_per_variable": {
            "total_s": baseline,
            "per_tile_ms": 1000 * baseline / len(files),
            "layers": 2 * len(files),
        },  # fmt: skip
        "ours_vrt_build_in_task": {"total_s": vrt_seconds, "per_tile_ms": 1000 * vrt_seconds / len(files)},
        "ours_layers_opened_in_task": {
            "total_s": prepare_seconds,
            "per_tile_ms": 1000 * prepare_seconds / len(files),
            "ui_thread_worst_gap_ms": max(prepare_gaps),
            "ui_thread_ticks": len(prepare_gaps),
        },  # fmt: skip
        "ours_layers_on_ui_thread": {
            "total_s": layer_seconds,
            "per_tile_ms": 1000 * layer_seconds / len(files),
            "layers": len(composites),
        },  # fmt: skip
        "ours_total_work": {
            "total_s": vrt_seconds + prepare_seconds + layer_seconds,
            "per_tile_ms": 1000 * (vrt_seconds + prepare_seconds + layer_seconds) / len(files),
        },  # fmt: skip
        "rss_after_loading_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    app.exitQgis()
    return result


def _in_worker_watched(function):
    """Run ``function`` in a worker thread while a watchdog on this (UI) thread records the gaps between ticks."""
    import threading

    from qgis.core import QgsApplication

    from bench.ui_watchdog import GapWatchdog

    result, watchdog = [], GapWatchdog()
    worker = threading.Thread(target=lambda: result.append(function()))
    watchdog.start()
    worker.start()
    while worker.is_alive():
        QgsApplication.processEvents()
        time.sleep(0.001)
    watchdog.stop()
    return result[0], watchdog.gaps or [0]


def _backend(work: Path, *args: str):
    from tests.conftest import LocalBackend, start_backend

    process, url = start_backend(work, "--max-workers", "4", *args)
    return process, LocalBackend(url)


def _scheduling_plan(jobs: int) -> pd.DataFrame:
    from wac_extractor.core.planning.job_table import plan_grid

    request = PlanRequest("2023-01-01", "2023-02-01", ["s1"], 85, 1, recipe="monthly")
    cols = min(jobs, 10)
    return plan_grid(request, 664000, 5611120, "EPSG:32631", window=200, gap=0, rows=jobs // cols, cols=cols)


def bench_scheduling(jobs: int = 200, slots: int = 4, poll: float = 0.5) -> dict:
    """Jobs of 2-5 s on the local backend, ``slots`` at a time: our runner vs plain ``run_jobs``.

    Both on the same ``jobs`` jobs with the same ``poll`` interval, so the ratio measures scheduling,
    not openeo's 60 s default poll.
    """
    from openeo.extra.job_management import MultiBackendJobManager

    from wac_extractor.core.backends.signin import connect
    from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
    from wac_extractor.core.jobs.tracker import create_tracker
    from wac_extractor.core.recipes.process_graphs import job_cube

    work = Path(tempfile.mkdtemp(prefix="wac-bench-scheduling-"))
    process, backend = _backend(work, "--queue-seconds", "0", "0", "--run-seconds", "2", "5")
    url = backend.url
    results = {"slots": slots, "job_seconds": "2-5 s, uniform per job id"}
    try:
        # Ours: the plugin's runner, polling every 0.5 s.
        backend.reset()
        backend.configure(queue_seconds=[0, 0], run_seconds=[2, 5])
        tracker = create_tracker(work / "ours.gpkg", _scheduling_plan(jobs))
        started = time.perf_counter()
        summary = ExtractionRunner(tracker, work / "ours", [(BackendSpec(url, slots), lambda: connect(url, "basic",
                                   "demo", "demo"))], poll_interval=poll).run()  # fmt: skip
        wall = time.perf_counter() - started
        durations = [float(d.split()[0]) for d in tracker.read()["duration"]]
        ideal = -(-jobs // slots) * statistics.mean(durations)
        requests_made = sum(v for k, v in backend.requests().items() if "_control" not in k)
        results["ours"] = {"jobs": jobs, "finished": summary.counts.get("finished", 0), "wall_s": wall,
                           "ideal_s": ideal, "wall_over_ideal": wall / ideal, "http_requests_per_job":
                           requests_made / jobs, "requests": backend.requests()}  # fmt: skip

        # Baseline: plain MultiBackendJobManager.run_jobs, same graphs, same jobs, same poll interval.
        backend.reset()
        backend.configure(queue_seconds=[0, 0], run_seconds=[2, 5])
        from openeo.extra.job_management import CsvJobDatabase

        job_db = CsvJobDatabase(work / "baseline.csv").initialize_from_df(_scheduling_plan(jobs))
        manager = MultiBackendJobManager(root_dir=work / "baseline", poll_sleep=poll)
        manager.add_backend("local", connection=connect(url, "basic", "demo", "demo"), parallel_jobs=slots)

        def start_job(row, connection, **kwargs):
            return connection.create_job(job_cube(row), title=row.get("title"))

        started = time.perf_counter()
        stats = manager.run_jobs(job_db=job_db, start_job=start_job)
        wall = time.perf_counter() - started
        done = job_db.read()
        durations = [float(str(d).split()[0]) for d in done["duration"]]
        ideal = -(-jobs // slots) * statistics.mean(durations)
        requests_made = sum(v for k, v in backend.requests().items() if "_control" not in k)
        results["baseline_run_jobs"] = {
            "jobs": jobs, "poll_s": poll, "finished": int((done["status"] == "finished").sum()), "wall_s": wall,
            "ideal_s": ideal, "wall_over_ideal": wall / ideal, "http_requests_per_job": requests_made / jobs,
            "requests": backend.requests(),
            "stats": {k: int(v) for k, v in (stats or {}).items()},
        }  # fmt: skip
    finally:
        process.terminate()
        process.wait(10)
    results["target"] = "wall time within 1.15x of ideal"
    return results


def _json_of(module: str, *args: str, python: str = sys.executable) -> dict:
    """Run ``python -m module args`` (a section that needs a process of its own) and read its last JSON line."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([python, "-m", module, *args], capture_output=True, text=True, cwd=root, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_ui_responsiveness(jobs: int = 1000) -> dict:
    """A dock run of ``jobs`` jobs with a 10 ms watchdog on the UI thread (own process: own QGIS app)."""
    return _json_of("bench.ui_watchdog", str(jobs))


def bench_ui_desktop(jobs: int = 1000) -> dict:
    """The same dock run inside QGIS Desktop under Xvfb (own process): real layer tree, visible canvas."""
    return _json_of("bench.ui_desktop", str(jobs))


def bench_mosaic_layers(tiles: int = 1000, baseline_tiles: int = 100) -> dict:
    """Results of ``tiles`` tiles x 3 months, S1 + S2, as month mosaics vs per-tile layers (own process)."""
    return _json_of("bench.mosaic_layers", str(tiles), str(baseline_tiles))


def bench_mosaic_draw(tiles: int = 1000, pixels: int = 500) -> dict:
    """A zoomed-out draw of a ``tiles``-tile month mosaic, NetCDF sources against display copies (own process)."""
    return _json_of("bench.mosaic_draw", str(tiles), str(pixels))


def bench_recipe_tile() -> dict:
    """What one job computes: a 10 km tile at 20 m per recipe, in the local backend's venv."""
    root = Path(__file__).resolve().parent.parent
    return _json_of("bench.recipe_tile", python=str(root / ".venv-backend" / "bin" / "python"))


def bench_sampling() -> dict:
    """10,000 fields over 100 synthetic 10 km LCFM tiles: ours (both coverage engines), exactextract, QGIS.
    ``SAMPLING_BENCH_DIR`` keeps the synthesised run there (4 min to write) for the next bench."""
    from bench.sampling import main as sampling

    return sampling(keep=os.environ.get("SAMPLING_BENCH_DIR", ""))


SECTIONS = {
    "planning": ("planning", bench_planning),
    "tracker": ("tracker_update", bench_tracker),
    "scheduling": ("scheduling", bench_scheduling),
    "ui": ("ui_responsiveness", bench_ui_responsiveness),
    "desktop": ("ui_desktop", bench_ui_desktop),
    "layers": ("result_layers", bench_result_layers),
    "mosaics": ("mosaic_layers", bench_mosaic_layers),
    "draw": ("mosaic_draw", bench_mosaic_draw),
    "recipe": ("recipe_tile", bench_recipe_tile),
    "sampling": ("sampling", bench_sampling),
}


def _qgis_version() -> str:
    try:
        from qgis.core import Qgis

        return Qgis.version()
    except ImportError:
        return "not importable"


def main(sections=()) -> int:
    """All sections (``make bench``), or only the named ones, updated in the existing results file."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s) {sorted(unknown)}; choose from {sorted(SECTIONS)}", file=sys.stderr)
        return 2
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": __import__("os").cpu_count(),
        "qgis": _qgis_version(),
    }
    for name in sections or SECTIONS:
        key, bench = SECTIONS[name]
        started = time.perf_counter()
        results[key] = bench()
        results[key]["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
        results[key]["bench_seconds"] = round(time.perf_counter() - started, 1)
        if name == "tracker":
            results["peak_rss_mb_trackers"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        OUT.write_text(json.dumps(results, indent=2))  # after each section: a later crash loses nothing
    if not sections:
        results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    from bench import report

    return report.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
