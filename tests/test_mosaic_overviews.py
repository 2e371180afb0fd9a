"""A month mosaic's own overview: a zoomed-out read takes it (a few chunk files), not every tile."""

from __future__ import annotations

import warnings

import numpy as np
from osgeo import gdal

from wac_extractor.core.results import mosaics as mosaics_module
from wac_extractor.core.results.mosaic_overviews import FACTOR
from wac_extractor.core.results.mosaics import MonthMosaics

from .test_mosaics import SIZE, gradient_tile, grid_of, tile_raster

gdal.UseExceptions()


def averaged_down(pixels: np.ndarray) -> np.ndarray:
    """Each FACTOR x FACTOR block's mean over its non-NaN pixels (NaN where it has none)."""
    rows, columns = pixels.shape[0] // FACTOR, pixels.shape[1] // FACTOR
    blocks = pixels[: rows * FACTOR, : columns * FACTOR].reshape(rows, FACTOR, columns, FACTOR).swapaxes(1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block: NaN, as GDAL gives
        return np.nanmean(blocks.reshape(rows, columns, -1), axis=2)


def overview_window(mosaic, column: int, row: int, band: int = 1) -> np.ndarray:
    """The overview's pixels under tile (column, row) of the grid through (600,000, 5,600,000)."""
    overview = mosaic.GetRasterBand(band).GetOverview(0)
    side = SIZE // FACTOR
    return overview.ReadAsArray(column * side, row * side, side, side)


def test_the_overview_is_the_mosaic_averaged_down_at_each_tiles_place(tmp_path, monkeypatch):
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 4)
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(3, 2))
    cells = [(column, row) for row in range(2) for column in range(3)]
    tiles = [gradient_tile(tmp_path, column, row, number) for number, (column, row) in enumerate(cells, start=1)]
    (update,) = mosaics.add(tiles)
    for source in (str(update.composite.path), f"vrt://{update.composite.path}"):  # vrt://: as QGIS opens it
        mosaic = gdal.Open(source)
        for band in (1, 2, 3):
            overviews = mosaic.GetRasterBand(band)
            assert overviews.GetOverviewCount() == 1, source
            overview = overviews.GetOverview(0)
            assert (overview.XSize, overview.YSize) == (3 * SIZE // FACTOR, 2 * SIZE // FACTOR)
            full = mosaic.GetRasterBand(band).ReadAsArray()
            np.testing.assert_allclose(overview.ReadAsArray(), averaged_down(full), rtol=1e-6, err_msg=source)
    # The tiles' first column is NaN: the overview's first column of each tile averages the other three.
    mosaic = gdal.Open(str(update.composite.path))
    first = overview_window(mosaic, 1, 0)[:, 0]
    assert np.isfinite(first).all()


def test_a_zoomed_out_read_opens_the_overview_not_the_tiles(tmp_path):
    """With the tiles gone, the mosaic read at 1/8 of its resolution still gives their pixels (from the
    overview's chunks); at full resolution it cannot."""
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(4, 2))
    tiles = [tile_raster(tmp_path, column, row, 10 * (column + 4 * row + 1)) for row in range(2) for column in range(4)]
    (update,) = mosaics.add(tiles)
    mosaic = gdal.Open(str(update.composite.path))
    width, height = mosaic.RasterXSize, mosaic.RasterYSize
    expected = mosaic.ReadAsArray(buf_xsize=width // 8, buf_ysize=height // 8)
    mosaic = None
    for tile in tiles:
        tile.path.unlink()
    gdal.ErrorReset()
    mosaic = gdal.Open(str(update.composite.path))
    zoomed_out = mosaic.ReadAsArray(buf_xsize=width // 8, buf_ysize=height // 8)
    np.testing.assert_allclose(zoomed_out, expected, rtol=1e-6)
    assert np.isfinite(zoomed_out).sum() > 0.5 * zoomed_out.size
    try:
        mosaic.ReadAsArray()
        read_full = True
    except RuntimeError:
        read_full = False
    assert not read_full  # the full resolution needs the tiles


def test_each_new_tile_shows_in_the_overview_and_a_reader_of_the_one_before_keeps_reading(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(3, 1))
    (update,) = mosaics.add([tile_raster(tmp_path, 0, 0, 10)])
    path = update.composite.path
    before = gdal.Open(str(path))  # a layer that is not reloaded yet
    for column in (1, 2):
        assert np.isnan(overview_window(gdal.Open(str(path)), column, 0)).all()  # not arrived: transparent
        mosaics.add([tile_raster(tmp_path, column, 0, 10 * (column + 1))])
        now = gdal.Open(str(path))
        tile = gdal.Open(str(tmp_path / f"tile_32631_{column}_0.tif")).ReadAsArray()[0]
        np.testing.assert_allclose(overview_window(now, column, 0), averaged_down(tile), rtol=1e-6)
    gdal.ErrorReset()
    old = overview_window(before, 0, 0)
    assert gdal.GetLastErrorMsg() == "" and np.isfinite(old).all()  # its chunk files are still there


def test_deferred_tiles_join_the_overview_when_flushed(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1))
    (first,) = mosaics.add([tile_raster(tmp_path, 0, 0, 10)], defer_overview=True)  # a new mosaic: written at once
    assert np.isfinite(overview_window(gdal.Open(str(first.composite.path)), 0, 0)).all()
    mosaics.add([tile_raster(tmp_path, 1, 0, 20)], defer_overview=True)
    mosaic = gdal.Open(str(first.composite.path))
    assert np.isfinite(mosaic.GetRasterBand(1).ReadAsArray()[:, SIZE + 1 :]).all()  # placed at full resolution
    assert np.isnan(overview_window(mosaic, 1, 0)).all()  # not yet in the overview
    (flushed,) = mosaics.flush_overviews()
    assert flushed.tiles == 2 and not flushed.created
    np.testing.assert_allclose(overview_window(gdal.Open(str(first.composite.path)), 1, 0)[:, 1:], 21.0)
    assert mosaics.flush_overviews() == []


def test_a_grid_grown_west_and_north_keeps_the_overview_in_place(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(1, 1))
    mosaics.add([tile_raster(tmp_path, 0, 0, 10)])
    (grown,) = mosaics.add([tile_raster(tmp_path, -1, -1, 50)])  # a tile north-west of the planned grid
    assert grown.regridded
    mosaic = gdal.Open(str(grown.composite.path))
    assert mosaic.GetGeoTransform()[0] == 600_000 - SIZE * 10
    full = mosaic.GetRasterBand(1).ReadAsArray()
    np.testing.assert_allclose(mosaic.GetRasterBand(1).GetOverview(0).ReadAsArray(), averaged_down(full), rtol=1e-6)
