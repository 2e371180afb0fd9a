"""A zoomed-out draw of a 1,000-tile month mosaic: NetCDF sources (before) against display copies (after).

``python -m bench.mosaic_draw [TILES] [PIXELS]`` (own process: own QGIS app); prints one JSON line.
Synthetic LCFM Sentinel-2 results as the local backend writes them (NetCDF-4, the 56 variables of a
3-month window, float32, zlib level 1, NaN fill; ``PIXELS`` x ``PIXELS`` at 20 m, 10 km tiles at 500)
on a grid of 40 columns: one tile is written, the others are copies with their own coordinates. The
three variables the S2 true colour of the first month shows vary (a smooth field, noise, 3 % NaN);
the other 53 are constant, so that 1,000 tiles fit on a small disk (they still cost each open of
the file its metadata). The same month mosaic (``core.results.mosaics``) is then built twice:

- *before*: over composite VRTs that read ``NETCDF:"file":B04_M1`` and so on (the plugin until now);
- *after*: over the display copies (``composites.write_cog``: COGs with overviews).

Each is drawn as QGIS Desktop draws a canvas (``QgsMapRendererParallelJob``, the layer through
``vrt://``), zoomed out on the whole run at 1,600 x 1,000 px, three times; stderr (file descriptor 2)
is read during the draws and its ``HDF5-DIAG`` and ``RasterIO error`` lines counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

PIXEL = 20.0
COLUMNS = 40
SHOWN = ("B04_M1", "B03_M1", "B02_M1")  # the first month's true colour


def _template(path: Path, pixels: int) -> None:
    """One tile's NetCDF with every LCFM S2 variable; only the shown ones vary."""
    from osgeo import gdal, osr

    from bench.sampling import S2

    gdal.UseExceptions()
    dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(path))
    root = dataset.GetRootGroup()
    y_dim, x_dim = root.CreateDimension("y", None, None, pixels), root.CreateDimension("x", None, None, pixels)
    float64, float32 = gdal.ExtendedDataType.Create(gdal.GDT_Float64), gdal.ExtendedDataType.Create(gdal.GDT_Float32)
    for name, dim in (("y", y_dim), ("x", x_dim)):
        root.CreateMDArray(name, [dim], float64).Write((np.arange(pixels) + 0.5) * PIXEL)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:pixels, 0:pixels]
    field = (np.sin(cols / 37.0) + np.cos(rows / 23.0)) * 300 + 900  # reflectance x 10000: fields, soil
    for number, name in enumerate(S2):
        array = root.CreateMDArray(name, [y_dim, x_dim], float32, ["COMPRESS=DEFLATE", "ZLEVEL=1"])
        array.SetSpatialRef(srs)
        array.SetNoDataValueDouble(float("nan"))
        if name in SHOWN:
            values = (field + 150 * SHOWN.index(name) + rng.normal(0, 40, field.shape)).astype(np.float32)
            values[rng.random(field.shape) < 0.03] = np.nan
        else:
            values = np.full(field.shape, 1000 + number, dtype=np.float32)
        array.Write(values)
    dataset = None


def make_tiles(folder: Path, tiles: int, pixels: int) -> list:
    """``tiles`` result files on a grid of :data:`COLUMNS` columns; returns their paths.

    Tiles already in ``folder`` (a kept bench folder, ``DRAW_BENCH_DIR``) are reused, so a run of 1,000
    after one of 200 writes only the 800 missing.
    """
    from osgeo import gdal

    template = folder / "template.nc"
    if not template.exists():
        _template(template, pixels)
    size = pixels * PIXEL
    paths = []
    for number in range(tiles):
        west, north = 600000 + (number % COLUMNS) * size, 5600000 + size - (number // COLUMNS) * size
        path = folder / f"tile{number:04d}" / "openEO.nc"
        paths.append(path)
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        partial = path.with_name("partial.nc")  # ".nc": else the HDF5 driver opens it, read-only
        shutil.copyfile(template, partial)
        dataset = gdal.OpenEx(str(partial), gdal.OF_MULTIDIM_RASTER | gdal.OF_UPDATE)
        root = dataset.GetRootGroup()
        root.OpenMDArray("x").Write(west + (np.arange(pixels) + 0.5) * PIXEL)
        root.OpenMDArray("y").Write(north - (np.arange(pixels) + 0.5) * PIXEL)
        dataset = root = None
        os.replace(partial, path)
    return paths


def display_copies(paths: list) -> tuple:
    """Each tile's display copy (``composites.write_cog``), written once; returns the composites and the
    seconds the writing took (the time measured when each copy was written, kept beside it)."""
    from wac_extractor.core.results.composites import WindowComposite, write_cog

    composites, seconds = [], 0.0
    for path in paths:
        cog, timing = path.parent / "S2_true_colour_2023-01.tif", path.parent / "display_copy_s.txt"
        if not (cog.exists() and timing.exists()):
            cog.unlink(missing_ok=True)
            started = time.perf_counter()
            write_cog(composite_xml(path), cog)
            timing.write_text(repr(time.perf_counter() - started))
        seconds += float(timing.read_text())
        composites.append(WindowComposite(2, "2023-01", cog, path, 1))
    return composites, seconds


def composite_xml(result: Path) -> str:
    """The first month's true colour over the NetCDF, as the plugin wrote it before the display copies."""
    from wac_extractor.core.results.composites import _band_xml, _source_xml, _vrt_xml

    bands = [_band_xml(i + 1, v, _source_xml(result, v, 1)) for i, v in enumerate(SHOWN)]
    return _vrt_xml(result, SHOWN[0], bands)


def build_mosaic(folder: Path, composites: list, pixels: int, overviews: bool = True, planned_tiles: int = 0):
    """The month mosaic on the grid of ``planned_tiles`` (all of them by default, as a tracker's planned
    extents give it), a tile at a time; returns the :class:`MonthMosaics`."""
    from wac_extractor.core.results.mosaics import MonthMosaics

    count = planned_tiles or len(composites)
    size, rows = pixels * PIXEL, -(-count // COLUMNS)
    columns = min(COLUMNS, count)
    planned = {32631: (600000, 5600000 - (rows - 1) * size, 600000 + columns * size, 5600000 + size)}
    mosaics = MonthMosaics(folder, planned, overviews=overviews)
    for composite in composites:  # one tile at a time, as results arrive
        mosaics.add([composite])
    return mosaics


def mosaic_path(mosaics) -> Path:
    (mosaic,) = mosaics.mosaics()
    return mosaic.path


class StderrLines:
    """What this process (any thread, C libraries included) writes to file descriptor 2 meanwhile."""

    def __enter__(self):
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.text))


def zoomed_out(layer):
    """The map settings of a canvas of 1,600 x 1,000 px zoomed out on the whole layer."""
    from qgis.core import QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    extent = layer.extent()
    extent.scale(1.02)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(1600, 1000))
    settings.setBackgroundColor(QColor("white"))
    return settings


def render(settings):
    from qgis.core import QgsMapRendererParallelJob

    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def mosaic_layer(path: Path):
    from wac_extractor.core.results.composites import WindowComposite
    from wac_extractor.qgis_glue.layers import composite_layer

    return composite_layer(WindowComposite(2, "2023-01", path, path, 1), "mosaic", read_only=True)


def draw(path: Path, repeat: int = 3) -> dict:
    """Zoomed-out draws of the mosaic layer (``vrt://``, styled as the plugin styles it) at 1,600 x 1,000 px."""
    from qgis.PyQt.QtGui import QColor

    layer = mosaic_layer(path)  # held: the map settings keep only a weak reference
    settings = zoomed_out(layer)
    times, image = [], None
    with StderrLines() as stderr:
        for _ in range(repeat):
            started = time.perf_counter()
            image = render(settings)
            times.append(time.perf_counter() - started)
    if os.environ.get("WAC_BENCH_IMAGE"):
        image.save(os.environ["WAC_BENCH_IMAGE"])
    drawn = sum(QColor(image.pixel(x, y)) != QColor("white") for x in range(0, 1600, 40) for y in range(0, 1000, 40))
    return {
        "first_s": times[0],
        "median_s": statistics.median(times),
        "best_s": min(times),
        "worst_s": max(times),
        "runs": repeat,
        "pixels_drawn_share": drawn / (40 * 25),
        "hdf5_diag_lines": stderr.count(r"HDF5-DIAG"),
        "rasterio_error_lines": stderr.count(r"RasterIO error"),
        "stderr_lines": len(stderr.text.splitlines()),
    }


def overview_chunks(mosaic: Path) -> list:
    """The chunk files the mosaic's overview reads now (superseded versions not counted)."""
    import xml.etree.ElementTree as ET

    relative = ET.parse(mosaic).getroot().find("VRTRasterBand/Overview/SourceFilename").text
    overview = mosaic.parent / relative
    band = ET.parse(overview).getroot().find("VRTRasterBand")
    return [overview.parent / s.find("SourceFilename").text for s in band.iter("ComplexSource")]


def new_tile_drawn(mosaics, composite) -> float:
    """Seconds from one more tile's display copy to its place drawn on the zoomed-out canvas: placed in the
    mosaic (blocks and overview written), the layer reloaded (as ``ResultLoader.refresh``) and drawn."""
    from qgis.core import QgsPointXY
    from qgis.PyQt.QtGui import QColor

    from wac_extractor.core.results.mosaics import raster_bounds

    layer = mosaic_layer(mosaic_path(mosaics))
    settings = zoomed_out(layer)
    west, south, east, north = raster_bounds(composite.path)[0]
    point = settings.mapToPixel().transform(QgsPointXY((west + east) / 2, (south + north) / 2))
    x, y = round(point.x()), round(point.y())
    if QColor(render(settings).pixel(x, y)) != QColor("white"):
        raise RuntimeError("the tile's place is drawn before the tile is added")
    started = time.perf_counter()
    mosaics.add([composite])
    layer.reload()
    while QColor(render(settings).pixel(x, y)) == QColor("white"):
        if time.perf_counter() - started > 60:
            raise RuntimeError("the new tile was not drawn within 60 s")
    return time.perf_counter() - started


def main(tiles: int = 1000, pixels: int = 500) -> dict:
    """``DRAW_BENCH_DIR``: keep the synthetic tiles and their display copies there for the next run."""
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from wac_extractor.core.results.composites import WindowComposite

    keep = os.environ.get("DRAW_BENCH_DIR", "")
    tiles_dir = Path(keep) / f"p{pixels}" if keep else Path(tempfile.mkdtemp(prefix="wac-bench-draw-"))
    tiles_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wac-bench-draw-mosaics-", dir=tiles_dir))
    result = {"tiles": tiles, "pixels": f"{pixels} x {pixels} at 20 m", "output_px": "1600 x 1000"}
    try:
        started = time.perf_counter()
        paths = make_tiles(tiles_dir, tiles, pixels)
        result["synthesis_s"] = time.perf_counter() - started

        if os.environ.get("DRAW_BENCH_BEFORE", "1") != "0":  # 0: only the display copies (prototyping)
            before = []
            for path in paths:
                vrt = path.parent / "S2_true_colour_2023-01.vrt"
                vrt.write_text(composite_xml(path))
                before.append(WindowComposite(2, "2023-01", vrt, path, 1))
            started = time.perf_counter()
            mosaics = build_mosaic(work / "mosaics_netcdf", before, pixels, overviews=False)
            result["before_mosaic_build_s"] = time.perf_counter() - started
            draws = int(os.environ.get("DRAW_BENCH_BEFORE_DRAWS", "2"))
            result["before_netcdf"] = draw(mosaic_path(mosaics), repeat=draws)

        after, result["display_copies_s"] = display_copies(paths)
        result["display_copies_cached"] = bool(keep)
        result["display_copy_mb"] = sum(c.path.stat().st_size for c in after) / len(after) / 1e6
        started = time.perf_counter()
        mosaics = build_mosaic(work / "mosaics_cog", after, pixels, overviews=False)
        result["display_copies_mosaic_build_s"] = time.perf_counter() - started
        result["display_copies"] = draw(mosaic_path(mosaics))

        started = time.perf_counter()  # the mosaic's own overview: all tiles but one, then the last one
        mosaics = build_mosaic(work / "mosaics_overview", after[:-1], pixels, planned_tiles=tiles)
        result["after_mosaic_build_s"] = time.perf_counter() - started
        result["new_tile_drawn_s"] = new_tile_drawn(mosaics, after[-1])
        result["after_mosaic_overview"] = draw(mosaic_path(mosaics))
        chunks = overview_chunks(mosaic_path(mosaics))
        result["overview_files"] = len(chunks)
        result["overview_mb"] = sum(f.stat().st_size for f in chunks) / 1e6
    finally:
        shutil.rmtree(work if keep else tiles_dir, ignore_errors=True)
    result["target"] = "a zoomed-out draw under 1 s; no HDF5-DIAG or RasterIO error line"
    app.exitQgis()
    return result


if __name__ == "__main__":
    print(json.dumps(main(*[int(a) for a in sys.argv[1:]])))
