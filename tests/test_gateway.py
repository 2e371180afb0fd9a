"""A gateway in front of the backend: answers lost after the backend acted, and paged job listings.

The local backend's gateway mode carries a request out, then answers 502 with an empty or HTML
body (as proxies do when the upstream is slow). A lost ``POST /jobs`` answer means "maybe
created": the runner must look the job up by its key across every page of ``GET /jobs`` and
adopt it, never pay for it twice, and never stop the run.
"""

from __future__ import annotations

import pytest

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

from .conftest import notebook_jobs, running_backend

OLD_JOBS = 5_000


@pytest.fixture(scope="module")
def gateway_backend(tmp_path_factory):
    """A backend of its own: jobs start and run at once, four execute side by side."""
    args = ("--max-workers", "4", "--queue-seconds", "0", "0", "--run-seconds", "0", "0")
    with running_backend(tmp_path_factory.mktemp("gateway-backend"), *args) as (backend, _process):
        yield backend


@pytest.fixture
def gateway(gateway_backend):
    gateway_backend.reset()
    gateway_backend.prefill(OLD_JOBS)
    yield gateway_backend
    gateway_backend.reset()


def run(backend, tracker, output, parallel=10):
    url = backend.url
    spec = BackendSpec(url, parallel)
    return ExtractionRunner(tracker, output, [(spec, lambda: connect(url, "basic", "demo", "demo"))],
                            poll_interval=0.3).run()  # fmt: skip


def new_jobs(backend):
    return [job for job in backend.jobs() if not job["id"].startswith("old-")]


def test_the_account_lists_its_jobs_in_pages_newest_first(gateway):
    connection = connect(gateway.url, "basic", "demo", "demo")
    first = connection.get("/jobs", params={"limit": 100}, expected_status=200).json()
    assert len(first["jobs"]) == 100
    (link,) = [link for link in first["links"] if link["rel"] == "next"]
    assert link["href"].endswith("/jobs?limit=100&offset=100")
    # openeo's own listing reads one page: why the runner's look-up follows the next links.
    assert len(connection.list_jobs(limit=None)) == 100


@pytest.mark.slow
def test_200_jobs_with_10_percent_of_creates_losing_their_answer_finish_in_one_run_without_duplicates(
    gateway, tmp_path
):
    plan = plan_grid(PlanRequest("2023-01-01", "2023-02-01", [1], 85, 1, recipe="monthly"), west=664000,
                     south=5611120, crs="EPSG:32631", window=200, gap=0, rows=10, cols=20)  # fmt: skip
    assert len(plan) == 200
    tracker = create_tracker(tmp_path / "jobs.gpkg", plan)
    gateway.faults(
        {"status": 502, "method": "POST", "path": "^/jobs$", "probability": 0.05, "after": True, "body": "empty"},
        {"status": 504, "method": "POST", "path": "^/jobs$", "probability": 0.05, "after": True, "body": "html"},
    )
    summary = run(gateway, tracker, tmp_path / "out")
    counts = gateway.requests()
    gateway.faults()

    lost = counts.get("LOST POST /jobs", 0)
    assert lost >= 10  # about 10 % of the creates lost their answer after the job was created
    assert summary.counts == {"finished": 200} and summary.downloaded == 200 and not summary.cancelled
    remote = new_jobs(gateway)
    assert len(remote) == 200  # each row's job created once, the lost ones adopted
    jobs = tracker.read()
    assert jobs["id"].is_unique and set(jobs["id"]) == {job["id"] for job in remote}
    assert len(gateway.jobs()) == OLD_JOBS + 200


def test_a_create_that_never_arrived_is_created_again_after_a_look_up(gateway, tmp_path):
    """A 502 before the backend acted (nothing created): looked up, not found, created again."""
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:2])
    gateway.faults({"status": 502, "method": "POST", "path": "^/jobs$", "times": 2, "body": "empty"})
    summary = run(gateway, tracker, tmp_path / "out")
    counts = gateway.requests()
    assert summary.counts == {"finished": 2} and len(new_jobs(gateway)) == 2
    assert counts.get("FAULT /502") == 2 and counts.get("POST /jobs") == 4
    # Each failed create was followed by a look-up through every page (5,000 old jobs, 100 a page).
    assert counts.get("GET /jobs", 0) >= 2 * (OLD_JOBS // 100)


@pytest.mark.parametrize("body", ["empty", "html", "json"])
def test_every_other_call_survives_gateway_errors(gateway, tmp_path, body):
    """Start, status, results, logs and downloads each answered 502 once after acting."""
    backend_jobs = notebook_jobs().iloc[:2]
    tracker = create_tracker(tmp_path / "jobs.gpkg", backend_jobs)
    gateway.faults(*[
        {"status": 502, "method": method, "path": path, "times": 1, "after": True, "body": body}
        for method, path in (("POST", "/results$"), ("GET", "^/jobs/[^/]+$"), ("GET", "/results$"),
                             ("GET", "/assets/"))
    ])  # fmt: skip
    summary = run(gateway, tracker, tmp_path / "out", parallel=2)
    assert summary.counts == {"finished": 2} and summary.downloaded == 2
    assert len(new_jobs(gateway)) == 2
    assert gateway.requests().get("FAULT /502") == 4


@pytest.mark.parametrize("mode", ["signed", "redirect"])
def test_assets_on_a_second_origin_download_without_our_token(backend, tmp_path, mode):
    """Signed URLs to a storage host, or a 302 from the API to one: downloaded, and no token sent there."""
    backend.configure(asset_mode=mode)
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:2])
    summary = run(backend, tracker, tmp_path / "out", parallel=2)
    assert summary.counts == {"finished": 2} and summary.downloaded == 2
    storage = backend.storage()
    downloads = [r for r in storage["requests"] if r["path"].startswith("/signed/")]
    assert len(downloads) == 2  # each result came from the storage origin
    assert not any(r["authorization"] for r in storage["requests"])  # and never with our token
    assert storage["url"].split(":")[-1] != backend.url.split(":")[-1]  # another origin (port)


def test_without_a_signature_the_storage_refuses(backend):
    """The storage checks its signatures: the test above would fail if anything could fetch there."""
    import requests

    response = requests.get(
        backend.storage()["url"] + "/signed/j-1/openEO.nc?expires=9999999999&signature=x", timeout=10
    )
    assert response.status_code == 403
