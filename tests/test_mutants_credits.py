"""The credit projection and cap, figure by figure, without a backend (issue 26: mutation score of credits.py).

Each test kills mutants of ``wac_extractor/core/jobs/credits.py`` that the backend tests of
``test_credits.py`` cannot reach in a mutation run (they start the local backend); tests/README.md
lists the mutant each one was seen failing on.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from wac_extractor.core.jobs.credits import (
    CreditCap,
    CreditReport,
    JobMeasures,
    cost_key,
    cost_rates,
    credit_report,
    earlier_attempts_costs,
    job_size,
    projected_costs,
)

MONTH_DAYS = 365.25 / 12
JANUARY = ["2023-01-01", "2023-02-01"]  # 31 days


def utm(west=600000, south=5600000, km=10):
    return {"west": west, "south": south, "east": west + km * 1000, "north": south + km * 1000, "crs": 32631}


def job(status="not_started", costs=None, sentinel=2, recipe="lcfm", km=10, window=JANUARY, **more):
    return {"status": status, "costs": costs, "sentinel": sentinel, "recipe": recipe,
            "spatial_extent": utm(km=km), "temporal_extent": list(window), **more}  # fmt: skip


def frame(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def size(km=10, days=31):
    return km * km * days / MONTH_DAYS


def test_job_size_is_km2_times_months_in_utm_and_in_degrees():
    assert job_size(pd.Series(job())) == pytest.approx(size(), rel=1e-12)
    # a CSV tracker keeps the cells as JSON text: the same size
    text = pd.Series(
        {"spatial_extent": json.dumps(utm(km=20)), "temporal_extent": json.dumps(["2023-03-01", "2023-05-01"])}
    )
    assert job_size(text) == pytest.approx(size(km=20, days=61), rel=1e-12)
    # degrees (EPSG:4326, or no crs at all): a local approximation at the tile's mid latitude
    degrees = {"west": 4.0, "east": 4.2, "south": 50.0, "north": 50.1}
    expected = 0.2 * 111.32 * math.cos(math.radians(50.05)) * 0.1 * 110.57 * 31 / MONTH_DAYS
    for crs in ({}, {"crs": 4326}, {"crs": "EPSG:4326"}):
        row = pd.Series({"spatial_extent": {**degrees, **crs}, "temporal_extent": JANUARY})
        assert job_size(row) == pytest.approx(expected, rel=1e-12), crs
    # the dates may carry a time of day
    assert job_size(pd.Series(job(window=["2023-01-01T00:00:00Z", "2023-02-01T00:00:00Z"]))) == pytest.approx(size())


@pytest.mark.parametrize(
    "extent, window",
    [(None, JANUARY), ("not json", JANUARY), (utm(), None), (utm(), ["2023-01-01"]),
     (utm(), ["2023-01-01", "2023-02-01", "2023-03-01"]), (utm(), "2023-01-01")],
)  # fmt: skip
def test_a_job_without_extent_or_window_has_no_size(extent, window):
    assert math.isnan(job_size(pd.Series({"spatial_extent": extent, "temporal_extent": window})))


def test_cost_key_is_recipe_and_sensor_with_the_default_recipe():
    assert cost_key(pd.Series({"recipe": "monthly", "sentinel": 1})) == "monthly S1"
    assert cost_key(pd.Series({"sentinel": 2})) == "lcfm S2"
    assert cost_key(pd.Series({"recipe": float("nan"), "sentinel": 2.0})) == "lcfm S2"
    assert cost_key(pd.Series({"recipe": "lcfm", "sentinel": None})) == "lcfm S0"


def test_job_measures_are_computed_once_per_job_and_follow_the_frames_index():
    measures = JobMeasures()
    jobs = frame(job(km=10), job(km=20, sentinel=1, recipe="monthly"))
    sizes, keys = measures.of(jobs)
    assert sizes.tolist() == pytest.approx([size(10), size(20)])
    assert keys.tolist() == ["lcfm S2", "monthly S1"]
    assert sizes.dtype == float
    # the same jobs later (another poll): not measured again, whatever their cells say now
    changed = jobs.copy()
    changed.at[0, "spatial_extent"] = utm(km=1)
    again, _ = measures.of(changed)
    assert again.tolist() == pytest.approx([size(10), size(20)])
    # a subset in another order keeps its own index
    subset, subset_keys = measures.of(jobs.loc[[1]])
    assert subset.index.tolist() == [1] and subset.tolist() == pytest.approx([size(20)])
    assert subset_keys.tolist() == ["monthly S1"]


def test_earlier_attempts_costs_add_every_paid_attempt():
    assert earlier_attempts_costs(frame(job())) == 0.0
    attempts = [
        [{"costs": 1.5}, {"costs": 2}],
        json.dumps([{"costs": 0.25}, {"costs": None}, {"costs": "3"}, "not a dict"]),  # CSV: JSON text
        None,
        "not json",
        json.dumps({"costs": 100}),  # not a list: nothing
    ]
    jobs = frame(*[job(attempts=a) for a in attempts])
    assert earlier_attempts_costs(jobs) == 3.75


def test_rates_come_from_reported_costs_first_and_from_estimates_for_the_other_kinds():
    assert cost_rates(pd.DataFrame()) == {}
    jobs = frame(
        job(costs=10.0, km=10),
        job(costs=30.0, km=20),
        job(status="created", estimated_costs=1000.0),  # an estimate of a kind with costs: ignored
        job(sentinel=1, estimated_costs=4.0),  # S1 has only an estimate
        job(sentinel=1, estimated_costs="6"),  # text, as a CSV tracker gives it
        job(recipe="monthly", costs=5.0, spatial_extent=None),  # no size: cannot give a rate
    )
    rates = cost_rates(jobs)
    assert set(rates) == {"lcfm S2", "lcfm S1"}
    assert rates["lcfm S2"] == pytest.approx(40.0 / (size(10) + size(20)), rel=1e-12)
    assert rates["lcfm S1"] == pytest.approx(10.0 / (2 * size(10)), rel=1e-12)


def test_a_zero_sized_job_gives_no_rate():
    zero = job(costs=3.0)
    zero["temporal_extent"] = ["2023-01-01", "2023-01-01"]
    assert cost_rates(frame(zero)) == {}


def test_projected_costs_are_rate_times_size_and_nan_without_a_rate():
    jobs = frame(job(km=10), job(km=20), job(sentinel=1))
    projected = projected_costs(jobs, {"lcfm S2": 0.5})
    assert projected.tolist()[:2] == pytest.approx([0.5 * size(10), 0.5 * size(20)])
    assert math.isnan(projected.tolist()[2])


def test_the_report_adds_spent_attempts_and_the_projection_of_the_jobs_still_to_run():
    jobs = frame(
        job(status="finished", costs=10.0, attempts=[{"costs": 2.0}]),
        job(status="error", costs=1.0),
        job(status="running"),
        job(status="not_started", km=20),
        job(status="skipped", km=30),  # will not run: no projection
        job(status="canceled", km=30),
    )
    report = credit_report(jobs, budget_left=500.0, cap=100.0, held_by_cap=3)
    assert report.spent == pytest.approx(13.0)
    assert report.jobs_with_costs == 2
    assert report.without_estimate == 0
    rate = 11.0 / (2 * size())
    assert report.projected_total == pytest.approx(13.0 + rate * (size() + size(20)), rel=1e-12)
    assert (report.budget_left, report.cap, report.held_by_cap) == (500.0, 100.0, 3)
    assert report.rates == {"lcfm S2": pytest.approx(rate)}
    assert report.text() == (
        f"13.0 credits spent (2 jobs); projected {report.projected_total:,.1f} for the run; cap 100.0; "
        "budget left 500.0"
    )


def test_without_a_rate_the_report_says_no_estimate_yet_and_counts_the_jobs():
    jobs = frame(job(status="finished", costs=2.0), job(sentinel=1), job(sentinel=1, status="running"))
    report = credit_report(jobs)
    assert report.projected_total is None and report.without_estimate == 2
    assert report.text() == "2.0 credits spent (1 jobs); no estimate yet for 2 jobs"
    assert not report.over_budget
    nothing = credit_report(frame(job(), job()))
    assert (nothing.spent, nothing.jobs_with_costs, nothing.without_estimate) == (0.0, 0, 2)
    assert credit_report(pd.DataFrame({"status": []})).spent == 0.0


def test_over_budget_is_the_projection_still_to_spend_above_the_budget_left():
    def report(projected, budget_left, spent=10.0):
        return CreditReport(spent, 1, projected, 0, budget_left)

    assert report(60.0, 49.0).over_budget  # 50 still to spend
    assert not report(60.0, 50.0).over_budget  # exactly what is left
    assert not report(60.0, 51.0).over_budget
    assert not report(None, 1.0).over_budget
    assert not report(1e9, None).over_budget
    assert (
        report(1234567.0, 5.0).text()
        == "10.0 credits spent (1 jobs); projected 1,234,567.0 for the run; budget left 5.0"
    )


def cap_frame(*rows):
    jobs = frame(*rows)
    return jobs, jobs[jobs["status"] == "not_started"]


def test_the_cap_admits_jobs_in_order_while_their_cost_fits_exactly_or_below():
    one = 10.0  # a 10 km, 31-day S2 job costs 10 once a finished one reported 10
    jobs, candidates = cap_frame(job(status="finished", costs=one), job(), job(), job(), job(km=5))
    admitted, held = CreditCap(one + 2 * one).admit(candidates, jobs)  # 10 spent, 20 left: two jobs exactly
    assert admitted.index.tolist() == [1, 2] and held == 2
    admitted, held = CreditCap(one + 2 * one - 0.01).admit(candidates, jobs)
    # the third 10-credit job does not fit, the small one after it (2.5) does
    assert admitted.index.tolist() == [1, 4] and held == 2


def test_the_cap_counts_running_jobs_projection_and_earlier_attempts():
    jobs, candidates = cap_frame(
        job(status="finished", costs=10.0, attempts=[{"costs": 5.0}]),  # 15 spent
        job(status="running"),  # projected 10
        job(status="queued", km=20),  # projected 40
        job(status="finished", costs=None, sentinel=1),  # not active: not counted
        job(),
    )
    admitted, held = CreditCap(75.0).admit(candidates, jobs)
    assert admitted.index.tolist() == [4] and held == 0
    admitted, held = CreditCap(74.9).admit(candidates, jobs)
    assert admitted.empty and held == 1


def test_a_job_of_unknown_cost_starts_alone_and_only_while_credits_are_left():
    jobs, candidates = cap_frame(job(status="finished", costs=10.0), job(sentinel=1), job(sentinel=1), job())
    admitted, held = CreditCap(100.0).admit(candidates, jobs)
    assert admitted.index.tolist() == [1, 3] and held == 1  # one S1 to learn the rate, the S2 job of known cost
    admitted, _ = CreditCap(10.0).admit(candidates, jobs)  # nothing left
    assert admitted.empty
    running, candidates = cap_frame(job(status="running", sentinel=1), job(sentinel=1))
    admitted, held = CreditCap(100.0).admit(candidates, running)  # one of unknown cost already runs
    assert admitted.empty and held == 1
    nothing, _ = cap_frame(job())
    admitted, held = CreditCap(5).admit(nothing.iloc[:0], nothing)
    assert admitted.empty and held == 0
    assert CreditCap("7.5").max_credits == 7.5


def stale(measures: JobMeasures, jobs: pd.DataFrame) -> pd.DataFrame:
    """The jobs as measured once (10 km tiles), then with cells that would measure otherwise (1 km)."""
    measures.of(jobs)
    changed = jobs.copy()
    changed["spatial_extent"] = [utm(km=1)] * len(changed)
    return changed


def test_the_report_and_the_cap_use_the_measures_they_are_given():
    """A run measures each job once (10,000 jobs, every poll): the report and the cap must reuse that."""
    measures = JobMeasures()
    jobs = stale(measures, frame(job(status="finished", costs=10.0), job(status="running"), job(), job()))
    report = credit_report(jobs, measures=measures)
    assert report.projected_total == pytest.approx(40.0) and report.rates == {"lcfm S2": pytest.approx(10 / size())}
    admitted, held = CreditCap(30.0, measures=measures).admit(jobs[jobs["status"] == "not_started"], jobs)
    assert admitted.index.tolist() == [2] and held == 1  # 10 spent, 10 running, 10 left: one more job


def test_figures_without_costs_column_estimates_only_or_tiny_jobs():
    no_costs = pd.DataFrame([{k: v for k, v in job().items() if k != "costs"} for _ in range(3)])
    report = credit_report(no_costs)
    assert (report.spent, report.jobs_with_costs, report.without_estimate, report.held_by_cap) == (0.0, 0, 3, 0)
    empty = credit_report(pd.DataFrame())
    assert (empty.spent, empty.projected_total, empty.without_estimate) == (0.0, 0.0, 0)
    assert JobMeasures().of(frame(job()).iloc[:0])[0].dtype == float
    # costs as text that is not a number (a CSV tracker): no cost, not an error
    text = frame(job(status="finished", costs="n/a"), job(status="finished", costs="4"))
    assert credit_report(text).spent == 4.0
    # an attempts cell that is a number: nothing to add
    assert earlier_attempts_costs(frame(job(attempts=7.0), job(attempts=[{"costs": 1.0}]))) == 1.0
    # a tiny job (1 km, one day: 0.03 km2·month) still gives a rate
    tiny = job(costs=0.3, km=1, window=["2023-01-01", "2023-01-02"])
    assert cost_rates(frame(tiny)) == {"lcfm S2": pytest.approx(0.3 / size(km=1, days=1))}


def test_the_cap_spends_from_zero_before_any_cost_and_admits_an_unknown_job_with_little_left():
    jobs, candidates = cap_frame(job(status="created", estimated_costs=10.0), job())
    jobs = jobs.assign(status=["created", "not_started"])
    admitted, held = CreditCap(20.0).admit(candidates, jobs)  # 0 spent, 10 projected running, 10 left
    assert admitted.index.tolist() == [1] and held == 0
    jobs, candidates = cap_frame(job(status="finished", costs=9.5), job(sentinel=1))
    admitted, _ = CreditCap(10.0).admit(candidates, jobs)  # 0.5 left: the unknown job may learn the rate
    assert admitted.index.tolist() == [1]
