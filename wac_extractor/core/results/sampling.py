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
from .zonal import DEFAULT_STATS, POINT_STAT, STATS, Partial, combine, coverage

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


class _GroupSampler:
    """Partials of every feature over the tiles of one column group (sensor, window)."""

    def __init__(self, features: FeatureSet, stats: Sequence[str]):
        self.features = features
        self.stats = list(stats)
        self.names: List[str] = []
        self.partials: Dict[int, List[Partial]] = {}
        self.field_area: Dict[int, float] = {}
        self.pixel_area: Dict[int, float] = {}
        self.points: Dict[int, np.ndarray] = {}

    def _aligned(self, data: TileData) -> np.ndarray:
        """The tile's values in the group's variable order (a variable a tile lacks is NaN there)."""
        if not self.names:
            self.names = list(data.names)
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
        geoms, tree = self.features.in_crs(f"EPSG:{tile.epsg}")
        candidates = tree.query(own)
        if not len(candidates):
            return
        shapely.prepare(own)
        inside = shapely.contains_properly(own, geoms[candidates])
        keep_values = "median" in self.stats
        for i, whole in zip(candidates, inside):
            geom = geoms[i]
            if self.features.is_points:
                self._add_point(i, geom, data, values, own)
                continue
            self.field_area.setdefault(i, geom.area)
            self.pixel_area.setdefault(i, data.grid.pixel_area)
            part = geom if whole else geom.intersection(own)
            rows, cols, w = coverage(part, data.grid)
            if len(w):
                self.partials.setdefault(i, []).append(Partial())
                self.partials[i][-1].add(values[:, rows, cols].astype(np.float64), w, data.grid.pixel_area, keep_values)

    def _add_point(self, i: int, point: BaseGeometry, data: TileData, values: np.ndarray, own) -> None:
        if i in self.points or not own.covers(point):
            return
        g = data.grid
        col, row = int((point.x - g.x0) // g.dx), int((g.y0 - point.y) // g.dy)
        if 0 <= row < g.height and 0 <= col < g.width:
            self.points[i] = values[:, row, col].astype(np.float64)

    def columns(self, key: GroupKey) -> Dict[str, np.ndarray]:
        n, n_vars = len(self.features), len(self.names)
        if self.features.is_points:
            table = np.full((n, n_vars), np.nan)
            for i, vals in self.points.items():
                table[i] = vals
            return {column_name(key, v, POINT_STAT): table[:, j] for j, v in enumerate(self.names)}
        tables = {s: np.full((n, n_vars), np.nan) for s in self.stats}
        for i in range(n):
            parts = self.partials.get(i, [])
            too_small = self.field_area.get(i, 0.0) < self.pixel_area.get(i, np.inf)
            for s, vals in combine([] if too_small else parts, self.field_area.get(i, 0.0), self.stats, n_vars).items():
                tables[s][i] = vals
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
    grouped = groups(tiles)
    done, total = 0, len(tiles)
    for key, group in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        sampler = _GroupSampler(features, stats)
        footprints = _footprints(group)
        for tile in group:
            if cancelled():
                raise SamplingCancelledError("sampling cancelled")
            data = read_tile(tile)
            sampler.add_tile(tile, data, _ownership(tile, data, footprints))
            done += 1
            if progress:
                progress(100.0 * done / total)
        for name, values in sampler.columns(key).items():
            table.columns.append(name)
            table.values[name] = values
    return table


__all__ = ["sample_results", "SampleTable", "SamplingCancelledError", "column_name", "parse_stats"]
