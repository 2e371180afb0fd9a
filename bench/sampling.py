"""Sampling a run at many fields (``make bench BENCH=sampling``): synthetic LCFM tiles, one process per engine.

The tiles are NetCDF files written here with the LCFM variables (15 S1 + 56 S2 = 71 per tile footprint;
a 3-month window), in a tracker as the runner leaves it, so the engine reads what it reads after a real
run. Each engine runs in its own process so its peak memory (ru_maxrss) is its own:

- ``ours``: ``core.results.sampling`` (numpy + shapely + GDAL), every statistic, tiles combined;
- ``exactextract`` (if importable; a scratch venv with ``pip install exactextract``): its mean, median,
  stdev, count per tile on the same features, reprojected per tile (no cross-tile combination);
- ``qgis``: ``native:zonalstatisticsfb`` per variable, on a subset of tiles, scaled up.

Usage: ``python -m bench.sampling [fields] [tiles] [pixels]``; prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PIXEL = 20.0
S1 = [f"{b}_P{p}" for b in ("VV", "VH", "VH_VV") for p in (10, 25, 50, 75, 90)]
S2 = [f"{b}_P{p}" for b in ("B02", "B03", "B04", "B08", "B11", "B12", "NDVI") for p in (10, 25, 50, 75, 90)]
S2 += [f"{b}_M{m}" for b in ("B02", "B03", "B04", "B08", "B11", "B12", "NDVI") for m in (1, 2, 3)]


def _write_tile(path: Path, west: float, north: float, size: int, variables, seed: int) -> None:
    from osgeo import gdal, osr

    gdal.UseExceptions()
    dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(path))
    root = dataset.GetRootGroup()
    y_dim, x_dim = root.CreateDimension("y", None, None, size), root.CreateDimension("x", None, None, size)
    float64, float32 = gdal.ExtendedDataType.Create(gdal.GDT_Float64), gdal.ExtendedDataType.Create(gdal.GDT_Float32)
    for name, dim, values in (("y", y_dim, north - (np.arange(size) + 0.5) * PIXEL),
                              ("x", x_dim, west + (np.arange(size) + 0.5) * PIXEL)):  # fmt: skip
        array = root.CreateMDArray(name, [dim], float64)
        array.Write(values)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (size, size)).astype(np.float32)
    mask = rng.random((size, size)) < 0.05
    for i, name in enumerate(variables):
        array = root.CreateMDArray(name, [y_dim, x_dim], float32)
        array.SetSpatialRef(srs)
        array.SetNoDataValueDouble(float("nan"))
        values = base * (i + 1) + 1000 * i
        values[mask] = np.nan
        array.Write(values)
    dataset = None


def make_run(folder: Path, tiles: int, pixels: int, fields: int) -> dict:
    """``tiles`` S1 + S2 result pairs on a square grid, a tracker, and ``fields`` random field polygons."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    from wac_extractor.core.jobs.tracker import create_tracker

    side, size_m = int(np.ceil(np.sqrt(tiles))), pixels * PIXEL
    rows = []
    for t in range(tiles):
        west, south = 600000 + (t % side) * size_m, 5600000 + (t // side) * size_m
        for sentinel, variables in ((1, S1), (2, S2)):
            job = f"j-{sentinel}-{t}"
            (folder / job).mkdir()
            _write_tile(folder / job / "openEO.nc", west, south + size_m, pixels, variables, t)
            extent = {"west": west, "south": south, "east": west + size_m, "north": south + size_m, "crs": 32631}
            rows.append({"title": job, "sentinel": sentinel, "tile_id": f"32631_{west}_{south}", "recipe": "lcfm",
                         "spatial_extent": extent, "temporal_extent": ["2023-01-01", "2023-04-01"],
                         "max_cloud_cover": 85, "status": "finished", "result_status": "ok",
                         "result_files": json.dumps([f"{job}/openEO.nc"]),
                         "geometry": shapely.box(west, south, west + size_m, south + size_m).wkt})  # fmt: skip
    jobs = pd.DataFrame(rows)
    jobs["geometry"] = gpd.GeoSeries.from_wkt(jobs["geometry"], crs=32631).to_crs(4326).to_wkt()
    create_tracker(folder / "jobs.gpkg", jobs)
    rng = np.random.default_rng(0)
    extent = side * size_m
    x = 600000 + rng.random(fields) * (extent - 300)
    y = 5600000 + rng.random(fields) * (extent - 300)
    w, h = rng.uniform(80, 250, fields), rng.uniform(80, 250, fields)
    polygons = shapely.box(x, y, x + w, y + h)
    gpd.GeoDataFrame({"field_id": np.arange(fields)}, geometry=polygons, crs=32631).to_file(folder / "fields.gpkg")
    return {"fields": fields, "tiles": tiles, "pixels": f"{pixels} x {pixels} at 20 m", "variables": len(S1 + S2)}


def run_ours(folder: Path) -> dict:
    from wac_extractor.core.jobs.tracker import open_tracker
    from wac_extractor.core.results.features import read_features, write_table
    from wac_extractor.core.results.sampling import sample_results

    started = time.perf_counter()
    table = sample_results(open_tracker(folder / "jobs.gpkg").read(), folder, read_features(folder / "fields.gpkg"))
    sampled = time.perf_counter() - started
    write_table(table, folder / "sampled.gpkg")
    return {"seconds": time.perf_counter() - started, "sample_s": sampled, "columns": len(table.columns)}


def run_exactextract(folder: Path) -> dict:
    """exactextract per tile (S2 and S1 files), features reprojected by us; no cross-tile combination."""
    from exactextract import exact_extract
    from osgeo import gdal, ogr

    gdal.UseExceptions()
    started = time.perf_counter()
    source = ogr.Open(str(folder / "fields.gpkg"))
    fields = [(f.GetGeometryRef().GetEnvelope(), json.loads(f.ExportToJson())) for f in source.GetLayer(0)]
    count = 0
    for path in sorted(folder.glob("j-*/openEO.nc")):
        names = S1 if path.parent.name.startswith("j-1") else S2
        rasters = [gdal.Open(f'NETCDF:"{path}":{name}') for name in names]
        x0, dx, _, y0, _, dy = rasters[0].GetGeoTransform()
        x1, y1 = x0 + dx * rasters[0].RasterXSize, y0 + dy * rasters[0].RasterYSize
        inside = [f for (a, b, c, d), f in fields if a < x1 and b > x0 and c < y0 and d > y1]
        if inside:
            result = exact_extract(rasters, inside, ["mean", "median", "stdev", "count"], output="pandas")
            count += len(result)
    return {"seconds": time.perf_counter() - started, "rows": count}


def run_qgis(folder: Path, tiles: int = 2) -> dict:
    """``native:zonalstatisticsfb`` on ``tiles`` tiles (each variable one call), scaled to all tiles."""
    from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer

    sys.path.append("/usr/share/qgis/python/plugins")
    app = QgsApplication([], False)
    app.initQgis()
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    fields = QgsVectorLayer(str(folder / "fields.gpkg"), "fields", "ogr")
    paths = sorted(folder.glob("j-2-*/openEO.nc"))[:tiles]
    started = time.perf_counter()
    for path in paths:
        for name in S2:
            layer = QgsRasterLayer(f'NETCDF:"{path}":{name}', name, "gdal")
            processing.run("native:zonalstatisticsfb", {"INPUT": fields, "INPUT_RASTER": layer, "RASTER_BAND": 1,
                                                        "STATISTICS": [2, 3, 4, 0], "OUTPUT": "memory:"})  # fmt: skip
    seconds = time.perf_counter() - started
    all_files = len(list(folder.glob("j-*/openEO.nc")))
    return {"seconds_measured": seconds, "files_measured": len(paths), "seconds": seconds * all_files / len(paths)}


ENGINES = {"ours": run_ours, "exactextract": run_exactextract, "qgis": run_qgis}


def _engine(name: str, folder: Path) -> None:
    """In a child process: one engine, its time and its own peak memory, as a JSON line."""
    result = ENGINES[name](folder)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _child(python: str, name: str, folder: Path) -> dict:
    done = subprocess.run([python, "-m", "bench.sampling", "--engine", name, str(folder)], capture_output=True,
                          text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen",
                                                    "PATH": "/usr/bin:/bin"})  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(fields: int = 10_000, tiles: int = 100, pixels: int = 100, exactextract_python: str = "") -> dict:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.perf_counter()
        results = make_run(folder, tiles, pixels, fields)
        results["synthesis_s"] = time.perf_counter() - started
        results["ours"] = _child(sys.executable, "ours", folder)
        if exactextract_python:
            results["exactextract"] = _child(exactextract_python, "exactextract", folder)
        results["qgis"] = _child(sys.executable, "qgis", folder)
    results["target"] = "under 60 s for 10,000 fields x 100 tiles x 71 variables"
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--engine"]:
        _engine(sys.argv[2], Path(sys.argv[3]))
    else:
        args = [int(a) for a in sys.argv[1:4]]
        print(json.dumps(main(*args, exactextract_python=(sys.argv[4:5] or [""])[0])))
