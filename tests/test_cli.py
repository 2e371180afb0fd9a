"""The headless command line: plan reproduces the notebook, status reports, bad input says what to change."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wac_extractor.core.tracker import open_tracker

from .conftest import REPO

NOTEBOOK_PLAN = ["plan", "--grid-origin", "664000,5611120", "--crs", "EPSG:32631", "--window", "10000", "--gap",
                 "10000", "--rows", "2", "--cols", "2", "--start", "2023-01-01", "--months", "3", "--sensors",
                 "s1,s2", "--max-cloud-cover", "85"]  # fmt: skip


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "wac_extractor", *args], capture_output=True, text=True, cwd=cwd or REPO
    )


@pytest.mark.parametrize("name", ["jobs.csv", "jobs.gpkg"])
def test_plan_reproduces_the_notebook_grid(tmp_path, name):
    result = cli(*NOTEBOOK_PLAN, "--out", str(tmp_path / name))
    assert result.returncode == 0, result.stderr
    assert "8 jobs: 4 tiles x 3 months x 2 sensor(s)" in result.stdout
    jobs = open_tracker(tmp_path / name).read()
    corners = [(664000, 5611120), (664000, 5631120), (684000, 5611120), (684000, 5631120)]
    for sentinel in (1, 2):
        rows = jobs[jobs["sentinel"] == sentinel]
        extents = [e if isinstance(e, dict) else json.loads(e) for e in rows["spatial_extent"]]
        assert [(e["west"], e["south"]) for e in extents] == corners
        assert all(e["east"] == e["west"] + 10000 and e["north"] == e["south"] + 10000 for e in extents)
        assert all(e["crs"] == 32631 for e in extents)
    temporal = [t if isinstance(t, list) else json.loads(t) for t in jobs["temporal_extent"]]
    assert temporal == [["2023-01-01", "2023-04-01"]] * 8
    assert set(jobs["max_cloud_cover"]) == {85}


def test_plan_from_an_aoi_file(tmp_path):
    aoi = tmp_path / "aoi.geojson"
    polygon = {"type": "Polygon", "coordinates": [[[4.3, 50.8], [4.45, 50.8], [4.45, 50.9], [4.3, 50.8]]]}
    feature = {"type": "Feature", "properties": {}, "geometry": polygon}
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    result = cli("plan", "--aoi", str(aoi), "--start", "2023-01-01", "--end", "2023-03-01", "--window-months", "1",
                 "--sensors", "s2", "--out", str(tmp_path / "jobs.gpkg"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert set(jobs["sentinel"]) == {2} and jobs["tile_id"].str.startswith("32631_").all()
    assert len(jobs) == 2 * jobs["tile_id"].nunique()


def test_bad_input_exits_with_a_message_naming_the_fix(tmp_path):
    result = cli(*NOTEBOOK_PLAN[:-2], "--max-cloud-cover", "120", "--out", str(tmp_path / "jobs.csv"))
    assert result.returncode == 2
    assert "max_cloud_cover: 120 is outside 0..100" in result.stderr
    assert not (tmp_path / "jobs.csv").exists()
    assert cli(*NOTEBOOK_PLAN, "--out", str(tmp_path / "jobs.csv")).returncode == 0
    again = cli(*NOTEBOOK_PLAN, "--out", str(tmp_path / "jobs.csv"))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_status_lists_counts_and_failed_jobs(tmp_path):
    assert cli(*NOTEBOOK_PLAN, "--out", str(tmp_path / "jobs.gpkg")).returncode == 0
    tracker = open_tracker(tmp_path / "jobs.gpkg")
    tracker.update_row(3, status="error", id="j-x", error_message="OpenEOApiException: out of memory")
    tracker.update_row(4, status="finished", id="j-y")
    result = cli("status", "--jobs", str(tmp_path / "jobs.gpkg"))
    assert result.returncode == 0
    assert "error: 1, finished: 1, not_started: 6 (total 8)" in result.stdout
    assert "j-x" in result.stdout and "out of memory" in result.stdout and "j-y" not in result.stdout


def test_status_tells_finished_jobs_whose_downloads_failed_from_downloaded_ones(tmp_path):
    """All 8 jobs finished on the backend, all 8 downloads refused (HTTP 401): not "finished: 8" alone."""
    assert cli(*NOTEBOOK_PLAN, "--out", str(tmp_path / "jobs.gpkg")).returncode == 0
    tracker = open_tracker(tmp_path / "jobs.gpkg")
    for index in range(8):
        message = f"download failed: GET http://backend/jobs/j-{index}/results/assets/openEO.nc answered HTTP 401"
        tracker.update_row(index, status="finished", id=f"j-{index}", result_status="failed", error_message=message)
    result = cli("status", "--jobs", str(tmp_path / "jobs.gpkg"))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "finished: 8 (total 8)"
    assert lines[1].startswith("results of 8 finished jobs: 0 downloaded, 8 failed, 0 not downloaded yet; first")
    assert lines[1].endswith("answered HTTP 401")
    assert len([line for line in lines if "\tdownload failed\t" in line]) == 8
