"""The mosaic grid's arithmetic on its own: snapping, cover, sizes, planned bounds (issue 26: mutation score).

Each test kills mutants of ``wac_extractor/core/results/mosaics.py`` that ``test_mosaics.py`` (whose
tiles all sit on the grid) let survive; tests/README.md lists the mutant each one was seen failing on.
"""

from __future__ import annotations

import pytest
from osgeo import gdal, osr

from wac_extractor.core.results.mosaics import _Grid, _grid_size, _snap, planned_bounds, raster_bounds

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
