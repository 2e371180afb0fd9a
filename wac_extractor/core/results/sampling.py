"""Sample a run's results at fields (polygons) or points: one row per feature, one column per statistic.

Every tile is sampled in its own CRS: the features are reprojected to it, never the data. A field across
tiles gets a partial from each (:mod:`.zonal`), combined exactly. Tiles of neighbouring UTM zones overlap
(each is a full square on its zone's grid), so a tile owns only its square minus what a tile of the other
zone covers on that zone's side of the zone border: no ground is counted twice, and a square whose
neighbour is missing still gives what it has.

Columns: ``<sensor>_<variable>_<stat>`` (``S2_NDVI_P50_mean``); with several windows in the run,
``<sensor>_<window>_<variable>_<stat>`` (``S2_2023-01_NDVI_P50_mean``). Points get ``..._value``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..planning.tiling import WGS84, reproject
from .features import FeatureSet
from .result_tiles import ResultTile, TileData, finished_tiles, groups, read_tile, tile_grid
from .zonal import (
    DEFAULT_STATS,
    POINT_STAT,
    STATS,
    Coverages,
    Grid,
    coverages,
    statistics,
    weighted_median,
    weighted_medians,
)

GroupKey = Tuple[str, Optional[str]]


class SamplingCancelledError(Exception):
    """The caller asked to stop; nothing was written."""


def column_name(key: GroupKey, variable: str, stat: str) -> str:
    sensor, window = key
    return f"{sensor}_{window}_{variable}_{stat}" if window else f"{sensor}_{variable}_{stat}"


def parse_stats(text: str) -> List[str]:
    stats = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stats if s not in STATS]
    if unknown or not stats:
        raise ValueError(f"--stats: {', '.join(unknown) or 'none given'} not known; choose from {', '.join(STATS)}.")
    return stats


@dataclass
class SampleTable:
    """The input features and, per feature, the sampled columns (in order)."""

    features: FeatureSet
    columns: List[str] = field(default_factory=list)
    values: Dict[str, np.ndarray] = field(default_factory=dict)  # column -> (features,)


def _zone_strip(epsg: int) -> BaseGeometry:
    """The longitudes of an UTM zone (WGS84), the part of the world its tiles own."""
    zone = epsg % 100
    west = -180 + 6 * (zone - 1)
    south, north = (0, 84) if epsg // 100 == 326 else (-80, 0)
    return box(west, south, west + 6, north)


def _ownership(tile: ResultTile, data: TileData, others: Sequence[Tuple[int, BaseGeometry]]) -> BaseGeometry:
    """The tile's square minus what the other zones' tiles of the group own on their side of the border."""
    g = data.grid
    square = box(g.x0, g.y0 - g.dy * g.height, g.x0 + g.dx * g.width, g.y0)
    foreign = [wgs & _zone_strip(epsg) for epsg, wgs in others if epsg != tile.epsg]
    if not foreign:
        return square
    footprint = reproject(shapely.segmentize(square, g.dx * 5), f"EPSG:{tile.epsg}", WGS84)
    taken = shapely.union_all([f & footprint.buffer(0.01) for f in foreign])
    if taken.is_empty:
        return square
    # the zone border is a meridian: densify it before projecting so it stays on the ground where it is
    taken_utm = reproject(shapely.segmentize(taken, 0.0005), WGS84, f"EPSG:{tile.epsg}")
    return square.difference(taken_utm)


def _footprints(tiles: Sequence[ResultTile]) -> List[Tuple[int, BaseGeometry]]:
    """WGS84 squares of the group's tiles (from the files' grids), only when the group spans zones."""
    if len({t.epsg for t in tiles}) < 2:
        return []
    out = []
    for tile in tiles:
        g = tile_grid(tile)
        square = box(g.x0, g.y0 - g.dy * g.height, g.x0 + g.dx * g.width, g.y0)
        out.append((tile.epsg, reproject(shapely.segmentize(square, g.dx * 5), f"EPSG:{tile.epsg}", WGS84)))
    return out


# A tile footprint's candidate features, which lie wholly in its own part, and their coverage: computed once,
# shared by the groups (S1 and S2 results of one tile have the same grid).
Cover = Tuple[np.ndarray, np.ndarray, Coverages]
BATCH_PIXELS = 50_000  # covered pixels per vectorised batch: (variables x pixels) float64 arrays stay ~25 MB


def tile_cover(features: FeatureSet, epsg: int, grid: Grid, own: BaseGeometry) -> Cover:
    """The features that touch the tile's own part, whether each lies wholly in it, and their pixels."""
    geoms, tree = features.in_crs(f"EPSG:{epsg}")
    candidates = np.sort(tree.query(own))
    shapely.prepare(own)
    whole = shapely.contains_properly(own, geoms[candidates])
    parts = geoms[candidates].copy()
    parts[~whole] = shapely.intersection(parts[~whole], own)
    return candidates, whole, coverages(parts, grid)


class _GroupSampler:
    """Sums of every feature over the tiles of one column group (sensor, window), all features at once."""

    def __init__(self, features: FeatureSet, stats: Sequence[str], covers: Dict[tuple, Cover]):
        self.features = features
        self.is_points = features.is_points
        self.stats = list(stats)
        self.covers = covers
        self.names: List[str] = []
        n = len(features)
        self.field_area = np.full(n, np.nan)  # in the CRS of the first tile the feature touches
        self.pixel_area = np.full(n, np.nan)
        self.sums = np.zeros((3, n, 0))  # (3, features, variables): weight, weight x value, x value^2
        self.median = np.zeros((n, 0))  # (features, variables), for features inside one tile
        self.pieces: Dict[int, List[Tuple[np.ndarray, np.ndarray]]] = {}  # the others: (values, weights) per tile
        self.points: Dict[int, np.ndarray] = {}

    def _aligned(self, data: TileData) -> np.ndarray:
        """The tile's values in the group's variable order (a variable a tile lacks is NaN there)."""
        if not self.names:
            self.names = list(data.names)
            n = len(self.features)
            self.sums = np.zeros((3, n, len(self.names)))
            self.median = np.full((n, len(self.names)), np.nan)
        if data.names == self.names:
            return data.values
        index = {n: i for i, n in enumerate(data.names)}
        out = np.full((len(self.names),) + data.values.shape[1:], np.nan, np.float32)
        for i, name in enumerate(self.names):
            if name in index:
                out[i] = data.values[index[name]]
        return out

    def add_tile(self, tile: ResultTile, data: TileData, own: BaseGeometry) -> None:
        values = self._aligned(data)
        if self.is_points:
            geoms, tree = self.features.in_crs(f"EPSG:{tile.epsg}")
            for i in tree.query(own):
                self._add_point(i, geoms[i], data, values, own)
            return
        key = (tile.epsg, data.grid, own.wkb)
        if key not in self.covers:
            self.covers[key] = tile_cover(self.features, tile.epsg, data.grid, own)
        candidates, whole, cover = self.covers[key]
        new = candidates[np.isnan(self.field_area[candidates])]
        self.field_area[new] = shapely.area(self.features.in_crs(f"EPSG:{tile.epsg}")[0][new])
        self.pixel_area[new] = data.grid.pixel_area
        flat = values.reshape(len(values), -1)
        k = 0
        while k < len(cover.polygons):  # batches of whole polygons, about BATCH_PIXELS pixels each
            end = int(np.searchsorted(cover.starts, cover.starts[k] + BATCH_PIXELS, "right")) - 1
            end = min(max(end, k + 1), len(cover.polygons))
            self._add_batch(flat, cover, k, end, candidates, whole, data.grid.pixel_area)
            k = end

    def _add_batch(self, flat, cover: Coverages, k0: int, k1: int, candidates, whole, pixel_area: float) -> None:
        """One weights vector per polygon against a (variables x pixels) matrix: sums by ``reduceat``."""
        lo, hi = cover.starts[k0], cover.starts[k1]
        starts = cover.starts[k0 : k1 + 1] - lo
        x = flat[:, cover.pixels[lo:hi]].astype(np.float64)
        w = cover.weights[lo:hi] * pixel_area  # areas, so tiles with different pixel sizes combine
        valid = np.isfinite(x)
        wv = np.where(valid, w, 0.0)
        x0 = np.where(valid, x, 0.0)
        ids = candidates[cover.polygons[k0:k1]]
        for j, term in enumerate((wv, wv * x0, wv * x0 * x0)):
            self.sums[j, ids] += np.add.reduceat(term, starts[:-1], axis=1).T
        if "median" not in self.stats:
            return
        complete = whole[cover.polygons[k0:k1]]
        self.median[ids[complete]] = weighted_medians(x, w, starts)[:, complete].T
        for k in np.flatnonzero(~complete):
            part = slice(starts[k], starts[k + 1])
            self.pieces.setdefault(int(ids[k]), []).append((x[:, part], w[part]))

    def _add_point(self, i: int, point: BaseGeometry, data: TileData, values: np.ndarray, own) -> None:
        if i in self.points or not own.covers(point):
            return
        g = data.grid
        col, row = int((point.x - g.x0) // g.dx), int((g.y0 - point.y) // g.dy)
        if 0 <= row < g.height and 0 <= col < g.width:
            self.points[i] = values[:, row, col].astype(np.float64)

    def columns(self, key: GroupKey) -> Dict[str, np.ndarray]:
        n, n_vars = len(self.features), len(self.names)
        if self.is_points:
            table = np.full((n, n_vars), np.nan)
            for i, vals in self.points.items():
                table[i] = vals
            return {column_name(key, v, POINT_STAT): table[:, j] for j, v in enumerate(self.names)}
        for i, pieces in self.pieces.items():  # fields across tiles: the median over every tile's pixels
            values, weights = np.concatenate([v for v, _ in pieces], 1), np.concatenate([w for _, w in pieces])
            self.median[i] = weighted_median(values, weights)
        tables = statistics(self.sums, self.median, self.field_area, self.pixel_area, self.stats)
        return {column_name(key, v, s): tables[s][:, j] for j, v in enumerate(self.names) for s in self.stats}


def sample_results(
    jobs,
    output_dir: Path,
    features: FeatureSet,
    stats: Sequence[str] = DEFAULT_STATS,
    progress: Optional[Callable[[float], None]] = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> SampleTable:
    """Statistics of every finished result at every feature (see the module's docstring)."""
    tiles = finished_tiles(jobs, Path(output_dir))
    if not tiles:
        raise ValueError("--jobs: the tracker has no finished results to sample; run it first.")
    table = SampleTable(features)
    covers: Dict[tuple, Cover] = {}
    order = sorted(groups(tiles).items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    queue = [tile for _, group in order for tile in group]
    done = 0
    # the next tile is read (GDAL, off the GIL) while this one is sampled (GEOS and numpy, off the GIL too)
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read_tile, queue[0])
        for key, group in order:
            sampler = _GroupSampler(features, stats, covers)
            footprints = _footprints(group)
            for tile in group:
                if cancelled():
                    raise SamplingCancelledError("sampling cancelled")
                data = pending.result()
                done += 1
                if done < len(queue):
                    pending = reader.submit(read_tile, queue[done])
                sampler.add_tile(tile, data, _ownership(tile, data, footprints))
                if progress:
                    progress(100.0 * done / len(queue))
            for name, values in sampler.columns(key).items():
                table.columns.append(name)
                table.values[name] = values
    return table


__all__ = ["sample_results", "SampleTable", "SamplingCancelledError", "column_name", "parse_stats"]
