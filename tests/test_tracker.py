"""Job trackers: GeoPackage (row-level, transactional) and the notebook's CSV (lenient, atomic)."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
from openeo.extra.job_management import JobDatabaseInterface
from osgeo import ogr

from wac_extractor.core.jobs.tracker import CsvTracker, GeoPackageTracker, TrackerError, create_tracker, open_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid


@pytest.fixture
def jobs():
    return plan_grid(
        PlanRequest("2023-01-01", "2023-07-01", [1, 2], 85, 3, recipe="monthly"), 664000, 5611120, "EPSG:32631"
    )


@pytest.mark.parametrize("name", ["jobs.gpkg", "jobs.csv"])
def test_tracker_round_trip(tmp_path, jobs, name):
    tracker = create_tracker(tmp_path / name, jobs)
    assert isinstance(tracker, JobDatabaseInterface)
    assert tracker.exists()
    assert tracker.count_by_status() == {"not_started": 16}
    first = tracker.get_by_status(["not_started"], max=3)
    assert list(first.index) == [0, 1, 2]
    update = first.iloc[:1].copy()
    update["status"], update["id"], update["backend_name"] = "queued", "j-1", "local"
    update["cpu"] = "12 cpu-seconds"  # usage columns appear during a run
    tracker.persist(update)
    reopened = open_tracker(tmp_path / name)
    assert reopened.count_by_status() == {"not_started": 15, "queued": 1}
    assert reopened.count_by_status(["queued"]) == {"queued": 1}
    row = reopened.get_by_indices([0]).iloc[0]
    assert (row["id"], row["status"], row["cpu"]) == ("j-1", "queued", "12 cpu-seconds")
    assert row["title"] == jobs.iloc[0]["title"]


def test_geopackage_is_a_polygon_layer_qgis_can_draw(tmp_path, jobs):
    create_tracker(tmp_path / "jobs.gpkg", jobs)
    dataset = ogr.Open(str(tmp_path / "jobs.gpkg"))
    layer = dataset.GetLayerByName("jobs")
    assert layer.GetFeatureCount() == 16
    assert layer.GetGeomType() == ogr.wkbPolygon
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "4326"
    minx, maxx, miny, maxy = layer.GetExtent()
    assert 5.3 < minx < maxx < 5.8 and 50.6 < miny < maxy < 50.9
    assert dataset.ExecuteSQL("SELECT HasSpatialIndex('jobs', 'geom')").GetNextFeature().GetField(0) == 1
    field_names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    assert {"status", "title", "sentinel", "spatial_extent"} <= set(field_names)


def test_geopackage_updates_one_row_not_the_file(tmp_path, jobs):
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    with sqlite3.connect(tmp_path / "jobs.gpkg") as con:
        con.execute("CREATE TRIGGER count_updates AFTER UPDATE ON jobs BEGIN "
                    "INSERT INTO update_log VALUES (NEW.fid); END")  # fmt: skip
        con.execute("CREATE TABLE update_log (fid INTEGER)")
    tracker.update_row(5, status="running")
    with sqlite3.connect(tmp_path / "jobs.gpkg") as con:
        assert con.execute("SELECT fid FROM update_log").fetchall() == [(6,)]


def test_geopackage_write_is_transactional(tmp_path, jobs):
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    batch = tracker.get_by_indices([0, 1]).copy()
    batch["status"] = "queued"
    batch["start_time"] = [pd.Timestamp("2026-01-01"), object()]  # second row cannot be stored
    with pytest.raises(sqlite3.Error):
        tracker.persist(batch)
    assert tracker.count_by_status() == {"not_started": 16}  # first row rolled back too


def test_new_tracker_never_overwrites_an_existing_one(tmp_path, jobs):
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    tracker.update_row(0, status="running", id="j-kept")
    before = (tmp_path / "jobs.gpkg").read_bytes()
    (tmp_path / "jobs.csv").write_text("kept,as,it,is\n")
    for name, content in (("jobs.gpkg", before), ("jobs.csv", b"kept,as,it,is\n")):
        with pytest.raises(FileExistsError, match="already exists; open it to resume, or choose a new file name"):
            create_tracker(tmp_path / name, jobs.iloc[:1])
        assert (tmp_path / name).read_bytes() == content, f"{name} was modified"  # never overwritten
    assert open_tracker(tmp_path / "jobs.gpkg").read().iloc[0][["status", "id"]].tolist() == ["running", "j-kept"]


def test_unusable_files_get_a_clear_message(tmp_path, jobs):
    (tmp_path / "other.gpkg").write_bytes(b"not a database at all" * 100)
    with pytest.raises(TrackerError, match="choose another tracker file"):
        GeoPackageTracker(tmp_path / "other.gpkg").count_by_status()
    assert (tmp_path / "other.gpkg").read_bytes() == b"not a database at all" * 100  # left as it was
    with sqlite3.connect(tmp_path / "plain.gpkg") as con:
        con.execute("CREATE TABLE something (x)")
    with pytest.raises(TrackerError, match="no 'jobs' table"):
        GeoPackageTracker(tmp_path / "plain.gpkg").count_by_status()
    with pytest.raises(TrackerError, match=r"\.gpkg or \.csv"):
        open_tracker(tmp_path / "jobs.xlsx")


def test_notebook_csv_without_status_opens(tmp_path, jobs):
    path = tmp_path / "notebook.csv"
    jobs[["spatial_extent", "temporal_extent", "max_cloud_cover", "sentinel"]].to_csv(path, index=False)
    tracker = CsvTracker(path)
    assert tracker.count_by_status() == {"not_started": 16}
    assert {"id", "backend_name", "status", "start_time"} <= set(tracker.get_by_status(["not_started"]).columns)


def test_csv_write_is_atomic(tmp_path, jobs, monkeypatch):
    tracker = create_tracker(tmp_path / "jobs.csv", jobs)
    before = (tmp_path / "jobs.csv").read_bytes()

    real_to_csv = pd.DataFrame.to_csv

    def crash(frame, stream, *args, **kwargs):  # the disk fills up half-way through the write
        text = real_to_csv(frame, None, *args, **kwargs)
        stream.write(text[: len(text) // 2])
        stream.flush()
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(OSError):
        tracker.update_row(0, status="queued")
    assert (tmp_path / "jobs.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["jobs.csv"]


@pytest.mark.parametrize("name", ["jobs.gpkg", "jobs.csv"])
def test_reset_job_makes_it_plannable_again(tmp_path, jobs, name):
    tracker = create_tracker(tmp_path / name, jobs)
    tracker.update_row(2, status="error", id="j-2", backend_name="cdse", error_message="out of memory")
    tracker.reset_job(2)
    row = open_tracker(tmp_path / name).get_by_indices([2]).iloc[0]
    assert row["status"] == "not_started"
    assert all(pd.isna(row[c]) for c in ("id", "backend_name", "error_message"))
    assert open_tracker(tmp_path / name).count_by_status() == {"not_started": 16}


@pytest.mark.parametrize("name", ["jobs.gpkg", "jobs.csv"])
def test_snapshot_has_every_job_and_its_state(tmp_path, jobs, name):
    tracker = create_tracker(tmp_path / name, jobs)
    tracker.update_row(3, status="running", id="j-3")
    snapshot = tracker.snapshot()
    assert len(snapshot) == 16 and snapshot.loc[3, "status"] == "running" and snapshot.loc[3, "id"] == "j-3"


def test_a_sqlite_file_that_is_not_a_tracker_is_left_byte_for_byte(tmp_path):
    with sqlite3.connect(tmp_path / "plain.gpkg") as con:
        con.execute("CREATE TABLE something (x)")
    con.close()
    plain = (tmp_path / "plain.gpkg").read_bytes()
    with pytest.raises(TrackerError, match="no 'jobs' table"):
        GeoPackageTracker(tmp_path / "plain.gpkg").count_by_status()
    assert (tmp_path / "plain.gpkg").read_bytes() == plain
