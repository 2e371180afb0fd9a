"""Hypothesis: AOI planning and tracker reading never crash; bad input is always a clear ValueError."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wac_extractor.core.jobs.tracker import CsvTracker, GeoPackageTracker, TrackerError
from wac_extractor.core.planning.job_table import PlanRequest, plan_aois

REFUSAL = re.compile(r"(AOI 1|AOI|the plan has \d+ jobs [^:;]+): [^\n;]+(\([^\n]*\))?[^\n;]*; [^\n]+[.]")
REQUEST = PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3, max_jobs=2_000)
coordinate = st.one_of(st.floats(min_value=-400, max_value=400), st.sampled_from([float("nan"), float("inf")]))
wild_rings = st.lists(st.tuples(coordinate, coordinate), min_size=0, max_size=8)
offset = st.floats(min_value=-0.3, max_value=0.3)


@st.composite
def field_rings(draw):
    """Small polygons somewhere in Europe/Africa: mostly plannable, sometimes self-intersecting."""
    lon, lat = draw(st.floats(min_value=-20, max_value=40)), draw(st.floats(min_value=-35, max_value=70))
    return [(lon + dx, lat + dy) for dx, dy in draw(st.lists(st.tuples(offset, offset), min_size=3, max_size=7))]


rings = st.one_of(field_rings(), wild_rings)
crs = st.sampled_from(["EPSG:4326", "EPSG:32631", "EPSG:3857", 4326, "EPSG:999999", "not a crs"])


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rings, crs)
def test_any_polygon_plans_or_says_what_to_change(points, crs_value):
    try:
        geometry = shapely.Polygon(points) if len(points) >= 3 else shapely.Polygon()
    except (ValueError, shapely.errors.GEOSException):
        return  # shapely itself refuses: never reaches the planner
    try:
        table = plan_aois(REQUEST, [(geometry, crs_value)])
    except ValueError as exc:
        message = str(exc)
        event(f"refused: {message.split(':')[0]}")
        # One line naming the AOI (or the plan), what is wrong, then after "; " what to change.
        assert REFUSAL.fullmatch(message), message
        return
    event("planned")
    assert len(table) > 0 and set(table["sentinel"]) == {1, 2}


@settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2_000))
def test_any_csv_bytes_open_or_fail_clearly(tmp_path, data):
    path = tmp_path / "jobs.csv"
    path.write_bytes(data)
    try:
        counts = CsvTracker(path).count_by_status()
    except TrackerError as exc:
        assert "choose another file" in str(exc)
        return
    assert all(isinstance(k, str) for k in counts) or counts == {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=4_000))
def test_any_file_as_geopackage_opens_or_fails_clearly(tmp_path, data):
    path = tmp_path / "jobs.gpkg"
    path.write_bytes(data)
    tracker = GeoPackageTracker(path)
    try:
        tracker.count_by_status()
    except TrackerError as exc:
        assert "choose another tracker file" in str(exc)
    finally:
        tracker.close()


def test_truncated_geopackage_is_refused_and_left_untouched(tmp_path):
    from wac_extractor.core.jobs.tracker import create_tracker
    from wac_extractor.core.planning.job_table import plan_grid

    create_tracker(tmp_path / "jobs.gpkg", plan_grid(REQUEST, 664000, 5611120, "EPSG:32631"))
    data = (tmp_path / "jobs.gpkg").read_bytes()
    (tmp_path / "cut.gpkg").write_bytes(data[: len(data) // 3])
    with pytest.raises(TrackerError, match="choose another tracker file"):
        GeoPackageTracker(tmp_path / "cut.gpkg").get_by_status(["not_started"])
    assert (tmp_path / "cut.gpkg").read_bytes() == data[: len(data) // 3]
    assert isinstance(GeoPackageTracker(tmp_path / "jobs.gpkg").read(), pd.DataFrame)
