"""Run a job tracker to completion with openEO's ``MultiBackendJobManager``.

The manager does the scheduling (parallel slots per backend, status polling, starting jobs) through
its public API: ``run_jobs`` with our ``start_job`` (:class:`creation.JobCreator`), our job database
(:class:`job_database.RunDatabase`) and its ``on_job_*`` hooks (:class:`manager.WacJobManager`). This
module holds the run's life cycle around it, by concern:

- a run that really stops on :meth:`ExtractionRunner.cancel`: between two polls the job database
  answers the manager's "work left?" with nothing once the run is stopping;
- between polls: a lost sign-in is renewed (``signin_recovery``), rows whose create was lost are
  created again, jobs stuck in a queue end as errors, progress is reported;
- results downloaded and checked (``downloads``), logs of failed jobs stored next to the tracker;
- credits: the cap decides which jobs may start (``credit_gate``);
- an error the manager lets through (a backend down, a gateway's empty 502) ends one ``run_jobs``
  call, never the run: the next poll calls it again, and the tracker resumes it.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import pandas as pd
import requests
from openeo import BatchJob, Connection
from openeo.rest import OpenEoApiPlainError

from ..backends.signin import close_connection
from ..results.download import safe_asset_name
from .backend_spec import BackendSpec, check_writable
from .concurrency import BackendSlots
from .creation import JobCreator
from .credit_gate import CreditGate
from .credits import CreditReport
from .downloads import ResultFetcher
from .failures import CAUSE_COLUMN, cause_of_error
from .job_database import RunDatabase
from .job_options import DEFAULT_MAX_MEMORY_MB
from .manager import WacJobManager
from .openeo_private import NOISE_FILTER
from .progress import JobEvent, RunProgress, RunSummary, progress_of
from .reruns import DEFAULT_RERUNS, Reruns
from .restarts import Restarts
from .retry import RunStoppedError, describe, mount_resilient, retry_call
from .signin_recovery import SignInLostError, SignInWatch
from .stuck_jobs import StuckJobs
from .tracker import ACTIVE_STATUSES, PENDING_STATUSES, Tracker, TrackerLock

_log = logging.getLogger(__name__)

# What ends one run_jobs call, not the run: openeo 0.53 reads unbound results after a ConnectionError
# while polling (UnboundLocalError), and lets through errors without an openEO JSON body (a proxy's empty
# or HTML 502) and a refused status read right after a start (a sign-in revoked at that moment).
POLL_ERRORS = (requests.RequestException, OpenEoApiPlainError, UnboundLocalError, RunStoppedError)

__all__ = ["BackendSpec", "ExtractionRunner", "JobEvent", "RunProgress", "RunSummary", "SignInLostError",
           "check_writable"]  # fmt: skip


class ExtractionRunner:
    """Drives one tracker through ``MultiBackendJobManager`` until every job has ended, or cancel()."""

    def __init__(
        self,
        tracker: Tracker,
        output_dir: Path,
        backends: Sequence[tuple],
        *,
        poll_interval: float = 10.0,
        on_progress: Optional[Callable[[RunProgress], None]] = None,
        on_event: Optional[Callable[[JobEvent], None]] = None,
        download_retries: int = 3,
        download_workers: int = 2,
        logs_dir: Optional[Path] = None,
        cancel_check: Optional[Callable[[], bool]] = None,
        max_queued_seconds: Optional[float] = None,
        max_credits: Optional[float] = None,
        job_budget: Optional[float] = None,
        plan: Optional[pd.DataFrame] = None,
        job_options: Optional[Dict[str, object]] = None,
        reruns: int = DEFAULT_RERUNS,
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
    ):
        """``backends``: ``(BackendSpec, connect)`` pairs; ``connect()`` returns an authenticated Connection.

        When ``connect`` also has ``sign_in_again(connection)`` (``signin.BackendLogin``), a lost
        sign-in pauses the run while it signs in again; without it the run stops with ``SignInLostError``.

        ``max_queued_seconds``: a job queued on the backend for longer is cancelled there and marked
        ``error`` with the reason (Retry starts it again); None waits for ever.
        ``cancel_check`` is polled a few times a second (e.g. a Processing feedback's ``isCanceled``);
        returning True has the same effect as :meth:`cancel`.
        ``max_credits``: a new job starts only while credits spent + the projected cost of the running
        jobs + its own stay within it (``credits.CreditCap``); running jobs are never cancelled for it.
        ``job_budget``: sent as each job's openEO ``budget``, so a backend stops a runaway job itself.
        ``plan``: the jobs of a new tracker, written when the run starts (:meth:`write_plan`).
        ``job_options``: sent with every job (a row's ``job_options`` column wins); ``reruns``: how many more
        times a job the backend lost is run again (``reruns``); ``max_memory_mb``: the ceiling of the memory
        options an out-of-memory re-run raises.
        """
        if job_budget is not None and job_budget <= 0:
            raise ValueError(f"job budget: {job_budget} is not a budget; give a positive number, or none.")
        if not backends:
            raise ValueError("backends: no backend given; add at least one backend URL.")
        self.tracker = tracker
        self.plan = plan
        self.output_dir = Path(output_dir)
        self.backends = list(backends)
        self.poll_interval = poll_interval
        self.on_progress = on_progress
        self.on_event = on_event
        tracker_path = Path(getattr(tracker, "path", self.output_dir / "jobs"))
        self.logs_dir = Path(logs_dir) if logs_dir else tracker_path.with_name(tracker_path.stem + "_logs")
        self._stop = threading.Event()
        self._cancel_check = cancel_check
        self._cancel_remote = False
        self._connections: Dict[str, Connection] = {}
        self._connects = {spec.name: connect for spec, connect in self.backends}
        self._next_poll = 0.0
        self.stats: Dict[str, int] = collections.Counter()
        self.credit_gate = CreditGate(tracker, max_credits)
        self.cap = self.credit_gate.cap
        self.db = RunDatabase(tracker, self._status_changed)
        self.slots = BackendSlots(tracker, {spec.name: spec.parallel_jobs for spec, _ in self.backends})
        self.slots.on_notice = self._notice
        self.creator = JobCreator(tracker, self._stop, self.slots, job_budget, job_options, max_memory_mb,
                                  on_created=self.credit_gate.estimate, on_held=self.db.hold)  # fmt: skip
        self.reruns = Reruns(tracker, self.db, reruns, self.emit)
        self.fetcher = ResultFetcher(tracker, self.output_dir, self._stop, self.emit, download_retries,
                                     download_workers, on_bad_result=self._bad_result)  # fmt: skip
        self.signins = SignInWatch(self._connects)
        self.db.gate = self.credit_gate.admit
        self.db.between_polls = self._between_polls
        self.db.stopping = self._stop.is_set
        self.restarts = Restarts(tracker, self.db, self.connection, self.fetcher, self.creator, self.slots,
                                 self.store_error_log)  # fmt: skip
        self.stuck = StuckJobs(self.tracker, self.db, self.connection, self.emit, max_queued_seconds)

    # --- public API ----------------------------------------------------------------------------
    def cancel(self, cancel_remote: bool = False) -> None:
        """Stop the run within seconds. Jobs stay tracked; running them again resumes."""
        self._cancel_remote = cancel_remote
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def credits(self, jobs: Optional[pd.DataFrame] = None) -> CreditReport:
        """Credits spent and projected for this tracker, with the cap and the backends' budget left."""
        return self.credit_gate.report(jobs)

    def write_plan(self) -> None:
        """A new tracker gets its jobs (once; a resumed tracker is left as it is)."""
        if self.plan is not None and not self.tracker.exists():
            self.tracker.initialize_from_df(self.plan)
        self.plan = None

    def run(self) -> RunSummary:
        """Run until every job has ended or cancel(); refuses a tracker another run is using."""
        self.write_plan()
        lock = TrackerLock(self.tracker.path) if hasattr(self.tracker, "path") else None
        if lock is not None:
            lock.acquire()
        try:
            return self._run()
        finally:
            for connection in self._connections.values():
                close_connection(connection)  # their sockets would be left to the garbage collector
            if lock is not None:
                lock.release()

    # --- the run -------------------------------------------------------------------------------
    def _run(self) -> RunSummary:
        started = time.monotonic()
        NOISE_FILTER.active.run = True  # this thread runs the manager's loop (and start_job)
        check_writable(self.output_dir, "output folder")
        # poll_sleep 0: the job database paces the polls (cancel-aware), see _between_polls.
        manager = WacJobManager(
            self.fetcher, self.store_error_log, self._canceled, poll_sleep=0, root_dir=self.output_dir
        )
        for spec, _ in self.backends:
            manager.add_backend(spec.name, connection=lambda n=spec.name: self.connection(n),
                                parallel_jobs=spec.parallel_jobs)  # fmt: skip
        # A backend that allows fewer jobs at once than asked gets that many slots (add_backend replaces it).
        self.slots.on_lowered = lambda name, slots: manager.add_backend(
            name, connection=lambda: self.connection(name), parallel_jobs=slots
        )
        try:
            self.db.remember(self.tracker.statuses())
            self.restarts.resume()
            self.credit_gate.read_budgets(self._connects, self.connection)
            self._report_progress()  # the jobs, before the first poll (which may wait on a slow backend)
            while not self._stop.is_set() and self._work_left():
                if self._manager_work():
                    self._run_manager(manager)
                else:  # downloads to finish, creates to retry after a backoff: no job for the manager now
                    self._between_polls()
            if self._stop.is_set() and self._cancel_remote:
                self.stuck.cancel_remote_jobs(list(ACTIVE_STATUSES))
        finally:
            self.fetcher.shutdown()
            self._report_progress()
            NOISE_FILTER.active.run = False
        progress = self._progress()
        return RunSummary(progress.counts, progress.downloaded, progress.downloads_failed, self._stop.is_set(),
                          time.monotonic() - started, dict(self.stats), progress.credits)  # fmt: skip

    def _run_manager(self, manager: WacJobManager) -> None:
        try:
            self.stats.update(manager.run_jobs(start_job=self.creator, job_db=self.db))
        except POLL_ERRORS as exc:
            _log.warning("polling the backends failed (%s); polled again next time", describe(exc))

    def _between_polls(self) -> bool:
        """Wait for the next poll (cancel-aware), then the runner's own work; False once the run is stopping.

        Called by the job database each time the manager's loop asks whether work is left, and by the
        run itself while only downloads or delayed creates are left.
        """
        self._sleep(self._next_poll - time.monotonic())
        if self._stop.is_set():
            return False
        self._next_poll = time.monotonic() + self.poll_interval  # a poll every interval, round trips included
        self.reruns.apply()
        if self.signins.check(self._connections):
            self.restarts.resume()  # downloads that failed on the lost sign-in
        self.restarts.restart_jobs(["start_failed"])
        self.restarts.start_created_jobs()
        self.stuck.cancel_stuck_jobs()
        self._report_progress()
        return self._work_left()

    def _sleep(self, seconds: float) -> None:
        """Wait between polls; wakes up at once on cancel()."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            if self._cancel_check is not None and self._cancel_check():
                self._stop.set()
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._stop.wait(min(remaining, 0.2))

    def _manager_work(self) -> bool:
        return bool(sum(self.tracker.count_by_status(PENDING_STATUSES).values()))

    def _work_left(self) -> bool:
        counts = self.tracker.count_by_status(PENDING_STATUSES)
        pending = sum(counts.values())
        busy = self.fetcher.busy() or bool(self.creator.deferred) or self.reruns.pending()
        if counts.get("not_started") and pending == counts["not_started"] and not busy:
            if self.credit_gate.ends_run():  # nothing running, and the cap admits none of the jobs left
                return False
        return bool(pending or busy)

    def connection(self, name: str) -> Optional[Connection]:
        """The backend's connection, signed in once per run (a 500 on GET / is retried too)."""
        if name not in self._connects:
            return None
        if name not in self._connections:
            connection = retry_call(self._connects[name], f"connect to {name}", self._stop)
            mount_resilient(connection.session, connection.root_url, self._stop)
            self.signins.watch(name, connection)
            self._connections[name] = connection
        return self._connections[name]

    # --- reporting -----------------------------------------------------------------------------
    def store_error_log(self, job: BatchJob, row: pd.Series) -> None:
        """A job that ended in error: its log next to the tracker, its cause, and a re-run where one may cure it."""
        index = row.name
        try:
            logs = list(job.logs(level="error"))
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            logs = [{"level": "error", "message": f"could not fetch the job's log: {exc}"}]
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.logs_dir / f"{safe_asset_name(job.job_id)}.json").write_text(json.dumps(logs, indent=2))
        message = next((str(e.get("message")) for e in reversed(logs) if e.get("message")), "job failed")
        cause = cause_of_error(e.get("message", "") for e in logs)
        if self.reruns.request(index, row, cause, message):
            return  # run again as a new job (the re-run is reported when it is applied)
        self.tracker.update_row(index, error_message=message[:1000], **{CAUSE_COLUMN: cause})
        self.emit(index, row, "error", message=message)

    def _bad_result(self, index: int, row: pd.Series, cause: str, reason: str) -> bool:
        """A finished job whose result was lost or fails the check: run again while attempts are left."""
        return self.reruns.request(index, row, cause, reason)

    def _status_changed(self, index: int, row: pd.Series, previous: Optional[str]) -> None:
        status = row.get("status")
        self.stuck.status_changed(index, status)
        if previous == "not_started" and status in ("finished", "error") and isinstance(row.get("id"), str):
            # openeo's _launch_job stores the status it reads right after start_job; a job that ended
            # by then (a slow, retried status call) never reaches on_job_done / on_job_error.
            connection = self.connection(row.get("backend_name"))
            if connection is not None:
                job = connection.job(row["id"])
                if status == "finished":
                    self.fetcher.submit(job, row)
                else:
                    self.store_error_log(job, row)
        if status == "error" and isinstance(row.get("id"), str):
            return  # store_error_log reports it once, with the backend's message
        self.emit(index, row, str(status), previous=previous)

    def _notice(self, backend: str, message: str) -> None:
        """Said once (the dock's message bar, the CLI, the Processing log): a JobEvent with status "notice"."""
        _log.warning(message)
        if self.on_event:
            self.on_event(JobEvent(-1, backend, "notice", None, message))

    def _canceled(self, job: BatchJob, row: pd.Series) -> None:
        self.emit(row.name, row, "canceled", message="canceled on the backend")

    def emit(self, index: int, row: pd.Series, status: str, previous: Optional[str] = None, message: str = "") -> None:
        _log.info("job %s (%s): %s%s", index, row.get("title"), status, f" - {message}" if message else "")
        if self.on_event:
            self.on_event(JobEvent(int(index), str(row.get("title")), status, previous, message))

    def _progress(self) -> RunProgress:
        jobs = self.tracker.snapshot()
        return progress_of(jobs, self.credits(jobs))

    def _report_progress(self) -> None:
        if self.on_progress:
            self.on_progress(self._progress())
