"""The CDSE profile of the local backend: behaviours of the Copernicus Data Space Ecosystem (openeo-geopyspark-driver).

- a per-user limit of concurrent jobs, enforced when a job is started (geopyspark's ``ConcurrentJobLimit``,
  openeo-python-client#838);
- no ``GET /jobs/{id}/estimate``, no ``budget`` in ``/me``, a job's ``budget`` accepted but not enforced
  (openeo-api#541);
- Sentinel-1 jobs that finish without assets (WorldCereal#395) or end in an Orfeo toolbox error
  (WorldCereal#398), chosen deterministically by a hash of the graph and a seed, first attempt only;
- executors that run out of memory: each job needs a deterministic amount of memory, compared with its
  ``executor-memory`` + ``executor-memoryOverhead`` + ``python-memory`` job options.

Everything here is pure (no server state), so the server and the tests share it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Dict, Optional

from . import synthetic

S2 = "SENTINEL2_L2A"
S1 = "SENTINEL1_GLOBAL_MOSAICS"

# The settings a profile sets; any key missing from a profile takes BackendConfig's default.
PROFILES: Dict[str, dict] = {
    "default": {},
    "cdse": {
        "concurrent_job_limit": 2,
        "estimates": False,
        "estimate_status": 501,
        "enforce_budget": False,
        "memory_check": True,
        "s1_lost_share": 0.02,
        "s1_error_share": 0.05,
    },
}
PROFILE_KEYS = sorted({key for preset in PROFILES.values() for key in preset})

# CDSE's documented defaults (documentation.dataspace.copernicus.eu/APIs/openEO/job_config.html):
# "executor-memory": "2G", "executor-memoryOverhead": "1800m", "python-memory": None ("derived from
# executor-memoryOverhead"). geopyspark's JobOptions: "The total available memory of an executor is equal to
# executor-memory + executor-memoryOverhead [+ python-memory]".
DEFAULT_EXECUTOR_MEMORY = "2G"
DEFAULT_EXECUTOR_MEMORY_OVERHEAD = "1800m"

# Memory model: need_mb = memory_scale * (BASE_MB + sum over load_collection of
#   megapixels at 10 m x dates x bands x 4 bytes x recipe factor)
BASE_MB = 512.0
BYTES_PER_VALUE = 4
LCFM_MEMORY_FACTOR = 4.0  # percentiles over interpolated time series hold several copies of the cube

CONCURRENT_LIMIT_MESSAGE = "Job was not started because concurrent job limit ({limit}) is reached."

# openeo-geopyspark-driver (GeoPySparkBackendImplementation.summarize_exception / batch_job.py), when an
# executor's container is killed for its memory ("Container killed on request. Exit code is 143").
MEMORY_MESSAGE = (
    "Your batch job failed because workers used too much Python memory. The same task was attempted multiple "
    "times. Consider increasing executor-memoryOverhead or contact the developers to investigate."
)
MEMORY_TRACE = (
    "Error processing batch job: Py4JJavaError('An error occurred while calling o{call}.saveStitched.\\n: "
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task {task} in stage 7.0 failed 4 times, "
    "most recent failure: Lost task {task}.3 in stage 7.0: ExecutorLostFailure (executor {executor} exited caused "
    "by one of the running tasks) Reason: Container killed on request. Exit code is 143')"
)
# sar_backscatter on some Sentinel-1 products (openeo-geopyspark-driver#1160, #1199; WorldCereal#398).
OTB_MESSAGE = (
    "OpenEO batch job failed: RuntimeError: Exception thrown in otbApplication "
    "Application_GetVectorImageAsFloatNumpyArray_: /var/lib/jenkins/workspace/Snowflakes/orfeo-toolbox-py38/build/"
    "ITK/src/ITK/Modules/Core/Common/src/itkMultiThreader.cxx:399:\n"
    "itk::ERROR: MultiThreader(0x{address:012x}): Exception occurred during SingleMethodExecute\n"
    "/var/lib/jenkins/workspace/Snowflakes/orfeo-toolbox-py38/otb/Modules/Core/Metadata/src/"
    "otbSentinel1ThermalNoiseLookupData.cxx:121:\n"
    "otb::ERROR: Missing LUT metadata for index : '{row} {col}', you should call the calibration without "
    "'removenoise' parameter"
)


def graph_key(graph: dict) -> str:
    """A stable key of a process graph (same graph, same key, whatever the job id)."""
    return hashlib.sha256(json.dumps(graph, sort_keys=True).encode()).hexdigest()


def unit_hash(*parts) -> float:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def is_s1(graph: dict) -> bool:
    return any(node.get("arguments", {}).get("id") == S1 for node in load_collections(graph))


def load_collections(graph: dict):
    for node in graph.values():
        if isinstance(node, dict) and node.get("process_id") == "load_collection":
            yield node


def process_ids(graph: dict):
    for node in graph.values():
        if isinstance(node, dict) and "process_id" in node:
            yield node["process_id"]
            for value in node.get("arguments", {}).values():
                if isinstance(value, dict) and isinstance(value.get("process_graph"), dict):
                    yield from process_ids(value["process_graph"])


def parse_memory_mb(value) -> Optional[float]:
    """Spark memory strings ("2G", "1800m", "512M", "3g", 4096) in MB; plain numbers are MB; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)(i?b)?\s*", str(value).lower())
    if not match:
        raise ValueError(f"not a memory size: {value!r}")
    number, unit = float(match.group(1)), match.group(2) or "m"
    return number * {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}[unit]


def memory_limit_mb(job_options: Optional[dict], config) -> dict:
    """What a job's executors have: executor-memory + executor-memoryOverhead (+ python-memory when set)."""
    options = job_options or {}
    executor = parse_memory_mb(options.get("executor-memory", config.default_executor_memory))
    overhead = parse_memory_mb(options.get("executor-memoryOverhead", config.default_executor_memory_overhead))
    python = parse_memory_mb(options.get("python-memory", config.default_python_memory)) or 0.0
    return {"executor-memory": executor, "executor-memoryOverhead": overhead, "python-memory": python,
            "total": executor + overhead + python}  # fmt: skip


def _extent_km2(extent: dict) -> float:
    west, south, east, north = (float(extent[k]) for k in ("west", "south", "east", "north"))
    crs = extent.get("crs", 4326)
    if str(crs) in ("4326", "EPSG:4326") or max(abs(west), abs(east)) <= 180 and max(abs(south), abs(north)) <= 90:
        latitude = math.radians((south + north) / 2)
        return abs(east - west) * 111.32 * math.cos(latitude) * abs(north - south) * 110.57
    return abs(east - west) * abs(north - south) / 1e6


def memory_need_mb(graph: dict, scale: float = 1.0) -> float:
    """The memory (MB) a job needs: deterministic in its collections' pixels, dates and bands, and its recipe."""
    data = 0.0
    for node in load_collections(graph):
        arguments = node.get("arguments", {})
        collection = arguments.get("id")
        try:
            km2 = _extent_km2(arguments["spatial_extent"])
            start, end = (dt.date.fromisoformat(str(v)[:10]) for v in arguments["temporal_extent"])
        except (KeyError, TypeError, ValueError):
            continue
        if collection == S2:
            dates, all_bands = len(synthetic.s2_scene_dates(start, end)), synthetic.S2_BANDS
        else:
            dates, all_bands = len(synthetic.s1_mosaic_dates(start, end)), synthetic.S1_BANDS
        bands = len(arguments.get("bands") or all_bands)
        megapixels = km2 * 1e6 / (10.0 * 10.0) / 1e6
        data += megapixels * dates * bands * BYTES_PER_VALUE
    factor = LCFM_MEMORY_FACTOR if "quantiles" in set(process_ids(graph)) else 1.0
    return round(scale * (BASE_MB + data * factor), 1)


def memory_logs(job_id: str, need: float, limit: dict) -> list:
    """(level, message) of a job whose executors ran out of memory, as geopyspark words them."""
    seed = int(hashlib.sha256(job_id.encode()).hexdigest()[:6], 16)
    parts = " + ".join(f"{name} {limit[name]:.0f} MB" for name in ("executor-memory", "executor-memoryOverhead",
                                                                      "python-memory"))  # fmt: skip
    detail = f"local backend: the job needs about {need:.0f} MB per executor; it has {limit['total']:.0f} MB ({parts})"
    trace = MEMORY_TRACE.format(call=1000 + seed % 9000, task=seed % 64, executor=1 + seed % 20)
    return [("debug", detail), ("error", trace), ("error", MEMORY_MESSAGE)]


def otb_message(job_id: str) -> str:
    seed = int(hashlib.sha256(job_id.encode()).hexdigest()[:12], 16)
    return OTB_MESSAGE.format(address=0x560000000000 + seed % 0xFFFFFFFFF, row=seed % 25000, col=(seed >> 16) % 10000)
