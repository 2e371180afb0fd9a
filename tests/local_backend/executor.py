"""Run an openEO process graph for real: openeo-pg-parser-networkx walks the graph and
openeo-processes-dask implements the standard processes; this module adds only what a backend
must bring itself: ``load_collection`` (synthetic Sentinel data), ``save_result`` (NetCDF in the
layout openEO backends return) and, optionally, CDSE's ``to_scl_dilation_mask``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import threading
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import openeo_processes_dask.process_implementations as implementations
import openeo_processes_dask.specs as specs
import pandas as pd
import xarray as xr
from openeo_pg_parser_networkx import OpenEOProcessGraph, ProcessRegistry
from openeo_pg_parser_networkx.process_registry import Process
from openeo_processes_dask.process_implementations.core import process as process_wrapper
from pyproj import CRS
from scipy import ndimage

from . import synthetic

_log = logging.getLogger(__name__)

S2 = "SENTINEL2_L2A"
S1 = "SENTINEL1_GLOBAL_MOSAICS"
SCL_DILATION_SPEC = {
    "id": "to_scl_dilation_mask",
    "summary": "Dilated cloud mask from the Sentinel-2 scene classification (CDSE extension).",
    "description": "Mask (1 = masked) of SCL classes, with mask2 classes dilated by a large kernel.",
    "categories": ["cubes", "masks"],
    "parameters": [
        {"name": "data", "description": "Cube with the SCL band.", "schema": {"type": "object", "subtype": "datacube"}},
        {
            "name": "scl_band_name",
            "description": "Name of the SCL band.",
            "optional": True,
            "schema": {"type": "string"},
        },
        *[
            {"name": n, "description": n, "optional": True, "schema": {}}
            for n in ("kernel1_size", "kernel2_size", "mask1_values", "mask2_values", "erosion_kernel_size")
        ],
    ],
    "returns": {"description": "The mask.", "schema": {"type": "object", "subtype": "datacube"}},
}


class JobContext(threading.local):
    """Where the running job writes its results, and at what resolution it loads data."""

    output_dir: Optional[Path] = None
    resolution: float = 20.0
    written: List[Path]

    def __init__(self):
        self.written = []


CONTEXT = JobContext()
NETCDF_LOCK = threading.Lock()


def standard_registry() -> ProcessRegistry:
    registry = ProcessRegistry(wrap_funcs=[process_wrapper])
    for name, function in inspect.getmembers(implementations, inspect.isfunction):
        if hasattr(specs, name):  # e.g. ``_or`` implements ``or``
            registry[name.lstrip("_")] = Process(spec=getattr(specs, name), implementation=function)
    return registry


def _epsg(crs) -> int:
    if crs is None:
        return 4326
    return CRS.from_user_input(crs).to_epsg()


def _matches_properties(properties: Optional[dict], values: Dict[str, float]) -> bool:
    """Evaluate load_collection property filters (callbacks like ``lte(value, 85)``)."""
    for name, callback in (properties or {}).items():
        graph = OpenEOProcessGraph(pg_data=callback)
        accepted = graph.to_callable(process_registry=REGISTRY)(named_parameters={"value": values.get(name)})
        if not bool(accepted):
            return False
    return True


def _as_date(value) -> dt.date:
    value = getattr(value, "root", value)  # pydantic Date/DateTime wrap a pendulum date
    return dt.date(value.year, value.month, value.day)


def load_collection(id, spatial_extent=None, temporal_extent=None, bands=None, properties=None, **kwargs):  # noqa: A002
    if spatial_extent is None or temporal_extent is None:
        raise ValueError("load_collection: this backend needs a spatial_extent and a temporal_extent.")
    epsg = _epsg(spatial_extent.crs)
    bbox = (spatial_extent.west, spatial_extent.south, spatial_extent.east, spatial_extent.north)
    start, end = (_as_date(value) for value in temporal_extent.root)
    if id == S2:
        dates = [
            day
            for day in synthetic.s2_scene_dates(start, end)
            if _matches_properties(properties, {"eo:cloud_cover": synthetic.scene_cloud_cover(day, epsg)})
        ]
        band_names = bands or synthetic.S2_BANDS
        cube = synthetic.sentinel2_cube(bbox, epsg, dates, band_names, CONTEXT.resolution)
    elif id == S1:
        dates = synthetic.s1_mosaic_dates(start, end)
        band_names = bands or synthetic.S1_BANDS
        cube = synthetic.sentinel1_cube(bbox, dates, band_names, CONTEXT.resolution)
    else:
        raise ValueError(f"load_collection: unknown collection {id!r}; this backend has {S2} and {S1}.")
    unknown = set(band_names) - set(synthetic.S2_BANDS if id == S2 else synthetic.S1_BANDS)
    if unknown:
        raise ValueError(f"load_collection: {id} has no bands {sorted(unknown)}.")
    if not dates:
        raise ValueError(f"load_collection: no {id} data between {start} and {end} matching the filters.")
    cube.attrs["epsg"] = epsg
    return cube.chunk({"t": -1, "bands": -1, "y": 256, "x": 256})


def to_scl_dilation_mask(
    data,
    scl_band_name="SCL",
    kernel1_size=17,
    kernel2_size=77,
    mask1_values=(2, 4, 5, 6, 7),
    mask2_values=(3, 8, 9, 10, 11),
    erosion_kernel_size=3,
    **kwargs,
):
    """CDSE's dilated SCL mask, simplified: mask2 classes dilated (kernel scaled to the pixel size)."""
    scl = data.sel(bands=scl_band_name) if "bands" in data.dims else data
    radius = max(1, int(round(kernel2_size * 10 / CONTEXT.resolution / 2)))

    def dilate(block):
        masked = np.isin(block, list(mask2_values))
        structure = np.ones((1, 2 * radius + 1, 2 * radius + 1), bool)
        return ndimage.binary_dilation(masked, structure=structure)

    mask = xr.apply_ufunc(dilate, scl.compute(), dask="forbidden")
    return mask.astype(bool)


def apply_dimension(data, process, dimension, target_dimension=None, context=None):
    """openEO ``apply_dimension``, including a target dimension that already exists.

    openeo-processes-dask's version fails on ``t`` -> ``bands`` when the cube has bands (the notebook's
    percentiles) and on callbacks whose result keeps the dimension as an extra axis. Here the callback
    gets the values with ``dimension`` as the last axis (``axis``) and must return it there too (a
    reducer may drop it). With an existing target dimension, its labels and the new values are
    flattened label-major: bands VV, VH and 5 values give VV_0 ... VV_4, VH_0 ... VH_4, as backends do.
    """
    if dimension not in data.dims:
        raise ValueError(f"apply_dimension: the cube has no dimension {dimension!r}; it has {list(data.dims)}.")
    moved = data.transpose(..., dimension)
    values = np.asarray(moved.values)
    axis = values.ndim - 1
    result = process(
        values,
        positional_parameters={"data": 0},
        named_parameters={"context": context},
        axis=axis,
        keepdims=False,
        context=context,
    )
    result = np.asarray(getattr(result, "values", result))
    if result.ndim == values.ndim - 1:  # a reducer: one value
        result = result[..., np.newaxis]
    if result.shape[:-1] != values.shape[:-1]:
        raise ValueError(
            f"apply_dimension over {dimension!r}: the process returned shape {result.shape} for input {values.shape}."
        )
    others = [name for name in moved.dims if name != dimension]
    coords = {name: moved[name].values for name in others if name in moved.coords}
    target = target_dimension or dimension
    count = result.shape[-1]
    if target == dimension:
        labels = moved[dimension].values if count == moved.sizes[dimension] else np.arange(count)
        out = xr.DataArray(result, dims=others + [dimension], coords={**coords, dimension: labels})
    elif target in others:  # e.g. t -> bands on a cube with bands: one label per band and value
        position = others.index(target)
        flat = np.moveaxis(result, position, -2)
        flat = flat.reshape(flat.shape[:-2] + (flat.shape[-2] * count,))
        kept = [name for name in others if name != target]
        labels = [f"{label}_{i}" for label in moved[target].values for i in range(count)]
        out = xr.DataArray(
            flat, dims=kept + [target], coords={**{k: coords[k] for k in kept if k in coords}, target: labels}
        )
    else:
        out = xr.DataArray(result, dims=others + [target], coords={**coords, target: np.arange(count)})
    order = dict.fromkeys(name if name != dimension else target for name in data.dims)  # t -> bands: once
    out = out.transpose(*order)
    out.attrs.update(data.attrs)
    return out


def array_create(data=None, repeat=1, axis=None):
    """openEO ``array_create``; inside ``apply_dimension`` a list of per-pixel arrays stacks along ``axis``.

    openeo-processes-dask tiles the list, which stacks the elements first, not on the axis its
    callbacks work on (the notebook's ``array_create([clouds, saturated, ...])``).
    """
    if data is None:
        return np.array([])
    if isinstance(data, (list, tuple)) and axis is not None and any(np.ndim(item) > 0 for item in data):
        shape = np.broadcast_shapes(*(np.shape(item) for item in data))
        stacked = np.stack([np.broadcast_to(np.asarray(item), shape) for item in data], axis=-1)
        return np.concatenate([stacked] * int(repeat), axis=-1)
    return np.tile(data, reps=repeat)


def array_modify(data, values, index, length=1, axis=None):
    """openEO ``array_modify``; inside ``apply_dimension`` it works on the last axis, pixel by pixel.

    openeo-processes-dask appends the whole ``values`` list to every pixel (the client's NDVI helper,
    ``append_and_rescale_indices``, asked it for a 95 GiB array).
    """
    if axis is None:
        return implementations.array_modify(data, values, index, length)
    data = np.asarray(data)
    inserted = array_create(list(values), axis=axis) if isinstance(values, (list, tuple)) else np.asarray(values)
    if inserted.ndim == data.ndim - 1:
        inserted = inserted[..., np.newaxis]
    if index > data.shape[-1]:
        raise ValueError(f"array_modify: index {index} is past the end of the array ({data.shape[-1]} elements).")
    return np.concatenate(
        [data[..., :index], inserted.astype(np.result_type(data, inserted)), data[..., index + length :]], axis=-1
    )


def _period_start(day: pd.Timestamp, period: str) -> pd.Timestamp:
    if period == "dekad":  # days 1-10, 11-20, 21-end of month
        return pd.Timestamp(day.year, day.month, 1 + 10 * min(2, (day.day - 1) // 10))
    return pd.Timestamp(day.year, day.month, 1)


def aggregate_temporal_period(data, reducer, period, dimension=None, context=None):
    """openEO ``aggregate_temporal_period`` for ``dekad`` and ``month``: one label per period.

    Labels are the periods' first days, every period from the first to the last date (an empty
    one in between holds no data, for ``array_interpolate_linear`` to fill). openeo-processes-dask
    mis-builds dekad intervals for some date ranges (a one-month window fails) and labels months
    by their last day.
    """
    if period not in ("dekad", "month"):
        return implementations.aggregate_temporal_period(data, reducer, period, dimension)
    dim = dimension or "t"
    starts = [_period_start(day, period) for day in pd.DatetimeIndex(data[dim].values)]
    labels = xr.DataArray(pd.DatetimeIndex(starts), dims=dim, coords={dim: data[dim].values}, name="period")
    reduced = data.groupby(labels).reduce(reducer, dim=dim, keep_attrs=True, positional_parameters={"data": 0})
    every = sorted({_period_start(day, period) for day in pd.date_range(min(starts), max(starts), freq="D")})
    reduced = reduced.reindex(period=pd.DatetimeIndex(every)).rename(period=dim)
    return reduced.transpose(*data.dims)


def quantiles(data, probabilities=None, q=None, ignore_nodata=True, axis=None, keepdims=False):
    """openEO ``quantiles`` (linear interpolation, as numpy's default), vectorised along the last axis.

    numpy's ``nanquantile`` falls back to a Python loop per pixel when values are missing: 220 s of a
    300 s Sentinel-2 tile. Sorting once and interpolating between ranks gives the same numbers.
    """
    if axis is None or q is not None or not isinstance(probabilities, (list, tuple)):
        return implementations.quantiles(data, probabilities, q, ignore_nodata, axis, keepdims)
    values = np.sort(np.asarray(data, dtype=np.float64), axis=-1)  # NaN sorts last
    valid = np.isfinite(values).sum(axis=-1, keepdims=True)
    if not ignore_nodata:
        valid = np.where(valid == values.shape[-1], valid, 0)
    result = []
    for probability in probabilities:
        rank = float(probability) * (valid - 1)
        low = np.clip(np.floor(rank), 0, None).astype(int)
        high = np.clip(np.ceil(rank), 0, None).astype(int)
        below = np.take_along_axis(values, low, axis=-1)
        above = np.take_along_axis(values, high, axis=-1)
        result.append(np.where(valid > 0, below + (above - below) * (rank - low), np.nan))
    return np.concatenate(result, axis=-1)


def median(data, ignore_nodata=True, axis=None, keepdims=False):
    """openEO ``median`` without numpy's per-pixel loop for missing values (11 s of a tile's 31 s)."""
    if axis is None:
        return implementations.median(data, ignore_nodata, axis, keepdims)
    values = np.moveaxis(np.asarray(data), axis, -1)
    result = quantiles(values, [0.5], ignore_nodata=ignore_nodata, axis=-1)[..., 0]
    return np.expand_dims(result, axis) if keepdims else result


def array_interpolate_linear(data, axis=None, dim_labels=None):
    """openEO ``array_interpolate_linear`` by position, vectorised along the last axis.

    Gaps between two values are filled linearly; leading and trailing gaps stay empty. (The
    per-pixel loop of openeo-processes-dask took 38 s for one tile.)
    """
    if axis is None:
        return implementations.array_interpolate_linear(data, axis, dim_labels)
    values = np.asarray(data, dtype=np.float64)
    count = values.shape[-1]
    valid = np.isfinite(values)
    position = np.broadcast_to(np.arange(count), values.shape)
    before = np.maximum.accumulate(np.where(valid, position, -1), axis=-1)
    after = np.minimum.accumulate(np.where(valid, position, count)[..., ::-1], axis=-1)[..., ::-1]
    inside = (before >= 0) & (after < count)
    low = np.take_along_axis(values, np.clip(before, 0, count - 1), axis=-1)
    high = np.take_along_axis(values, np.clip(after, 0, count - 1), axis=-1)
    span = np.where(after > before, after - before, 1)
    filled = low + (high - low) * (position - before) / span
    return np.where(valid, values, np.where(inside, filled, np.nan))


def save_result(data, format, options=None, **kwargs):  # noqa: A002
    if str(format).lower() not in ("netcdf", "nc"):
        raise ValueError(f"save_result: format {format!r} is not supported here; use netCDF.")
    path = CONTEXT.output_dir / "openEO.nc"
    write_netcdf(data, path, epsg=data.attrs.get("epsg"))
    CONTEXT.written.append(path)
    return True


def write_netcdf(cube: xr.DataArray, path: Path, epsg: Optional[int]) -> None:
    """One variable per band, dims (t, y, x), CF grid mapping ``crs``: what openEO backends write."""
    cube = cube.transpose("t", "bands", "y", "x") if "t" in cube.dims else cube.transpose("bands", "y", "x")
    dataset = cube.to_dataset(dim="bands")
    dataset = dataset.compute()
    crs = CRS.from_epsg(epsg)
    # Few attributes on purpose: HDF5 1.10 (Debian's GDAL) prints diagnostics for "dense" attribute sets.
    wkt = crs.to_wkt()
    grid_mapping = xr.DataArray(
        np.int8(0), attrs={"grid_mapping_name": crs.to_cf()["grid_mapping_name"], "crs_wkt": wkt, "spatial_ref": wkt}
    )
    dataset["crs"] = grid_mapping
    resolution = float(abs(dataset.x[1] - dataset.x[0])) if dataset.sizes["x"] > 1 else CONTEXT.resolution
    left = float(dataset.x[0]) - resolution / 2
    top = float(dataset.y[0]) + resolution / 2
    dataset["crs"].attrs["GeoTransform"] = f"{left} {resolution} 0 {top} 0 {-resolution}"
    dataset.x.attrs.update(standard_name="projection_x_coordinate", long_name="x coordinate of projection", units="m")
    dataset.y.attrs.update(standard_name="projection_y_coordinate", long_name="y coordinate of projection", units="m")
    encoding = {}
    for name in dataset.data_vars:
        if name == "crs":
            continue
        dataset[name].attrs["grid_mapping"] = "crs"
        encoding[name] = {"zlib": True, "complevel": 1, "dtype": "float32", "_FillValue": np.float32(np.nan)}
    if "t" in dataset.dims:
        encoding["t"] = {"units": "days since 1990-01-01", "calendar": "standard", "dtype": "int32"}
        dataset.t.attrs.update(standard_name="time", axis="T")
    dataset.attrs.update(Conventions="CF-1.9", source="WAC Extractor local openEO backend (synthetic data)")
    temporary = path.with_suffix(".nc.part")
    with NETCDF_LOCK:  # the netCDF-C library is not thread-safe: two jobs writing at once crash it
        dataset.to_netcdf(temporary, engine="netcdf4", encoding=encoding)
    temporary.replace(path)


def _build_registry() -> ProcessRegistry:
    registry = standard_registry()
    registry["load_collection"] = Process(spec=specs.load_collection, implementation=load_collection)
    registry["save_result"] = Process(spec=specs.save_result, implementation=save_result)
    registry["apply_dimension"] = Process(spec=specs.apply_dimension, implementation=apply_dimension)
    registry["array_create"] = Process(spec=specs.array_create, implementation=array_create)
    registry["array_modify"] = Process(spec=specs.array_modify, implementation=array_modify)
    registry["quantiles"] = Process(spec=specs.quantiles, implementation=quantiles)
    registry["median"] = Process(spec=specs.median, implementation=median)
    registry["aggregate_temporal_period"] = Process(
        spec=specs.aggregate_temporal_period, implementation=aggregate_temporal_period
    )
    registry["array_interpolate_linear"] = Process(
        spec=specs.array_interpolate_linear, implementation=array_interpolate_linear
    )
    registry["to_scl_dilation_mask"] = Process(spec=SCL_DILATION_SPEC, implementation=to_scl_dilation_mask)
    return registry


REGISTRY = _build_registry()


def run_process_graph(process_graph: dict, output_dir: Path, resolution: float) -> List[Path]:
    """Execute a flat process graph; returns the files ``save_result`` wrote."""
    output_dir.mkdir(parents=True, exist_ok=True)
    CONTEXT.output_dir = output_dir
    CONTEXT.resolution = resolution
    CONTEXT.written = []
    started = dt.datetime.now()
    graph = OpenEOProcessGraph(pg_data={"process_graph": process_graph})
    graph.to_callable(process_registry=REGISTRY)()
    if not CONTEXT.written:
        raise ValueError("the process graph has no save_result, so the job produced no files.")
    _log.info("executed graph in %.1fs -> %s", (dt.datetime.now() - started).total_seconds(), CONTEXT.written)
    return list(CONTEXT.written)


def process_specs(with_scl_dilation: bool) -> List[dict]:
    """The process descriptions for ``GET /processes``: what this backend can run."""
    listed = []
    for name in _registry_names():
        if name == "to_scl_dilation_mask":
            if with_scl_dilation:
                listed.append(SCL_DILATION_SPEC)
            continue
        spec = getattr(specs, name, None) or getattr(specs, "_" + name, None)
        if isinstance(spec, dict):
            listed.append(spec)
    return listed


def _registry_names() -> List[str]:
    names = [
        name.lstrip("_") for name, _ in inspect.getmembers(implementations, inspect.isfunction) if hasattr(specs, name)
    ]
    return sorted(set(names) | {"load_collection", "save_result", "to_scl_dilation_mask"})
