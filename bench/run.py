"""``make bench``: planning and tracker benchmarks, each beside a baseline measured in the same run.

Writes ``bench/results.json``; ``bench/README.md`` holds the table of the last run on the
project's machine (2 cores). Not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import json
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

from wac_extractor.core.planning import PlanRequest, plan_aois
from wac_extractor.core.tracker import GeoPackageTracker

OUT = Path(__file__).resolve().parent / "results.json"


def timed(function, repeat: int = 5) -> dict:
    """Median and best wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "best_s": min(times), "runs": repeat}


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


def main() -> int:
    results = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        "planning": bench_planning(),
        "tracker_update": bench_tracker(),
    }
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
