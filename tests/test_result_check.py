"""The result check (``check_netcdf``) on small NetCDFs written here: exactly the recipe's variables, no time
axis where the recipe has none, int16 values, the job's grid; every problem one short line."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from osgeo import gdal, osr

from wac_extractor.core.recipes import lcfm
from wac_extractor.core.results.download import MAX_MESSAGE_CHARS, check_netcdf

gdal.UseExceptions()
WEST, NORTH, SIZE, RES = 600_000, 5_600_000, 4, 20
EXTENT = {"west": WEST, "south": NORTH - SIZE * RES, "east": WEST + SIZE * RES, "north": NORTH, "crs": 32631}
S1 = lcfm.s1_variables()  # 15
S2 = lcfm.s2_variables(3)  # 56


def write_netcdf(path: Path, variables: Sequence[str], time_steps: int = 0, value: float = 5.0,
                 west: float = WEST, epsg: int = 32631) -> Path:  # fmt: skip
    """One float32 variable per name on a 4 x 4 grid of 20 m (dims y, x, or t, y, x), with a CF grid mapping."""
    dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(path), [], ["FORMAT=NC4"])
    root = dataset.GetRootGroup()
    f64 = gdal.ExtendedDataType.Create(gdal.GDT_Float64)
    dims = []
    if time_steps:
        t = root.CreateDimension("t", "TEMPORAL", None, time_steps)
        root.CreateMDArray("t", [t], f64).Write(np.arange(time_steps, dtype="float64"))
        dims.append(t)
    y = root.CreateDimension("y", "HORIZONTAL_Y", None, SIZE)
    x = root.CreateDimension("x", "HORIZONTAL_X", None, SIZE)
    root.CreateMDArray("y", [y], f64).Write(NORTH - RES / 2 - RES * np.arange(SIZE, dtype="float64"))
    root.CreateMDArray("x", [x], f64).Write(west + RES / 2 + RES * np.arange(SIZE, dtype="float64"))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    for name in variables:
        array = root.CreateMDArray(name, [*dims, y, x], gdal.ExtendedDataType.Create(gdal.GDT_Float32))
        array.SetSpatialRef(srs)
        array.Write(np.full([d.GetSize() for d in (*dims, y, x)], value, dtype="float32"))
    dataset = None
    return path


def check(path: Path, variables: Sequence[str], **kwargs):
    return check_netcdf(path, variables, has_time=False, spatial_extent=EXTENT, **kwargs)


def test_a_result_with_exactly_the_recipes_variables_passes(tmp_path):
    assert check(write_netcdf(tmp_path / "openEO.nc", S1), S1) == []
    assert check(write_netcdf(tmp_path / "s2.nc", S2), S2, int16=True) == []


def test_a_result_lacking_one_variable_is_refused_with_its_name(tmp_path):
    path = write_netcdf(tmp_path / "openEO.nc", S1[:-1])
    assert check(path, S1) == ["openEO.nc lacks 1 of 15 expected variables (VH_VV_P90); it holds VV_P10, VV_P25, "
                               "VV_P50 and 11 more"]  # fmt: skip


def test_a_result_with_one_variable_too_many_is_refused(tmp_path):
    path = write_netcdf(tmp_path / "openEO.nc", [*S1, "EXTRA"])
    assert check(path, S1) == ["openEO.nc has 1 variable the job does not make (EXTRA)"]


def test_a_result_with_a_time_axis_where_the_recipe_has_none_is_refused(tmp_path):
    path = write_netcdf(tmp_path / "openEO.nc", S1, time_steps=1)
    assert check(path, S1) == [
        "openEO.nc: 15 variables with a time dimension (VV_P10, VV_P25, VV_P50 and 12 more; 1 step); expected none"
    ]
    assert check_netcdf(path, S1, has_time=True, spatial_extent=EXTENT) == []  # a monthly result has one


def test_a_result_of_one_variable_names_it(tmp_path):
    """GDAL opens a file of one variable as that variable (no subdatasets): it is still named."""
    path = write_netcdf(tmp_path / "openEO.nc", ["VV"])
    assert check(path, ["VV", "VH"]) == ["openEO.nc lacks 1 of 2 expected variables (VH); it holds VV"]


def test_a_wholly_wrong_result_gets_short_messages_with_counts_and_first_names(tmp_path):
    """The monthly recipe's 10 bands where the LCFM recipe's 56 features were expected (issue 27)."""
    monthly = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    path = write_netcdf(tmp_path / "openEO.nc", monthly, time_steps=3, value=40_000)
    problems = check(path, S2, int16=True)
    assert problems == [
        "openEO.nc lacks 56 of 56 expected variables (B02_P10, B02_P25, B02_P50 and 53 more); "
        "it holds B02, B03, B04 and 7 more",
        "openEO.nc has 10 variables the job does not make (B02, B03, B04 and 7 more)",
    ]
    long_name = write_netcdf(tmp_path / ("x" * 200 + ".nc"), S2[:5], time_steps=3, value=40_000, west=0, epsg=32632)
    problems = check(long_name, S2, int16=True)
    assert len(problems) == 4 and all(len(p) <= MAX_MESSAGE_CHARS for p in problems), problems


def test_values_outside_the_int16_range_are_refused(tmp_path):
    path = write_netcdf(tmp_path / "openEO.nc", ["B02_P10", "B02_P25"], value=40_000)
    assert check(path, ["B02_P10", "B02_P25"], int16=True) == [
        "openEO.nc: 2 variables outside the int16 range (B02_P10 40000..40000, B02_P25 40000..40000)"
    ]
    assert check(path, ["B02_P10", "B02_P25"], int16=False) == []


@pytest.mark.parametrize(
    ("west", "epsg", "problem"),
    [
        (WEST + 2 * RES, 32631, "openEO.nc covers (600040, 5599920, 600120, 5600000), not the job's extent "
                                "(600000, 5599920, 600080, 5600000)"),
        (WEST, 32632, "openEO.nc is in CRS 32632, but the job asked for EPSG:32631"),
    ],
)  # fmt: skip
def test_a_result_off_the_jobs_grid_is_refused(tmp_path, west, epsg, problem):
    assert check(write_netcdf(tmp_path / "openEO.nc", ["VV", "VH"], west=west, epsg=epsg), ["VV", "VH"]) == [problem]
    within_a_pixel = write_netcdf(tmp_path / "near.nc", ["VV", "VH"], west=WEST + RES)
    assert check(within_a_pixel, ["VV", "VH"]) == []


def test_a_file_gdal_cannot_open_is_one_short_problem(tmp_path):
    path = tmp_path / "openEO.nc"
    path.write_bytes(b"<html>" + b"x" * 5000)
    (problem,) = check(path, S1)
    assert problem.startswith("GDAL cannot open openEO.nc: ") and len(problem) <= MAX_MESSAGE_CHARS
