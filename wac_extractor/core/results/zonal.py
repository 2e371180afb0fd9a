"""Zonal statistics of one field over raster pixels: coverage fractions and combinable partial statistics.

Plain numpy and shapely (no QGIS, no extra dependency). A pixel counts with the fraction of it the field
covers (exact polygon-box intersection areas), so a field's statistics do not depend on where its border
cuts the pixel grid. A field that crosses tiles gets one :class:`Partial` per tile; :func:`combine`
adds them exactly: weighted sums for mean, standard deviation and count, and the weighted median over the
union of the covered pixel values (kept only when the median is asked for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

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
    empty = (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    window = grid.window(polygon.bounds) if not polygon.is_empty else None
    if window is None:
        return empty
    r0, r1, c0, c1 = window
    rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    xmin = grid.x0 + cols * grid.dx
    ymax = grid.y0 - rows * grid.dy
    boxes = shapely.box(xmin, ymax - grid.dy, xmin + grid.dx, ymax)
    shapely.prepare(polygon)
    inside = shapely.contains_properly(polygon, boxes)
    weights = inside.astype(float)
    edge = ~inside & shapely.intersects(polygon, boxes)
    if edge.any():  # only border pixels need an intersection (the slow part)
        weights[edge] = shapely.area(shapely.intersection(boxes[edge], polygon)) / grid.pixel_area
    keep = weights > 0
    return rows[keep], cols[keep], weights[keep]


@dataclass
class Partial:
    """Sums over one tile's covered pixels, per variable; enough to combine tiles exactly."""

    area: float = 0.0  # covered area (map units^2) inside the tile, masked pixels included
    weight: Optional[np.ndarray] = None  # sum of coverage of valid pixels x pixel area, per variable
    wx: Optional[np.ndarray] = None
    wxx: Optional[np.ndarray] = None
    pixel_area: float = 1.0
    values: List[np.ndarray] = field(default_factory=list)  # (variables, pixels), for the median
    weights: List[np.ndarray] = field(default_factory=list)  # (pixels,) coverage x pixel area

    def add(self, values: np.ndarray, weights: np.ndarray, pixel_area: float, keep_values: bool) -> None:
        """``values``: (variables, pixels) with NaN where masked; ``weights``: coverage of each pixel."""
        w = weights * pixel_area  # areas, so tiles with different pixel sizes combine
        valid = np.isfinite(values)
        wv = np.where(valid, w, 0.0)
        x = np.where(valid, values, 0.0)
        sums = (wv.sum(1), (wv * x).sum(1), (wv * x * x).sum(1))
        if self.weight is None:
            self.weight, self.wx, self.wxx = sums
        else:
            self.weight, self.wx, self.wxx = self.weight + sums[0], self.wx + sums[1], self.wxx + sums[2]
        self.area += float(w.sum())
        self.pixel_area = pixel_area
        if keep_values:
            self.values.append(values)
            self.weights.append(w)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (NaN = masked), the weighted median: the value where the cumulative weight
    reaches half the total; exactly half: the mean of that value and the next (numpy's median for equal
    weights)."""
    n_vars = values.shape[0]
    result = np.full(n_vars, np.nan)
    if values.shape[1] == 0:
        return result
    order = np.argsort(np.where(np.isfinite(values), values, np.inf), axis=1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=1)
    w = np.where(np.isfinite(sorted_values), weights[order], 0.0)
    cumulative = np.cumsum(w, axis=1)
    total = cumulative[:, -1]
    half = total / 2
    tolerance = 1e-9 * total
    index = (cumulative < (half - tolerance)[:, None]).sum(1)
    index = np.minimum(index, values.shape[1] - 1)
    rows = np.arange(n_vars)
    low = sorted_values[rows, index]
    at_half = np.abs(cumulative[rows, index] - half) <= tolerance
    nxt = np.minimum(index + 1, values.shape[1] - 1)
    # the next value with weight: skip zero-weight (masked) entries, which sort last anyway
    high = np.where(at_half & np.isfinite(sorted_values[rows, nxt]), sorted_values[rows, nxt], low)
    result = np.where(total > 0, (low + high) / 2, np.nan)
    return result


def combine(parts: Sequence[Partial], field_area: float, stats: Sequence[str], n_vars: int) -> Dict[str, np.ndarray]:
    """The statistics of one field from its per-tile partials; NaN (valid fraction 0) where nothing is valid."""
    nan = np.full(n_vars, np.nan)
    parts = [p for p in parts if p.weight is not None]
    if not parts:
        return {s: (np.zeros(n_vars) if s in ("count", "valid_fraction") else nan.copy()) for s in stats}
    weight = np.sum([p.weight for p in parts], axis=0)
    wx = np.sum([p.wx for p in parts], axis=0)
    wxx = np.sum([p.wxx for p in parts], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(weight > 0, wx / weight, np.nan)
        variance = np.where(weight > 0, np.maximum(wxx / weight - mean * mean, 0.0), np.nan)
    out: Dict[str, np.ndarray] = {}
    for stat in stats:
        if stat == "mean":
            out[stat] = mean
        elif stat == "std":
            out[stat] = np.sqrt(variance)
        elif stat == "count":  # valid pixels, each counted with the fraction the field covers
            out[stat] = weight / parts[0].pixel_area
        elif stat == "valid_fraction":
            out[stat] = weight / field_area if field_area > 0 else np.zeros(n_vars)
        elif stat == "median":
            values = np.concatenate([v for p in parts for v in p.values], axis=1)
            weights = np.concatenate([w for p in parts for w in p.weights])
            out[stat] = weighted_median(values, weights)
    return out
