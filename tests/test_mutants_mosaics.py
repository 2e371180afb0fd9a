"""The mosaic grid's arithmetic on its own: snapping, cover, sizes, planned bounds (issue 26: mutation score).

Each test kills mutants of ``wac_extractor/core/results/mosaics.py`` that ``test_mosaics.py`` (whose
tiles all sit on the grid) let survive; tests/README.md lists the mutant each one was seen failing on.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from osgeo import gdal, osr

from wac_extractor.core.results import mosaics as mosaics_module
from wac_extractor.core.results.composites import TRUE_COLOUR, WindowComposite
from wac_extractor.core.results.mosaics import (
    MonthMosaics,
    MosaicUpdate,
    _Grid,
    _grid_size,
    _snap,
    planned_bounds,
    raster_bounds,
)

from .test_mosaics import EPSG, SIZE, grid_of, tile_raster

ORIGIN = (1000.0, 2000.0)  # a grid line through x = 1000 and y = 2000; pixels of 20 m (x) by 10 m (y)


def test_bounds_are_widened_to_whole_pixels_of_the_grid_through_its_origin():
    # west 2.6 px, south -2.4 px, east 5.4 px, north 2.4 px from the origin
    assert _snap((1052, 1976, 1108, 2024), ORIGIN, 20, 10) == pytest.approx((1040, 1970, 1120, 2030))


def test_bounds_within_a_millionth_of_a_pixel_of_a_grid_line_snap_to_it():
    """GDAL's geotransforms carry float noise: 1.9999996 pixels is 2, not 1 (and 3.0000004 is 3, not 4)."""
    noisy = (1000 + 20 * (2 - 4e-7), 2000 + 10 * (-3 - 4e-7), 1000 + 20 * (6 + 4e-7), 2000 + 10 * (3 + 4e-7))
    assert _snap(noisy, ORIGIN, 20, 10) == pytest.approx((1040, 1970, 1120, 2030))


def test_a_grid_covers_only_bounds_inside_it_on_every_side():
    grid = _Grid((0.0, 0.0, 10.0, 10.0), 1.0, 1.0)
    assert grid.covers((0, 0, 10, 10)) and grid.covers((2, 3, 4, 5))
    for outside in [(-1, 0, 5, 5), (0, -1, 5, 5), (5, 5, 11, 9), (5, 5, 9, 11), (-1, 5, 5, 6)]:
        assert not grid.covers(outside), outside


def test_the_grid_size_in_pixels():
    assert _grid_size(_Grid((600_000.0, 5_600_000.0, 600_200.0, 5_600_100.0), 20.0, 10.0)) == (10, 10)


def write_tiff(path, srs_text=None):
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 4, 3, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform((600_000, 20, 0, 5_600_000, 0, -10))
    if srs_text:
        srs = osr.SpatialReference()
        srs.SetFromUserInput(srs_text)
        dataset.SetSpatialRef(srs)
    dataset.FlushCache()
    dataset = None
    return path


def test_raster_bounds_and_an_epsg_code_of_0_without_one(tmp_path):
    utm = write_tiff(tmp_path / "utm.tif", "EPSG:32631")
    assert raster_bounds(utm) == ((600_000, 5_599_970, 600_080, 5_600_000), 20, 10, 32631)
    assert raster_bounds(write_tiff(tmp_path / "none.tif"))[3] == 0
    custom = "+proj=tmerc +lat_0=0 +lon_0=4.5 +k=0.9996 +x_0=500000 +y_0=0 +datum=WGS84 +units=m +no_defs"
    assert raster_bounds(write_tiff(tmp_path / "custom.tif", custom))[3] == 0


def test_planned_bounds_skip_what_is_not_a_utm_extent_and_go_on():
    utm = {"west": 0, "south": 0, "east": 10, "north": 10, "crs": 32631}
    cells = [None, {"west": 1, "south": 1, "east": 2, "north": 2}, {**utm, "crs": 4326},
             {"west": 5}, utm, '{"west": 10, "south": -5, "east": 20, "north": 5, "crs": "EPSG:32631"}']  # fmt: skip
    assert planned_bounds(cells) == {32631: (0.0, -5.0, 20.0, 10.0)}


# --- MonthMosaics itself: placement off round coordinates, other resolutions, overlaps, blocks, updates ---


def plain_tile(folder, name, west, north, value, pixel=10.0, size=SIZE, nodata_flag=True):
    """One band of ``value`` (NaN in its first column) with its corner at (west, north), in EPSG:32631."""
    path = folder / f"{name}.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform((west, pixel, 0, north, 0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    dataset.SetSpatialRef(srs)
    data = np.full((size, size), value, dtype="float32")
    data[:, 0] = np.nan
    dataset.GetRasterBand(1).WriteArray(data)
    if nodata_flag:
        dataset.GetRasterBand(1).SetNoDataValue(float("nan"))
    dataset = None
    return WindowComposite(2, "2023-01", path, path, 1, TRUE_COLOUR)


def window(mosaic_path, west, north, width, height, band=1):
    """The mosaic's pixels of the window whose corner is (west, north), in the mosaic's own pixels."""
    dataset = gdal.Open(str(mosaic_path))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    x_off, y_off = round((west - x0) / dx), round((north - y0) / dy)
    return dataset.GetRasterBand(band).ReadAsArray(x_off, y_off, width, height)


def tile_pixels(composite):
    dataset = gdal.Open(str(composite.path))  # kept: a band outliving its dataset crashes GDAL
    return dataset.GetRasterBand(1).ReadAsArray()


def test_a_grid_goes_through_the_first_tiles_corner_off_round_coordinates(tmp_path):
    """Corners 5 m off the 10 m lines (x only): the grid's origin is the tile's corner, in x as in y."""
    mosaics = MonthMosaics(tmp_path / "mosaics")
    first = plain_tile(tmp_path, "first", 600_005, 5_600_000, 1)
    (update,) = mosaics.add([first])
    mosaic = gdal.Open(str(update.composite.path))
    assert mosaic.GetGeoTransform() == (600_005, 10, 0, 5_600_000, 0, -10)
    np.testing.assert_array_equal(window(update.composite.path, 600_005, 5_600_000, SIZE, SIZE), tile_pixels(first))
    # A tile beyond the grid grows it through the same origin: both tiles land pixel for pixel.
    second = plain_tile(tmp_path, "second", 600_005 + 3 * SIZE * 10, 5_600_000 - 2 * SIZE * 10, 2)
    (grown,) = mosaics.add([second])
    assert grown.regridded
    assert gdal.Open(str(grown.composite.path)).GetGeoTransform() == (600_005, 10, 0, 5_600_000, 0, -10)
    for tile, (west, north) in ((first, (600_005, 5_600_000)), (second, (600_605, 5_599_600))):
        np.testing.assert_array_equal(window(grown.composite.path, west, north, SIZE, SIZE), tile_pixels(tile))


def test_a_tile_of_coarser_pixels_is_resampled_onto_the_mosaics_grid(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1))
    mosaics.add([plain_tile(tmp_path, "fine", 600_000, 5_600_000, 1)])
    coarse = plain_tile(tmp_path, "coarse", 600_000 + SIZE * 10, 5_600_000, 2, pixel=20.0, size=SIZE // 2)
    (update,) = mosaics.add([coarse])
    mosaic = gdal.Open(str(update.composite.path))
    assert mosaic.GetGeoTransform() == (600_000, 10, 0, 5_600_000, 0, -10)
    assert (mosaic.RasterXSize, mosaic.RasterYSize) == (2 * SIZE, SIZE)
    expected = np.repeat(np.repeat(tile_pixels(coarse), 2, axis=0), 2, axis=1)  # each 20 m pixel is 2 x 2
    np.testing.assert_array_equal(window(update.composite.path, 600_000 + SIZE * 10, 5_600_000, SIZE, SIZE), expected)


def test_nan_is_no_data_so_an_overlapping_tile_never_hides_another_with_nan(tmp_path):
    """Tiles without a no-data flag (NaN pixels only): the later tile's NaN column shows the earlier tile."""
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1))
    mosaics.add([plain_tile(tmp_path, "left", 600_000, 5_600_000, 1, nodata_flag=False)])
    half = 600_000 + SIZE * 5  # the second tile starts half-way into the first
    (update,) = mosaics.add([plain_tile(tmp_path, "right", half, 5_600_000, 2, nodata_flag=False)])
    column = window(update.composite.path, half, 5_600_000, 1, SIZE)[:, 0]
    assert (column == 1).all()  # the right tile's NaN first column lets the left tile show
    assert (window(update.composite.path, half + 10, 5_600_000, 1, SIZE)[:, 0] == 2).all()
    mosaic = gdal.Open(str(update.composite.path))
    assert np.isnan(mosaic.GetRasterBand(1).GetNoDataValue())  # QGIS draws NaN (no tile there) transparent


def test_placing_a_tile_writes_nothing_outside_the_mosaics_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # GDAL would write a named VRT relative to the working folder
    mosaics = MonthMosaics(tmp_path / "mosaics")
    mosaics.add([plain_tile(tmp_path, "a", 600_000, 5_600_000, 1)])
    assert list(elsewhere.iterdir()) == []


def test_a_tile_file_gone_before_a_regrid_is_named_with_its_mosaic(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(1, 1))
    gone = plain_tile(tmp_path, "gone", 600_000, 5_600_000, 1)
    mosaics.add([gone])
    gone.path.unlink()  # a user deleted a result
    with pytest.raises(ValueError, match=rf"{gone.path} could not be placed in the mosaic S2_true_colour_2023-01_1m_"):
        mosaics.add([plain_tile(tmp_path, "far", 600_000 + 5 * SIZE * 10, 5_600_000, 2)])


def test_the_mosaic_layer_is_its_own_composite_with_the_tiles_period_and_style(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics")
    tile = plain_tile(tmp_path, "a", 600_000, 5_600_000, 1)
    ndvi = WindowComposite(2, "2023-01", tile.path, tile.path, 1, "ndvi_p50", 3)
    (update,) = mosaics.add([ndvi])
    path = tmp_path / "mosaics" / "S2_ndvi_p50_2023-01_3m_32631.vrt"
    assert update.composite == WindowComposite(2, "2023-01", path, path, 0, "ndvi_p50", 3)
    assert mosaics.mosaics() == [update.composite]


def block_files(mosaic_path):
    """The newest version of each block file the mosaic reads, in block order."""
    root = ET.parse(mosaic_path).getroot()
    band = next(root.iter("VRTRasterBand"))
    return [mosaic_path.parent / s.find("SourceFilename").text for s in band.iter("ComplexSource")]


def test_each_block_holds_its_own_tiles_and_a_regrid_rewrites_every_block(tmp_path, monkeypatch):
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 2)
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(5, 1))
    tiles = [plain_tile(tmp_path, f"t{c}", 600_000 + c * SIZE * 10, 5_600_000, c + 1) for c in range(5)]
    (update,) = mosaics.add(tiles)
    blocks = block_files(update.composite.path)
    assert [ET.parse(b).getroot().find("VRTRasterBand").findall("ComplexSource").__len__() for b in blocks] == [2, 2, 1]
    (grown,) = mosaics.add([plain_tile(tmp_path, "south", 600_000, 5_600_000 - SIZE * 10, 9)])  # 2 rows now
    assert grown.regridded and grown.tiles == 6
    mosaic = gdal.Open(str(grown.composite.path))
    blocks = block_files(grown.composite.path)
    assert len(blocks) == 3  # ceil(6 / 2) blocks, no more
    for block in blocks:
        opened = gdal.Open(str(block))
        assert (
            (opened.RasterXSize, opened.RasterYSize) == (mosaic.RasterXSize, mosaic.RasterYSize) == (5 * SIZE, 2 * SIZE)
        )
    for column, tile in enumerate(tiles):
        np.testing.assert_array_equal(window(grown.composite.path, 600_000 + column * SIZE * 10, 5_600_000, SIZE, SIZE),
                                      tile_pixels(tile))  # fmt: skip


def test_the_mosaic_declares_each_blocks_data_type_and_holds_no_stray_text(tmp_path, monkeypatch):
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 1)
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1))
    (update,) = mosaics.add([tile_raster(tmp_path, 0, 0, 1), tile_raster(tmp_path, 1, 0, 2)])
    files = [update.composite.path, *block_files(update.composite.path)]
    for path in files:
        for element in ET.parse(path).getroot().iter():
            if len(element):  # an element with children holds no text of its own between them
                assert not (element.text or "").strip() and all(not (c.tail or "").strip() for c in element), path
    for band in ET.parse(update.composite.path).getroot().iter("VRTRasterBand"):
        types = {s.find("SourceProperties").get("DataType") for s in band.iter("ComplexSource")}
        assert types == {band.get("dataType")} == {"Float32"}


def test_updates_of_one_call_say_created_or_regridded_once_for_all_its_tiles(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1))
    a, b = tile_raster(tmp_path, 0, 0, 1), tile_raster(tmp_path, 1, 0, 2)
    assert mosaics.add([a, b]) == [MosaicUpdate(mosaics.mosaics()[0], 2, created=True)]
    far, near = tile_raster(tmp_path, 3, 0, 3), tile_raster(tmp_path, 2, 0, 4)
    (update,) = mosaics.add([a, far, near])  # the same tile again does not stop the others
    assert (update.tiles, update.created, update.regridded) == (4, False, True)


def test_int16_tiles_make_an_int16_mosaic_read_back_exactly(tmp_path, monkeypatch):
    """LCFM results are int16: every layer of the mosaic (top file, blocks) says so, and the values come back."""
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 1)
    tiles = []
    for column in range(2):
        path = tmp_path / f"int16_{column}.tif"
        dataset = gdal.GetDriverByName("GTiff").Create(str(path), SIZE, SIZE, 2, gdal.GDT_Int16)
        dataset.SetGeoTransform((600_000 + column * SIZE * 10, 10, 0, 5_600_000, 0, -10))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(EPSG)
        dataset.SetSpatialRef(srs)
        for band in (1, 2):
            dataset.GetRasterBand(band).WriteArray(np.full((SIZE, SIZE), -30_000 + 1000 * column + band, "int16"))
        dataset = None
        tiles.append(WindowComposite(2, "2023-01", path, path, 1, "lcfm_features", 3))
    (update,) = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1)).add(tiles)
    for path in (update.composite.path, *block_files(update.composite.path)):
        bands = list(ET.parse(path).getroot().iter("VRTRasterBand"))
        assert [band.get("dataType") for band in bands] == ["Int16", "Int16"], path
        for band in bands:
            types = {s.find("SourceProperties").get("DataType") for s in band.iter("ComplexSource")}
            assert types == {"Int16"}, path
    for column in range(2):
        for band in (1, 2):
            pixels = window(update.composite.path, 600_000 + column * SIZE * 10, 5_600_000, SIZE, SIZE, band)
            assert (pixels == -30_000 + 1000 * column + band).all()
