"""Runs against the local backend's ``cdse`` profile: CDSE's limits and losses, survived by the runner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pandas as pd

from wac_extractor.core.backends.signin import BackendLogin, SignIn
from wac_extractor.core.jobs.backend_spec import BackendSpec
from wac_extractor.core.jobs.run_setup import RunOptions, prepare_run
from wac_extractor.core.jobs.tracker import create_tracker, open_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

from .conftest import REPO, notebook_jobs


class BackendWatch:
    """Reads the backend's jobs of user ``demo`` every 50 ms: the most running and created-but-not-started."""

    def __init__(self, backend):
        self.backend = backend
        self.most_started = 0
        self.most_waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.wait(0.05):
            jobs = [job for job in self.backend.jobs() if job.get("owner", "demo") == "demo"]
            started = sum(job["status"] in ("queued", "running") for job in jobs)
            self.most_started = max(self.most_started, started)
            self.most_waiting = max(self.most_waiting, sum(job["status"] == "created" for job in jobs))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def basic_login(backend):
    return BackendLogin(backend.url, SignIn("basic", "demo", "demo"))


def run_cli(backend, tracker_path, output, *extra):
    env = {**os.environ, "WAC_PASSWORD": "demo"}
    return subprocess.run(
        [sys.executable, "-m", "wac_extractor", "run", "--jobs", str(tracker_path), "--output", str(output),
         "--backend", backend.url, "--auth", "basic", "--username", "demo", "--poll", "0.3", *extra],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip


def test_the_notebooks_8_jobs_asking_4_at_once_run_2_at_a_time_on_a_limit_of_2(backend, tmp_path):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0, queue_seconds=[0.3, 0.3], run_seconds=[1.0, 1.0])
    create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    with BackendWatch(backend) as watch:
        done = run_cli(backend, tmp_path / "jobs.gpkg", tmp_path / "out", "--parallel", "4")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert jobs["status"].tolist() == ["finished"] * 8 and (jobs["result_status"] == "ok").all()
    assert len(backend.jobs()) == 8  # every row's job created once
    assert watch.most_started == 2  # never more than the account allows, and the 2 it allows were used
    assert watch.most_waiting <= 2  # no pile of created jobs waiting for a slot
    notice = "runs at most 2 of your jobs at once (4 asked): running 2 at a time"
    assert done.stdout.count(notice) == 1, done.stdout[-3000:]
    assert "skipped" not in done.stdout


def test_jobs_running_elsewhere_take_slots_and_the_run_waits_for_them(backend, tmp_path):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0, queue_seconds=[0.2, 0.2], run_seconds=[0.5, 0.5])
    backend.prefill(2, status="running", seconds=4)  # a notebook's two jobs, still running for 4 s
    create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().head(3))
    started = time.monotonic()
    done = run_cli(backend, tmp_path / "jobs.gpkg", tmp_path / "out", "--parallel", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.monotonic() - started > 4  # the run waited for the other client's jobs
    jobs = open_tracker(tmp_path / "jobs.gpkg").read()
    assert jobs["status"].tolist() == ["finished"] * 3
    ours = [job for job in backend.jobs() if "[wac:" in (job.get("title") or "")]
    assert len(ours) == 3


def test_rows_an_earlier_release_skipped_for_the_limit_run_on_the_next_run(backend, tmp_path):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0)
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().head(2))
    message = "Job was not started because concurrent job limit (2) is reached."
    tracker.update_row(1, error_message=message)
    tracker.persist(tracker.get_by_indices([1]).assign(status="skipped"))
    done = run_cli(backend, tmp_path / "jobs.gpkg", tmp_path / "out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert open_tracker(tmp_path / "jobs.gpkg").read()["status"].tolist() == ["finished", "finished"]


def lost_and_refused_rows():
    """Two Sentinel-1 rows the backend will lose (one error, one without assets) and one it refuses (2022)."""
    s1 = notebook_jobs()
    s1 = s1[s1["sentinel"] == 1].head(2)
    too_early = plan_grid(PlanRequest("2022-01-01", "2022-02-01", [1], 85, 1, recipe="monthly"), west=664000,
                          south=5611120, crs="EPSG:32631", window=10000, gap=0, rows=1, cols=1)  # fmt: skip
    return pd.concat([s1, too_early], ignore_index=True)


def test_jobs_the_backend_lost_run_again_and_a_refused_graph_does_not(backend, tmp_path):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0, s1_error_next=1, s1_lost_next=1,
                    concurrent_job_limit=0)  # fmt: skip
    tracker = create_tracker(tmp_path / "jobs.gpkg", lost_and_refused_rows())
    events = []
    runner = prepare_run(tracker, tmp_path / "out", [(BackendSpec(backend.url, 2), basic_login(backend))],
                         RunOptions(poll_interval=0.3), on_event=events.append)  # fmt: skip
    summary = runner.run()
    jobs = tracker.read()
    assert jobs["status"].tolist() == ["finished", "finished", "skipped"]
    assert jobs["result_status"].tolist()[:2] == ["ok", "ok"] and summary.downloaded == 2
    attempts = [json.loads(cell) for cell in jobs["attempts"][:2]]
    assert sorted(a[0]["cause"] for a in attempts) == ["backend_error", "no_assets"]
    assert all(len(a) == 1 and a[0]["id"] != job_id for a, job_id in zip(attempts, jobs["id"][:2]))
    remote = {job["id"] for job in backend.jobs()}
    assert remote == {a[0]["id"] for a in attempts} | set(jobs["id"][:2])  # both attempts' jobs, nothing else
    assert jobs.loc[2, "failure_cause"] == "refused" and pd.isna(jobs.loc[2, "attempts"])
    assert [e.status for e in events].count("rerun") == 2


def test_an_lcfm_sentinel2_job_out_of_memory_runs_again_with_more_memory(backend, tmp_path):
    backend.profile("cdse", memory_scale=1.7, resolution=100, concurrent_job_limit=0)
    lcfm = notebook_jobs("lcfm")
    tracker = create_tracker(tmp_path / "jobs.gpkg", lcfm[lcfm["sentinel"] == 2].head(1))
    options = RunOptions(poll_interval=0.3, job_options={"executor-memory": "2G"})
    prepare_run(tracker, tmp_path / "out", [(BackendSpec(backend.url, 1), basic_login(backend))], options).run()
    row = tracker.read().iloc[0]
    assert row["status"] == "finished" and row["result_status"] == "ok"
    (first,) = json.loads(row["attempts"])
    assert first["cause"] == "out_of_memory" and first["job_options"] == {"executor-memory": "2G"}
    raised = {"executor-memory": "3072m", "executor-memoryOverhead": "2700m"}  # 1.5 x 2G and CDSE's 1800m
    assert json.loads(row["job_options_used"]) == raised
    on_backend = {job["id"]: job["job_options"] for job in backend.jobs()}
    assert on_backend == {first["id"]: {"executor-memory": "2G"}, row["id"]: raised}


def test_job_options_from_the_command_line_and_a_rows_column_reach_the_backend(backend, tmp_path):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0, concurrent_job_limit=0)
    jobs = notebook_jobs().head(2)
    jobs["job_options"] = [None, json.dumps({"executor-memory": "6G"})]  # as LCFM's code sets them per row
    create_tracker(tmp_path / "jobs.gpkg", jobs)
    done = run_cli(backend, tmp_path / "jobs.gpkg", tmp_path / "out", "--job-option", "executor-memory=4G",
                   "--job-option", "max-executors=20")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sent = sorted((job["job_options"] for job in backend.jobs()), key=lambda o: o["executor-memory"])
    assert sent == [{"executor-memory": "4G", "max-executors": 20}, {"executor-memory": "6G", "max-executors": 20}]


def test_status_groups_twenty_jobs_by_cause_in_short_lines(backend, tmp_path):
    backend.profile("cdse", memory_scale=3.5, resolution=100, s1_error_share=0, s1_lost_share=0, s1_error_next=3,
                    s1_lost_next=2, concurrent_job_limit=0)  # fmt: skip
    s2 = notebook_jobs()
    s1 = plan_grid(PlanRequest("2023-01-01", "2023-02-01", [1], 85, 1, recipe="monthly"), west=664000,
                   south=5611120, crs="EPSG:32631", window=10000, gap=0, rows=2, cols=7)  # fmt: skip
    refused = lost_and_refused_rows().tail(1)
    refused2 = refused.copy()
    table = pd.concat([s2[s2["sentinel"] == 2], s1, refused, refused2], ignore_index=True)
    assert len(table) == 20
    create_tracker(tmp_path / "jobs.gpkg", table)
    done = run_cli(backend, tmp_path / "jobs.gpkg", tmp_path / "out", "--reruns", "0", "--parallel", "6")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    status = subprocess.run([sys.executable, "-m", "wac_extractor", "status", "--jobs", str(tmp_path / "jobs.gpkg")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    summary = next(line for line in status.stdout.splitlines() if re.match(r"\d+ failed: ", line))
    assert summary.startswith("11 failed: ")
    for part in ("4 out of memory, re-run with more memory", "3 backend error", "2 no assets", "2 refused graph"):
        assert part in summary, summary
    lines = (done.stdout + status.stdout).splitlines()
    assert lines and max(len(line) for line in lines) <= 300
