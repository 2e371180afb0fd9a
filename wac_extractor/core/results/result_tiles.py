"""A run's results as tiles to sample: which file, which sensor and window, its grid and its variables.

Read with GDAL's multidimensional API: one open per NetCDF file for all its variables (the classic
``NETCDF:"file":var`` opens cost ~10 ms each, 7,100 of them for 100 tiles x 71 variables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..planning.job_table import SENSOR_NAMES
from ..platform.hdf5_quiet import quiet_hdf5
from ..recipes.process_graphs import decode_cell
from .composites import time_steps
from .zonal import Grid

NON_DATA = {"x", "y", "t", "time", "crs", "spatial_ref", "lat", "lon"}


@dataclass(frozen=True)
class ResultTile:
    """One finished job's result file."""

    path: Path
    sensor: str  # "S1", "S2"
    window: str  # first month of the job's window, YYYY-MM
    epsg: int
    timed: bool = False  # the monthly recipe: one time step per month, each month its own variable


def _gdal():
    from osgeo import gdal

    gdal.UseExceptions()
    return gdal


def finished_tiles(jobs, output_dir: Path) -> List[ResultTile]:
    """The NetCDF results of the tracker's finished, checked jobs (``result_status`` ok) that exist."""
    tiles = []
    if "result_files" not in jobs.columns:
        return tiles
    for _, row in jobs.iterrows():
        if row.get("status") != "finished" or row.get("result_status") != "ok":
            continue
        extent = decode_cell(row["spatial_extent"])
        window = decode_cell(row["temporal_extent"])[0][:7]
        for relative in json.loads(row.get("result_files") or "[]"):
            path = Path(output_dir) / relative
            if path.suffix.lower() in (".nc", ".nc4") and path.exists():
                sensor = SENSOR_NAMES.get(int(row["sentinel"]), f"S{row['sentinel']}")
                timed = str(row.get("recipe") or "lcfm") == "monthly"
                tiles.append(ResultTile(path, sensor, window, int(extent["crs"]), timed))
    return tiles


@dataclass
class TileData:
    """A tile's grid and every variable's values (float32, NaN where masked), (variables, rows, cols)."""

    grid: Grid
    names: List[str]  # variable names; a time step adds its month: B04_2023-01
    values: np.ndarray
    wkt: str


def _grid(dataset) -> Tuple[Grid, str]:
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    return Grid(x0, y0, dx, -dy, dataset.RasterXSize, dataset.RasterYSize), dataset.GetProjection()


def _variables(root) -> List[str]:
    names = []
    for name in root.GetMDArrayNames():
        if name in NON_DATA:
            continue
        array = root.OpenMDArray(name)
        dims = [d.GetName() for d in array.GetDimensions()]
        if dims[-2:] == ["y", "x"]:
            names.append(name)
    return names


def tile_grid(tile: ResultTile) -> Grid:
    """The grid of a result file (its first variable's), without reading data."""
    gdal = _gdal()
    quiet_hdf5()
    root = gdal.OpenEx(str(tile.path), gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    return _grid(gdal.Open(f'NETCDF:"{tile.path}":{_variables(root)[0]}'))[0]


def read_tile(tile: ResultTile) -> TileData:
    """All variables of a result file. Time steps (the monthly recipe) become variables of their own."""
    gdal = _gdal()
    quiet_hdf5()
    root = gdal.OpenEx(str(tile.path), gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    variables = _variables(root)
    if not variables:
        raise ValueError(f"{tile.path}: no variable on a y, x grid")
    grid, wkt = _grid(gdal.Open(f'NETCDF:"{tile.path}":{variables[0]}'))
    y = root.OpenMDArray("y").ReadAsArray() if "y" in root.GetMDArrayNames() else None
    flip = y is not None and len(y) > 1 and y[1] > y[0]  # bottom-up file: GDAL's classic view is top-down
    arrays = [root.OpenMDArray(name) for name in variables]
    steps = [a.GetDimensions()[0].GetSize() if a.GetDimensionCount() == 3 else 1 for a in arrays]
    # one block for every variable, each read straight into its place (no stacking copy)
    values = np.empty((sum(steps), grid.height, grid.width), np.float32)
    names: List[str] = []
    float32 = gdal.ExtendedDataType.Create(gdal.GDT_Float32)
    for name, array, count in zip(variables, arrays, steps):
        block = values[len(names) : len(names) + count]
        if flip:
            block[...] = array.ReadAsArray()[..., ::-1, :]
        else:
            array.ReadAsArray(buffer_datatype=float32, buf_obj=block if array.GetDimensionCount() == 3 else block[0])
        nodata = array.GetNoDataValueAsDouble()
        if nodata is not None and np.isfinite(nodata):
            block[block == nodata] = np.nan
        if array.GetDimensionCount() == 3:  # time steps (the monthly recipe) become variables of their own
            names.extend(f"{name}_{month}" for month in time_steps(tile.path, name))
        else:
            names.append(name)
    return TileData(grid, names, values, wkt)


def group_key(tile: ResultTile, several_windows: bool) -> Tuple[str, Optional[str]]:
    """Monthly composites name their month in the variable already (``B04_2023-01``): no window there."""
    return (tile.sensor, tile.window if several_windows and not tile.timed else None)


def groups(tiles: List[ResultTile]) -> Dict[Tuple[str, Optional[str]], List[ResultTile]]:
    """Tiles per column group: sensor, and window when the run has several windows."""
    several = len({t.window for t in tiles if not t.timed}) > 1
    out: Dict[Tuple[str, Optional[str]], List[ResultTile]] = {}
    for tile in tiles:
        out.setdefault(group_key(tile, several), []).append(tile)
    return out
