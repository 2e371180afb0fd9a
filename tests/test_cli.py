"""The headless command line: plan reproduces the notebook, status reports, bad input says what to change."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wac_extractor.core.jobs.tracker import open_tracker

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
    assert "8 jobs: 4 tiles x 1 window of 3 months x 2 sensors" in result.stdout
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
        tracker.update_row(index, status="finished", id=f"j-{index}", result_status="failed", error_message=message,
                           costs=1.5 * (index + 1))  # fmt: skip
    result = cli("status", "--jobs", str(tmp_path / "jobs.gpkg"))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "finished: 8 (total 8)"
    assert lines[1].startswith("results of 8 finished jobs: 0 downloaded, 8 failed, 0 not downloaded yet; first")
    assert lines[1].endswith("answered HTTP 401")
    assert lines[2] == "credits: 54.0 credits spent (8 jobs); projected 54.0 for the run"  # 1.5 x (1 + ... + 8)
    assert len([line for line in lines if "\tdownload failed\t" in line]) == 8


def cli_env(tmp_path, **extra):
    """The test's private openeo home (refresh tokens) and the repo on the path."""
    import os

    return {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), **extra}  # fmt: skip


def test_login_with_a_device_code_then_logout(backend, tmp_path):
    import re

    env = cli_env(tmp_path)
    command = [sys.executable, "-m", "wac_extractor", "login", "--backend", backend.url]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    first = process.stdout.readline()
    code = re.search(r"enter the code (\S+)", first)
    assert code, first
    backend.oidc(approve=code.group(1))  # the person at the browser
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"openEO API 1.2.0 at {backend.url}, signed in as" in out and "save_result as netCDF: yes" in out
    store = tmp_path / "xdg-data" / "openeo-python-client" / "refresh-tokens.json"
    assert store.exists()
    logout = subprocess.run([sys.executable, "-m", "wac_extractor", "logout", "--backend", backend.url],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=60)  # fmt: skip
    assert logout.returncode == 0 and f"forgot 1 stored sign-in(s) for {backend.url}" in logout.stdout
    assert "refresh_token" not in store.read_text()


def test_run_with_client_credentials_on_two_backends_with_their_own_parallel_jobs(backend, tmp_path):
    plan = ["plan", "--grid-origin", "664000,5611120", "--crs", "EPSG:32631", "--rows", "1", "--cols", "2",
            "--start", "2023-01-01", "--months", "1", "--window-months", "1", "--sensors", "s1", "--recipe",
            "monthly"]  # fmt: skip
    assert cli(*plan, "--out", str(tmp_path / "jobs.gpkg")).returncode == 0
    other = backend.url.replace("127.0.0.1", "localhost")
    env = cli_env(tmp_path, WAC_CLIENT_SECRET="service-secret")
    done = subprocess.run(
        [sys.executable, "-m", "wac_extractor", "run", "--jobs", str(tmp_path / "jobs.gpkg"), "--output",
         str(tmp_path / "out"), "--backend", backend.url, "--parallel", "1", "--backend", other, "--parallel", "1",
         "--auth", "client_credentials", "--username", "wac-service", "--poll", "0.3", "--max-queued-hours", "1"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 results downloaded and checked" in done.stdout
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert set(jobs["backend_name"]) == {backend.url.split("//")[1], other.split("//")[1]}  # one each (1 + 1 slots)
    assert "service-secret" not in done.stdout + done.stderr


def test_run_without_sign_in_on_a_backend_that_needs_one_says_so(backend, tmp_path):
    assert cli(*NOTEBOOK_PLAN, "--out", str(tmp_path / "jobs.gpkg")).returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "wac_extractor", "run", "--jobs", str(tmp_path / "jobs.gpkg"), "--output",
         str(tmp_path / "out"), "--backend", backend.url, "--auth", "none", "--poll", "0.3"],
        capture_output=True, text=True, cwd=REPO, env=cli_env(tmp_path), timeout=120,
    )  # fmt: skip
    assert done.returncode == 1  # stopped at once, not looping on 401s
    last = done.stderr.strip().splitlines()[-1]
    assert "it needs a sign-in" in last and "run again" in last
    assert "Traceback" not in done.stderr and "Failed to start job for" not in done.stderr
    assert set(open_tracker(tmp_path / "jobs.gpkg").read()["status"]) <= {"not_started", "start_failed"}


def test_run_through_a_gateway_that_loses_creates_prints_one_readable_line_each(backend, tmp_path):
    """A 502 with an empty body on POST /jobs: the run goes on and says so in a line, no openeo traceback."""
    assert cli(*NOTEBOOK_PLAN, "--recipe", "monthly", "--out", str(tmp_path / "jobs.gpkg")).returncode == 0
    backend.faults({"status": 502, "method": "POST", "path": "^/jobs$", "times": 2, "body": "empty"})
    done = subprocess.run(  # HTTP sessions are closed, not left to the collector: no ResourceWarning
        [sys.executable, "-W", "error::ResourceWarning", "-m", "wac_extractor", "run", "--jobs",
         str(tmp_path / "jobs.gpkg"), "--output", str(tmp_path / "out"), "--backend", backend.url, "--auth", "basic",
         "--username", "demo", "--poll", "0.3"],
        capture_output=True, text=True, cwd=REPO, env=cli_env(tmp_path, WAC_PASSWORD="demo"), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "8 results downloaded and checked" in done.stdout
    errors = done.stderr.strip().splitlines()
    assert "ResourceWarning" not in done.stderr
    assert len(errors) == 2 and all("HTTP 502 with an empty answer" in e and "created again in" in e for e in errors)
    progress = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == len(set(progress))  # a progress line only when something changed
    assert [line for line in progress if line.startswith("[8/8 done]")] == progress[-1:]  # start_failed is not done
    assert any("start_failed" in line for line in progress)
