"""Zonal statistics of one field over raster pixels: coverage fractions and combinable partial statistics.

Plain numpy and shapely (no QGIS, no extra dependency). A pixel counts with the fraction of it the field
covers (exact polygon-box intersection areas), so a field's statistics do not depend on where its border
cuts the pixel grid. Every field's weighted sums (for mean, standard deviation and count) add up over the
tiles it crosses, then :func:`statistics` makes them statistics; the weighted median is computed in the
tile for a field inside one tile, over the union of its tiles' covered pixel values for the others.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

STATS = ("mean", "median", "std", "count", "valid_fraction")
DEFAULT_STATS = STATS
POINT_STAT = "value"

# (row0, col0, rows, cols) indices into the raster, and the weight of each covered pixel.
Coverage = Tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: origin (top-left corner), pixel size, shape."""

    x0: float
    y0: float
    dx: float
    dy: float  # positive: rows go south
    width: int
    height: int

    @property
    def pixel_area(self) -> float:
        return self.dx * self.dy

    def window(self, bounds: Sequence[float]) -> Optional[Tuple[int, int, int, int]]:
        """Rows and columns (half-open) of the pixels a bounding box touches; None if outside."""
        minx, miny, maxx, maxy = bounds
        c0 = max(int(np.floor((minx - self.x0) / self.dx)), 0)
        c1 = min(int(np.ceil((maxx - self.x0) / self.dx)), self.width)
        r0 = max(int(np.floor((self.y0 - maxy) / self.dy)), 0)
        r1 = min(int(np.ceil((self.y0 - miny) / self.dy)), self.height)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1


def coverage(polygon: BaseGeometry, grid: Grid) -> Coverage:
    """Pixels a polygon covers and the covered fraction of each (0 < w <= 1)."""
    cover = coverages_shapely(np.array([polygon], dtype=object), grid)
    return cover.pixels // grid.width, cover.pixels % grid.width, cover.weights


@dataclass
class Coverages:
    """The pixels that many polygons cover on one grid, polygon after polygon (pixels in row-major order)."""

    polygons: np.ndarray  # which of the given polygons cover something, ascending
    starts: np.ndarray  # (len(polygons) + 1,): polygon k's pixels are [starts[k], starts[k + 1])
    pixels: np.ndarray  # flat pixel index: row * width + col
    weights: np.ndarray  # covered fraction of each pixel, 0 < w <= 1


def _windows(polygons: np.ndarray, grid: Grid) -> np.ndarray:
    """(polygons, 4) rows and columns (half-open, clipped) of the pixels each bounding box touches."""
    minx, miny, maxx, maxy = shapely.bounds(polygons).T
    c0 = np.maximum(np.floor((minx - grid.x0) / grid.dx), 0)
    c1 = np.minimum(np.ceil((maxx - grid.x0) / grid.dx), grid.width)
    r0 = np.maximum(np.floor((grid.y0 - maxy) / grid.dy), 0)
    r1 = np.minimum(np.ceil((grid.y0 - miny) / grid.dy), grid.height)
    windows = np.nan_to_num(np.stack([r0, r1, c0, c1], axis=1), nan=0).astype(np.int64)
    empty = (windows[:, 0] >= windows[:, 1]) | (windows[:, 2] >= windows[:, 3]) | shapely.is_empty(polygons)
    windows[empty] = 0
    return windows


def geos_in_global_scope() -> bool:
    """On Linux, whether a GEOS is in the process's global symbol scope, as in QGIS Desktop and
    ``qgis_process`` (their binaries link it). Its symbols then take over those of exactextract's bundled
    GEOS, and the mix crashes (a segfault here with Debian's GEOS 3.11 preloaded, tests/test_zonal.py).
    Plain Python, the CLI and ``import qgis.core`` load GEOS locally: no clash."""
    if not sys.platform.startswith("linux"):
        return False  # Windows DLLs and macOS two-level namespaces bind each library's own GEOS
    try:
        return hasattr(ctypes.CDLL(None), "GEOSversion")
    except OSError:
        return False


def coverage_engine() -> str:
    """The coverage weights' engine: exactextract when it is installed and safe in this process (the same
    exact weights, about 5x faster: bench/README.md), else shapely; sampling works with either."""
    if geos_in_global_scope():
        return "shapely"
    try:
        import exactextract  # noqa: F401
    except ImportError:
        return "shapely"
    return "exactextract"


def engine_hint() -> str:
    """What to install for faster sampling, or '' when exactextract is there (shown by the CLI, for the UI)."""
    if coverage_engine() == "exactextract" or geos_in_global_scope():
        return ""  # installed or not, nothing to install that this process could use
    return (
        "exactextract is not installed: the coverage weights come from shapely, about 5x slower on large layers "
        "(same results); install it with the plugin's dependency installer or 'pip install exactextract'."
    )


def coverages(polygons: np.ndarray, grid: Grid) -> Coverages:
    """Every polygon's covered pixels and the covered fraction of each, by :func:`coverage_engine`."""
    if coverage_engine() == "exactextract":
        return coverages_exactextract(polygons, grid)
    return coverages_shapely(polygons, grid)


def coverages_exactextract(polygons: np.ndarray, grid: Grid) -> Coverages:
    """exactextract's ``cell_id`` and ``coverage`` (float32 fractions, exact to ~1e-7) on a dummy raster of
    the grid: its C++ walks each polygon's border cells instead of intersecting a box per pixel."""
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    present = np.flatnonzero(~shapely.is_empty(polygons))
    raster = NumPyRasterSource(np.zeros((grid.height, grid.width), np.uint8), grid.x0, grid.y0 - grid.dy * grid.height,
                               grid.x0 + grid.dx * grid.width, grid.y0)  # fmt: skip
    features = [{"type": "Feature", "properties": {"k": int(k)}, "geometry": shapely.geometry.mapping(polygons[k])}
                for k in present]  # fmt: skip
    found = exact_extract(raster, features, ["cell_id", "coverage"], include_cols=["k"]) if len(present) else []
    owners, pixels, weights = [], [], []
    for feature in found:
        cells = np.asarray(feature["properties"]["cell_id"], np.int64)
        owners.append(np.full(len(cells), feature["properties"]["k"]))
        pixels.append(cells)
        weights.append(np.asarray(feature["properties"]["coverage"], np.float64))
    return _collect(len(polygons), *(np.concatenate(a) if a else np.zeros(0) for a in (owners, pixels, weights)))


def _collect(n: int, owner: np.ndarray, pixels: np.ndarray, weights: np.ndarray) -> Coverages:
    """Covered pixels (weight > 0) grouped polygon after polygon."""
    keep = weights > 0
    owner, pixels, weights = owner[keep].astype(np.int64), pixels[keep].astype(np.int64), weights[keep]
    order = np.argsort(owner, kind="stable")
    owner, pixels, weights = owner[order], pixels[order], weights[order]
    counts = np.bincount(owner, minlength=n)
    present = np.flatnonzero(counts)
    return Coverages(present, np.concatenate([[0], np.cumsum(counts[present])]), pixels, weights)


def coverages_shapely(polygons: np.ndarray, grid: Grid) -> Coverages:
    """Every polygon's covered pixels in a few vectorised GEOS calls: a box per pixel of the polygon's
    window; boxes wholly inside weigh 1, only the border boxes need an intersection (the slow part)."""
    windows = _windows(polygons, grid)
    heights, widths = windows[:, 1] - windows[:, 0], windows[:, 3] - windows[:, 2]
    sizes = heights * widths
    owner = np.repeat(np.arange(len(polygons)), sizes)
    local = np.arange(len(owner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # 0.. within each window
    rows = windows[owner, 0] + local // np.maximum(widths[owner], 1)
    cols = windows[owner, 2] + local % np.maximum(widths[owner], 1)
    xmin = grid.x0 + cols * grid.dx
    ymax = grid.y0 - rows * grid.dy
    boxes = shapely.box(xmin, ymax - grid.dy, xmin + grid.dx, ymax)
    shapely.prepare(polygons)
    owners = polygons[owner]
    inside = shapely.contains_properly(owners, boxes)
    weights = inside.astype(float)
    edge = np.flatnonzero(~inside)
    edge = edge[shapely.intersects(owners[edge], boxes[edge])]
    weights[edge] = shapely.area(shapely.intersection(boxes[edge], owners[edge])) / grid.pixel_area
    return _collect(len(polygons), owner, rows * grid.width + cols, weights)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (NaN = masked), the weighted median: the value where the cumulative weight
    reaches half the total; exactly half: the mean of that value and the next (numpy's median for equal
    weights)."""
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    return weighted_medians(values, weights, np.array([0, values.shape[1]]))[:, 0]


def weighted_medians(values: np.ndarray, weights: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """:func:`weighted_median` of many polygons at once: ``values`` (variables, pixels) holds polygon k's
    pixels in columns ``starts[k]:starts[k + 1]`` (none empty); returns (variables, polygons)."""
    n_vars, n = values.shape
    first, last = starts[:-1], starts[1:] - 1
    # sorted by value inside each polygon (masked last): one sort per polygon, all variables at once, is
    # twice as fast as one sort of the whole row; ties among equal values do not change the median
    keyed = np.where(np.isfinite(values), values, np.inf)
    order = np.empty(values.shape, np.int64)
    for a, b in zip(first, last + 1):
        order[:, a:b] = np.argsort(keyed[:, a:b], axis=1) + a
    sorted_values = np.take_along_axis(values, order, axis=1)
    w = np.where(np.isfinite(sorted_values), weights[order], 0.0)
    running = np.cumsum(w, axis=1)
    before = np.concatenate([np.zeros((n_vars, 1)), running[:, first[1:] - 1]], axis=1)  # sum of earlier polygons
    cumulative = running - np.repeat(before, np.diff(starts), axis=1)
    total = cumulative[:, last]
    half = total / 2
    tolerance = 1e-9 * total
    below = cumulative < np.repeat(half - tolerance, np.diff(starts), axis=1)
    index = np.minimum(first + np.add.reduceat(below, first, axis=1), last)
    low = np.take_along_axis(sorted_values, index, axis=1)
    at_half = np.abs(np.take_along_axis(cumulative, index, axis=1) - half) <= tolerance
    nxt = np.take_along_axis(sorted_values, np.minimum(index + 1, last), axis=1)
    # the next value with weight: masked entries sort last in their polygon, so a finite next has weight
    high = np.where(at_half & np.isfinite(nxt), nxt, low)
    with np.errstate(invalid="ignore"):
        return np.where(total > 0, (low + high) / 2, np.nan)


def statistics(sums: np.ndarray, median: np.ndarray, field_area: np.ndarray, pixel_area: np.ndarray,
               stats: Sequence[str]) -> Dict[str, np.ndarray]:  # fmt: skip
    """Every field's statistics, (fields, variables) each, from the sums over all its tiles (``sums``: weight,
    weight x value, weight x value^2, weights in map units^2). NaN with a valid fraction of 0 where nothing
    is valid, and for a field smaller than a pixel (its area below the pixel's, or it touched no tile)."""
    weight, wx, wxx = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        too_small = ~(field_area >= pixel_area)[:, None]  # NaN areas: the field touched no tile
        empty = too_small | (weight <= 0)
        mean = np.where(empty, np.nan, wx / weight)
        variance = np.where(empty, np.nan, np.maximum(wxx / weight - mean * mean, 0.0))
        values = {
            "mean": mean,
            "std": np.sqrt(variance),
            # valid pixels, each counted with the fraction the field covers
            "count": np.where(too_small, 0.0, weight / pixel_area[:, None]),
            "valid_fraction": np.where(too_small | ~(field_area > 0)[:, None], 0.0, weight / field_area[:, None]),
            "median": np.where(too_small, np.nan, median),
        }
    return {stat: values[stat] for stat in stats}
