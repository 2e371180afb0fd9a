"""Tile areas of interest on a UTM grid, the way openEO jobs for Sentinel data are cut.

Each AOI is split along the UTM zone boundaries (6 degree strips, north and south of the
equator) and each part is tiled in its own zone, so an AOI that crosses a zone boundary is
handled instead of refused. Tile edges sit on multiples of the tile size, which itself is a
multiple of the 10 m Sentinel-2 pixel, so every tile edge lies on the 10 m pixel grid and
tiles from different runs line up.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import numpy as np
import shapely
import shapely.validation
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

PIXEL_SIZE_M = 10
MIN_TILE_SIZE_M = 1_000
WGS84 = 4326

CrsLike = Union[str, int, CRS]


@dataclass(frozen=True)
class Tile:
    """One job extent: a square (or grid window) in a UTM CRS."""

    epsg: int
    west: float
    south: float
    east: float
    north: float
    footprint_wgs84: Polygon = field(compare=False, hash=False, repr=False, default=None)

    @property
    def tile_id(self) -> str:
        return f"{self.epsg}_{int(self.west)}_{int(self.south)}"

    def spatial_extent(self) -> dict:
        """The openEO bounding box of this tile (``crs`` as an EPSG code, as the API specifies)."""
        return {
            "west": _plain_number(self.west),
            "south": _plain_number(self.south),
            "east": _plain_number(self.east),
            "north": _plain_number(self.north),
            "crs": self.epsg,
        }


def _plain_number(value: float) -> Union[int, float]:
    return int(value) if float(value).is_integer() else float(value)


@functools.lru_cache(maxsize=256)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def crs_key(crs: CrsLike) -> str:
    """A hashable, canonical text for a CRS (``EPSG:32631`` where there is an EPSG code)."""
    if isinstance(crs, CRS):
        epsg = crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else crs.to_wkt()
    return _crs_key_cached(crs)


@functools.lru_cache(maxsize=1024)
def _crs_key_cached(crs) -> str:
    # Parsing a CRS costs ~0.5 ms; a 1,000-polygon layer asks for the same few thousands of times.
    parsed = CRS.from_user_input(crs)
    epsg = parsed.to_epsg()
    return f"EPSG:{epsg}" if epsg else parsed.to_wkt()


def reproject(geometry: BaseGeometry, source: CrsLike, target: CrsLike) -> BaseGeometry:
    source_key, target_key = crs_key(source), crs_key(target)
    if source_key == target_key:
        return geometry
    transformer = _transformer(source_key, target_key)
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def utm_epsg(zone: int, north: bool) -> int:
    return (32600 if north else 32700) + zone


def utm_zone_of_longitude(lon: float) -> int:
    return min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))


def validate_aoi(geometry: BaseGeometry, crs: CrsLike, label: str = "AOI") -> BaseGeometry:
    """Check an AOI and return it in EPSG:4326; raise ``ValueError`` saying what to change."""
    if geometry is None or geometry.is_empty:
        raise ValueError(f"{label}: the geometry is empty; draw or select a polygon that has an area.")
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"{label}: a {geometry.geom_type} has no area; use a polygon or a rectangle as AOI.")
    if not geometry.is_valid:
        reason = shapely.validation.explain_validity(geometry)
        raise ValueError(
            f"{label}: the polygon is not valid ({reason}); fix it first, e.g. with QGIS's 'Fix geometries'."
        )
    if geometry.area <= 0:
        raise ValueError(f"{label}: the polygon has no area; draw or select a polygon that has an area.")
    try:
        source = crs_key(crs)
    except Exception as exc:  # pyproj raises CRSError with its own wording
        raise ValueError(f"{label}: the CRS {crs!r} is unknown ({exc}); give an EPSG code such as EPSG:4326.") from None
    segment = max(geometry.bounds[2] - geometry.bounds[0], geometry.bounds[3] - geometry.bounds[1]) / 64
    wgs84 = reproject(shapely.segmentize(geometry, segment), source, WGS84)
    west, south, east, north = wgs84.bounds
    if not all(math.isfinite(v) for v in wgs84.bounds) or south < -90 or north > 90 or west < -180 or east > 180:
        raise ValueError(
            f"{label}: its coordinates do not fit {source} (latitude outside -90..90 or longitude outside "
            "-180..180); check the layer's CRS, or whether latitude and longitude are swapped."
        )
    widest = max(p.bounds[2] - p.bounds[0] for p in getattr(wgs84, "geoms", [wgs84]))
    if widest > 180:
        raise ValueError(
            f"{label}: a polygon spans {widest:.0f} degrees of longitude; if it crosses the antimeridian "
            "(180 degrees), split it there into two polygons."
        )
    if south < -80 or north > 84:
        raise ValueError(f"{label}: UTM tiling covers latitudes -80..84 only; choose an AOI outside the polar areas.")
    return wgs84


def split_by_utm_zone(aoi_wgs84: BaseGeometry) -> List[Tuple[int, BaseGeometry]]:
    """The parts of a lon/lat AOI per UTM zone, as ``(epsg, part)``."""
    west, south, east, north = aoi_wgs84.bounds
    parts = []
    for zone in range(utm_zone_of_longitude(west), utm_zone_of_longitude(east) + 1):
        zone_west = -180.0 + 6 * (zone - 1)
        for is_north, lat_min, lat_max in ((False, -90.0, 0.0), (True, 0.0, 90.0)):
            if north <= lat_min or south >= lat_max:
                continue
            part = aoi_wgs84.intersection(box(zone_west, lat_min, zone_west + 6, lat_max))
            if not part.is_empty and part.area > 0:
                parts.append((utm_epsg(zone, is_north), part))
    return parts


def check_tile_size(tile_size: float) -> int:
    if not isinstance(tile_size, (int, float)) or isinstance(tile_size, bool) or not math.isfinite(tile_size):
        raise ValueError(f"tile_size: {tile_size!r} is not a number of metres; use e.g. 10000 for 10 km tiles.")
    if tile_size < MIN_TILE_SIZE_M:
        raise ValueError(f"tile_size: {tile_size:g} m is below {MIN_TILE_SIZE_M} m; use a tile size of 1 km or more.")
    if tile_size % PIXEL_SIZE_M:
        raise ValueError(
            f"tile_size: {tile_size:g} m is not a multiple of the {PIXEL_SIZE_M} m pixel; "
            f"use e.g. {int(round(tile_size / PIXEL_SIZE_M) * PIXEL_SIZE_M)}."
        )
    return int(tile_size)


def tile_footprint_wgs84(epsg: int, west: float, south: float, east: float, north: float) -> Polygon:
    ring = shapely.segmentize(box(west, south, east, north), (east - west) / 8)
    return reproject(ring, f"EPSG:{epsg}", WGS84)


def make_tile(epsg: int, west: float, south: float, east: float, north: float) -> Tile:
    return Tile(epsg, west, south, east, north, tile_footprint_wgs84(epsg, west, south, east, north))


def tile_part(epsg: int, part_utm: BaseGeometry, tile_size: int, max_tiles: int) -> List[Tuple[float, float]]:
    """South-west corners of the grid tiles that overlap ``part_utm`` (not merely touch it).

    Works row by row, so memory stays bounded even for a very large AOI, and gives up as soon as
    more than ``max_tiles`` are found.
    """
    minx, miny, maxx, maxy = part_utm.bounds
    shapely.prepare(part_utm)
    corners: List[Tuple[float, float]] = []
    y = math.floor(miny / tile_size) * tile_size
    while y < maxy:
        row = part_utm.intersection(box(minx, y, maxx, y + tile_size))
        if not row.is_empty and row.area > 0:
            rminx, _, rmaxx, _ = row.bounds
            xs = np.arange(math.floor(rminx / tile_size) * tile_size, rmaxx, tile_size)
            boxes = shapely.box(xs, y, xs + tile_size, y + tile_size)
            overlap = shapely.area(shapely.intersection(boxes, row)) > 0
            corners.extend((float(x), float(y)) for x in xs[overlap])
            if len(corners) > max_tiles:
                break
        y += tile_size
    return corners


def tile_aois(
    aois: Iterable[Tuple[BaseGeometry, CrsLike]],
    tile_size: float = 10_000,
    max_tiles: int = 5_000,
) -> List[Tile]:
    """Unique UTM tiles covering all AOIs, sorted by CRS, then west, then south.

    ``max_tiles`` bounds the work: a ``ValueError`` is raised as soon as more would be needed.
    """
    size = check_tile_size(tile_size)
    corners: Dict[Tuple[int, float, float], None] = {}
    for number, (geometry, crs) in enumerate(aois, start=1):
        aoi_wgs84 = validate_aoi(geometry, crs, label=f"AOI {number}")
        for epsg, part in split_by_utm_zone(aoi_wgs84):
            part_utm = reproject(shapely.segmentize(part, 0.05), WGS84, f"EPSG:{epsg}")
            if not part_utm.is_valid:  # a sliver valid in degrees can self-touch once projected (fuzzing found one)
                part_utm = shapely.make_valid(part_utm)
            for west, south in tile_part(epsg, part_utm, size, max_tiles - len(corners)):
                corners[(epsg, west, south)] = None
            if len(corners) > max_tiles:
                raise TooManyJobsError(
                    f"AOI {number}: the AOIs need more than {max_tiles} tiles of {size / 1000:g} km; "
                    "use a larger tile size or a smaller area, or raise the maximum number of jobs."
                )
    if not corners:
        raise ValueError("AOI: no areas of interest given; draw, select or load at least one polygon.")
    return [make_tile(epsg, w, s, w + size, s + size) for epsg, w, s in sorted(corners)]


def grid_tiles(west: float, south: float, crs: CrsLike, window: float, gap: float, rows: int, cols: int) -> List[Tile]:
    """The notebook's regular grid: ``cols x rows`` windows of ``window`` m, ``gap`` m apart.

    Ordered column by column (west to east), south to north inside a column, as the notebook did.
    """
    epsg = CRS.from_user_input(crs).to_epsg()
    if epsg is None:
        raise ValueError(f"crs: {crs!r} has no EPSG code; use a UTM CRS such as EPSG:32631.")
    if window <= 0 or gap < 0 or rows < 1 or cols < 1:
        raise ValueError("grid: window must be > 0, gap >= 0, rows and cols >= 1; check the grid settings.")
    step = window + gap
    return [
        make_tile(epsg, west + c * step, south + r * step, west + c * step + window, south + r * step + window)
        for c in range(cols)
        for r in range(rows)
    ]


def feature_tiles(aois: Iterable[Tuple[BaseGeometry, CrsLike]]) -> List[Tile]:
    """One job extent per feature: its bounding box in its UTM zone, snapped outwards to the 10 m grid.

    For users who already have their own grid (e.g. the notebook's windows as a layer). A feature
    in a UTM CRS keeps that CRS; any other is reprojected to the UTM zone of its centre.
    """
    tiles: Dict[Tuple[int, float, float, float, float], None] = {}
    for number, (geometry, crs) in enumerate(aois, start=1):
        aoi_wgs84 = validate_aoi(geometry, crs, label=f"AOI {number}")
        epsg = CRS.from_user_input(crs).to_epsg() if not isinstance(crs, CRS) else crs.to_epsg()
        if not epsg or not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
            centre = aoi_wgs84.centroid
            epsg = utm_epsg(utm_zone_of_longitude(centre.x), centre.y >= 0)
            geometry = reproject(shapely.segmentize(aoi_wgs84, 0.01), WGS84, f"EPSG:{epsg}")
        west, south, east, north = geometry.bounds
        snapped = (
            math.floor(west / PIXEL_SIZE_M) * PIXEL_SIZE_M,
            math.floor(south / PIXEL_SIZE_M) * PIXEL_SIZE_M,
            math.ceil(east / PIXEL_SIZE_M) * PIXEL_SIZE_M,
            math.ceil(north / PIXEL_SIZE_M) * PIXEL_SIZE_M,
        )
        tiles[(epsg, *snapped)] = None
    if not tiles:
        raise ValueError("AOI: no areas of interest given; draw, select or load at least one polygon.")
    return [make_tile(epsg, *box_) for epsg, *box_ in tiles]


class TooManyJobsError(ValueError):
    """The plan would create more jobs than allowed."""


def area_km2(geometries: Sequence[Tuple[BaseGeometry, CrsLike]]) -> float:
    """Area on the ground of AOIs given in any CRS (each part measured in its own UTM zone)."""
    total = 0.0
    for geometry, crs in geometries:
        for epsg, part in split_by_utm_zone(reproject(geometry, crs, WGS84)):
            total += reproject(part, WGS84, f"EPSG:{epsg}").area
    return total / 1e6
