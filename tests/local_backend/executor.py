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
