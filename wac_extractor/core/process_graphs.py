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
from typing import Any, Dict, List, Optional, Sequence, Tuple

from openeo.rest.datacube import DataCube

S2_COLLECTION = "SENTINEL2_L2A"
S1_COLLECTION = "SENTINEL1_GLOBAL_MOSAICS"
S2_BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
S2_SCL_BAND = "SCL"
S1_BANDS = ["VV", "VH"]
# SCL classes masked out: no data, saturated/defective, cloud shadow, cloud medium/high, cirrus, snow.
S2_MASKED_SCL_CLASSES = [0, 1, 3, 8, 9, 10, 11]
# CDSE's recommended parameters for its dilated SCL mask: clouds/shadows (mask2) dilated widely.
SCL_DILATION_PROCESS = "to_scl_dilation_mask"
SCL_DILATION_ARGS = {
    "kernel1_size": 17,
    "kernel2_size": 77,
    "mask1_values": [2, 4, 5, 6, 7],
    "mask2_values": [3, 8, 9, 10, 11],
    "erosion_kernel_size": 3,
}
RESULT_FORMAT = "netCDF"

COLLECTIONS = {1: S1_COLLECTION, 2: S2_COLLECTION}


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


def _scl_class_mask(cube: DataCube, classes: Sequence[int]) -> DataCube:
    scl = cube.band(S2_SCL_BAND)
    mask = scl == classes[0]
    for value in classes[1:]:
        mask = mask | (scl == value)
    return mask


def sentinel2_cube(
    spatial_extent: Dict, temporal_extent: Sequence[str], max_cloud_cover: float, capabilities: BackendCapabilities
) -> DataCube:
    """Monthly median composite of cloud-masked Sentinel-2 L2A reflectances."""
    cube = DataCube.load_collection(
        S2_COLLECTION,
        connection=None,
        spatial_extent=spatial_extent,
        temporal_extent=list(temporal_extent),
        bands=S2_BANDS + [S2_SCL_BAND],
        fetch_metadata=False,
        max_cloud_cover=max_cloud_cover,
    )
    if capabilities.has_scl_dilation:
        scl = cube.filter_bands([S2_SCL_BAND])
        dilated = scl.process(SCL_DILATION_PROCESS, data=scl, scl_band_name=S2_SCL_BAND, **SCL_DILATION_ARGS)
        masked = cube.filter_bands(S2_BANDS).mask(dilated).mask(_scl_class_mask(cube, [0, 1]))
    else:
        masked = cube.filter_bands(S2_BANDS).mask(_scl_class_mask(cube, S2_MASKED_SCL_CLASSES))
    return masked.aggregate_temporal_period("month", reducer="median")


def sentinel1_cube(spatial_extent: Dict, temporal_extent: Sequence[str]) -> DataCube:
    """Monthly Sentinel-1 backscatter (VV, VH) from CDSE's global mosaics, in dB."""
    cube = DataCube.load_collection(
        S1_COLLECTION,
        connection=None,
        spatial_extent=spatial_extent,
        temporal_extent=list(temporal_extent),
        bands=S1_BANDS,
        fetch_metadata=False,
    )
    monthly = cube.aggregate_temporal_period("month", reducer="mean")
    return monthly.apply(lambda x: 10 * x.log(10))


def job_cube(row, capabilities: BackendCapabilities = BackendCapabilities()) -> DataCube:
    """The saved-result cube for one job-table row (dispatches on ``sentinel``)."""
    sentinel = int(row["sentinel"])
    spatial_extent = decode_cell(row["spatial_extent"])
    temporal_extent = decode_cell(row["temporal_extent"])
    if sentinel not in COLLECTIONS:
        raise ValueError(f"sentinel: {sentinel!r} is not a known sensor; use 1 (Sentinel-1) or 2 (Sentinel-2).")
    check_temporal_coverage(COLLECTIONS[sentinel], temporal_extent, capabilities)
    if sentinel == 2:
        cube = sentinel2_cube(spatial_extent, temporal_extent, float(row["max_cloud_cover"]), capabilities)
    else:
        cube = sentinel1_cube(spatial_extent, temporal_extent)
    return cube.save_result(format=RESULT_FORMAT)


def expected_variables(sentinel: int) -> List[str]:
    """The band variables a result NetCDF of this sensor must hold."""
    return list(S2_BANDS) if int(sentinel) == 2 else list(S1_BANDS)


def required_processes(sentinel: int) -> List[str]:
    """Every process id a job of this sensor uses, read from the graph itself (callbacks included)."""
    row = {
        "sentinel": sentinel,
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
