"""Build the job table that ``MultiBackendJobManager`` consumes: tiles x time windows x sensors.

The columns follow the notebook this project comes from (``spatial_extent``,
``temporal_extent``, ``max_cloud_cover``, ``sentinel``) so that a notebook's ``start_job``
and this plugin's can read the same table; ``recipe`` says what the job computes (a resumed
run builds the same graph; a notebook table without it means ``lcfm``); ``geometry`` (job footprint as WKT in EPSG:4326)
lets QGIS draw the jobs, and ``title`` names them for humans and backends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, List, Sequence, Tuple

import pandas as pd
from shapely.geometry.base import BaseGeometry

from ..recipes import DEFAULT_RECIPE, check_recipe
from .tiling import CrsLike, Tile, TooManyJobsError, feature_tiles, grid_tiles, tile_aois
from .timewindows import month_windows, months_in, parse_date

SENTINEL_1 = 1
SENTINEL_2 = 2
SENSOR_NAMES = {SENTINEL_1: "S1", SENTINEL_2: "S2"}
SENSOR_ALIASES = {"1": 1, "s1": 1, "sentinel1": 1, "sentinel-1": 1, "2": 2, "s2": 2, "sentinel2": 2, "sentinel-2": 2}
DEFAULT_MAX_JOBS = 5_000

PLAN_COLUMNS = [
    "title",
    "sentinel",
    "tile_id",
    "spatial_extent",
    "temporal_extent",
    "max_cloud_cover",
    "recipe",
    "geometry",
]


def parse_sensors(sensors: Iterable) -> List[int]:
    """Sensors as sorted unique ints (1, 2) from ints or names like ``s1``, ``Sentinel-2``."""
    parsed = set()
    for sensor in sensors:
        key = str(sensor).strip().lower().replace(" ", "")
        if key not in SENSOR_ALIASES:
            raise ValueError(f"sensors: {sensor!r} is not a known sensor; use 1 (Sentinel-1) or 2 (Sentinel-2).")
        parsed.add(SENSOR_ALIASES[key])
    if not parsed:
        raise ValueError("sensors: no sensor chosen; choose Sentinel-1, Sentinel-2 or both.")
    return sorted(parsed)


def check_cloud_cover(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"max_cloud_cover: {value!r} is not a number; use a percentage from 0 to 100.") from None
    if not 0 <= number <= 100:
        raise ValueError(f"max_cloud_cover: {number:g} is outside 0..100; use a percentage from 0 to 100.")
    return int(number) if number.is_integer() else number


@dataclass
class PlanRequest:
    """What the user asked for, before tiling."""

    start_date: str
    end_date: str
    sensors: Sequence = (SENTINEL_1, SENTINEL_2)
    max_cloud_cover: float = 85
    window_months: int = 3
    max_jobs: int = DEFAULT_MAX_JOBS
    recipe: str = DEFAULT_RECIPE
    windows: List[Tuple[str, str]] = field(init=False)

    def __post_init__(self):
        self.sensors = parse_sensors(self.sensors)
        self.recipe = check_recipe(self.recipe)
        self.max_cloud_cover = check_cloud_cover(self.max_cloud_cover)
        self.windows = month_windows(self.start_date, self.end_date, self.window_months)
        today = dt.date.today()
        if parse_date(self.start_date, "start_date") >= today:
            raise ValueError(
                f"start_date: {self.start_date} is not in the past; there is no satellite data yet, "
                "choose a start date before today."
            )
        if not isinstance(self.max_jobs, int) or self.max_jobs < 1:
            raise ValueError(f"max_jobs: {self.max_jobs!r} must be a whole number of at least 1.")

    @property
    def jobs_per_tile(self) -> int:
        return len(self.windows) * len(self.sensors)

    @property
    def max_tiles(self) -> int:
        return self.max_jobs // self.jobs_per_tile


def job_title(sentinel: int, tile: Tile, window: Tuple[str, str]) -> str:
    return f"{SENSOR_NAMES[sentinel]} {tile.tile_id} {window[0]}..{window[1]}"


def job_table(tiles: Sequence[Tile], request: PlanRequest) -> pd.DataFrame:
    """One row per tile x window x sensor, in that nesting order."""
    if len(tiles) * request.jobs_per_tile > request.max_jobs:
        raise TooManyJobsError(
            f"the plan has {len(tiles) * request.jobs_per_tile} jobs ({len(tiles)} tiles x "
            f"{len(request.windows)} windows x {len(request.sensors)} sensors), more than the maximum of "
            f"{request.max_jobs}; use a smaller area, larger tiles, longer windows, or raise the maximum."
        )
    rows = []
    for tile in tiles:
        footprint = tile.footprint_wgs84.wkt
        extent = tile.spatial_extent()
        for window in request.windows:
            for sentinel in request.sensors:
                rows.append(
                    {
                        "title": job_title(sentinel, tile, window),
                        "sentinel": sentinel,
                        "tile_id": tile.tile_id,
                        "spatial_extent": dict(extent),
                        "temporal_extent": [window[0], window[1]],
                        "max_cloud_cover": request.max_cloud_cover,
                        "recipe": request.recipe,
                        "geometry": footprint,
                    }
                )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def plan_grid(
    request: PlanRequest,
    west: float,
    south: float,
    crs: CrsLike,
    window: float = 10_000,
    gap: float = 10_000,
    rows: int = 2,
    cols: int = 2,
) -> pd.DataFrame:
    """The notebook's job table: a regular grid of windows in one UTM CRS."""
    return job_table(grid_tiles(west, south, crs, window, gap, rows, cols), request)


def plan_aois(
    request: PlanRequest,
    aois: Iterable[Tuple[BaseGeometry, CrsLike]],
    tile_size: float = 10_000,
) -> pd.DataFrame:
    """The job table for polygons in any CRS, tiled on the UTM grid."""
    return job_table(tile_aois(aois, tile_size=tile_size, max_tiles=request.max_tiles), request)


def plan_features(request: PlanRequest, aois: Iterable[Tuple[BaseGeometry, CrsLike]]) -> pd.DataFrame:
    """One job extent per feature (its bounding box, no tiling): for layers that already are a grid."""
    return job_table(feature_tiles(aois), request)


@dataclass(frozen=True)
class PlanSummary:
    jobs: int
    tiles: int
    months: int
    sensors: int
    windows: int = 1
    window_months: int = 0  # months in each window (0: windows of different lengths)

    def __str__(self) -> str:
        """``18 jobs: 9 tiles x 1 window of 3 months x 2 sensors``: the factors multiply to the jobs."""
        length = f" of {_count(self.window_months, 'month')}" if self.window_months else f" ({self.months} months)"
        return (f"{self.jobs} jobs: {_count(self.tiles, 'tile')} x {_count(self.windows, 'window')}{length} x "
                f"{_count(self.sensors, 'sensor')}")  # fmt: skip


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summarize(table: pd.DataFrame) -> PlanSummary:
    months = set()
    windows = {tuple(extent) for extent in table["temporal_extent"]}
    lengths = set()
    for extent in windows:
        months.update(months_in(extent))
        lengths.add(len(months_in(extent)))
    return PlanSummary(
        jobs=len(table),
        tiles=table["tile_id"].nunique(),
        months=len(months),
        sensors=table["sentinel"].nunique(),
        windows=len(windows),
        window_months=lengths.pop() if len(lengths) == 1 else 0,
    )
