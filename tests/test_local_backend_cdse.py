"""The local backend's cdse profile, driven with the plain ``openeo`` client as a user's notebook would.

CDSE (openeo-geopyspark-driver) refuses a start beyond the per-user concurrent job limit, offers no estimate
and no budget, loses some Sentinel-1 jobs (no assets, Orfeo toolbox errors) and fails jobs whose executors run
out of memory. The session's backend switches to the profile here and ``reset`` brings the default back.
"""

from __future__ import annotations

import time

import openeo
import pytest
import requests
from openeo.rest import OpenEoApiError

from .conftest import notebook_jobs

LIMIT_MESSAGE = "Job was not started because concurrent job limit (2) is reached."
MEMORY_MESSAGE = (
    "Your batch job failed because workers used too much Python memory. The same task was attempted multiple "
    "times. Consider increasing executor-memoryOverhead or contact the developers to investigate."
)
FAST = {"queue_seconds": [0, 0], "run_seconds": [0.1, 0.1]}
QUIET = {"s1_lost_share": 0.0, "s1_error_share": 0.0}  # no lost Sentinel-1 job unless a test asks for it


@pytest.fixture
def cdse(backend):
    """The session's backend in the cdse profile (fast jobs, no random Sentinel-1 loss); reset afterwards."""
    backend.profile("cdse", **FAST, **QUIET)
    return backend


def connect(backend):
    return openeo.connect(backend.url).authenticate_basic("demo", "demo")


def s1_cube(connection, west=664000, months=("2023-01-01", "2023-02-01")):
    """A monthly Sentinel-1 tile of 1 km (light: the backend executes it in a blink)."""
    extent = {"west": west, "south": 5611120, "east": west + 1000, "north": 5612120, "crs": 32631}
    cube = connection.load_collection("SENTINEL1_GLOBAL_MOSAICS", spatial_extent=extent,
                                      temporal_extent=list(months), bands=["VV", "VH"])  # fmt: skip
    return cube.save_result(format="netCDF")


def lcfm_s2_graph():
    """The plugin's LCFM Sentinel-2 graph of the notebook's first tile: 10 km x 10 km, 2023-01..03."""
    from wac_extractor.core.recipes.process_graphs import job_cube

    table = notebook_jobs("lcfm")
    return job_cube(table[table["sentinel"] == 2].iloc[0]).flat_graph()


def wait(job, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := job.status()) not in ("finished", "error", "canceled"):
        assert time.monotonic() < deadline, f"job {job.job_id} still {status}"
        time.sleep(0.1)
    return status


def control_job(backend, job_id):
    return next(j for j in backend.jobs() if j["id"] == job_id)


def test_cdse_third_start_gets_concurrent_job_limit_and_the_job_stays_created(cdse):
    cdse.configure(run_seconds=[30, 30])  # the first two stay running
    notebook, other_client = connect(cdse), connect(cdse)  # two clients, one user
    first = other_client.create_job(s1_cube(other_client, west=664000), title="other client")
    first.start()
    second = notebook.create_job(s1_cube(notebook, west=666000), title="second")
    second.start()
    third = notebook.create_job(s1_cube(notebook, west=668000), title="third")
    with pytest.raises(OpenEoApiError) as refused:
        third.start()
    assert refused.value.http_status_code == 400
    assert refused.value.code == "ConcurrentJobLimit"
    assert refused.value.message == LIMIT_MESSAGE
    assert third.status() == "created"
    assert {second.status(), first.status()} <= {"queued", "running"}
    second.stop()  # a slot frees up: the same job starts now
    third.start()
    assert third.status() in ("queued", "running")


def test_cdse_prefilled_running_jobs_count_towards_the_limit(cdse):
    ids = cdse.prefill(2, status="running", seconds=1.5)["ids"]
    assert [control_job(cdse, i)["status"] for i in ids] == ["running", "running"]
    connection = connect(cdse)
    assert {j["id"] for j in connection.list_jobs()} >= set(ids)  # the user's own account shows them
    job = connection.create_job(s1_cube(connection), title="blocked")
    with pytest.raises(OpenEoApiError) as refused:
        job.start()
    assert refused.value.code == "ConcurrentJobLimit" and job.status() == "created"
    deadline = time.monotonic() + 10
    while any(control_job(cdse, i)["status"] == "running" for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    job.start()
    assert wait(job) == "finished"
    cdse.prefill(3, user="alice", status="running")  # another user's jobs do not count
    second = connection.create_job(s1_cube(connection, west=670000), title="free")
    second.start()
    assert wait(second) == "finished"


def test_cdse_has_no_estimate_no_budget_and_does_not_enforce_a_job_budget(cdse):
    connection = connect(cdse)
    endpoints = {e["path"] for e in connection.get("/").json()["endpoints"]}
    assert "/jobs/{job_id}/estimate" not in endpoints and "/jobs/{job_id}" in endpoints
    assert "budget" not in connection.describe_account()
    job = connection.create_job(s1_cube(connection), title="tiny budget", budget=1e-6)
    with pytest.raises(OpenEoApiError) as unsupported:
        job.estimate()
    assert (unsupported.value.http_status_code, unsupported.value.code) == (501, "FeatureUnsupported")
    job.start()
    assert wait(job) == "finished"  # its costs exceed its budget; CDSE does not stop it (openeo-api#541)
    assert job.describe()["costs"] > 1e-6


def test_cdse_s1_job_finishes_with_empty_assets_on_its_first_attempt_only(cdse):
    cdse.configure(s1_lost_share=1.0, failure_seed=7)  # every Sentinel-1 graph's first run is lost
    connection = connect(cdse)
    lost = connection.create_job(s1_cube(connection), title="lost")
    lost.start()
    assert wait(lost) == "finished"
    assert lost.get_results().get_metadata()["assets"] == {}
    again = connection.create_job(s1_cube(connection), title="the same graph again")
    again.start()
    assert wait(again) == "finished"
    assert list(again.get_results().get_metadata()["assets"])  # the re-run has its NetCDF
    assert control_job(cdse, again.job_id)["attempt"] == 2


def test_cdse_s1_job_ends_in_error_with_the_orfeo_lut_message(cdse):
    cdse.configure(s1_error_next=1)  # the next Sentinel-1 job that runs fails
    connection = connect(cdse)
    failed = connection.create_job(s1_cube(connection), title="otb")
    failed.start()
    assert wait(failed) == "error"
    messages = [entry["message"] for entry in failed.logs(level="error")]
    wording = ("Exception thrown in otbApplication", "otb::ERROR: Missing LUT metadata for index",
               "you should call the calibration without 'removenoise' parameter")  # fmt: skip
    assert any(all(part in m for part in wording) for m in messages)
    failed.start()  # the same job restarted (or a new one) runs through
    assert wait(failed) == "finished"
    assert list(failed.get_results().get_metadata()["assets"])


def test_cdse_lcfm_s2_tile_runs_out_of_memory_and_passes_with_executor_memory_raised_1_5x(cdse):
    cdse.configure(memory_scale=1.7, resolution=100)  # 100 m keeps the real execution short
    connection = connect(cdse)
    graph = lcfm_s2_graph()
    small = connection.create_job(graph, title="LCFM S2, default job options")
    small.start()
    assert wait(small) == "error"
    assert MEMORY_MESSAGE in [entry["message"] for entry in small.logs(level="error")]
    assert any("Container killed on request. Exit code is 143" in e["message"] for e in small.logs())
    seen = control_job(cdse, small.job_id)
    assert seen["memory_limit_mb"] == 2048 + 1800  # CDSE's defaults: executor-memory 2G, memoryOverhead 1800m
    assert 3848 < seen["memory_need_mb"] <= 1.5 * 2048 + 1800
    options = {"executor-memory": "3G"}
    raised = connection.create_job(graph, title="LCFM S2, 1.5x executor-memory", job_options=options)
    raised.start()
    assert wait(raised, timeout=120) == "finished"
    assert control_job(cdse, raised.job_id)["memory_limit_mb"] == 3072 + 1800


def test_cdse_keeps_each_jobs_job_options_visible_through_control(cdse):
    connection = connect(cdse)
    options = {"executor-memory": "4G", "executor-memoryOverhead": "2G", "python-memory": "1G", "max-executors": 5}
    job = connection.create_job(s1_cube(connection), title="options", job_options=options)
    plain = connection.create_job(s1_cube(connection, west=668000), title="no options")
    assert control_job(cdse, job.job_id)["job_options"] == options
    assert control_job(cdse, job.job_id)["memory_limit_mb"] == 4096 + 2048 + 1024
    assert control_job(cdse, plain.job_id)["job_options"] is None
    assert job.describe()["job_options"] == options  # extra metadata, not in the openEO API
    assert control_job(cdse, plain.job_id)["owner"] == "demo"


def test_reset_brings_the_default_profile_back(backend):
    backend.profile("cdse")
    assert backend.configure()["concurrent_job_limit"] == 2
    backend.reset()
    config = backend.configure()
    assert (config["profile"], config["concurrent_job_limit"], config["estimates"]) == ("default", 0, True)
    assert not config["memory_check"] and config["enforce_budget"]
    token = requests.get(f"{backend.url}/credentials/basic", auth=("demo", "demo"), timeout=10).json()["access_token"]
    me = requests.get(f"{backend.url}/me", headers={"Authorization": f"Bearer basic//{token}"}, timeout=10).json()
    assert me["budget"] == 1000.0
    assert backend.profile("default", estimates=False)["estimate_status"] == 404  # default profile: 404 as before
