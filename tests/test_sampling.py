"""Sampling a run's results at fields and points (``core.results.sampling``), on local-backend results.

One small run per recipe (1 km tiles at 20 m, across the border of UTM zones 31 and 32 at 6 E). The
expected values are computed here from the NetCDF files with plain numpy: grid-aligned rectangles
(whole pixels) compare exactly with numpy's nanmean / nanmedian / nanstd; the field across the zone
border against pixel weights counted from 20 x 20 sub-pixel points per pixel, each tile taking the
points on its own zone's side of 6 E.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from osgeo import gdal, ogr, osr
from pyproj import Transformer
from shapely.geometry import Point, box

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.cli import main as cli_main
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_aois
from wac_extractor.core.recipes.process_graphs import decode_cell
from wac_extractor.core.results.features import read_features
from wac_extractor.core.results.result_tiles import ResultTile, groups
from wac_extractor.core.results.sampling import SamplingCancelledError, column_name, sample_results

gdal.UseExceptions()
AOI = box(5.985, 50.60, 6.02, 50.612)  # zone 31 (tiles 711000, 712000) and zone 32 (287000..289000)
UTM31 = "EPSG:32631"


def _run(backend, folder: Path, recipe: str, end: str, sensors, months: int = 1):
    request = PlanRequest("2023-01-01", end, sensors, 85, months, recipe=recipe)
    tracker = create_tracker(folder / "jobs.gpkg", plan_aois(request, [(AOI, "EPSG:4326")], tile_size=1000))
    url = backend.url
    login = (BackendSpec(url=url, parallel_jobs=2), lambda: connect(url, "basic", "demo", "demo"))
    runner = ExtractionRunner(tracker, folder, [login], poll_interval=0.5)
    assert runner.run().counts == {"finished": len(tracker.read())}
    return folder / "jobs.gpkg", tracker.read()


@pytest.fixture(scope="module")
def runs(local_backend, tmp_path_factory):
    """LCFM (S1 and S2, one month) and monthly composites (S2, two months) over the same 10 tiles."""
    local_backend.reset()
    out = {
        "lcfm": _run(local_backend, tmp_path_factory.mktemp("lcfm"), "lcfm", "2023-02-01", [1, 2]),
        "monthly": _run(local_backend, tmp_path_factory.mktemp("monthly"), "monthly", "2023-03-01", [2], months=2),
    }
    yield out
    local_backend.reset()


def result(jobs, folder: Path, sentinel: int, tile_id: str, window: str = "2023-01") -> Path:
    row = jobs[(jobs["sentinel"] == sentinel) & (jobs["tile_id"] == tile_id)]
    row = row[row["temporal_extent"].map(lambda t: decode_cell(t)[0].startswith(window))].iloc[0]
    return folder / decode_cell(row["result_files"])[0]


def read(path: Path, variable: str, band: int = 1):
    """(values with NaN, geotransform) of one variable as GDAL's classic driver shows it (north up)."""
    dataset = gdal.Open(f'NETCDF:"{path}":{variable}')
    return dataset.GetRasterBand(band).ReadAsArray().astype("float64"), dataset.GetGeoTransform()


def write_features(path: Path, geometries, crs: str = UTM31) -> Path:
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    kind = ogr.wkbPoint if geometries[0].geom_type == "Point" else ogr.wkbPolygon
    layer = dataset.CreateLayer("fields", srs, kind)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("field_id", ogr.OFTInteger))
    for i, geometry in enumerate(geometries):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("label", f"field {i} é")
        feature.SetField("field_id", 100 + i)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(geometry.wkt))
        layer.CreateFeature(feature)
    dataset = None
    return path


def pixels(transform, row0: int, row1: int, col0: int, col1: int):
    """The rectangle of whole pixels rows row0:row1, cols col0:col1."""
    x0, dx, _, y0, _, dy = transform
    return box(x0 + col0 * dx, y0 + row1 * dy, x0 + col1 * dx, y0 + row0 * dy)


def reference(values: np.ndarray) -> dict:
    valid = values[np.isfinite(values)]
    if not len(valid):
        return {"mean": math.nan, "median": math.nan, "std": math.nan, "count": 0, "valid_fraction": 0}
    return {"mean": valid.mean(), "median": np.median(valid), "std": valid.std(), "count": len(valid),
            "valid_fraction": len(valid) / values.size}  # fmt: skip


def assert_stats(table, i: int, prefix: str, expected: dict, rtol: float = 1e-6) -> None:
    for stat, value in expected.items():
        got = table.values[f"{prefix}_{stat}"][i]
        assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, rel=rtol, abs=1e-9), (
            f"{prefix}_{stat}: {got} != {value}"
        )


def test_fields_inside_one_tile_across_two_tiles_too_small_and_masked_equal_numpy(runs, tmp_path):
    tracker, jobs = runs["lcfm"]
    folder = tracker.parent
    west = result(jobs, folder, 2, "32631_711000_5609000")  # the south tile, its north neighbour:
    north = result(jobs, folder, 2, "32631_711000_5610000")
    ndvi, transform = read(west, "NDVI_P50")
    ndvi_north, transform_north = read(north, "NDVI_P50")
    masked = np.isnan(ndvi)
    blocks = [(r, c) for r, c in np.argwhere(masked[:-1, :-1]) if masked[r : r + 2, c : c + 2].all()]
    assert blocks, "the local backend's S2 result has no 2 x 2 masked block"
    r, c = blocks[0]
    fields = [
        pixels(transform, 10, 20, 5, 17),  # inside one tile, with masked pixels or not
        pixels(transform, 0, 5, 20, 30).union(pixels(transform_north, 45, 50, 20, 30)),  # across the two tiles
        box(711302, 5609302, 711307, 5609307),  # 5 m x 5 m: smaller than a pixel
        pixels(transform, r, r + 2, c, c + 2),  # every pixel masked
    ]
    table = sample_results(jobs, folder, read_features(write_features(tmp_path / "f.gpkg", fields)))
    assert_stats(table, 0, "S2_NDVI_P50", reference(ndvi[10:20, 5:17]))
    across = np.concatenate([ndvi[0:5, 20:30].ravel(), ndvi_north[45:50, 20:30].ravel()])
    assert_stats(table, 1, "S2_NDVI_P50", reference(across))
    tiles = (("32631_711000_5609000", slice(0, 5)), ("32631_711000_5610000", slice(45, 50)))
    vv = np.concatenate([read(result(jobs, folder, 1, t), "VV_P50")[0][rows, 20:30].ravel() for t, rows in tiles])
    assert_stats(table, 1, "S1_VV_P50", reference(vv))
    empty = {"mean": math.nan, "median": math.nan, "std": math.nan, "count": 0, "valid_fraction": 0}
    assert_stats(table, 2, "S2_NDVI_P50", empty)
    assert_stats(table, 3, "S2_NDVI_P50", empty)


def _subpixel_weights(path: Path, variable: str, field, zone: int, n: int = 20):
    """Values and weights (covered pixel share) of one tile, counting n x n points per pixel."""
    values, (x0, dx, _, y0, _, dy) = read(path, variable)
    epsg = 32600 + zone
    to_tile = Transformer.from_crs(32631, epsg, always_xy=True)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    minx, miny, maxx, maxy = shapely.transform(field, lambda xy: np.column_stack(to_tile.transform(*xy.T))).bounds
    cols = np.arange(max(int((minx - x0) // dx) - 1, 0), min(int((maxx - x0) // dx) + 2, values.shape[1]))
    rows = np.arange(max(int((y0 - maxy) // -dy) - 1, 0), min(int((y0 - miny) // -dy) + 2, values.shape[0]))
    offsets = (np.arange(n) + 0.5) / n
    out_values, out_weights = [], []
    for row in rows:
        for col in cols:
            xs = (x0 + (col + offsets[None, :]) * dx + 0 * offsets[:, None]).ravel()
            ys = (y0 + (row + offsets[:, None]) * dy + 0 * offsets[None, :]).ravel()
            lon, lat = to_lonlat.transform(xs, ys)
            x31, y31 = Transformer.from_crs(4326, 32631, always_xy=True).transform(lon, lat)
            own_side = lon < 6 if zone == 31 else lon >= 6
            inside = shapely.contains_xy(field, x31, y31) & own_side
            if inside.any():
                out_values.append(values[row, col])
                out_weights.append(inside.mean())
    return np.array(out_values), np.array(out_weights)


def test_a_field_across_two_utm_zones_is_sampled_from_both_tiles_in_their_own_crs(runs, tmp_path):
    tracker, jobs = runs["lcfm"]
    folder = tracker.parent
    field = box(712150, 5609700, 712400, 5609900)  # the zone border (6 E) is at x = 712270 here
    table = sample_results(jobs, folder, read_features(write_features(tmp_path / "f.gpkg", [field])))
    parts = [_subpixel_weights(result(jobs, folder, 2, "32631_712000_5609000"), "NDVI_P50", field, 31)]
    parts += [_subpixel_weights(result(jobs, folder, 2, t), "NDVI_P50", field, 32)
              for t in ("32632_287000_5609000", "32632_288000_5609000")]  # fmt: skip
    assert all(len(v) for v, _ in parts[:2]), "the field should lie on both sides of the border"
    values = np.concatenate([v for v, _ in parts])
    weights = np.concatenate([w for _, w in parts])
    valid = np.isfinite(values)
    mean = np.sum(values[valid] * weights[valid]) / weights[valid].sum()
    assert table.values["S2_NDVI_P50_mean"][0] == pytest.approx(mean, rel=5e-3)
    assert table.values["S2_NDVI_P50_count"][0] == pytest.approx(weights[valid].sum(), rel=5e-3)
    assert table.values["S2_NDVI_P50_valid_fraction"][0] == pytest.approx(
        weights[valid].sum() * 400 / field.area, rel=5e-3
    )
    std = math.sqrt(np.sum(weights[valid] * (values[valid] - mean) ** 2) / weights[valid].sum())
    assert table.values["S2_NDVI_P50_std"][0] == pytest.approx(std, rel=2e-2)
    order = np.argsort(values[valid])
    cumulative = np.cumsum(weights[valid][order]) / weights[valid].sum()
    low, high = (
        values[valid][order][max(np.searchsorted(cumulative, 0.45) - 1, 0)],
        values[valid][order][np.searchsorted(cumulative, 0.55)],
    )
    assert low <= table.values["S2_NDVI_P50_median"][0] <= high


def test_points_get_the_value_of_their_pixel_in_either_zone(runs, tmp_path):
    tracker, jobs = runs["monthly"]
    folder = tracker.parent
    b04, (x0, dx, _, y0, _, dy) = read(result(jobs, folder, 2, "32631_711000_5609000"), "B04", band=2)
    east, (ex0, edx, _, ey0, _, edy) = read(result(jobs, folder, 2, "32632_288000_5609000"), "B04", band=2)
    to31 = Transformer.from_crs(32632, 32631, always_xy=True)
    points = [Point(x0 + (c + 0.5) * dx, y0 + (r + 0.5) * dy) for r, c in ((3, 4), (25, 30), (49, 0))]
    points.append(Point(*to31.transform(ex0 + 10.3 * edx, ey0 + 20.7 * edy)))
    table = sample_results(jobs, folder, read_features(write_features(tmp_path / "p.gpkg", points)))
    column = "S2_B04_2023-02_value"
    assert column in table.columns and not any(c.endswith("_mean") for c in table.columns)
    expected = [b04[3, 4], b04[25, 30], b04[49, 0], east[20, 10]]
    np.testing.assert_array_equal(table.values[column], np.array(expected, dtype=np.float32).astype(float))


def test_cli_writes_every_input_attribute_and_the_documented_columns_and_refuses_bad_input(runs, tmp_path, capsys):
    tracker, jobs = runs["lcfm"]
    features = write_features(tmp_path / "f.gpkg", [box(711100, 5609100, 711300, 5609300)])
    out = tmp_path / "sampled.gpkg"
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(features), "--out", str(out),
                     "--stats", "mean,median"]) == 0  # fmt: skip
    dataset = ogr.Open(str(out))  # kept: a layer outliving its dataset crashes GDAL
    layer = dataset.GetLayer(0)
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    assert names[:2] == ["label", "field_id"]
    assert {"S2_NDVI_P50_mean", "S2_NDVI_P50_median", "S1_VV_P50_mean", "S1_VH_VV_P90_median", "S2_B02_M1_mean"} <= set(
        names
    )
    assert len(names) == 2 + 2 * (15 + 35 + 7)  # LCFM, one month: 15 S1 + 42 S2 variables
    feature = layer.GetNextFeature()
    assert (feature.GetField("label"), feature.GetField("field_id")) == ("field 0 é", 100)
    before = out.read_bytes()
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(features), "--out", str(out)]) == 2
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(tmp_path / "none.gpkg"),
                     "--out", str(tmp_path / "x.gpkg")]) == 2  # fmt: skip
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(features), "--out", str(tmp_path / "y.gpkg"),
                     "--stats", "mean,mode"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--out: " in err and "--features: " in err and "--stats: mode" in err
    assert out.read_bytes() == before and not (tmp_path / "x.gpkg").exists()


def test_a_cancelled_sample_raises_and_writes_nothing(runs, tmp_path):
    tracker, jobs = runs["lcfm"]
    features = read_features(write_features(tmp_path / "f.gpkg", [box(711100, 5609100, 711300, 5609300)]))
    calls = []
    with pytest.raises(SamplingCancelledError):
        sample_results(jobs, tracker.parent, features, cancelled=lambda: len(calls) > 2, progress=calls.append)
    assert list(tmp_path.iterdir()) == [tmp_path / "f.gpkg"]


def test_the_window_is_in_the_column_name_only_when_the_run_has_several():
    one = [ResultTile(Path("a.nc"), "S2", "2023-01", 32631)]
    two = one + [ResultTile(Path("b.nc"), "S2", "2023-04", 32631)]
    assert [column_name(k, "NDVI_P50", "mean") for k in groups(one)] == ["S2_NDVI_P50_mean"]
    assert sorted(column_name(k, "NDVI_P50", "mean") for k in groups(two)) == [
        "S2_2023-01_NDVI_P50_mean",
        "S2_2023-04_NDVI_P50_mean",
    ]


def test_processing_writes_the_same_table_as_the_cli(runs, tmp_path, qgis_app):
    import processing

    from .conftest import fresh_processing_provider

    fresh_processing_provider()
    tracker, _ = runs["lcfm"]
    fields = [box(711100, 5609100, 711300, 5609300), box(712150, 5609700, 712400, 5609900)]
    features = write_features(tmp_path / "f.gpkg", fields)
    cli_out, alg_out = tmp_path / "cli.gpkg", tmp_path / "alg.gpkg"
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(features), "--out", str(cli_out)]) == 0
    processing.run("wac_extractor:sample", {"TRACKER": str(tracker), "FEATURES": str(features), "OUTPUT": str(alg_out)})
    tables = []
    for path in (cli_out, alg_out):
        dataset = ogr.Open(str(path))
        tables.append([[f.GetField(i) for i in range(f.GetFieldCount())] for f in dataset.GetLayer(0)])
    assert tables[0] == tables[1] and len(tables[0][0]) > 200
