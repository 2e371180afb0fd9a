"""Credits against the local backend: costs and usage kept, projections, budgets, and a cap that holds."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from openeo.extra.job_management import CsvJobDatabase

from wac_extractor.core.jobs.credits import credit_report
from wac_extractor.core.jobs.tracker import create_tracker, open_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

from .conftest import notebook_jobs
from .test_runner import make_runner

# The local backend's price list, written out here: 0.01 credits per km2·month of Sentinel-1.
S1_CREDITS_PER_KM2_MONTH = 0.01


def s1_grid(rows: int, cols: int) -> pd.DataFrame:
    """rows x cols 10-km Sentinel-1 tiles of January 2023 (monthly recipe): every job costs the same."""
    request = PlanRequest("2023-01-01", "2023-02-01", ["s1"], 85, 1, recipe="monthly")
    return plan_grid(request, 664000, 5611120, "EPSG:32631", gap=0, rows=rows, cols=cols)


ONE_JOB = 100 * 31 / (365.25 / 12) * S1_CREDITS_PER_KM2_MONTH  # 100 km2 x 31 days


def test_a_capped_run_ends_at_the_cap_and_a_higher_cap_finishes_the_rest_without_duplicates(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", s1_grid(4, 5))
    cap = 7.5 * ONE_JOB  # room for 7 jobs
    summary = make_runner(tracker, tmp_path / "out", backend.url, parallel=3, max_credits=cap).run()
    assert summary.counts == {"finished": 7, "not_started": 13} and not summary.cancelled
    assert summary.cap_message() == (
        f"Credit cap reached: 13 jobs not started (spent {7 * ONE_JOB:,.1f} of {cap:,.1f} credits); "
        "raise the cap and run again to go on."
    )
    remote = backend.jobs()
    assert len(remote) == 7 and {job["status"] for job in remote} == {"finished"}  # none cancelled for the cap
    spent = pd.to_numeric(tracker.read()["costs"]).sum()
    assert spent == pytest.approx(7 * ONE_JOB, abs=0.01) and spent <= cap
    projected = credit_report(tracker.read()).projected_total

    summary = make_runner(tracker, tmp_path / "out", backend.url, parallel=3, max_credits=30).run()
    assert summary.counts == {"finished": 20} and not summary.cap_reached
    remote = backend.jobs()
    assert len(remote) == 20 and len({job["title"] for job in remote}) == 20  # the 7 were not created again
    total = pd.to_numeric(tracker.read()["costs"]).sum()
    assert projected == pytest.approx(total, rel=0.10)  # the projection made after 7 jobs, within 10 %


def test_without_costs_known_the_cap_starts_one_job_to_learn_them(backend, tmp_path):
    """No estimate endpoint and no finished job: one job runs alone, then the projection paces the rest."""
    backend.configure(estimates=False)
    tracker = create_tracker(tmp_path / "jobs.gpkg", s1_grid(2, 3))
    runner = make_runner(tracker, tmp_path / "out", backend.url, parallel=3, max_credits=3.5 * ONE_JOB)
    before = runner.credits()
    assert before.projected_total is None and "no estimate yet for 6 jobs" in before.text()
    progress = []
    runner.on_progress = progress.append
    summary = runner.run()
    assert summary.counts == {"finished": 3, "not_started": 3}
    first_running = next(p for p in progress if p.counts.get("running") or p.counts.get("queued"))
    assert sum(first_running.counts.get(s, 0) for s in ("created", "queued", "running")) == 1  # learning alone
    assert summary.credits.projected_total == pytest.approx(6 * ONE_JOB, rel=0.01)


@pytest.mark.parametrize("kind", ["jobs.gpkg", "jobs.csv", "notebook.csv"])
def test_costs_and_usage_with_units_are_kept_in_every_tracker_kind(backend, tmp_path, kind):
    jobs = notebook_jobs().iloc[:2]
    if kind == "notebook.csv":  # written by openeo's own CsvJobDatabase, as the notebook does
        CsvJobDatabase(tmp_path / kind).initialize_from_df(jobs.drop(columns=["geometry"], errors="ignore"))
        tracker = open_tracker(tmp_path / kind)
    else:
        tracker = create_tracker(tmp_path / kind, jobs)
    make_runner(tracker, tmp_path / "out", backend.url).run()
    table = tracker.read()
    remote = {job["id"]: job for job in backend.jobs()}
    assert len(remote) == 2
    for _, row in table.iterrows():
        costs = float(row["costs"])
        assert costs > 0
        assert row["cpu"] == f"{round(costs * 36, 2)} cpu-seconds"
        assert row["memory"] == f"{round(costs * 2000)} mb-seconds"
        assert str(row["input_pixel"]).endswith("mega-pixel") and str(row["duration"]).endswith("seconds")
    report = credit_report(table)
    assert report.spent == pytest.approx(pd.to_numeric(table["costs"]).sum()) and report.jobs_with_costs == 2


def test_a_job_budget_below_its_cost_ends_it_in_error_with_the_backends_message(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", s1_grid(1, 2))
    summary = make_runner(tracker, tmp_path / "out", backend.url, job_budget=0.5 * ONE_JOB).run()
    assert summary.counts == {"error": 2}
    table = tracker.read()
    assert table["error_message"].str.contains("would exceed its budget").all()
    assert (pd.to_numeric(table["costs"]) <= 0.5 * ONE_JOB + 1e-6).all()  # charged up to the budget only


def test_a_projection_over_the_remaining_budget_is_warned_once(backend, tmp_path, caplog):
    backend.configure(budget=2.0)  # the account has 2 credits left; the 6 jobs need about 6
    tracker = create_tracker(tmp_path / "jobs.gpkg", s1_grid(2, 3))
    progress = []
    with caplog.at_level(logging.WARNING, logger="wac_extractor.core.jobs.runner"):
        make_runner(tracker, tmp_path / "out", backend.url, on_progress=progress.append).run()
    warnings = [r.getMessage() for r in caplog.records if "left in the budget" in r.getMessage()]
    assert len(warnings) == 1 and "more than the 2.0 left" in warnings[0]
    assert any(p.credits.over_budget for p in progress)
    assert progress[0].credits.budget_left == pytest.approx(2.0)


def test_the_budget_left_is_read_again_from_the_backend_as_jobs_end(backend, tmp_path):
    """Issue 24: "budget left 1,000.0" stayed after 159.7 credits were spent (the backend said 840.3)."""
    tracker = create_tracker(tmp_path / "jobs.gpkg", s1_grid(2, 2))
    progress = []
    make_runner(tracker, tmp_path / "out", backend.url, on_progress=progress.append).run()
    spent = pd.to_numeric(tracker.read()["costs"]).sum()
    assert progress[0].credits.budget_left == pytest.approx(1000.0)
    assert spent == pytest.approx(4 * ONE_JOB, abs=0.01)
    assert progress[-1].credits.budget_left == pytest.approx(1000.0 - spent, abs=0.01)


def test_invalid_caps_say_what_to_change(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", s1_grid(1, 1))
    with pytest.raises(ValueError, match="max credits: -1 is not a cap"):
        make_runner(tracker, tmp_path / "out", backend.url, max_credits=-1)
    with pytest.raises(ValueError, match="job budget: 0 is not a budget"):
        make_runner(tracker, tmp_path / "out", backend.url, job_budget=0)
