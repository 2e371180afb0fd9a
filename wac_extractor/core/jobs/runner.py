"""Run a job tracker to completion with openEO's ``MultiBackendJobManager``.

The manager does the scheduling (parallel slots per backend, status polling, starting jobs in
its worker threads); this module adds what the plugin and the command line need on top:

- a loop that really stops on :meth:`ExtractionRunner.cancel` (openeo 0.53's
  ``stop_job_thread`` keeps looping while jobs are active: its ``while`` reads
  ``active > 0 or (pending_tasks and not stopped)``);
- results downloaded to ``<output>/<job id>/`` and checked with GDAL before a job counts as done;
- logs of failed jobs stored next to the tracker, their message in the tracker;
- resuming never creates a job twice: each row gets a key that goes into the job title, and a
  row whose creation may have happened before a crash is first looked up on the backend;
- progress callbacks (counts per status) and per-job events (status changes);
- a lost sign-in (refresh token revoked or expired) pauses the loop and signs in again through
  the backend's ``sign_in_again`` (the plugin shows the device code), then carries on.

It relies on ``MultiBackendJobManager._job_update_loop``, which is why openeo is pinned to 0.53.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd
import requests
from openeo import BatchJob, Connection
from openeo.extra.job_management import MultiBackendJobManager
from openeo.extra.job_management._thread_worker import _JobManagerWorkerThreadPool
from openeo.rest import OpenEoApiPlainError, OpenEoClientException  # the base: JSON or plain/empty bodies
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..backends.signin import SignInCancelledError, SignInRequiredError, close_connection, is_auth_error
from ..recipes.process_graphs import BackendCapabilities, backend_capabilities, decode_cell, expected_result, job_cube
from ..results.download import (
    DownloadCancelled,
    DownloadError,
    check_netcdf,
    safe_asset_name,
    same_origin,
    stream_to_file,
)
from .credits import ESTIMATE_COLUMN, CreditCap, CreditReport, JobMeasures, cost_key, credit_report
from .tracker import ACTIVE_STATUSES, PENDING_STATUSES, Tracker, TrackerError, TrackerLock

_log = logging.getLogger(__name__)

# Columns only the runner writes; the manager's own persist() calls never touch them.
RUNNER_COLUMNS = ("job_key", "create_requested_at", "result_status", "result_files", "error_message", ESTIMATE_COLUMN)
TRANSIENT_HTTP = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 30.0
LISTING_PAGE = 100  # jobs per page when looking a job up by its key
MAX_LISTING_PAGES = 1000
MAX_CREATE_BACKOFF_S = 60.0


class _RunnerThreadNoise(logging.Filter):
    """Drops openeo's log records that repeat, with a traceback, what the runner reports itself.

    A start that fails (a create the gateway answered with a 502, a lost sign-in) reaches openeo's
    ``_launch_job`` as a ConnectionError, which logs the whole row and a traceback at WARNING, after
    the client has logged that it could not parse the gateway's empty or HTML error page. The runner
    records the reason in the tracker and says what it does next ("created again in 2 s"), so on a
    runner's thread these records are dropped; anywhere else in QGIS (another plugin using openeo)
    they pass.
    """

    NOISE = ("Failed to start job for", "Failed to parse API error response")
    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(self.active, "run", False) and record.getMessage().startswith(self.NOISE))


_NOISE_FILTER = _RunnerThreadNoise()
for _name in ("openeo.extra.job_management._manager", "openeo.rest._connection"):
    logging.getLogger(_name).addFilter(_NOISE_FILTER)


class _CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After but never sleeps longer than 30 s, nor backs off over 10 s."""

    BACKOFF_MAX = 10  # urllib3 1.26 name
    DEFAULT_BACKOFF_MAX = 10

    def get_retry_after(self, response):
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER_S)


def resilient_adapter() -> HTTPAdapter:
    retry = _CappedRetry(
        total=5,
        backoff_factor=0.5,
        status_forcelist=TRANSIENT_HTTP,
        allowed_methods=["HEAD", "GET", "OPTIONS", "DELETE"],  # POST /jobs is retried by the runner itself
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    return HTTPAdapter(max_retries=retry)


@dataclass
class BackendSpec:
    """One backend of a run: where, under what name and how many jobs at once."""

    url: str
    parallel_jobs: int = 2
    name: Optional[str] = None

    def __post_init__(self):
        if not self.name:
            from urllib.parse import urlparse

            parsed = urlparse(self.url if "://" in self.url else f"https://{self.url}")
            self.name = parsed.netloc or self.url
        if int(self.parallel_jobs) < 1:
            raise ValueError(f"parallel_jobs: {self.parallel_jobs} for {self.url}; use 1 or more.")


@dataclass
class JobEvent:
    index: int
    title: str
    status: str
    previous: Optional[str]
    message: str = ""


@dataclass
class RunProgress:
    counts: Dict[str, int]
    total: int
    downloaded: int
    downloads_failed: int
    jobs: Optional[pd.DataFrame] = None  # the snapshot the counts come from (no footprints)
    credits: Optional[CreditReport] = None

    @property
    def done(self) -> int:
        """Jobs that need nothing more: results checked, or ended in error/canceled/skipped.

        Not "start_failed": the runner creates those again (after a backoff, or once signed in)."""
        waiting = (*PENDING_STATUSES, "finished", "start_failed")
        ended = sum(v for k, v in self.counts.items() if k not in waiting)
        return self.downloaded + self.downloads_failed + ended


@dataclass
class RunSummary:
    counts: Dict[str, int]
    downloaded: int
    downloads_failed: int
    cancelled: bool
    seconds: float
    stats: Dict[str, int] = field(default_factory=dict)
    credits: Optional[CreditReport] = None

    @property
    def cap_reached(self) -> bool:
        return bool(self.credits and self.credits.held_by_cap)

    def cap_message(self) -> str:
        """What the user reads when the credit cap ended the run, and what to do."""
        report = self.credits
        if report is None or not report.held_by_cap:
            return ""
        return (f"Credit cap reached: {report.held_by_cap} jobs not started (spent {report.spent:,.1f} of "
                f"{report.cap:,.1f} credits); raise the cap and run again to go on.")  # fmt: skip


class SignInLostError(RuntimeError):
    """A backend stopped accepting our sign-in and signing in again failed; every job is kept."""


class ObservedTracker:
    """The tracker as the manager sees it: runner-owned columns are not written, status changes reported."""

    def __init__(self, tracker: Tracker, on_change: Callable[[int, pd.Series, Optional[str]], None]):
        self._tracker = tracker
        self._on_change = on_change
        self._statuses: Dict[int, str] = {}
        self.gate: Optional[Callable[[pd.DataFrame], pd.DataFrame]] = None  # which new jobs may start

    def get_by_status(self, statuses, max=None) -> pd.DataFrame:  # noqa: A002 (openeo's name)
        """The manager launches from ``not_started`` rows: only those the gate (credit cap) lets through."""
        frame = self._tracker.get_by_status(statuses, max=max)
        if self.gate is not None and list(statuses) == ["not_started"]:
            frame = self.gate(frame)
        return frame

    def remember(self, statuses: Dict[int, str]) -> None:
        self._statuses.update(statuses)

    def persist(self, df: pd.DataFrame) -> None:
        self._tracker.persist(df.drop(columns=[c for c in RUNNER_COLUMNS if c in df.columns]))
        for index, row in df.iterrows():
            previous = self._statuses.get(index)
            if row.get("status") != previous:
                self._statuses[index] = row.get("status")
                self._on_change(index, row, previous)

    def __getattr__(self, name):
        return getattr(self._tracker, name)


class _WacJobManager(MultiBackendJobManager):
    """MultiBackendJobManager with our result handling and saner HTTP retries."""

    def __init__(self, runner: ExtractionRunner, **kwargs):
        super().__init__(**kwargs)
        self._runner = runner

    @staticmethod
    def _make_resilient(connection):
        for prefix in ("https://", "http://"):
            replaced = connection.session.adapters.get(prefix)
            connection.session.mount(prefix, resilient_adapter())
            if replaced is not None:
                replaced.close()  # its pooled sockets (sign-in, capabilities) would be left to the collector

    def _track_statuses(self, job_db, stats=None):
        # openeo 0.53 swallows a ConnectionError here and then reads unbound results
        # (UnboundLocalError in _job_update_loop): a backend that is down would end the run.
        # It also lets through an error without an openEO JSON body (a proxy's empty or HTML 502).
        try:
            return super()._track_statuses(job_db, stats=stats)
        except requests.exceptions.ConnectionError as exc:
            _log.warning("backend unreachable while polling job statuses: %s", exc)
            return [], [], []
        except OpenEoApiPlainError as exc:  # openeo catches JSON errors only: a gateway's empty 502 ended the run
            _log.warning("backend answered %s while polling job statuses; polled again next time", exc)
            return [], [], []

    def _launch_job(self, start_job, df, i, backend_name, stats=None):
        # After start_job, openeo reads the new job's status and lets anything but a ConnectionError
        # through: a sign-in revoked at that moment (403), or a gateway's 502, ended the whole run.
        # The job exists (its id is in the row): "queued_for_start" makes the poll find its real
        # status, and a restart start it only if it is still "created".
        try:
            return super()._launch_job(start_job, df, i, backend_name, stats=stats)
        except OpenEoApiPlainError as exc:
            # A 401/403 here is already noted by the session's response hook (_watch_auth): signed in again next.
            _log.warning("job for row %s on %s: reading its status failed (%s); checked again", i, backend_name, exc)
            has_job = isinstance(df.loc[i].get("id"), str)
            df.loc[i, "status"] = "queued_for_start" if has_job else "start_failed"

    def get_job_dir(self, job_id: str) -> Path:
        return self._root_dir / safe_asset_name(job_id)

    def on_job_done(self, job: BatchJob, row):
        self._runner.submit_download(job, row)

    def on_job_error(self, job: BatchJob, row):
        self._runner.store_error_log(job, row)

    def on_job_cancel(self, job: BatchJob, row):
        self._runner.emit(row.name, row, "canceled", message="canceled on the backend")


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
        """
        if max_credits is not None and max_credits <= 0:
            raise ValueError(f"max credits: {max_credits} is not a cap; give a positive number, or none.")
        if job_budget is not None and job_budget <= 0:
            raise ValueError(f"job budget: {job_budget} is not a budget; give a positive number, or none.")
        if not backends:
            raise ValueError("backends: no backend given; add at least one backend URL.")
        self.tracker = tracker
        self.output_dir = Path(output_dir)
        self.backends = list(backends)
        self.poll_interval = poll_interval
        self.on_progress = on_progress
        self.on_event = on_event
        self.download_retries = download_retries
        tracker_path = Path(getattr(tracker, "path", self.output_dir / "jobs"))
        self.logs_dir = Path(logs_dir) if logs_dir else tracker_path.with_name(tracker_path.stem + "_logs")
        self._stop = threading.Event()
        self._cancel_remote = False
        self._downloads: Dict[int, Future] = {}
        self._download_pool = ThreadPoolExecutor(max_workers=download_workers, thread_name_prefix="wac-download")
        self._capabilities: Dict[str, BackendCapabilities] = {}
        self._connections: Dict[str, Connection] = {}
        self._logins = {spec.name: connect for spec, connect in self.backends}
        self._auth_suspects: set = set()  # backends that answered 401/403 since the last check
        self._manager: Optional[_WacJobManager] = None
        self._observed = ObservedTracker(tracker, self._status_changed)
        self._lock = threading.Lock()
        self._cancel_check = cancel_check
        self.max_queued_seconds = max_queued_seconds
        self._queued_since: Dict[int, float] = {}  # row -> monotonic time it was first seen queued
        # Rows whose create got no answer and whose job was not found: (attempts, monotonic time to retry).
        self._create_retry_at: Dict[int, tuple] = {}
        self._measures = JobMeasures()
        self.cap = CreditCap(max_credits, self._measures) if max_credits else None
        self.job_budget = job_budget
        self._held_by_cap = 0
        self._budgets: Dict[str, float] = {}  # remaining budget per backend (GET /me), where reported
        self._estimated_kinds: set = set()  # (backend, recipe and sensor) asked for an estimate already
        self._budget_warned = False
        if self.cap is not None:
            self._observed.gate = self._credit_gate

    # --- public API ----------------------------------------------------------------------------
    def cancel(self, cancel_remote: bool = False) -> None:
        """Stop the run within seconds. Jobs stay tracked; running them again resumes."""
        self._cancel_remote = cancel_remote
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def run(self) -> RunSummary:
        """Run until every job has ended or cancel(); refuses a tracker another run is using."""
        lock = TrackerLock(self.tracker.path) if hasattr(self.tracker, "path") else None
        if lock is not None:
            lock.acquire()
        try:
            return self._run()
        finally:
            self._close_connections()
            if lock is not None:
                lock.release()

    def _close_connections(self) -> None:
        """Close the backends' HTTP sessions (their sockets were left to the garbage collector)."""
        for connection in self._connections.values():
            close_connection(connection)

    def _run(self) -> RunSummary:
        started = time.monotonic()
        _RunnerThreadNoise.active.run = True  # this thread runs the manager's loop (and _launch_job)
        check_writable(self.output_dir, "output folder")
        manager = _WacJobManager(self, poll_sleep=self.poll_interval, root_dir=self.output_dir, download_results=True)
        for spec, connect in self.backends:
            manager.add_backend(
                spec.name, connection=self._connector(spec.name, connect), parallel_jobs=spec.parallel_jobs
            )
        self._manager = manager
        manager._worker_pool = _JobManagerWorkerThreadPool()
        stats: Dict[str, int] = collections.defaultdict(int)
        try:
            self._observed.remember(self.tracker.statuses())
            self._resume()
            self._read_budgets()
            self._report_progress()  # the jobs, before the first poll (which may wait on a slow backend)
            while not self._stop.is_set():
                if not self._work_left(manager):
                    break
                poll_started = time.monotonic()
                self._check_sign_ins()
                manager._job_update_loop(job_db=self._observed, start_job=self._start_job, stats=stats)
                self._restart_jobs(["start_failed"])
                self._cancel_stuck_jobs()
                self._report_progress()
                # A poll every poll_interval, not poll_interval between polls: the HTTP round trips of
                # a poll (~40 ms a job on the local backend) no longer add to how late a finished job is seen.
                self._sleep(self.poll_interval - (time.monotonic() - poll_started))
            if self._stop.is_set() and self._cancel_remote:
                self._cancel_remote_jobs()
        finally:
            pool, manager._worker_pool = manager._worker_pool, None
            pool.shutdown()
            self._download_pool.shutdown(wait=True, cancel_futures=True)
            self._report_progress()
            _RunnerThreadNoise.active.run = False
        progress = self._progress()
        return RunSummary(progress.counts, progress.downloaded, progress.downloads_failed, self._stop.is_set(),
                          time.monotonic() - started, dict(stats), progress.credits)  # fmt: skip

    # --- the loop's parts ----------------------------------------------------------------------
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

    def _connector(self, name: str, connect: Callable[[], Connection]) -> Callable[[], Connection]:
        def get() -> Connection:
            if name not in self._connections:
                connection = self._with_retries(connect, what=f"connect to {name}")  # a 500 on GET / too
                connection.session.hooks["response"].append(functools.partial(self._watch_auth, name))
                self._connections[name] = connection
            return self._connections[name]

        return get

    def _watch_auth(self, name: str, response: requests.Response, *args, **kwargs) -> None:
        if response.status_code in (401, 403):
            self._auth_suspects.add(name)

    def _check_sign_ins(self) -> None:
        """After a 401/403, check the backend still accepts us; if not, sign in again while the run waits.

        openeo renews an expired access token by itself (refresh token or client credentials); this
        is for when that failed. Statuses are not polled meanwhile, so nothing is marked failed.
        """
        while self._auth_suspects:
            name = self._auth_suspects.pop()
            connection = self._connections.get(name)
            if connection is None:
                continue
            try:
                connection.describe_account()  # renews the access token if openeo can
                continue
            except OpenEoApiPlainError as exc:
                if not is_auth_error(exc):
                    continue
                reason = exc.message
            message = f"{name}: the backend no longer accepts the sign-in ({reason}); the run waits for a new sign-in."
            _log.warning(message)
            sign_in_again = getattr(self._logins.get(name), "sign_in_again", None)
            try:
                if sign_in_again is None:
                    raise SignInRequiredError("this backend's sign-in cannot be renewed during a run")
                sign_in_again(connection)
                self._check_accepted(connection)  # a sign-in that changes nothing (none) would loop for ever
            except (SignInRequiredError, SignInCancelledError, OpenEoClientException) as exc:
                raise SignInLostError(
                    f"{name}: signing in again failed ({exc}); the run stopped. Sign in and run again: "
                    "every job is kept in the tracker and resumes."
                ) from exc
            self._auth_suspects.discard(name)
            _log.info("%s: signed in again; the run carries on", name)
            self._resume()  # downloads that failed on the lost sign-in

    @staticmethod
    def _check_accepted(connection: Connection) -> None:
        try:
            connection.describe_account()
        except OpenEoApiPlainError as exc:
            if is_auth_error(exc):
                raise SignInRequiredError(f"the backend still refuses it ({exc.message}); it needs a sign-in") from exc

    def _connection(self, backend_name: str) -> Optional[Connection]:
        if self._manager is None or backend_name not in self._manager.backends:
            return None
        return self._manager._get_connection(backend_name)

    def _work_left(self, manager: _WacJobManager) -> bool:
        counts = self.tracker.count_by_status(PENDING_STATUSES)
        pending = sum(counts.values())
        with self._lock:
            downloading = any(not f.done() for f in self._downloads.values())
        deferred = bool(self._create_retry_at)  # rows waiting out a backoff after an ambiguous create
        busy = downloading or deferred or manager._worker_pool.has_unprocessed_tasks()
        if self.cap is not None and counts.get("not_started") and pending == counts["not_started"] and not busy:
            # Nothing running: if the cap admits none of the jobs left, the run has ended at the cap.
            if self._credit_gate(self.tracker.get_by_status(["not_started"])).empty:
                return False
        return bool(pending or busy)

    def _credit_gate(self, candidates: pd.DataFrame) -> pd.DataFrame:
        admitted, self._held_by_cap = self.cap.admit(candidates, self.tracker.snapshot())
        return admitted

    def _read_budgets(self) -> None:
        """Each backend's remaining budget, where it reports one (``GET /me`` -> ``budget``); never fails a run."""
        for spec, _ in self.backends:
            try:
                connection = self._connection(spec.name)
                if connection is None or not connection.capabilities().supports_endpoint("/me", "GET"):
                    continue
                budget = connection.describe_account().get("budget")
                if isinstance(budget, (int, float)):
                    self._budgets[spec.name] = float(budget)
            except (OpenEoClientException, OpenEoApiPlainError, requests.RequestException, SignInRequiredError) as exc:
                _log.info("no budget from %s: %s", spec.name, exc)

    def _estimate(self, connection: Connection, job: BatchJob, row: pd.Series, provider: str) -> None:
        """The backend's estimate of the first job of each kind (recipe, sensor), where it has the
        endpoint: a projection before any job of that kind has finished."""
        kind = (provider, cost_key(row))
        if kind in self._estimated_kinds:
            return
        self._estimated_kinds.add(kind)
        try:
            if not connection.capabilities().supports_endpoint("/jobs/{job_id}/estimate", "GET"):
                return
            costs = job.estimate().get("costs")
        except (OpenEoClientException, OpenEoApiPlainError, requests.RequestException) as exc:
            _log.info("no estimate for %s from %s: %s", cost_key(row), provider, exc)
            return
        if isinstance(costs, (int, float)):
            self.tracker.update_row(row.name, **{ESTIMATE_COLUMN: float(costs)})

    def credits(self, jobs: Optional[pd.DataFrame] = None) -> CreditReport:
        """Credits spent and projected for this tracker, with the cap and the backends' budget left."""
        frame = self.tracker.snapshot() if jobs is None else jobs
        budget = sum(self._budgets.values()) if self._budgets else None
        cap = self.cap.max_credits if self.cap is not None else None
        report = credit_report(frame, budget, cap, self._held_by_cap, self._measures)
        if report.over_budget and not self._budget_warned:
            self._budget_warned = True
            _log.warning("projected %.1f credits still to spend, more than the %.1f left in the budget",
                         report.projected_total - report.spent, report.budget_left)  # fmt: skip
        return report

    def _resume(self) -> None:
        """Pick up what an interrupted run left: undownloaded results, jobs whose start was lost."""
        finished = self.tracker.get_by_status(["finished"])
        for _, row in finished.iterrows():
            if row.get("result_status") != "ok":
                connection = self._connection(row.get("backend_name"))
                if connection is not None and isinstance(row.get("id"), str):
                    self.submit_download(connection.job(row["id"]), row)
        # A crash after a job was created but before its start request went out leaves it
        # "queued_for_start" locally and "created" remotely: start it again.
        self._restart_jobs(["queued_for_start", "start_failed"])

    def _restart_jobs(self, statuses: List[str]) -> None:
        for index, row in self.tracker.get_by_status(statuses).iterrows():
            self._restart(index, row)

    def _restart(self, index: int, row: pd.Series) -> None:
        connection = self._connection(row.get("backend_name"))
        job_id = row.get("id")
        if connection is None:
            return
        if not isinstance(job_id, str) or not job_id:
            _, retry_at = self._create_retry_at.get(index, (0, 0.0))
            if time.monotonic() < retry_at:
                return  # backing off after an ambiguous create; the other jobs go on meanwhile
            self._observed.persist(pd.DataFrame([{"status": "not_started"}], index=[index]))
            return
        try:
            job = connection.job(job_id)
            remote_status = job.status()
            if remote_status == "created":
                job.start()
                remote_status = "queued"
            if remote_status != row.get("status"):
                self._observed.persist(pd.DataFrame([{"status": remote_status}], index=[index]))
            # A job that ended while we were not looking gets what the manager's events would have given it.
            if remote_status == "finished":
                self.submit_download(job, row)
            elif remote_status == "error":
                self.store_error_log(job, row)
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            _log.warning("could not restart job %s: %s", job_id, exc)

    def _start_job(self, row: pd.Series, connection: Connection, provider: str, **kwargs) -> Optional[BatchJob]:
        """The manager's ``start_job``: build the graph for the row and create the job (not started)."""
        index = row.name
        try:
            capabilities = self._capabilities.get(provider)
            if capabilities is None:
                capabilities = self._with_retries(lambda: backend_capabilities(connection), what="read capabilities")
                self._capabilities[provider] = capabilities
            cube = job_cube(row, capabilities)
            key = row.get("job_key") if isinstance(row.get("job_key"), str) else uuid.uuid4().hex[:12]
            title = f"{row.get('title') or 'WAC job'} [wac:{key}]"
            if isinstance(row.get("create_requested_at"), str):
                existing = self._find_remote_job(connection, key)
                if existing is not None:
                    _log.info("job for row %s already exists on %s: %s (not created again)", index, provider, existing)
                    self._create_retry_at.pop(index, None)
                    return self._start_remote(connection.job(existing), title, adopted=True)
            self.tracker.update_row(index, job_key=key, create_requested_at=_now())
            job, adopted = self._create_job(connection, cube, title, key, index)
            self._create_retry_at.pop(index, None)  # the row has its job: no retry pending
            self._estimate(connection, job, row, provider)
            # Started here, on this connection: openeo's start task would first open a new connection
            # (two more requests and a thread hop per job). A failed start is retried as "start_failed".
            return self._start_remote(job, title, adopted=adopted)
        except (ValueError, OpenEoApiPlainError) as exc:
            if is_auth_error(exc):  # not the row's fault: "start_failed", started again once signed in
                raise requests.exceptions.ConnectionError(f"create job: {exc}") from exc
            # A refused row (bad dates, a graph the backend rejects): the manager marks it "skipped";
            # say why, and keep the run going for the other rows.
            self._create_retry_at.pop(index, None)
            self.tracker.update_row(index, error_message=str(exc)[:1000])
            return None

    def _create_job(self, connection: Connection, cube, title: str, key: str, index: int) -> Tuple[BatchJob, bool]:
        """One ``POST /jobs``, never repeated blindly: a 5xx or a timeout may come after the backend
        created the job (a gateway that lost the answer), so the job is looked up by its key first.
        Returns the job and whether it was adopted (found on the backend rather than created now).

        Not found: the row becomes ``start_failed`` and is created again after a backoff (2, 4, 8 ...
        60 s), each time after another look-up; the other rows run meanwhile.
        """
        try:
            return connection.create_job(cube, title=title, budget=self.job_budget), False
        except OpenEoApiPlainError as exc:
            if exc.http_status_code not in TRANSIENT_HTTP:
                raise
            error: Exception = exc
        except requests.RequestException as exc:  # a timeout or a reset: the request may have arrived
            error = exc
        attempts = self._create_retry_at.get(index, (0, 0.0))[0] + 1
        try:
            existing = self._find_remote_job(connection, key)
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            existing, error = None, exc
        if existing is not None:
            _log.info("create %r: no answer (%s), but the backend has it: %s (adopted)", title, error, existing)
            return connection.job(existing), True
        delay = min(MAX_CREATE_BACKOFF_S, 2.0**attempts)
        self._create_retry_at[index] = (attempts, time.monotonic() + delay)
        _log.warning("create %r: %s; not on the backend, created again in %.0f s", title, _describe(error), delay)
        raise requests.exceptions.ConnectionError(f"create job {title!r}: {error}") from error

    def _start_remote(self, job: BatchJob, title: str, adopted: bool = False) -> BatchJob:
        """Start a created job; an adopted job, or one whose start got no answer, only if still "created"
        (a backend may run a finished job again when asked to start it)."""
        for attempt in range(1, 5):
            try:
                if (adopted or attempt > 1) and job.status() != "created":
                    return job  # the earlier start went through; its answer was lost
                job.start()
                return job
            except (OpenEoApiPlainError, requests.RequestException) as exc:
                if isinstance(exc, OpenEoApiPlainError) and exc.http_status_code not in TRANSIENT_HTTP:
                    raise
                _log.warning("start job %r, attempt %d: %s", title, attempt, exc)
                if self._stop.wait(min(MAX_RETRY_AFTER_S, 2.0**attempt)):
                    break
        raise requests.exceptions.ConnectionError(f"start job {title!r}: no answer")  # -> start_failed, restarted

    def _find_remote_job(self, connection: Connection, key: str) -> Optional[str]:
        """The backend's job whose title carries ``[wac:<key>]``: every page of ``GET /jobs``, following
        ``next`` links (openeo's ``list_jobs`` reads the first page only; real accounts hold thousands)."""
        marker = f"[wac:{key}]"
        path: Optional[str] = f"/jobs?limit={LISTING_PAGE}"
        for _ in range(MAX_LISTING_PAGES):
            page = self._with_retries(lambda p=path: connection.get(p, expected_status=200).json(), what="list jobs")
            found = [job for job in page.get("jobs", []) if marker in (job.get("title") or "")]
            if found:
                return max(found, key=lambda job: job.get("created") or "")["id"]  # the newest, if ever two
            href = next((link.get("href") for link in page.get("links", []) if link.get("rel") == "next"), None)
            root = connection.root_url.rstrip("/")
            if not href:
                return None
            if not href.startswith(root):  # never send the token to another host
                _log.warning("job listing's next page %s is not on %s; not followed", href, root)
                return None
            path = href[len(root) :]
        return None

    def _with_retries(self, call: Callable, what: str, attempts: int = 4):
        """Retry transient HTTP errors (429, 5xx) with exponential backoff (2, 4, 8 s); stop-aware.

        For POST requests, which the session's retry adapter leaves alone; it does not read Retry-After.
        """
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except OpenEoApiPlainError as exc:
                if exc.http_status_code not in TRANSIENT_HTTP or attempt == attempts:
                    if exc.http_status_code in TRANSIENT_HTTP:
                        raise requests.exceptions.ConnectionError(f"{what}: {exc}") from exc  # -> start_failed
                    raise
                delay = min(MAX_RETRY_AFTER_S, 2.0**attempt)
                _log.warning("%s: HTTP %s, retrying in %.0fs", what, exc.http_status_code, delay)
                if self._stop.wait(delay):
                    raise requests.exceptions.ConnectionError(f"{what}: cancelled") from exc
        return None

    # --- results -----------------------------------------------------------------------------
    def submit_download(self, job: BatchJob, row: pd.Series) -> None:
        index = row.name
        with self._lock:
            if index in self._downloads and not self._downloads[index].done():
                return
            self._downloads[index] = self._download_pool.submit(self._download, job, row)

    def _download(self, job: BatchJob, row: pd.Series) -> None:
        index = row.name
        job_dir = self._manager.get_job_dir(job.job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        self.tracker.update_row(index, result_status="downloading")
        expected = expected_result(row)
        extent = decode_cell(row["spatial_extent"]) if isinstance(row.get("spatial_extent"), (str, dict)) else None
        problems: List[str] = []
        for attempt in range(1, self.download_retries + 1):
            try:
                files = self._fetch_assets(job, job_dir)
                netcdfs = [f for f in files if f.suffix.lower() in (".nc", ".nc4")]
                problems = [
                    problem
                    for f in netcdfs
                    for problem in check_netcdf(
                        f, expected.variables, has_time=expected.has_time, int16=expected.int16, spatial_extent=extent
                    )
                ]
                if not netcdfs:
                    problems = ["the job has no NetCDF result"]
                if not problems:
                    relative = [str(f.relative_to(self.output_dir)) for f in files]
                    self.tracker.update_row(index, result_status="ok", result_files=json.dumps(relative))
                    self.emit(index, row, "downloaded", message=", ".join(relative))
                    return
                for f in netcdfs:
                    f.unlink(missing_ok=True)  # never leave a bad file where the loader could pick it up
            except DownloadCancelled:
                self.tracker.update_row(index, result_status=None)
                return
            except OpenEoApiPlainError as exc:
                if is_auth_error(exc):  # downloaded again after the new sign-in
                    self.tracker.update_row(index, result_status=None)
                    return
                problems = [str(exc)]
            except (DownloadError, requests.RequestException) as exc:
                problems = [str(exc)]
            except OSError as exc:  # read-only or full disk: say so, keep the job for a later retry
                problems = [f"cannot write into {job_dir}: {exc.strerror or exc}"]
            _log.warning("download of job %s, attempt %d: %s", job.job_id, attempt, "; ".join(problems))
            if self._stop.wait(min(10.0, 0.5 * 2**attempt)):
                self.tracker.update_row(index, result_status=None)
                return
        message = "download failed: " + "; ".join(problems)
        self.tracker.update_row(index, result_status="failed", error_message=message[:1000])
        self.emit(index, row, "download_failed", message=message)

    def _fetch_assets(self, job: BatchJob, job_dir: Path) -> List[Path]:
        connection = job.connection
        assets = job.get_results().get_assets()
        files = []
        for asset in assets:
            name = asset.key
            target = job_dir / safe_asset_name(name)
            if not target.resolve().is_relative_to(job_dir.resolve()):
                raise DownloadError(f"asset {name!r} would be written outside {job_dir}; refused.")
            if same_origin(asset.href, connection.root_url):
                stream_to_file(connection.session, asset.href, target, auth=connection.auth, stop=self._stop)
            else:  # never send our token to another host
                with requests.Session() as session:
                    stream_to_file(session, asset.href, target, auth=None, stop=self._stop)
            files.append(target)
        return files

    def store_error_log(self, job: BatchJob, row: pd.Series) -> None:
        index = row.name
        try:
            logs = job.logs(level="error")
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            logs = [{"level": "error", "message": f"could not fetch the job's log: {exc}"}]
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.logs_dir / f"{safe_asset_name(job.job_id)}.json").write_text(json.dumps(list(logs), indent=2))
        message = next((str(e.get("message")) for e in reversed(list(logs)) if e.get("message")), "job failed")
        self.tracker.update_row(index, error_message=message[:1000])
        self.emit(index, row, "error", message=message)

    def _cancel_remote_jobs(self) -> None:
        for index, row in self.tracker.get_by_status(list(ACTIVE_STATUSES)).iterrows():
            connection = self._connection(row.get("backend_name"))
            if connection is not None and isinstance(row.get("id"), str):
                try:
                    connection.job(row["id"]).stop()
                    self._observed.persist(pd.DataFrame([{"status": "canceled"}], index=[index]))
                except (OpenEoApiPlainError, requests.RequestException) as exc:
                    _log.warning("could not cancel job %s: %s", row["id"], exc)

    def _cancel_stuck_jobs(self) -> None:
        """Jobs queued past ``max_queued_seconds`` (a backend that never starts them) end as errors."""
        if self.max_queued_seconds is None:
            return
        now = time.monotonic()
        for index, row in self.tracker.get_by_status(["queued"]).iterrows():
            since = self._queued_since.setdefault(index, now)  # resumed runs count from now
            if now - since <= self.max_queued_seconds:
                continue
            connection = self._connection(row.get("backend_name"))
            try:
                if connection is not None and isinstance(row.get("id"), str):
                    connection.job(row["id"]).stop()
            except (OpenEoApiPlainError, requests.RequestException) as exc:
                _log.warning("could not cancel stuck job %s: %s", row.get("id"), exc)
            message = (f"still queued on the backend after {self.max_queued_seconds / 60:.1f} min: cancelled there; "
                       "use Retry to queue it again")  # fmt: skip
            self.tracker.update_row(index, error_message=message)
            self._observed.remember({index: "error"})  # one event, the one with the reason
            self._observed.persist(pd.DataFrame([{"status": "error"}], index=[index]))
            self.emit(index, row, "error", previous="queued", message=message)

    # --- reporting -----------------------------------------------------------------------------
    def _status_changed(self, index: int, row: pd.Series, previous: Optional[str]) -> None:
        status = row.get("status")
        if status == "queued":
            self._queued_since.setdefault(index, time.monotonic())
        else:  # a job queued again later (Retry) counts from then
            self._queued_since.pop(index, None)
        if previous == "not_started" and status in ("finished", "error") and isinstance(row.get("id"), str):
            # openeo's _launch_job stores the status it reads right after start_job; a job that ended
            # by then (a slow, retried status call) never reaches on_job_done / on_job_error.
            connection = self._connection(row.get("backend_name"))
            if connection is not None:
                job = connection.job(row["id"])
                if status == "finished":
                    self.submit_download(job, row)
                else:
                    self.store_error_log(job, row)
        if status == "error" and isinstance(row.get("id"), str):
            return  # store_error_log reports it once, with the backend's message (it used to come twice)
        self.emit(index, row, str(row.get("status")), previous=previous)

    def emit(self, index: int, row: pd.Series, status: str, previous: Optional[str] = None, message: str = "") -> None:
        _log.info("job %s (%s): %s%s", index, row.get("title"), status, f" - {message}" if message else "")
        if self.on_event:
            self.on_event(JobEvent(int(index), str(row.get("title")), status, previous, message))

    def _progress(self) -> RunProgress:
        """Counts per status and of checked downloads, from one read of the tracker (no footprints)."""
        jobs = self.tracker.snapshot()
        counts = {str(k): int(v) for k, v in jobs["status"].value_counts().items()}
        finished = jobs[jobs["status"] == "finished"]
        results = finished.get("result_status", pd.Series(dtype=object))
        return RunProgress(counts, len(jobs), int((results == "ok").sum()), int((results == "failed").sum()), jobs,
                           self.credits(jobs))  # fmt: skip

    def _report_progress(self) -> None:
        if self.on_progress:
            self.on_progress(self._progress())


def check_writable(folder: Path, what: str) -> None:
    """Fail early, with the fix, when results could not be written (read-only folder, full disk)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".wac-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise TrackerError(f"{what} {folder} is not writable ({exc.strerror or exc}); choose another folder.") from None


def _describe(error: Exception) -> str:
    """An HTTP error as a person reads it: a gateway's empty or HTML page says nothing useful itself."""
    if isinstance(error, OpenEoApiPlainError):
        body = (error.message or "").strip()
        if not body or body.lstrip().startswith("<"):
            return f"HTTP {error.http_status_code} with {'an HTML page' if body else 'an empty answer'} (a gateway)"
        return f"HTTP {error.http_status_code}: {body[:200]}"
    return f"{type(error).__name__}: {error}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iter_failed(tracker: Tracker) -> Iterable[pd.Series]:
    """Jobs that ended without a usable result: failed on the backend, or finished but not downloaded."""
    failed = tracker.get_by_status(["error", "start_failed", "skipped", "canceled"])
    for _, row in failed.iterrows():
        yield row
    for _, row in tracker.get_by_status(["finished"]).iterrows():
        if row.get("result_status") == "failed":
            yield row


@dataclass
class ResultCounts:
    """What became of the finished jobs' results (a job can be finished on the backend, its result not here)."""

    downloaded: int
    failed: int
    waiting: int
    first_error: str = ""

    def __str__(self) -> str:
        text = f"results of {self.downloaded + self.failed + self.waiting} finished jobs: {self.downloaded} downloaded"
        text += f", {self.failed} failed, {self.waiting} not downloaded yet"
        return text + (f"; first error: {self.first_error}" if self.first_error else "")


def result_counts(tracker: Tracker) -> ResultCounts:
    finished = tracker.get_by_status(["finished"])
    status = finished.get("result_status", pd.Series(index=finished.index, dtype=object))
    failed = finished[status == "failed"]
    messages = [m for m in failed.get("error_message", pd.Series(dtype=object)) if isinstance(m, str) and m]
    downloaded, failures = int((status == "ok").sum()), len(failed)
    return ResultCounts(downloaded, failures, len(finished) - downloaded - failures, messages[0] if messages else "")
