"""Tiling and planning at their edges: exact messages, boundaries, zones (issue 26: mutation score of planning).

Each test kills mutants of ``wac_extractor/core/planning/`` that ``test_planning.py`` let survive;
tests/README.md lists the mutant each one was seen failing on.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import pytest
import shapely
from pyproj import CRS
from shapely.geometry import MultiPolygon, Point, box

from wac_extractor.core.planning.job_table import PLAN_COLUMNS, PlanRequest, check_cloud_cover, job_table, parse_sensors
from wac_extractor.core.planning.tiling import (
    Tile,
    TooManyJobsError,
    area_km2,
    check_tile_size,
    crs_key,
    feature_tiles,
    grid_tiles,
    reproject,
    split_by_utm_zone,
    tile_aois,
    utm_zone_of_longitude,
    validate_aoi,
)
from wac_extractor.core.planning.timewindows import add_months, month_windows, months_in

NOT_FIT = (
    "AOI: its coordinates do not fit EPSG:4326 (latitude outside -90..90 or longitude outside -180..180); check "
    "the layer's CRS, or whether latitude and longitude are swapped."
)
POLAR = "AOI: UTM tiling covers latitudes -80..84 only; choose an AOI outside the polar areas."
NO_EPSG = "+proj=tmerc +lat_0=0 +lon_0=4.5 +k=0.9996 +x_0=500000 +y_0=0 +datum=WGS84 +units=m +no_defs"
NO_AOI = "AOI: no areas of interest given; draw, select or load at least one polygon."


def refusal(function, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as error:
        function(*args, **kwargs)
    return str(error.value)


def test_spatial_extents_are_plain_integers_where_they_can_be():
    extent = Tile(32631, 600000.0, 5600000.5, 610000, 5610000.5).spatial_extent()
    assert extent == {"west": 600000, "south": 5600000.5, "east": 610000, "north": 5610000.5, "crs": 32631}
    assert type(extent["west"]) is int and type(extent["south"]) is float


def test_crs_keys_of_crs_objects():
    assert crs_key(CRS.from_epsg(32631)) == "EPSG:32631"
    custom = CRS.from_proj4(NO_EPSG)
    assert crs_key(custom) == custom.to_wkt() and crs_key(custom).startswith("PROJCRS")


def test_the_last_utm_zone_is_60():
    assert utm_zone_of_longitude(180.0) == 60 and utm_zone_of_longitude(-180.0) == 1


def test_validate_aoi_messages_name_the_aoi_and_what_to_change():
    assert refusal(validate_aoi, Point(1, 1), 4326) == "AOI: a Point has no area; use a polygon or a rectangle as AOI."
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert refusal(validate_aoi, bowtie, 4326) == (
        "AOI: the polygon is not valid (Self-intersection[0.5 0.5]); fix it first, e.g. with QGIS's 'Fix geometries'."
    )
    message = refusal(validate_aoi, box(0, 0, 1, 1), "EPSG:999999")
    assert message.startswith("AOI: the CRS 'EPSG:999999' is unknown (")
    assert message.endswith("); give an EPSG code such as EPSG:4326.")


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((0, -90.5, 1, -89), NOT_FIT), ((0, 89, 1, 90.5), NOT_FIT),
        ((-180.5, 0, -179, 1), NOT_FIT), ((179, 0, 180.5, 1), NOT_FIT),
        ((0, -90, 1, -89), POLAR), ((0, 89, 1, 90), POLAR),  # on the edge of the world: fits, but polar
        ((0, -80.5, 1, -79), POLAR), ((0, 83, 1, 84.5), POLAR), ((0, -81, 1, -79), POLAR),
        ((-90, 0, 90.5, 1), "AOI: a polygon spans 180 degrees of longitude; if it crosses the antimeridian (180 "
                            "degrees), split it there into two polygons."),
    ],
)  # fmt: skip
def test_coordinates_outside_the_world_or_utm_are_refused_with_the_fix(bounds, message):
    assert refusal(validate_aoi, box(*bounds), 4326) == message


@pytest.mark.parametrize(
    "bounds", [(0, -80, 1, -79), (0, 83, 1, 84), (-90, 0, 90, 1), (-180, 0, -179, 1), (179, 0, 180, 1)]
)
def test_aois_right_on_the_limits_are_accepted(bounds):
    assert validate_aoi(box(*bounds), 4326).bounds == pytest.approx(bounds)


def test_a_large_utm_aoi_keeps_its_curved_edges_in_lonlat():
    """A 600 km box in UTM: its northern edge bulges north in lon/lat; the AOI must keep that bulge."""
    utm_box = box(200_000, 5_500_000, 800_000, 5_700_000)
    dense = reproject(shapely.segmentize(utm_box, 1_000), "EPSG:32631", 4326)
    assert validate_aoi(utm_box, "EPSG:32631").bounds == pytest.approx(dense.bounds, abs=2e-4)


def test_an_aoi_is_split_at_the_equator_and_at_zone_edges_into_parts_of_area():
    parts = split_by_utm_zone(box(3, -1, 4, 1))
    assert [(epsg, part.bounds) for epsg, part in parts] == [(32731, (3, -1, 4, 0)), (32631, (3, 0, 4, 1))]
    parts = split_by_utm_zone(box(5, 50, 7, 51))
    assert [(epsg, part.bounds) for epsg, part in parts] == [(32631, (5, 50, 6, 51)), (32632, (6, 50, 7, 51))]
    assert [epsg for epsg, _ in split_by_utm_zone(box(0, 50, 6, 51))] == [32631]  # touching zone 32: no part there


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (float("inf"), "tile_size: inf is not a number of metres; use e.g. 10000 for 10 km tiles."),
        (True, "tile_size: True is not a number of metres; use e.g. 10000 for 10 km tiles."),
        (10004, "tile_size: 10004 m is not a multiple of the 10 m pixel; use e.g. 10000."),
    ],
)
def test_bad_tile_sizes_say_what_to_use(size, message):
    assert refusal(check_tile_size, size) == message


def test_tiles_that_overlap_an_aoi_by_a_sliver_count_and_tiles_in_a_gap_do_not():
    # a 1 m wide strip reaching 0.5 m into the next row of 10 km tiles (0.5 m2): that tile is needed
    strip = box(600_000.5, 5_600_000.5, 600_001.5, 5_610_000.5)
    assert [t.tile_id for t in tile_aois([(strip, "EPSG:32631")])] == ["32631_600000_5600000", "32631_600000_5610000"]
    # two fields in one row of tiles with an empty tile between them
    fields = MultiPolygon([box(600_100, 5_600_100, 600_900, 5_600_900), box(620_100, 5_600_100, 620_900, 5_600_900)])
    assert [t.tile_id for t in tile_aois([(fields, "EPSG:32631")])] == ["32631_600000_5600000", "32631_620000_5600000"]


def test_the_tile_maximum_is_exact():
    two_rows = box(600_100, 5_600_100, 600_900, 5_610_900)  # 2 tiles of 10 km, one above the other
    assert len(tile_aois([(two_rows, "EPSG:32631")], max_tiles=2)) == 2
    assert refusal(tile_aois, [(two_rows, "EPSG:32631")], max_tiles=1) == (
        "AOI 1: the AOIs need more than 1 tiles of 10 km; use a larger tile size or a smaller area, or raise the "
        "maximum number of jobs."
    )
    with pytest.raises(TooManyJobsError):
        tile_aois([(two_rows, "EPSG:32631")], max_tiles=1)


def test_the_default_tile_maximum_is_5000():
    block = box(600_000.5, 5_600_000.5, 699_999.5, 5_649_999.5)  # 100 x 50 tiles of 1 km
    one_more = box(700_000.5, 5_600_000.5, 700_999.5, 5_600_999.5)
    assert refusal(tile_aois, [(block, "EPSG:32631"), (one_more, "EPSG:32631")], tile_size=1000) == (
        "AOI 2: the AOIs need more than 5000 tiles of 1 km; use a larger tile size or a smaller area, or raise the "
        "maximum number of jobs."
    )


def test_tile_aois_and_feature_tiles_number_the_aois_from_1():
    good = (box(3, 50, 3.1, 50.1), 4326)
    for function in (tile_aois, feature_tiles):
        assert refusal(function, [(Point(1, 1), 4326)]).startswith("AOI 1: a Point has no area")
        assert refusal(function, [good, (Point(1, 1), 4326)]).startswith("AOI 2: a Point has no area")
        assert refusal(function, []) == NO_AOI


@pytest.mark.parametrize(
    ("window", "gap", "rows", "cols"),
    [(0, 0, 1, 1), (-1, 0, 1, 1), (10, -1, 1, 1), (10, 0, 0, 1), (10, 0, 1, 0), (10, 0, 0, 0)],
)
def test_a_bad_grid_is_refused_with_its_rules(window, gap, rows, cols):
    assert refusal(grid_tiles, 600000, 5600000, "EPSG:32631", window, gap, rows, cols) == (
        "grid: window must be > 0, gap >= 0, rows and cols >= 1; check the grid settings."
    )


def test_the_smallest_grid_is_accepted_and_a_crs_without_epsg_refused():
    tiles = grid_tiles(600000, 5600000, "EPSG:32631", 1, 0, 1, 1)
    assert [t.spatial_extent() for t in tiles] == [
        {"west": 600000, "south": 5600000, "east": 600001, "north": 5600001, "crs": 32631}
    ]
    assert len(grid_tiles(600000, 5600000, "EPSG:32631", 10, 0.5, 1, 2)) == 2
    custom = NO_EPSG
    assert refusal(grid_tiles, 600000, 5600000, custom, 10, 0, 1, 1) == (
        f"crs: {custom!r} has no EPSG code; use a UTM CRS such as EPSG:32631."
    )


@pytest.mark.parametrize("epsg", [32601, 32660, 32701, 32760])
def test_a_feature_in_any_utm_zone_keeps_its_crs_and_its_extent(epsg):
    feature = box(500_000, 5_000_000 if epsg < 32700 else 4_000_000, 510_000, 5_010_000 if epsg < 32700 else 4_010_000)
    (tile,) = feature_tiles([(feature, f"EPSG:{epsg}")])
    assert (tile.epsg, (tile.west, tile.south, tile.east, tile.north)) == (epsg, feature.bounds)


def test_a_feature_outside_utm_goes_to_the_zone_of_its_centre_north_from_the_equator():
    assert [t.epsg for t in feature_tiles([(box(3, -0.5, 4, 0.5), 4326)])] == [32631]
    assert [t.epsg for t in feature_tiles([(box(3, 0, 4, 1), 4326)])] == [32631]
    assert [t.epsg for t in feature_tiles([(box(3, -1, 4, -0.1), 4326)])] == [32731]
    ups = box(2_000_000, 1_222_000, 2_010_000, 1_232_000)  # EPSG:32661, UPS North (about 83 N): not a UTM zone
    assert [t.epsg for t in feature_tiles([(ups, "EPSG:32661")])] == [32631]


def test_a_large_feature_in_lonlat_is_covered_whole_by_its_extent():
    feature = box(3.0, 50.0, 5.0, 51.0)
    (tile,) = feature_tiles([(feature, 4326)])
    dense = reproject(shapely.segmentize(feature, 0.001), 4326, "EPSG:32631")
    assert box(tile.west, tile.south, tile.east, tile.north).contains(dense)
    assert all(abs(a - b) <= 10 for a, b in zip((tile.west, tile.south, tile.east, tile.north), dense.bounds))


def test_area_km2_adds_every_aoi():
    km2 = box(600_000, 5_600_000, 601_000, 5_601_000)
    assert abs(area_km2([(km2, "EPSG:32631")]) - 1.0) < 1e-7
    assert abs(area_km2([(km2, "EPSG:32631"), (km2, "EPSG:32631")]) - 2.0) < 1e-7
    assert re.fullmatch(r"0\.0+", f"{area_km2([]):.3f}")


# --- timewindows.py and job_table.py ---------------------------------------------------------------------------


def test_months_added_into_december_and_the_default_window_of_3_months():
    assert add_months(dt.date(2023, 11, 30), 1) == dt.date(2023, 12, 30)
    assert add_months(dt.date(2023, 10, 31), 2) == dt.date(2023, 12, 31)
    assert month_windows("2023-01-01", "2023-08-01")[:2] == [("2023-01-01", "2023-04-01"), ("2023-04-01", "2023-07-01")]


def test_months_in_counts_a_month_touched_by_its_first_day():
    assert months_in(("2023-01-15", "2023-03-02")) == ["2023-01", "2023-02", "2023-03"]


NOT_A_DATE = "is not a date; use the form YYYY-MM-DD, e.g. 2023-01-01."
NOT_MONTHS = "is not a positive whole number of months; use 1 or more."


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: month_windows("x", "2023-01-01"), f"start_date: 'x' {NOT_A_DATE}"),
        (lambda: month_windows("2023-01-01", "y"), f"end_date: 'y' {NOT_A_DATE}"),
        (lambda: months_in(("x", "2023-01-01")), f"temporal_extent[0]: 'x' {NOT_A_DATE}"),
        (lambda: months_in(("2023-01-01", "y")), f"temporal_extent[1]: 'y' {NOT_A_DATE}"),
        (lambda: month_windows("2023-01-01", "2023-02-01", True), f"window_months: True {NOT_MONTHS}"),
        (lambda: month_windows("2023-01-01", "2023-02-01", 2.5), f"window_months: 2.5 {NOT_MONTHS}"),
        (lambda: month_windows("2023-01-01", "2023-01-01"),
         "end_date (2023-01-01) is not after start_date (2023-01-01): choose an end date after the start date."),
    ],
)  # fmt: skip
def test_bad_dates_and_windows_name_the_field(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


@pytest.mark.parametrize("sensor", ["S2", "Sentinel 2", " sentinel-2 "])
def test_sensor_names_as_users_write_them(sensor):
    assert parse_sensors([sensor]) == [2]


def test_plan_request_messages_and_limits():
    assert refusal(parse_sensors, []) == "sensors: no sensor chosen; choose Sentinel-1, Sentinel-2 or both."
    assert refusal(check_cloud_cover, "a lot") == (
        "max_cloud_cover: 'a lot' is not a number; use a percentage from 0 to 100."
    )
    assert [check_cloud_cover(v) for v in (0, 0.5, 100, "85.0", 85.5)] == [0, 0.5, 100, 85, 85.5]
    assert type(check_cloud_cover(85.0)) is int and type(check_cloud_cover(85.5)) is float
    today = dt.date.today().isoformat()
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert refusal(PlanRequest, today, "2999-01-01") == (
        f"start_date: {today} is not in the past; there is no satellite data yet, choose a start date before today."
    )
    assert refusal(PlanRequest, tomorrow, "2999-01-01").startswith(f"start_date: {tomorrow} is not in the past")
    for bad in (0, "5", 2.0):
        assert refusal(PlanRequest, "2023-01-01", "2023-02-01", max_jobs=bad) == (
            f"max_jobs: {bad!r} must be a whole number of at least 1."
        )
    assert PlanRequest("2023-01-01", "2023-02-01", max_jobs=1).max_jobs == 1


def test_the_plan_keeps_the_recipe_titles_and_columns_and_its_maximum_exactly():
    request = PlanRequest("2023-01-01", "2023-03-01", ["s1", "s2"], 85, 1, max_jobs=4, recipe="Monthly")
    assert request.recipe == "monthly"
    tiles = grid_tiles(600000, 5600000, "EPSG:32631", 10000, 0, 1, 1)
    table = job_table(tiles, request)  # 1 tile x 2 windows x 2 sensors = 4 jobs = the maximum
    assert list(table.columns) == PLAN_COLUMNS and set(table["recipe"]) == {"monthly"}
    assert table["title"].tolist()[:2] == [
        "S1 32631_600000_5600000 2023-01-01..2023-02-01", "S2 32631_600000_5600000 2023-01-01..2023-02-01"
    ]  # fmt: skip
    assert list(job_table([], request).columns) == PLAN_COLUMNS
    two = grid_tiles(600000, 5600000, "EPSG:32631", 10000, 0, 1, 2)
    assert refusal(job_table, two, request) == (
        "the plan has 8 jobs (2 tiles x 2 windows x 2 sensors), more than the maximum of 4; use a smaller area, "
        "larger tiles, longer windows, or raise the maximum."
    )


def utm_point(lon: float, lat: float, epsg: int) -> tuple:
    return reproject(Point(lon, lat), "EPSG:4326", f"EPSG:{epsg}").coords[0]


def test_a_sliver_that_self_touches_once_projected_still_gets_all_its_tiles():
    """A valid lon/lat sliver (found by random search) that is invalid in UTM: repaired, not cut short."""
    sliver = shapely.from_wkt(
        "POLYGON ((2.395733721569097 -28.853648860842473, 3.6249281785439997 -28.85366468529935, "
        "2.3958218631340604 -28.853648860074728, 2.3957233749998648 -28.85364790856116, "
        "2.3956045486771917 -28.853647335946718, 2.395733721569097 -28.853648860842473))"
    )
    assert sliver.is_valid and not reproject(shapely.segmentize(sliver, 0.05), "EPSG:4326", "EPSG:32731").is_valid
    west, south = utm_point(2.3956045486771917, -28.853647335946718, 32731)
    east, _ = utm_point(3.6249281785439997, -28.85366468529935, 32731)
    row = int(south // 10_000) * 10_000
    expected = [
        f"32731_{x}_{row}" for x in range(int(west // 10_000) * 10_000, int(east // 10_000) * 10_000 + 1, 10_000)
    ]
    assert len(expected) == 13 and [t.tile_id for t in tile_aois([(sliver, 4326)])] == expected


# A strip from 0.5 to 5.5 E and, far north, a small square: validate_aoi densifies every edge to pieces of at
# most 1/64 of the AOI's extent (21.76 / 64 = 0.34 degree), so the strip's 5 degrees get 15 pieces of 1/3 and
# vertices at 2.83 and 3.17 E. In UTM the parallel is lowest at 3 E, 11.6 m below those vertices: only an edge
# densified further reaches it.
def strip_and_square(south: float):
    return MultiPolygon([box(0.5, south, 5.5, south + 0.3), box(2.9, south + 21.66, 3.0, south + 21.76)])


def test_a_lonlat_aoi_gets_the_tiles_its_curved_edges_reach_in_utm():
    row = math.ceil(utm_point(3.0, 60.0, 32631)[1] / 10_000) * 10_000  # a tile row's south edge near 60 N
    lat = 60.0
    for _ in range(30):  # the strip's south edge 5 m below that row's edge at 3 E (Newton's method)
        lat -= (utm_point(3.0, lat, 32631)[1] - (row - 5)) / 111_000
    aoi = strip_and_square(lat)
    dense = reproject(shapely.segmentize(aoi, 0.001), "EPSG:4326", "EPSG:32631")
    minx, miny, maxx, maxy = dense.bounds
    expected = [
        f"32631_{x}_{y}"
        for x in range(int(minx // 10_000) * 10_000, int(maxx) + 1, 10_000)
        for y in range(int(miny // 10_000) * 10_000, int(maxy) + 1, 10_000)
        if dense.intersection(box(x, y, x + 10_000, y + 10_000)).area > 0
    ]
    assert f"32631_500000_{row - 10_000}" in expected  # the dip at 3 E (easting 500 km) into the row below
    assert sorted(t.tile_id for t in tile_aois([(aoi, 4326)])) == sorted(expected)


def test_a_feature_in_ups_south_is_tiled_in_the_utm_zone_of_its_centre():
    """EPSG:32761 (UPS South) is no UTM zone, even for a feature north of 80 S that UTM can take."""
    feature = reproject(box(10.0, -79.6, 10.2, -79.5), "EPSG:4326", "EPSG:32761")
    (tile,) = feature_tiles([(feature, "EPSG:32761")])
    assert tile.epsg == 32732


def test_a_lonlat_feature_keeps_its_curved_south_edge_in_its_utm_extent():
    """The strip and square as one feature: its extent reaches 3 E's lowest point, snapped to the 10 m grid."""
    (tile,) = feature_tiles([(strip_and_square(60.0), "EPSG:4326")])
    assert tile.epsg == 32631
    assert tile.south == math.floor(utm_point(3.0, 60.0, 32631)[1] / 10) * 10
