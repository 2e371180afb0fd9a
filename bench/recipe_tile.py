"""One 10 km tile at 20 m through the local backend's executor, per recipe and sensor (``make bench``).

Runs in the local backend's venv (it executes the graphs with openeo-processes-dask); prints one
JSON line. The monthly recipe is the baseline, measured in the same run.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.local_backend import executor
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid
from wac_extractor.core.recipes.process_graphs import job_cube

RESOLUTION_M = 20.0


def main(repeat: int = 3) -> dict:
    results = {"tile": "10 km x 10 km, 2023-01..03, 500 x 500 pixels at 20 m", "runs": repeat}
    for recipe in ("lcfm", "monthly"):
        table = plan_grid(PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3, recipe=recipe), 664000, 5611120,
                          "EPSG:32631")  # fmt: skip
        for sentinel in (2, 1):
            graph = job_cube(table[table["sentinel"] == sentinel].iloc[0]).flat_graph()
            times = []
            for _ in range(repeat):
                with tempfile.TemporaryDirectory() as folder:
                    started = time.perf_counter()
                    executor.run_process_graph(graph, Path(folder), RESOLUTION_M)
                    times.append(time.perf_counter() - started)
            results[f"{recipe}_S{sentinel}"] = {"median_s": statistics.median(times), "best_s": min(times),
                                                "worst_s": max(times)}  # fmt: skip
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
