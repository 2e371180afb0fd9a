"""openEO process graphs for one job row: the notebook's ``eo_fetcher``, built with the openeo client.

Graphs are built without a connection (``connection=None``), so planning and tests never touch
the network; the runner reads what it needs from each backend once
(:func:`backend_capabilities`) and passes it in.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from openeo.rest.datacube import DataCube

from ..planning.timewindows import months_in
from . import DEFAULT_RECIPE, lcfm, monthly, row_recipe
from .monthly import SCL_DILATION_PROCESS
from .sentinel import COLLECTIONS, S1_COLLECTION, S2_COLLECTION

RESULT_FORMAT = "netCDF"


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend offers that changes the graphs or the validation of a job row."""

    processes: frozenset = frozenset()
    # Temporal extent per collection id as (start, end) ISO dates, None for open ends.
    temporal_extents: Tuple[Tuple[str, Tuple[Optional[str], Optional[str]]], ...] = ()

    @property
    def has_scl_dilation(self) -> bool:
        return SCL_DILATION_PROCESS in self.processes

    def temporal_extent(self, collection_id: str) -> Optional[Tuple[Optional[str], Optional[str]]]:
        return dict(self.temporal_extents).get(collection_id)


def backend_capabilities(connection, collection_ids: Sequence[str] = (S1_COLLECTION, S2_COLLECTION)):
    """Read the process list and the collections' temporal extents from a backend (network)."""
    processes = frozenset(p["id"] for p in connection.list_processes())
    extents = []
    for collection_id in collection_ids:
        interval = connection.describe_collection(collection_id).get("extent", {}).get("temporal", {})
        interval = (interval.get("interval") or [[None, None]])[0]
        extents.append((collection_id, (_date_part(interval[0]), _date_part(interval[1]))))
    return BackendCapabilities(processes=processes, temporal_extents=tuple(extents))


def _date_part(value: Optional[str]) -> Optional[str]:
    return value[:10] if value else None


def check_temporal_coverage(collection_id: str, temporal_extent: Sequence[str], capabilities: BackendCapabilities):
    """Raise ``ValueError`` when a job asks for dates the collection does not have.

    The collection's extent comes from the backend's metadata; ``temporal_extent`` is half-open.
    """
    coverage = capabilities.temporal_extent(collection_id)
    if not coverage:
        return
    start, end = temporal_extent[0][:10], temporal_extent[1][:10]
    first, last = coverage
    if (first and start < first) or (last and end > _next_day(last)):
        raise ValueError(
            f"temporal_extent: {collection_id} covers {first or 'open'} to {last or 'open'} on this backend, "
            f"but the job asks for {start} to {end}; choose dates inside the collection's extent."
        )


def _next_day(iso_date: str) -> str:
    return (dt.date.fromisoformat(iso_date) + dt.timedelta(days=1)).isoformat()


def decode_cell(value: Any) -> Any:
    """A dict/list cell as it comes back from a tracker: JSON text, Python repr text or the object."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text)
        except ValueError:
            return ast.literal_eval(text)
    return value


def _window_months(temporal_extent: Sequence[str]) -> int:
    return len(months_in(tuple(temporal_extent)))


def job_cube(row, capabilities: BackendCapabilities = BackendCapabilities()) -> DataCube:
    """The saved-result cube for one job-table row (dispatches on ``recipe`` and ``sentinel``)."""
    sentinel = int(row["sentinel"])
    recipe = row_recipe(row)
    spatial_extent = decode_cell(row["spatial_extent"])
    temporal_extent = decode_cell(row["temporal_extent"])
    if sentinel not in COLLECTIONS:
        raise ValueError(f"sentinel: {sentinel!r} is not a known sensor; use 1 (Sentinel-1) or 2 (Sentinel-2).")
    check_temporal_coverage(COLLECTIONS[sentinel], temporal_extent, capabilities)
    cloud_cover = float(row["max_cloud_cover"]) if sentinel == 2 else None
    if recipe == "monthly" and sentinel == 2:
        cube = monthly.sentinel2_cube(spatial_extent, temporal_extent, cloud_cover, capabilities.has_scl_dilation)
    elif recipe == "monthly":
        cube = monthly.sentinel1_cube(spatial_extent, temporal_extent)
    elif sentinel == 2:
        cube = lcfm.sentinel2_cube(spatial_extent, temporal_extent, cloud_cover, _window_months(temporal_extent))
    else:
        cube = lcfm.sentinel1_cube(spatial_extent, temporal_extent)
    return cube.save_result(format=RESULT_FORMAT)


@dataclass(frozen=True)
class ExpectedResult:
    """What a job's NetCDF must hold: its variables, and whether they have a time dimension."""

    variables: Tuple[str, ...]
    has_time: bool
    int16: bool


def expected_result(row) -> ExpectedResult:
    sentinel = int(row.get("sentinel", 2))
    if row_recipe(row) == "monthly":
        return ExpectedResult(tuple(monthly.variables(sentinel)), has_time=True, int16=False)
    if sentinel == 1:
        return ExpectedResult(tuple(lcfm.s1_variables()), has_time=False, int16=False)
    months = _window_months(decode_cell(row["temporal_extent"]))
    return ExpectedResult(tuple(lcfm.s2_variables(months)), has_time=False, int16=True)


def expected_variables(row) -> List[str]:
    """The band variables a result NetCDF of this row must hold."""
    return list(expected_result(row).variables)


def required_processes(sentinel: int, recipe: str = DEFAULT_RECIPE) -> List[str]:
    """Every process id a job of this sensor and recipe uses, read from the graph itself (callbacks included)."""
    row = {
        "sentinel": sentinel,
        "recipe": recipe,
        "spatial_extent": {"west": 0, "south": 0, "east": 1, "north": 1, "crs": 4326},
        "temporal_extent": ["2023-01-01", "2023-02-01"],
        "max_cloud_cover": 80,
    }
    found = set()

    def walk(value):
        if isinstance(value, dict):
            if "process_id" in value:
                found.add(value["process_id"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(job_cube(row).flat_graph())
    return sorted(found)
