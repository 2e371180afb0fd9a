"""Month mosaics grow as tiles arrive: one layer however many tiles, reloaded, never duplicated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsPointXY, QgsProject

from wac_extractor.core.results import mosaics as mosaics_module
from wac_extractor.core.results.composites import TRUE_COLOUR, WindowComposite
from wac_extractor.core.results.mosaics import MonthMosaics, planned_bounds
from wac_extractor.qgis_glue.layers import ResultLoader

EPSG = 32631
SIZE = 20  # pixels of 10 m: 200 m tiles


def tile_raster(folder: Path, column: int, row: int, value: float, epsg: int = EPSG) -> WindowComposite:
    """A three-band tile of ``value`` (NaN in its first column, as a masked edge), at grid cell (column, row)."""
    west, north = 600_000 + column * SIZE * 10, 5_600_000 - row * SIZE * 10
    path = folder / f"tile_{epsg}_{column}_{row}.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), SIZE, SIZE, 3, gdal.GDT_Float32)
    dataset.SetGeoTransform((west, 10, 0, north, 0, -10))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    data = np.full((SIZE, SIZE), value, dtype="float32")
    data[:, 0] = np.nan
    for band in (1, 2, 3):
        dataset.GetRasterBand(band).WriteArray(data + band)
        dataset.GetRasterBand(band).SetNoDataValue(float("nan"))
        dataset.GetRasterBand(band).SetDescription(("B04", "B03", "B02")[band - 1])
    dataset = None
    return WindowComposite(2, "2023-01", path, path, 1, TRUE_COLOUR)


def grid_of(columns: int, rows: int) -> dict:
    return {EPSG: (600_000, 5_600_000 - rows * SIZE * 10, 600_000 + columns * SIZE * 10, 5_600_000)}


def value_at(path: Path, column: int, row: int, band: int = 1) -> float:
    """The mosaic's value in the middle of tile (column, row)."""
    dataset = gdal.Open(str(path))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    x = 600_000 + (column + 0.5) * SIZE * 10
    y = 5_600_000 - (row + 0.5) * SIZE * 10
    return float(dataset.GetRasterBand(band).ReadAsArray(int((x - x0) / dx), int((y - y0) / dy), 1, 1)[0, 0])


def test_tiles_arriving_one_by_one_fill_one_mosaic_on_the_planned_grid(tmp_path, monkeypatch):
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 4)  # several blocks with few tiles
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(4, 3))
    cells = [(column, row) for row in range(3) for column in range(4)]
    for number, (column, row) in enumerate(cells, start=1):
        updates = mosaics.add([tile_raster(tmp_path, column, row, 100 * number)])
        assert len(updates) == 1 and updates[0].tiles == number
        assert updates[0].created == (number == 1) and not updates[0].regridded
        path = updates[0].composite.path
        dataset = gdal.Open(str(path))
        # The grid is the planned one from the first tile on: the layer's extent never changes.
        assert (dataset.RasterXSize, dataset.RasterYSize) == (4 * SIZE, 3 * SIZE)
        assert dataset.GetRasterBand(1).GetDescription() == "B04"
        for earlier, (c, r) in enumerate(cells[:number], start=1):
            assert value_at(path, c, r) == 100 * earlier + 1
            assert value_at(path, c, r, band=3) == 100 * earlier + 3
        if number < len(cells):
            assert np.isnan(value_at(path, *cells[number]))  # not arrived yet: transparent
    assert len(mosaics.mosaics()) == 1
    # QGIS reopens only the top file: one source per block (3 blocks of 4 tiles), not one per tile.
    assert path.read_text().count("<ComplexSource>") == 3 * 3  # blocks x bands
    blocks = sorted(p.name for p in path.with_suffix(".blocks").iterdir())
    # A block is rewritten under a new name (GDAL's pool caches files by name); superseded ones are kept
    # for STALE_SECONDS (a layer may still read them).
    assert blocks == [f"{path.stem}_b{b:03d}_k{mosaics.session}_v{v}.vrt" for b in range(3) for v in (1, 2, 3, 4)]


def test_a_reader_of_the_mosaic_before_keeps_reading_while_tiles_arrive_and_a_resume_reuses_no_name(
    tmp_path, monkeypatch
):
    """A render holding the mosaic's previous file reads its blocks after later tiles and after a resume
    (QGIS said ``RasterIO error ... _v2.vrt: No such file`` when the version before last was deleted)."""
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 2)
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(4, 1))
    (update,) = mosaics.add([tile_raster(tmp_path, 0, 0, 10)])
    path = update.composite.path
    reader = gdal.Open(str(path))  # a layer's provider on the file as it was
    for column in (1, 2, 3):
        mosaics.add([tile_raster(tmp_path, column, 0, 10 * (column + 1))])
    resumed = MonthMosaics(tmp_path / "mosaics", grid_of(4, 1))  # a resumed run writes the same mosaic anew
    resumed.add([tile_raster(tmp_path, column, 0, 10 * (column + 1)) for column in range(4)])
    gdal.ErrorReset()
    assert reader.GetRasterBand(1).ReadAsArray()[SIZE // 2, SIZE // 2] == 11 and gdal.GetLastErrorMsg() == ""
    names = [p.name for p in path.with_suffix(".blocks").iterdir()]
    assert len(names) == len(set(names)) and resumed.session != mosaics.session
    assert value_at(path, 3, 0) == 41
    # Once STALE_SECONDS have passed, the next write deletes what no layer reads any more.
    monkeypatch.setattr(mosaics_module, "STALE_SECONDS", 0.0)
    (grown,) = resumed.add([tile_raster(tmp_path, 5, 0, 60)])  # outside the grid: every block rewritten
    assert grown.regridded
    left = sorted(p.name for p in path.with_suffix(".blocks").iterdir())
    assert all(f"_k{resumed.session}_" in name for name in left) and len(left) == 3


def test_the_same_tile_again_changes_nothing_and_a_tile_outside_the_grid_grows_it(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(2, 1))
    first = tile_raster(tmp_path, 0, 0, 5)
    (update,) = mosaics.add([first])
    assert mosaics.add([first]) == []  # a resumed run: no duplicate source
    assert update.composite.path.read_text().count("<ComplexSource>") == 3
    (grown,) = mosaics.add([tile_raster(tmp_path, 3, 2, 7)])  # a tile the tracker did not plan
    assert grown.regridded and grown.tiles == 2
    dataset = gdal.Open(str(grown.composite.path))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (4 * SIZE, 3 * SIZE)
    assert value_at(grown.composite.path, 0, 0) == 6 and value_at(grown.composite.path, 3, 2) == 8


def test_zones_and_styles_get_their_own_mosaics(tmp_path):
    mosaics = MonthMosaics(tmp_path / "mosaics")
    north = tile_raster(tmp_path, 0, 0, 1)
    other_zone = tile_raster(tmp_path, 0, 0, 2, epsg=32632)
    ndvi = WindowComposite(2, "2023-01", north.path, north.path, 1, "ndvi_p50", 3)
    names = sorted(update.composite.path.name for update in mosaics.add([north, other_zone, ndvi]))
    assert names == ["S2_ndvi_p50_2023-01_3m_32631.vrt", "S2_true_colour_2023-01_1m_32631.vrt",
                     "S2_true_colour_2023-01_1m_32632.vrt"]  # fmt: skip


def test_planned_bounds_are_the_union_of_the_trackers_utm_extents():
    cells = [
        json.dumps({"west": 0, "south": 10, "east": 100, "north": 110, "crs": 32631}),
        {"west": 100, "south": 0, "east": 200, "north": 100, "crs": "EPSG:32631"},
        json.dumps({"west": 4.1, "south": 50.1, "east": 4.2, "north": 50.2, "crs": 4326}),  # lat/lon: no grid
        None,
    ]
    assert planned_bounds(cells) == {32631: (0, 0, 200, 110)}


@pytest.mark.usefixtures("qgis_new_project")
def test_the_mosaic_layer_shows_new_tiles_after_a_reload_and_keeps_its_style(tmp_path, qtbot):
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(3, 1))
    loader = ResultLoader("WAC test run", QgsProject.instance())
    (layer,) = loader.show([(update, None) for update in mosaics.add([tile_raster(tmp_path, 0, 0, 10)])])
    renderer = layer.renderer()
    extent = layer.extent()

    def sample(column: int) -> float:
        value, ok = layer.dataProvider().sample(QgsPointXY(600_000 + (column + 0.5) * SIZE * 10, 5_599_900), 1)
        return value if ok else float("nan")

    assert sample(0) == 11 and np.isnan(sample(1))
    assert loader.show([(update, None) for update in mosaics.add([tile_raster(tmp_path, 1, 0, 20)])]) == []
    qtbot.waitUntil(lambda: sample(1) == 21, timeout=5_000)  # reloaded after ResultLoader.REFRESH_MS
    assert layer.renderer().type() == renderer.type() and layer.extent() == extent
    assert len(QgsProject.instance().mapLayers()) == 1


@pytest.mark.usefixtures("qgis_new_project")
def test_an_update_that_overtakes_the_mosaics_first_waits_for_the_layer_the_worker_opened(tmp_path, qtbot, monkeypatch):
    """Two download threads: the second tile's update reaches the UI thread before the first's, with its layer."""
    from wac_extractor.qgis_glue import layers as layers_module
    from wac_extractor.qgis_glue.layers import composite_layer, mosaic_layer_name

    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(3, 1))
    (first,) = mosaics.add([tile_raster(tmp_path, 0, 0, 10)])
    worker_layer = composite_layer(first.composite, "worker", read_only=True)  # opened before tile 2 was placed
    (second,) = mosaics.add([tile_raster(tmp_path, 1, 0, 20)])
    opened_here = []

    def counted(*args, **kwargs):
        opened_here.append(args)
        return composite_layer(*args, **kwargs)

    monkeypatch.setattr(layers_module, "composite_layer", counted)
    loader = ResultLoader("WAC test run", QgsProject.instance())

    assert loader.show([(second, None)]) == []  # not opened on the UI thread
    assert loader.show([(first, worker_layer)]) == [worker_layer]
    assert opened_here == [] and worker_layer.name() == mosaic_layer_name(first.composite)

    def value(column: int) -> float:
        return worker_layer.dataProvider().sample(QgsPointXY(600_000 + (column + 0.5) * SIZE * 10, 5_599_900), 1)[0]

    qtbot.waitUntil(lambda: value(1) == 21, timeout=5_000)  # reloaded: the overtaking update's tile shows
    assert value(0) == 11 and len(QgsProject.instance().mapLayers()) == 1

    # The creating update never comes (it failed in the worker): after LAYER_WAIT_S the mosaic is opened here.
    monkeypatch.setattr(ResultLoader, "LAYER_WAIT_S", 0.05)
    tile = tile_raster(tmp_path, 2, 0, 30).path
    (other,) = mosaics.add([WindowComposite(2, "2023-02", tile, tile, 1, TRUE_COLOUR)])
    other = type(other)(other.composite, other.tiles, created=False)
    assert loader.show([(other, None)]) == []
    qtbot.wait(100)
    (late,) = loader.show([(other, None)])
    assert late.name() == mosaic_layer_name(other.composite) and len(opened_here) == 1


def gradient_tile(folder: Path, column: int, row: int, number: int) -> WindowComposite:
    """A tile whose every pixel differs (row x 100 + column + 10,000 x number; band b adds b), its first column NaN."""
    path = tile_raster(folder, column, row, 0).path
    dataset = gdal.Open(str(path), gdal.GA_Update)
    data = (np.arange(SIZE)[:, None] * 100 + np.arange(SIZE)[None, :] + 10_000 * number).astype("float32")
    data[:, 0] = np.nan
    for band in (1, 2, 3):
        dataset.GetRasterBand(band).WriteArray(data + band)
    dataset = None
    return WindowComposite(2, "2023-01", path, path, 1, TRUE_COLOUR)


def test_each_tile_lands_pixel_for_pixel_on_its_place_in_the_mosaic(tmp_path, monkeypatch):
    """The mosaic's geotransform is the grid's; each tile's window in it equals the tile, edges included.

    Values read at tile centres cannot see a tile placed a pixel off; the whole window, edge pixels and
    the NaN first column, can.
    """
    monkeypatch.setattr(mosaics_module, "BLOCK_TILES", 4)  # tiles in two blocks
    mosaics = MonthMosaics(tmp_path / "mosaics", grid_of(3, 2))
    cells = [(column, row) for row in range(2) for column in range(3)]
    tiles = [gradient_tile(tmp_path, column, row, number) for number, (column, row) in enumerate(cells, start=1)]
    (update,) = mosaics.add(tiles)
    mosaic = gdal.Open(str(update.composite.path))
    assert mosaic.GetGeoTransform() == (600_000, 10, 0, 5_600_000, 0, -10)
    assert (mosaic.RasterXSize, mosaic.RasterYSize) == (3 * SIZE, 2 * SIZE)
    for tile in tiles:
        source = gdal.Open(str(tile.path))
        x0, dx, _, y0, _, dy = source.GetGeoTransform()
        assert (dx, dy) == (10, -10)
        x_off, y_off = round((x0 - 600_000) / 10), round((5_600_000 - y0) / 10)
        for band in (1, 2, 3):
            expected = source.GetRasterBand(band).ReadAsArray()
            placed = mosaic.GetRasterBand(band).ReadAsArray(x_off, y_off, SIZE, SIZE)
            np.testing.assert_array_equal(placed, expected, err_msg=f"{tile.path.name}, band {band}")
        # The pixels just east of the tile's last column belong to the next tile (or to no tile): never to this one.
        if x_off + SIZE < mosaic.RasterXSize:
            east = mosaic.GetRasterBand(1).ReadAsArray(x_off + SIZE, y_off, 1, SIZE)[:, 0]
            assert np.isnan(east).all()  # the next tile's first column is NaN
