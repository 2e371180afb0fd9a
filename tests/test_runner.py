"""The runner against the local openEO backend: end to end, resume, cancel and injected faults."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from osgeo import gdal, osr

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.jobs.downloads import result_folder_name
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import CsvTracker, create_tracker, open_tracker
from wac_extractor.core.platform.priority import call_in_background_thread
from wac_extractor.core.recipes.process_graphs import job_cube

from .conftest import REPO, daemon_thread, notebook_jobs, running_backend, wait_until

gdal.UseExceptions()
S2_VARIABLES = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


def make_runner(tracker, output, url, parallel=2, **kwargs) -> ExtractionRunner:
    spec = BackendSpec(url=url, parallel_jobs=parallel)
    return ExtractionRunner(
        tracker, output, [(spec, lambda: connect(url, "basic", "demo", "demo"))], poll_interval=0.3, **kwargs
    )


def result_files(tracker, output: Path):
    jobs = tracker.get_by_status(["finished"])
    return {index: [output / f for f in json.loads(row["result_files"])] for index, row in jobs.iterrows()}


def test_notebook_grid_runs_end_to_end(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    progress, events = [], []
    summary = make_runner(tracker, tmp_path / "out", backend.url, on_progress=progress.append,
                          on_event=events.append).run()  # fmt: skip

    assert summary.counts == {"finished": 8} and summary.downloaded == 8 and not summary.cancelled
    assert progress[-1].done == progress[-1].total == 8
    assert {e.status for e in events} >= {"queued", "running", "finished", "downloaded"}  # started by _start_job
    netcdfs = sorted((tmp_path / "out").glob("*/*.nc"))
    assert len(netcdfs) == 8
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert jobs["id"].is_unique and jobs["result_status"].eq("ok").all()
    files = result_files(tracker, tmp_path / "out")
    for index, row in jobs.iterrows():
        (path,) = files[index]
        assert path.parent.name == result_folder_name(row, row["id"]) and path.parent.name.endswith(row["id"])
        variables = S2_VARIABLES if row["sentinel"] == 2 else ["VV", "VH"]
        subdatasets = {name.rsplit(":", 1)[-1] for name, _ in gdal.Open(str(path)).GetSubDatasets()}
        assert set(variables) <= subdatasets
        for variable in variables:
            ds = gdal.Open(f'NETCDF:"{path}":{variable}')
            srs = osr.SpatialReference(wkt=ds.GetProjection())
            srs.AutoIdentifyEPSG()
            assert srs.GetAuthorityCode(None) == "32631"
            x0, dx, _, y0, _, dy = ds.GetGeoTransform()
            extent = row["spatial_extent"]
            assert (x0, y0) == (extent["west"], extent["north"])
            assert (x0 + dx * ds.RasterXSize, y0 + dy * ds.RasterYSize) == (extent["east"], extent["south"])
            assert ds.RasterCount == 3  # one step per month
        if row["sentinel"] == 2:
            dataset = gdal.Open(f'NETCDF:"{path}":B04')  # keep the dataset alive while reading its band
            red = dataset.GetRasterBand(1).ReadAsArray()
            assert 100 < float(pd.Series(red.ravel()).median()) < 3000  # reflectance DN, clouds masked
        else:  # the monthly recipe's S1 is in dB: negative tens, not linear power (0..1)
            vv, vh = (gdal.Open(f'NETCDF:"{path}":{v}').ReadAsArray() for v in ("VV", "VH"))
            assert -25 < vv.min() and vv.max() < -3 and -35 < vh.min() and vh.max() < -10
    usage = jobs[["cpu", "duration", "costs"]]
    assert usage.notna().all().all()


def test_notebook_csv_without_manager_columns_runs(backend, tmp_path):
    csv = tmp_path / "notebook.csv"
    table = notebook_jobs()
    table["spatial_extent"] = table["spatial_extent"].map(str)  # python repr, as the notebook's to_csv wrote it
    table.drop(columns=["geometry", "title", "tile_id"]).to_csv(csv, index=False)
    tracker = open_tracker(csv)
    assert tracker.count_by_status() == {"not_started": 8}
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    assert summary.counts == {"finished": 8} and summary.downloaded == 8
    reread = CsvTracker(csv).read()
    assert reread["status"].eq("finished").all() and reread["id"].notna().all()
    folders = sorted(p.parent.name for p in (tmp_path / "out").glob("*/*.nc"))  # no tile id in this table
    assert folders == sorted(f"S{s}_2023-01-01_2023-04-01_{i}" for s, i in zip(reread["sentinel"], reread["id"]))


def wait_for(condition, timeout: float = 30, what: str = "") -> None:
    """Wait until ``condition()`` is true; AssertionError when it is not within ``timeout`` s (never silent)."""
    wait_until(condition, timeout, what)


def start_slow_run(backend, tmp_path):
    """A run of the notebook's jobs in a thread, on a backend whose jobs take a minute."""
    backend.configure(run_seconds=[60, 60])
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    runner = make_runner(tracker, tmp_path / "out", backend.url)
    thread = daemon_thread(runner.run)
    return tracker, runner, thread


def test_a_call_in_a_background_thread_returns_its_result_or_raises_its_error_in_the_caller():
    caller = threading.get_native_id()
    assert call_in_background_thread(threading.get_native_id, "wac-test") != caller
    with pytest.raises(ZeroDivisionError):
        call_in_background_thread(lambda: 1 / 0, "wac-test")


def test_cancel_stops_a_run_with_active_jobs_within_seconds(backend, tmp_path):
    tracker, runner, thread = start_slow_run(backend, tmp_path)
    wait_for(lambda: any(j["status"] == "running" for j in backend.jobs()), what="a job running on the backend")
    cancelled_at = time.monotonic()
    runner.cancel(cancel_remote=True)
    thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < 5
    remote = {j["id"]: j["status"] for j in backend.jobs()}
    assert "canceled" in remote.values() and "running" not in remote.values()
    counts = tracker.count_by_status()
    assert set(counts) <= {"not_started", "canceled"} and sum(counts.values()) == 8  # no row lost
    tracked = tracker.read().set_index("id")["status"]
    assert all(tracked.get(job_id) == "canceled" for job_id, status in remote.items() if status == "canceled")


def test_a_backend_that_goes_away_mid_run_leaves_the_run_waiting_and_the_tracker_intact(tmp_path):
    """Its own backend process, killed while jobs run: connection refused on every call."""
    with running_backend(tmp_path / "backend") as (backend, process):
        backend.configure(run_seconds=[60, 60])
        tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
        runner = make_runner(tracker, tmp_path / "out", backend.url)
        thread = daemon_thread(runner.run)
        wait_for(lambda: tracker.count_by_status().get("running", 0) >= 2, what="two jobs running")
        before = tracker.read()[["id", "status"]]
        process.kill()
        process.wait(10)
        time.sleep(8)  # a few polls against a dead backend
        assert thread.is_alive()  # openeo 0.53 alone ended here (UnboundLocalError in _job_update_loop)
        after = tracker.read()[["id", "status"]]
        assert after.equals(before)  # nothing marked failed, nothing forgotten
        cancelled_at = time.monotonic()
        runner.cancel()
        thread.join(30)
        assert not thread.is_alive() and time.monotonic() - cancelled_at < 10


def test_cancel_during_a_download_removes_the_partial_file_and_a_rerun_downloads_it(backend, tmp_path):
    backend.configure(download_delay=0.3)  # 0.3 s per 64 KiB: a result takes a minute to arrive
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])
    runner = make_runner(tracker, tmp_path / "out", backend.url)
    thread = daemon_thread(runner.run)
    wait_for(lambda: list((tmp_path / "out").glob("*/*.part")), timeout=60, what="a download under way")
    cancelled_at = time.monotonic()
    runner.cancel()
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - cancelled_at < 5
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # no .part, no half .nc
    row = tracker.read().iloc[0]
    assert row["status"] == "finished" and row["result_status"] != "ok"

    backend.configure(download_delay=0.0)
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()  # resumes: downloads, creates nothing
    assert summary.downloaded == 1 and len(backend.jobs()) == 1


def test_resume_after_sigkill_creates_no_job_twice(backend, tmp_path):
    backend.configure(queue_seconds=[0.5, 1.5], run_seconds=[1, 3])
    create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    command = [sys.executable, "-m", "wac_extractor", "run", "--jobs", str(tmp_path / "jobs.gpkg"), "--backend",
               backend.url, "--parallel", "3", "--auth", "basic", "--username", "demo", "--output",
               str(tmp_path / "out"), "--poll", "0.3"]  # fmt: skip
    env = {**os.environ, "WAC_PASSWORD": "demo", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(backend.jobs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    created_before = len(backend.jobs())
    assert 0 < created_before < 8

    tracker = open_tracker(tmp_path / "jobs.gpkg")
    summary = make_runner(tracker, tmp_path / "out", backend.url, parallel=3).run()
    assert summary.counts == {"finished": 8} and summary.downloaded == 8
    remote = backend.jobs()
    assert len(remote) == 8
    assert sorted(j["id"] for j in remote) == sorted(tracker.read()["id"])


def test_a_job_created_just_before_a_crash_is_found_not_created_again(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    # Simulate a crash between "POST /jobs" and the tracker write: the row is marked as being
    # created, the backend has the job, the tracker has no id.
    connection = connect(backend.url, "basic", "demo", "demo")
    row = tracker.get_by_indices([0]).iloc[0]
    orphan = connection.create_job(job_cube(row), title=f"{row['title']} [wac:k0]")
    tracker.update_row(0, job_key="k0", create_requested_at="2026-01-01T00:00:00Z")

    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    assert summary.counts == {"finished": 8}
    assert len(backend.jobs()) == 8
    assert tracker.get_by_indices([0]).iloc[0]["id"] == orphan.job_id


def test_http_429_and_500_are_retried(backend, tmp_path):
    backend.faults(
        {"status": 429, "method": "POST", "path": "^/jobs$", "times": 2, "retry_after": 1},
        {"status": 500, "method": "GET", "path": "^/jobs/[^/]+$", "times": 3},
        {"status": 503, "method": "GET", "path": "/results$", "times": 2},
    )
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    assert summary.counts == {"finished": 8} and summary.downloaded == 8
    assert len(backend.jobs()) == 8
    counts = backend.requests()
    assert counts["POST /jobs"] == 8 + 2  # two refused with 429, each job created once


def test_failed_job_is_marked_error_with_its_log(backend, tmp_path):
    backend.configure(fail_title="S2 32631_684000_5631120")
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    events = []
    summary = make_runner(tracker, tmp_path / "out", backend.url, on_event=events.append).run()
    assert summary.counts == {"finished": 7, "error": 1}
    errors = [e for e in events if e.status == "error"]  # reported once, with the backend's message (was twice)
    assert len(errors) == 1 and "synthetic processing error" in errors[0].message
    failed = tracker.get_by_status(["error"]).iloc[0]
    assert failed["title"].startswith("S2 32631_684000_5631120")
    assert "synthetic processing error" in failed["error_message"]
    log = json.loads((tmp_path / "jobs_logs" / f"{failed['id']}.json").read_text())
    assert log and log[-1]["level"] == "error"
    assert not list((tmp_path / "out").glob(f"*{failed['id']}/*.nc"))


def test_a_job_stuck_in_queued_is_cancelled_and_marked_error_with_the_reason(backend, tmp_path):
    backend.configure(queue_seconds=[120, 120])  # the backend never gets to them
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:2])
    started = time.monotonic()
    events = []
    summary = make_runner(tracker, tmp_path / "out", backend.url, max_queued_seconds=1.5, on_event=events.append).run()
    assert summary.counts == {"error": 2} and time.monotonic() - started < 30
    errors = [e for e in events if e.status == "error"]
    assert len(errors) == 2 and all("still queued" in e.message for e in errors)  # one event a job, with the reason
    assert tracker.read()["error_message"].str.contains("still queued on the backend after").all()
    assert {j["status"] for j in backend.jobs()} == {"canceled"}


def test_truncated_download_is_retried_and_never_kept(backend, tmp_path):
    backend.configure(truncate_downloads=2)
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    events = []
    summary = make_runner(tracker, tmp_path / "out", backend.url, on_event=events.append).run()
    assert summary.downloaded == 8 and summary.downloads_failed == 0
    assert not list((tmp_path / "out").glob("*/*.part"))
    assert backend.requests()["GET /jobs/{id}/results/assets/openEO.nc"] == 8 + 2


def test_download_that_keeps_failing_is_reported_not_loaded(backend, tmp_path):
    backend.configure(truncate_downloads=100)
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])
    summary = make_runner(tracker, tmp_path / "out", backend.url, download_retries=2).run()
    assert summary.downloaded == 0 and summary.downloads_failed == 1
    row = tracker.read().iloc[0]
    assert row["result_status"] == "failed" and "cut off" in row["error_message"]
    assert not list((tmp_path / "out").glob("*/*.nc"))


def test_a_huge_content_length_is_refused_before_writing(backend, tmp_path):
    advertised = 10**13  # 10 TB: above the 20 GiB cap (and any free space)
    backend.configure(fake_content_length=advertised)
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])
    summary = make_runner(tracker, tmp_path / "out", backend.url, download_retries=1).run()
    assert summary.downloads_failed == 1
    message = tracker.read().iloc[0]["error_message"]
    assert f"is {advertised} bytes, above the limit" in message
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str = "20m"):
    """A real, nearly full disk: a tmpfs of ``size`` (needs root, as CI runs; skipped otherwise)."""
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_result_larger_than_the_free_space_is_refused_before_writing(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])
    with small_filesystem(tmp_path / "small") as output:
        summary = make_runner(tracker, output, backend.url, download_retries=1).run()
        assert summary.downloads_failed == 1
        assert not [p for p in output.rglob("*") if p.is_file() and p.name != ".wac-write-test"]
    message = tracker.read().iloc[0]["error_message"]
    assert "MB free; free some space or choose another output folder, then retry." in message


def test_a_full_disk_while_downloading_keeps_the_tracker_and_leaves_no_partial_file(backend, tmp_path, python_exe):
    """The CLI with a 1 MB file-size limit (RLIMIT_FSIZE): every result write fails like on a full disk."""
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])
    del tracker

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = {**os.environ, "WAC_PASSWORD": "demo", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [python_exe, "-m", "wac_extractor", "run", "--jobs", str(tmp_path / "jobs.gpkg"), "--output",
         str(tmp_path / "out"), "--backend", backend.url, "--auth", "basic", "--username", "demo", "--poll", "0.3"],
        env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "download_failed" in result.stdout and "cannot write into" in result.stdout
    row = open_tracker(tmp_path / "jobs.gpkg").read().iloc[0]
    assert row["status"] == "finished" and row["result_status"] == "failed"
    assert "File too large" in row["error_message"]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix in (".nc", ".part")]


def test_backend_speaks_openeo_to_the_unmodified_client(backend):
    import openeo

    connection = openeo.connect(backend.url)
    assert connection.capabilities().api_version() == "1.2.0"
    providers = connection.list_auth_providers()
    assert any(p["type"] == "oidc" and p["id"] == "local" for p in providers), providers
    assert any(p["type"] == "basic" for p in providers)
    s1 = connection.describe_collection("SENTINEL1_GLOBAL_MOSAICS")
    assert s1["extent"]["temporal"]["interval"] == [["2023-01-01T00:00:00Z", "2024-12-31T23:59:59Z"]]
    assert "netCDF" in connection.list_output_formats()
    with pytest.raises(Exception, match="401|Unauthorized|AuthenticationRequired"):
        connection.list_jobs()


def test_unwritable_output_folder_is_refused_before_any_job(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(Exception, match="output folder .* is not writable.*choose another folder"):
        make_runner(tracker, tmp_path / "a-file" / "out", backend.url).run()
    assert backend.jobs() == [] and tracker.count_by_status() == {"not_started": 8}


def test_a_second_run_on_the_same_tracker_is_refused(backend, tmp_path):
    _, first, thread = start_slow_run(backend, tmp_path)
    try:
        wait_for(backend.jobs, what="a job created by the first run")
        command = [sys.executable, "-m", "wac_extractor", "run", "--jobs", str(tmp_path / "jobs.gpkg"), "--backend",
                   backend.url, "--auth", "basic", "--username", "demo", "--output", str(tmp_path / "out")]  # fmt: skip
        env = {**os.environ, "WAC_PASSWORD": "demo", "PYTHONPATH": str(REPO)}
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "is in use by another run (pid" in second.stderr and "then run again" in second.stderr
    finally:
        first.cancel()
        thread.join(15)
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()  # still readable, nothing lost
    assert len(jobs) == 8 and jobs["title"].is_unique
    assert {j["id"] for j in backend.jobs()} <= set(jobs["id"].dropna())  # every job created is tracked


@pytest.mark.parametrize("name", ["../evil.nc", "/etc/passwd", "..", ".hidden", "", "a/../../b.nc"])
def test_hostile_asset_names_never_leave_the_job_folder(name):
    from wac_extractor.core.results.download import DownloadError, safe_asset_name

    try:
        safe = safe_asset_name(name)
    except DownloadError as exc:
        assert "not a plain file name" in str(exc)
        return
    assert "/" not in safe and "\\" not in safe and safe not in (".", "..") and not safe.startswith(".")


@pytest.mark.parametrize("key", ["../../evil.nc", ".."])
def test_hostile_asset_names_served_by_a_backend_never_leave_the_job_folder(backend, tmp_path, key):
    """The backend lists its result under a hostile name: kept inside <output>/<job id>/ or refused."""
    backend.configure(asset_key=key)
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".nc", ".part")]
    row = tracker.read().iloc[0]
    job_folder = tmp_path / "out" / result_folder_name(row, row["id"])
    assert all(p.parent == job_folder for p in written)
    if key == "..":
        assert summary.downloads_failed == 1 and not written
        assert "not a plain file name" in tracker.read().iloc[0]["error_message"]
    else:
        assert summary.downloaded == 1 and [p.name for p in written] == ["evil.nc"]


def test_retry_after_is_capped_at_30_seconds():
    """A backend asking to wait an hour (Retry-After: 3600) gets 30 s from the HTTP retries."""
    from urllib3.response import HTTPResponse

    from wac_extractor.core.jobs.retry import MAX_RETRY_AFTER_S, resilient_adapter

    retry = resilient_adapter().max_retries
    assert retry.get_retry_after(HTTPResponse(status=503, headers={"Retry-After": "3600"})) == MAX_RETRY_AFTER_S == 30
    assert retry.get_retry_after(HTTPResponse(status=503, headers={"Retry-After": "2"})) == 2
    assert 503 in retry.status_forcelist and "POST" not in retry.allowed_methods  # POST /jobs: the runner's own


def test_a_job_the_backend_refuses_is_skipped_with_the_reason(backend, tmp_path):
    backend.faults({"status": 400, "method": "POST", "path": "^/jobs$", "times": 1})
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    assert summary.counts == {"finished": 7, "skipped": 1}
    skipped = tracker.get_by_status(["skipped"]).iloc[0]
    assert "Injected HTTP 400" in skipped["error_message"]


def test_a_refused_status_read_right_after_a_start_does_not_end_the_run(backend, tmp_path):
    """openeo reads a new job's status right after start_job and let a 403 there end the whole run
    (seen on Debian 13 when a sign-in was revoked at that moment). The job is kept and checked again."""
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:2])
    backend.faults({"status": 403, "method": "GET", "path": "^/jobs/[^/]+$", "times": 1})
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    assert summary.counts == {"finished": 2} and summary.downloaded == 2
    assert backend.requests().get("FAULT /403") == 1
    assert len(backend.jobs()) == 2  # the job whose status read was refused was not created again


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("drop_variable", "openEO.nc lacks 1 of 15 expected variables (VV_P10); it holds VV_P25, VV_P50, VV_P75 "
                          "and 11 more"),
        ("extra_variable", "openEO.nc has 1 variable the job does not make (EXTRA)"),
        ("add_time", "openEO.nc: 15 variables with a time dimension (VV_P10, VV_P25, VV_P50 and 12 more; 1 step); "
                     "expected none"),
    ],
)  # fmt: skip
def test_a_result_that_is_not_what_the_recipe_makes_is_refused_with_the_reason(backend, tmp_path, tamper, reason):
    """The backend serves an LCFM Sentinel-1 result lacking a variable, with one more, or with a time axis."""
    backend.configure(result_tamper=tamper)
    jobs = notebook_jobs("lcfm")
    tracker = create_tracker(tmp_path / "jobs.gpkg", jobs[jobs["sentinel"] == 1].iloc[:1])
    summary = make_runner(tracker, tmp_path / "out", backend.url, download_retries=1).run()
    assert summary.downloaded == 0 and summary.downloads_failed == 1
    row = tracker.read().iloc[0]
    assert (row["status"], row["result_status"]) == ("finished", "failed")
    assert row["error_message"] == f"download failed: {reason}"
    assert not list((tmp_path / "out").glob("*/*.nc"))  # never where the map could load it
