"""Job planning: the notebook's grid, AOI tiling on UTM, time windows and input validation."""

import pytest
import shapely
from shapely.geometry import box

from wac_extractor.core.planning.job_table import PlanRequest, plan_aois, plan_grid, summarize
from wac_extractor.core.planning.tiling import area_km2, reproject, tile_aois
from wac_extractor.core.planning.timewindows import month_windows, months_in

NOTEBOOK_CORNERS = [(664000, 5611120), (664000, 5631120), (684000, 5611120), (684000, 5631120)]


def notebook_request(**overrides):
    args = dict(start_date="2023-01-01", end_date="2023-04-01", sensors=[1, 2], max_cloud_cover=85, window_months=3)
    args.update(overrides)
    return PlanRequest(**args)


def test_notebook_grid_reproduced_exactly():
    table = plan_grid(notebook_request(), west=664000, south=5611120, crs="EPSG:32631")
    assert len(table) == 8
    for sentinel in (1, 2):
        rows = table[table["sentinel"] == sentinel]
        corners = [(e["west"], e["south"]) for e in rows["spatial_extent"]]
        assert corners == NOTEBOOK_CORNERS
        for extent in rows["spatial_extent"]:
            assert extent["east"] == extent["west"] + 10000
            assert extent["north"] == extent["south"] + 10000
            assert extent["crs"] == 32631
    assert all(list(t) == ["2023-01-01", "2023-04-01"] for t in table["temporal_extent"])
    assert set(table["max_cloud_cover"]) == {85}
    assert table["title"].is_unique


def test_grid_footprints_are_lonlat_wkt_around_the_tile():
    table = plan_grid(notebook_request(), west=664000, south=5611120, crs="EPSG:32631")
    footprint = shapely.from_wkt(table["geometry"].iloc[0])
    lon, lat = footprint.centroid.x, footprint.centroid.y
    assert 5.0 < lon < 5.5 and 50.6 < lat < 50.8  # Belgium, zone 31N
    back = reproject(footprint, 4326, 32631)
    assert back.area == pytest.approx(1e8, rel=1e-3)


def test_month_windows_split_and_cut_at_end():
    assert month_windows("2023-01-01", "2023-12-31", 3) == [
        ("2023-01-01", "2023-04-01"),
        ("2023-04-01", "2023-07-01"),
        ("2023-07-01", "2023-10-01"),
        ("2023-10-01", "2023-12-31"),
    ]
    assert month_windows("2023-01-31", "2023-03-15", 1) == [("2023-01-31", "2023-02-28"), ("2023-02-28", "2023-03-15")]
    assert months_in(("2023-01-01", "2023-04-01")) == ["2023-01", "2023-02", "2023-03"]


def test_aoi_tiles_snap_to_grid_and_cover_only_the_aoi():
    # A 25 x 15 km rectangle in UTM 31N that does not start on a tile edge.
    aoi = box(663_215, 5_611_003, 688_215, 5_626_003)
    tiles = tile_aois([(aoi, "EPSG:32631")], tile_size=10_000)
    assert {t.epsg for t in tiles} == {32631}
    for t in tiles:
        assert t.west % 10_000 == 0 and t.south % 10_000 == 0
        assert box(t.west, t.south, t.east, t.north).intersection(aoi).area > 0
    # x: 660..690 (3 columns), y: 5610..5630 (2 rows)
    assert len(tiles) == 6


def test_aoi_in_lonlat_uses_the_zone_of_the_aoi():
    aoi = box(4.30, 50.80, 4.45, 50.90)  # Brussels, zone 31N
    tiles = tile_aois([(aoi, "EPSG:4326")], tile_size=5_000)
    assert {t.epsg for t in tiles} == {32631}
    union = shapely.union_all([t.footprint_wgs84 for t in tiles])
    assert union.buffer(1e-9).contains(aoi)


def test_aoi_crossing_a_zone_boundary_is_tiled_in_both_zones():
    aoi = box(5.8, 50.0, 6.2, 50.2)  # crosses 6 deg E: zones 31 and 32
    tiles = tile_aois([(aoi, 4326)], tile_size=10_000)
    assert {t.epsg for t in tiles} == {32631, 32632}
    union = shapely.union_all([t.footprint_wgs84 for t in tiles])
    assert union.buffer(1e-9).contains(aoi)


def test_aoi_crossing_the_equator_uses_north_and_south_zones():
    tiles = tile_aois([(box(30.1, -0.1, 30.3, 0.1), 4326)], tile_size=10_000)
    assert {t.epsg for t in tiles} == {32636, 32736}


def test_overlapping_aois_share_tiles():
    a = box(663_000, 5_611_000, 675_000, 5_619_000)
    one = tile_aois([(a, 32631)])
    two = tile_aois([(a, 32631), (a, 32631)])
    assert one == two


def test_plan_aois_rows_and_summary():
    request = notebook_request(end_date="2023-07-01")
    table = plan_aois(request, [(box(4.30, 50.80, 4.45, 50.90), "EPSG:4326")], tile_size=10_000)
    summary = summarize(table)
    assert summary.months == 6 and summary.sensors == 2
    assert summary.jobs == summary.tiles * 2 * 2 == len(table)
    assert area_km2([(box(663_000, 5_611_000, 673_000, 5_621_000), 32631)]) == pytest.approx(100, rel=1e-6)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(start_date="2023-05-01", end_date="2023-01-01"), "end_date"),
        (dict(start_date="2023-13-01"), "start_date"),
        (dict(max_cloud_cover=101), "max_cloud_cover"),
        (dict(max_cloud_cover=-1), "max_cloud_cover"),
        (dict(sensors=["s3"]), "sensors"),
        (dict(sensors=[]), "sensors"),
        (dict(window_months=0), "window_months"),
    ],
)
def test_bad_request_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        notebook_request(**overrides)


@pytest.mark.parametrize(
    "geometry, message",
    [
        (shapely.Polygon(), "empty"),
        (shapely.Point(4, 50), "no area"),
        (shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), "not valid"),
        (box(50.8, 4.3, 50.9, 95.0), "swapped"),
    ],
)
def test_bad_aoi_gets_a_clear_message(geometry, message):
    with pytest.raises(ValueError, match=message):
        plan_aois(notebook_request(), [(geometry, 4326)])


def test_small_tiles_and_off_grid_sizes_are_refused():
    aoi = [(box(4.3, 50.8, 4.4, 50.9), 4326)]
    with pytest.raises(ValueError, match="1 km"):
        plan_aois(notebook_request(), aoi, tile_size=500)
    with pytest.raises(ValueError, match="multiple of the 10 m"):
        plan_aois(notebook_request(), aoi, tile_size=10_005)


def test_too_many_jobs_is_refused_early_with_the_count_and_a_fix():
    europe = box(-10, 36, 30, 60)
    with pytest.raises(ValueError, match="more than 1000 tiles.*larger tile size"):
        plan_aois(notebook_request(max_jobs=2_000), [(europe, 4326)], tile_size=1_000)
    with pytest.raises(ValueError, match="maximum of 4"):
        plan_grid(notebook_request(max_jobs=4), west=664000, south=5611120, crs=32631)


def test_one_job_per_feature_keeps_the_notebook_windows():
    from wac_extractor.core.planning.job_table import plan_features

    windows = [(box(w, s, w + 10_000, s + 10_000), "EPSG:32631") for w, s in NOTEBOOK_CORNERS]
    table = plan_features(notebook_request(), windows)
    grid = plan_grid(notebook_request(), west=664000, south=5611120, crs="EPSG:32631")
    assert sorted(map(str, table["spatial_extent"])) == sorted(map(str, grid["spatial_extent"]))
    lonlat = plan_features(notebook_request(sensors=[2]), [(box(5.301, 50.651, 5.399, 50.699), 4326)])
    (extent,) = lonlat["spatial_extent"]
    assert extent["crs"] == 32631 and all(extent[k] % 10 == 0 for k in ("west", "south", "east", "north"))


def test_antimeridian_multipart_and_future_dates():
    from shapely.geometry import MultiPolygon

    naive = shapely.Polygon([(179.5, 10), (-179.5, 10), (-179.5, 10.5), (179.5, 10.5)])
    with pytest.raises(ValueError, match="antimeridian.*split it there"):
        plan_aois(notebook_request(), [(naive, 4326)])
    split = MultiPolygon([box(179.5, 10, 180, 10.5), box(-180, 10, -179.5, 10.5)])
    table = plan_aois(notebook_request(sensors=[2]), [(split, 4326)])
    assert {t.split("_")[0] for t in table["tile_id"]} == {"32660", "32601"}
    with pytest.raises(ValueError, match="start_date: 2999-01-01 is not in the past"):
        notebook_request(start_date="2999-01-01", end_date="2999-04-01")


def test_the_summary_counts_tiles_windows_and_sensors_that_multiply_to_the_jobs():
    """Issue 24: "18 jobs: 9 tiles x 3 months x 2 sensor(s)" read as 54; a window of 3 months is one job."""
    one_window = plan_grid(PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3), west=664000, south=5611120,
                           crs="EPSG:32631", window=10000, gap=0, rows=3, cols=3)  # fmt: skip
    assert str(summarize(one_window)) == "18 jobs: 9 tiles x 1 window of 3 months x 2 sensors"
    three_windows = plan_grid(PlanRequest("2023-01-01", "2023-04-01", [2], 85, 1), west=664000, south=5611120,
                              crs="EPSG:32631", window=10000, gap=0, rows=1, cols=1)  # fmt: skip
    assert str(summarize(three_windows)) == "3 jobs: 1 tile x 3 windows of 1 month x 1 sensor"
    uneven = plan_grid(PlanRequest("2023-01-01", "2023-06-01", [2], 85, 3), west=664000, south=5611120,
                       crs="EPSG:32631", window=10000, gap=0, rows=1, cols=1)  # fmt: skip
    assert str(summarize(uneven)) == "2 jobs: 1 tile x 2 windows (5 months) x 1 sensor"  # of 3 and 2 months
