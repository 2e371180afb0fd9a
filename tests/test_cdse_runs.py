"""Runs against the local backend's ``cdse`` profile: CDSE's limits and losses, survived by the runner."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from wac_extractor.core.jobs.tracker import create_tracker, open_tracker

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
