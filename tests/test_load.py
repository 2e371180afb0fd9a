"""Load with faults: 500 jobs against a local backend where 5 % of all API calls fail with HTTP 500."""

from __future__ import annotations

import pytest

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

from .conftest import running_backend


@pytest.fixture(scope="module")
def fast_backend(tmp_path_factory):
    """A backend of its own: jobs start and run at once, four execute side by side."""
    args = ("--max-workers", "4", "--queue-seconds", "0", "0", "--run-seconds", "0", "0")
    with running_backend(tmp_path_factory.mktemp("load-backend"), *args) as (backend, _process):
        yield backend


@pytest.mark.slow
def test_500_jobs_with_5_percent_of_calls_failing_end_consistent_and_without_duplicates(fast_backend, tmp_path):
    plan = plan_grid(PlanRequest("2023-01-01", "2023-02-01", [1], 85, 1, recipe="monthly"), west=664000, south=5611120,
                     crs="EPSG:32631", window=200, gap=0, rows=20, cols=25)  # fmt: skip
    assert len(plan) == 500
    tracker = create_tracker(tmp_path / "jobs.gpkg", plan)
    fast_backend.faults({"status": 500, "probability": 0.05})  # any call, job creation and downloads included
    url = fast_backend.url
    summary = ExtractionRunner(tracker, tmp_path / "out", [(BackendSpec(url, 20), lambda: connect(url, "basic", "demo",
                               "demo"))], poll_interval=0.5).run()  # fmt: skip
    fast_backend.faults()
    counts = fast_backend.requests()
    faults = counts.pop("FAULT /500", 0)
    calls = sum(v for k, v in counts.items() if "/_control" not in k)

    jobs = tracker.read()
    remote = {job["id"]: job for job in fast_backend.jobs()}
    assert faults > 50 and 0.03 < faults / calls < 0.08  # the faults really hit a busy run, about 5 % of calls
    assert set(jobs["status"]) <= {"finished", "error"} and sum(summary.counts.values()) == 500
    errors = jobs[jobs["status"] == "error"]
    assert all(isinstance(m, str) and m for m in errors.get("error_message", []))  # every error says why
    assert len(remote) == 500 and jobs["id"].is_unique  # no job created twice
    assert all(remote[row["id"]]["status"] == row["status"] for _, row in jobs.iterrows())  # tracker = backend
    finished = jobs[jobs["status"] == "finished"]
    assert finished["result_status"].eq("ok").sum() + summary.downloads_failed == len(finished)
    assert summary.downloaded == finished["result_status"].eq("ok").sum()
