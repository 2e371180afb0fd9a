"""Trackers written and read back cell by cell, the GeoPackage's own SQL, the run lock (issue 26: mutation score).

Each test kills mutants of ``wac_extractor/core/jobs/tracker.py`` that ``test_tracker.py`` let survive or
did not reach; tests/README.md lists the mutant each one was seen failing on. None starts the local backend.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sqlite3
import struct
import threading

import numpy as np
import pandas as pd
import pytest
import shapely
from osgeo import ogr

from wac_extractor.core.jobs.tracker import (
    CsvTracker,
    GeoPackageTracker,
    TrackerError,
    TrackerLock,
    create_tracker,
    decode_gpkg_geometry,
    encode_gpkg_geometry,
    normalize_jobs,
    open_tracker,
)

from .test_tracker import jobs  # noqa: F401  (the fixture: 16 planned jobs)

BOX = "POLYGON ((5.1 50.2, 5.3 50.2, 5.3 50.4, 5.1 50.4, 5.1 50.2))"


def column_types(path) -> dict:
    with sqlite3.connect(path) as con:
        return {row[1]: row[2] for row in con.execute("PRAGMA table_info(jobs)")}


def test_column_types_follow_the_values_at_creation_and_during_a_run(tmp_path):
    table = pd.DataFrame({"geometry": [BOX, BOX], "title": ["a", "b"], "flag": [True, False],
                          "count": [1, 2], "ratio": [0.5, 1.5]})  # fmt: skip
    tracker = create_tracker(tmp_path / "jobs.gpkg", table)
    types = column_types(tmp_path / "jobs.gpkg")
    assert (types["title"], types["flag"], types["count"], types["ratio"]) == ("TEXT", "INTEGER", "INTEGER", "REAL")
    tracker.update_row(0, credits_used=2.5, retries=np.int64(3))  # columns a run adds
    types = column_types(tmp_path / "jobs.gpkg")
    assert (types["credits_used"], types["retries"]) == ("REAL", "INTEGER")
    row = open_tracker(tmp_path / "jobs.gpkg").read().loc[0]
    assert (row["ratio"], row["credits_used"], row["retries"]) == (0.5, 2.5, 3)


def test_cells_of_every_kind_are_written_and_read_back(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    tracker.update_row(
        1,
        temporal_extent=("2024-01-01", "2024-02-01"),  # a tuple is stored as a JSON list
        spatial_extent={"west": 1, "south": 2, "east": 3, "north": 4, "crs": 32631},
        sentinel=np.int64(1),
        max_cloud_cover=np.float64(40.5),
        start_time=pd.Timestamp("2026-01-02T03:04:05"),
        running_start_time=pd.NaT,
        id=pd.NA,
        backend_name=float("nan"),
    )
    row = open_tracker(tmp_path / "jobs.gpkg").get_by_indices([1]).iloc[0]
    assert row["temporal_extent"] == ["2024-01-01", "2024-02-01"]
    assert row["spatial_extent"] == {"west": 1, "south": 2, "east": 3, "north": 4, "crs": 32631}
    assert (row["sentinel"], row["max_cloud_cover"], row["start_time"]) == (1, 40.5, "2026-01-02T03:04:05")
    assert row["running_start_time"] is None and row["id"] is None and row["backend_name"] is None


def test_read_gives_footprints_and_decoded_extents_and_snapshot_leaves_footprints_out(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    frame = tracker.read()
    assert frame.index.dtype == "int64" and list(frame.index) == list(range(16))
    for index in (0, 15):
        assert shapely.from_wkt(frame.loc[index, "geometry"]).equals_exact(
            shapely.from_wkt(jobs.loc[index, "geometry"]), 1e-9
        )
        assert frame.loc[index, "spatial_extent"] == jobs.loc[index, "spatial_extent"]
        assert list(frame.loc[index, "temporal_extent"]) == list(jobs.loc[index, "temporal_extent"])
    snapshot = tracker.snapshot()
    assert snapshot["geometry"].isna().all() and list(snapshot.columns) == list(frame.columns)
    assert snapshot.drop(columns="geometry").equals(frame.drop(columns="geometry"))


def test_costs_are_numbers_when_read_and_a_cost_that_is_not_one_is_empty(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    tracker.update_row(0, costs="n/a")
    tracker.update_row(1, costs="2.5")
    costs = open_tracker(tmp_path / "jobs.gpkg").read()["costs"]
    assert costs.dtype == "float64" and math.isnan(costs[0]) and costs[1] == 2.5


def test_a_row_persisted_for_a_new_index_is_inserted_with_its_footprint_in_the_spatial_index(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    new = pd.DataFrame([{"title": "added", "status": "queued", "sentinel": 2, "geometry": BOX}], index=[16])
    empty = pd.DataFrame([{"title": "no footprint", "status": "queued", "geometry": "POLYGON EMPTY"}], index=[17])
    tracker.persist(new)
    tracker.persist(empty)
    frame = open_tracker(tmp_path / "jobs.gpkg").read()
    assert frame.loc[16, ["title", "status", "sentinel"]].tolist() == ["added", "queued", 2]  # a numpy int64 cell
    assert shapely.from_wkt(frame.loc[16, "geometry"]).equals(shapely.from_wkt(BOX))
    with sqlite3.connect(tmp_path / "jobs.gpkg") as con:
        index = dict(((fid, (x0, y0, x1, y1)) for fid, x0, y0, x1, y1 in
                      con.execute("SELECT id, minx, miny, maxx, maxy FROM rtree_jobs_geom")))  # fmt: skip
    assert index[17] == pytest.approx((5.1, 50.2, 5.3, 50.4), abs=1e-5)  # fid = index + 1; float32 in the R-tree
    assert 18 not in index and len(index) == 17  # an empty footprint has no place in the index
    # QGIS (OGR) finds the added job through that index.
    dataset = ogr.Open(str(tmp_path / "jobs.gpkg"))
    layer = dataset.GetLayerByName("jobs")
    layer.SetSpatialFilterRect(5.15, 50.25, 5.25, 50.35)
    assert [feature.GetField("title") for feature in layer] == ["added"]


def test_every_gpkg_envelope_layout_decodes(tmp_path):
    """Blobs QGIS or GDAL may write: no envelope, xy, xyz, xym, xyzm (GeoPackage 2.1.3)."""
    geometry = shapely.from_wkt(BOX)
    wkb = shapely.to_wkb(geometry, byte_order=1)
    for code, doubles in ((0, 0), (1, 4), (2, 6), (3, 6), (4, 8)):
        envelope = struct.pack(f"<{doubles}d", *([1.0] * doubles))
        blob = b"GP" + bytes([0, 1 | code << 1]) + struct.pack("<i", 4326) + envelope + wkb
        assert decode_gpkg_geometry(blob).equals(geometry), code
    assert decode_gpkg_geometry(encode_gpkg_geometry(BOX)).equals(geometry)
    for missing in (None, "", float("nan")):  # a CSV or pandas cell without a footprint
        assert encode_gpkg_geometry(missing) is None


def test_a_tracker_without_footprints_or_with_a_filtered_index_is_created_numbered_from_0(tmp_path):
    table = pd.DataFrame({"title": ["a", "b", "c"], "sentinel": [1, 2, 2]}, index=[4, 7, 9])  # rows of a filter
    for name in ("jobs.gpkg", "jobs.csv"):
        tracker = create_tracker(tmp_path / "nested" / "folder" / name, table)  # folders made as needed
        frame = open_tracker(tmp_path / "nested" / "folder" / name).read()
        assert list(frame.index) == [0, 1, 2] and "index" not in frame.columns, name
        assert frame["title"].tolist() == ["a", "b", "c"] and tracker.count_by_status() == {"not_started": 3}
    assert open_tracker(tmp_path / "nested" / "folder" / "jobs.gpkg").read()["geometry"].isna().all()
    shutil.rmtree(tmp_path / "nested")  # the folders deleted during a run: the CSV tracker writes its jobs anew
    tracker.update_row(0, status="queued")
    assert open_tracker(tmp_path / "nested" / "folder" / "jobs.csv").count_by_status() == {
        "queued": 1,
        "not_started": 2,
    }


@pytest.mark.parametrize("name", ["jobs.gpkg", "jobs.csv"])
def test_on_exists_skip_keeps_the_tracker_byte_for_byte(tmp_path, jobs, name):  # noqa: F811
    create_tracker(tmp_path / name, jobs).update_row(0, status="running")
    before = (tmp_path / name).read_bytes()
    tracker = open_tracker(tmp_path / name)
    assert tracker.initialize_from_df(jobs.iloc[:2], on_exists="skip") is tracker
    assert (tmp_path / name).read_bytes() == before


def test_an_empty_file_is_no_tracker_yet_but_a_one_byte_file_is_never_overwritten(tmp_path, jobs):  # noqa: F811
    (tmp_path / "empty.gpkg").write_bytes(b"")
    assert not GeoPackageTracker(tmp_path / "empty.gpkg").exists()
    assert create_tracker(tmp_path / "empty.gpkg", jobs).count_by_status() == {"not_started": 16}
    (tmp_path / "byte.gpkg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="already exists"):
        create_tracker(tmp_path / "byte.gpkg", jobs)
    assert (tmp_path / "byte.gpkg").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["jobs.gpkg", "jobs.csv"])
def test_queries_by_several_statuses_none_or_without_a_limit(tmp_path, jobs, name):  # noqa: F811
    tracker = create_tracker(tmp_path / name, jobs)
    if name.endswith(".gpkg"):
        tracker.persist(None)  # nothing to write (the CSV tracker, openeo's, takes frames only)
    tracker.persist(jobs.iloc[:0])
    tracker.update_row(2, status="queued")
    tracker.update_row(5, status="running")
    assert tracker.count_by_status(["queued", "running", "error"]) == {"queued": 1, "running": 1}
    assert list(tracker.get_by_status(["running", "queued"]).index) == [2, 5]
    assert len(tracker.get_by_status(["not_started"])) == 14  # no limit
    assert tracker.get_by_status([]).empty and tracker.get_by_indices([]).empty
    assert "status" in tracker.get_by_indices([]).columns
    assert tracker.statuses() == {i: {2: "queued", 5: "running"}.get(i, "not_started") for i in range(16)}


def test_a_column_name_with_quotes_is_stored_as_it_is(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    tracker.update_row(0, **{'size "large"': "yes"})
    assert open_tracker(tmp_path / "jobs.gpkg").read().loc[0, 'size "large"'] == "yes"


def test_a_tracker_opened_on_one_thread_is_used_from_another(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    tracker.count_by_status()  # the connection is made here, on the test's thread
    seen = []
    worker = threading.Thread(target=lambda: seen.append(tracker.count_by_status()))  # the runner's threads
    worker.start()
    worker.join(10)
    assert seen == [{"not_started": 16}]


def test_an_old_tracker_gets_the_managers_columns_and_its_empty_statuses_filled(tmp_path):
    path = tmp_path / "old.gpkg"
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("jobs", None, ogr.wkbPolygon, options=["FID=fid", "GEOMETRY_NAME=geom"])
    layer.CreateField(ogr.FieldDefn("title", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    for title, status in (("a", None), ("b", "finished")):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("title", title)
        if status:
            feature.SetField("status", status)
        layer.CreateFeature(feature)
    dataset = None
    tracker = GeoPackageTracker(path)
    assert tracker.count_by_status() == {"not_started": 1, "finished": 1}
    added = set(tracker.columns()) - {"fid", "geom", "title", "status"}
    assert added == set(normalize_jobs(pd.DataFrame({"title": []})).columns) - {"title", "status"}
    types = column_types(path)
    for name in ("id", "backend_name", "start_time", "running_start_time", "costs"):
        assert types[name] == "TEXT", name
    tracker.close()
    assert GeoPackageTracker(path).read().loc[1, ["title", "status", "id"]].tolist() == ["b", "finished", None]


def test_messages_for_files_that_are_not_trackers_say_what_to_do(tmp_path):
    with sqlite3.connect(tmp_path / "plain.gpkg") as con:
        con.execute("CREATE TABLE something (x)")
    with pytest.raises(TrackerError) as error:
        GeoPackageTracker(tmp_path / "plain.gpkg").count_by_status()
    assert str(error.value).endswith(
        "has no 'jobs' table, so it is not a WAC Extractor tracker; choose another tracker file or a new name."
    )
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(TrackerError, match=r"bad\.csv is not a readable CSV job table \(.+\); choose another file\."):
        CsvTracker(tmp_path / "bad.csv").read()
    assert repr(GeoPackageTracker(tmp_path / "plain.gpkg")) == f"GeoPackageTracker({str(tmp_path / 'plain.gpkg')!r})"


def test_a_notebook_csv_keeps_ids_as_text_and_fills_empty_statuses(tmp_path):
    path = tmp_path / "notebook.csv"
    path.write_text("title,status,id,costs\na,,0123,\nb,finished,4567,1.5\n")
    frame = CsvTracker(path).read()
    assert frame["status"].tolist() == ["not_started", "finished"]
    assert frame["id"].tolist() == ["0123", "4567"]  # an id is text, leading zero kept
    assert frame["costs"].dtype == "float64"


def test_the_csv_holds_json_cells_and_no_index_column(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.csv", jobs)
    tracker.update_row(0, status="queued", extra={"a": [1, 2]})
    with open(tmp_path / "jobs.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == list(tracker.df.columns) and len(rows) == 16  # no index column
    assert json.loads(rows[0]["spatial_extent"]) == jobs.loc[0, "spatial_extent"]
    assert json.loads(rows[0]["extra"]) == {"a": [1, 2]} and rows[1]["extra"] == ""


def test_the_csv_temporary_file_is_written_beside_the_tracker(tmp_path, jobs, monkeypatch):  # noqa: F811
    """Beside it, so the final rename stays on one file system and is atomic."""
    tracker = create_tracker(tmp_path / "jobs.csv", jobs)
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: renames.append(source) or real_replace(source, target))
    tracker.update_row(0, status="queued")
    assert [os.path.dirname(source) for source in renames] == [str(tmp_path)]


def test_a_csv_reset_forgets_only_that_job_and_counts_it_at_once(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.csv", jobs)
    tracker.update_row(2, status="error", id="j-2")
    tracker.update_row(3, status="running", id="j-3")
    tracker.reset_job(2)
    assert tracker.count_by_status() == {"not_started": 15, "running": 1}  # the same object, not re-read
    row = open_tracker(tmp_path / "jobs.csv").get_by_indices([3]).iloc[0]
    assert (row["status"], row["id"]) == ("running", "j-3")
    assert tracker.statuses()[2] == "not_started"


def test_a_second_run_on_a_tracker_is_refused_and_says_who_holds_it(tmp_path):
    tracker_path = tmp_path / "jobs.gpkg"
    with TrackerLock(tracker_path) as lock:
        assert lock.path == tmp_path / "jobs.gpkg.lock"
        holder = f"pid {os.getpid()} on "
        assert lock.path.read_text().startswith(holder)
        with pytest.raises(TrackerError) as error:
            TrackerLock(tracker_path).acquire()  # another open file: flock refuses it, in this process too
        assert str(error.value).startswith(f"{tracker_path} is in use by another run ({holder}")
        assert str(error.value).endswith(
            "wait for it to finish or cancel it (e.g. close the other QGIS), then run again."
        )
    assert lock.path.read_text() == ""  # released: the holder is wiped
    TrackerLock(tracker_path).acquire().release()  # and a new run may take it
    lock.release()  # twice is harmless
    TrackerLock(tracker_path).release()  # and so is releasing a lock never taken


def test_a_lock_held_by_a_run_that_has_not_said_who_it_is_names_another_process(tmp_path):
    import fcntl  # a run of an older version, or one between locking and writing its name

    with open(tmp_path / "jobs.gpkg.lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TrackerError, match=r"is in use by another run \(another process\); wait for it"):
            TrackerLock(tmp_path / "jobs.gpkg").acquire()


def test_closing_a_geopackage_tracker_lets_go_of_the_file_and_it_reopens_on_use(tmp_path, jobs):  # noqa: F811
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs)
    tracker.update_row(0, status="queued")
    assert (tmp_path / "jobs.gpkg-wal").exists()  # WAL mode while open
    tracker.close()
    assert not (tmp_path / "jobs.gpkg-wal").exists()  # the last connection closed: checkpointed and removed
    assert tracker.count_by_status() == {"queued": 1, "not_started": 15}
    tracker.close()


def test_open_tracker_by_suffix_in_any_case(tmp_path):
    assert isinstance(open_tracker(tmp_path / "JOBS.GPKG"), GeoPackageTracker)
    assert isinstance(open_tracker(tmp_path / "jobs.Csv"), CsvTracker)
    with pytest.raises(TrackerError, match=r"jobs\.txt: unknown tracker type '\.txt'; use a file name ending in"):
        open_tracker(tmp_path / "jobs.txt")
