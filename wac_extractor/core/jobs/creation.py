"""Creating and starting each row's job exactly once, whatever the network loses.

Every row gets a key that goes into its job's title (``[wac:<key>]``). A create whose answer was lost
(a gateway's 5xx, a timeout), or a row whose create may have gone out before a crash, is first looked
up on the backend by that key: found, the job is adopted; not found, the row is created again after a
backoff while the other rows run. A start is repeated only while the job is still ``created`` (a
backend may run a finished job again when asked to start it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from typing import Callable, Dict, Optional, Tuple

import pandas as pd
import requests
from openeo import BatchJob, Connection
from openeo.rest import OpenEoApiPlainError

from ..backends.signin import is_auth_error
from ..recipes.process_graphs import BackendCapabilities, backend_capabilities, job_cube
from .concurrency import BackendSlots, JobHeldError, is_limit_refusal
from .failures import CAUSE_COLUMN, REFUSED
from .job_options import DEFAULT_MAX_MEMORY_MB, USED_COLUMN, options_for
from .retry import CALLS, CREATES, describe, is_transient, retry_call
from .tracker import Tracker

_log = logging.getLogger(__name__)

LISTING_PAGE = 100  # jobs per page when looking a job up by its key
MAX_LISTING_PAGES = 1000


class JobCreator:
    """openeo's ``start_job`` callable for a run: build the row's graph, create its job once, start it."""

    def __init__(self, tracker: Tracker, stop: threading.Event, slots: BackendSlots, job_budget: Optional[float] = None,
                 job_options: Optional[Dict[str, object]] = None, max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
                 on_created: Optional[Callable[[Connection, BatchJob, pd.Series, str], None]] = None,
                 on_held: Optional[Callable[[int, str, str], None]] = None):  # fmt: skip
        self.tracker = tracker
        self.stop = stop
        self.slots = slots
        self.job_budget = job_budget
        self.job_options = dict(job_options or {})  # the run's; a row's own win (job_options.options_for)
        self.max_memory_mb = max_memory_mb
        self.on_created = on_created  # e.g. ask the backend for an estimate of the first job of a kind
        self.on_held = on_held  # (row, job id, backend): created, its start refused for concurrency
        self._capabilities: Dict[str, BackendCapabilities] = {}
        # Rows whose create got no answer and whose job was not found: (attempts, monotonic time to retry).
        self.deferred: Dict[int, Tuple[int, float]] = {}

    def may_retry(self, index: int) -> bool:
        """Whether a row without a job may be created again now (its backoff after a lost create is over)."""
        return time.monotonic() >= self.deferred.get(index, (0, 0.0))[1]

    def __call__(self, row: pd.Series, connection: Connection, provider: str, **kwargs) -> Optional[BatchJob]:
        """Returns the started job; None for a row the backend refuses (openeo marks it ``skipped``).

        Raises ``requests.ConnectionError`` for "not now" (openeo marks the row ``start_failed``, and
        the runner creates it again): a lost answer, a lost sign-in.
        """
        index = row.name
        if self.slots.full(provider):  # known limit reached: no job created to wait (started rows free slots)
            raise JobHeldError(f"{provider}: every slot the backend allows is in use")
        try:
            cube = job_cube(row, self._backend_capabilities(connection, provider))
            key = row.get("job_key") if isinstance(row.get("job_key"), str) else uuid.uuid4().hex[:12]
            title = f"{row.get('title') or 'WAC job'} [wac:{key}]"
            if isinstance(row.get("create_requested_at"), str):
                existing = self.find_remote_job(connection, key)
                if existing is not None:
                    _log.info("job for row %s already exists on %s: %s (not created again)", index, provider, existing)
                    self.deferred.pop(index, None)
                    return self.start(connection.job(existing), title, adopted=True, index=index, provider=provider)
            options = options_for(row, self.job_options, self.max_memory_mb)
            self.tracker.update_row(index, job_key=key, create_requested_at=_now(),
                                    **{USED_COLUMN: json.dumps(options) if options else None})  # fmt: skip
            job, adopted = self._create(connection, cube, title, key, index, options)
            self.deferred.pop(index, None)  # the row has its job: no retry pending
            if self.on_created is not None:
                self.on_created(connection, job, row, provider)
            # Started here, on this connection: openeo's start task would first open a new connection
            # (two more requests and a thread hop per job). A failed start is retried as "start_failed".
            return self.start(job, title, adopted=adopted, index=index, provider=provider)
        except (ValueError, OpenEoApiPlainError) as exc:
            if is_auth_error(exc):  # not the row's fault: "start_failed", started again once signed in
                raise requests.exceptions.ConnectionError(f"create job: {exc}") from exc
            # A refused row (bad dates, a graph the backend rejects): openeo marks it "skipped"; say why.
            self.deferred.pop(index, None)
            self.tracker.update_row(index, error_message=str(exc)[:1000], **{CAUSE_COLUMN: REFUSED})
            return None

    def _backend_capabilities(self, connection: Connection, provider: str) -> BackendCapabilities:
        if provider not in self._capabilities:
            self._capabilities[provider] = retry_call(
                lambda: backend_capabilities(connection), "read capabilities", self.stop
            )
        return self._capabilities[provider]

    def _create(self, connection: Connection, cube, title: str, key: str, index: int,
                options: Dict[str, object]) -> Tuple[BatchJob, bool]:  # fmt: skip
        """One ``POST /jobs``, never repeated blindly: a 5xx or a timeout may come after the backend
        created the job, so the job is looked up by its key first. Returns the job and whether it was
        adopted (found on the backend rather than created now).

        Not found: the row becomes ``start_failed`` and is created again after a backoff (2, 4, 8 ...
        60 s), each time after another look-up; the other rows run meanwhile.
        """
        try:
            return connection.create_job(cube, title=title, budget=self.job_budget, job_options=options or None), False
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            if not is_transient(exc):
                raise
            error: Exception = exc  # a timeout, a reset or a 5xx: the request may have arrived
        attempts = self.deferred.get(index, (0, 0.0))[0] + 1
        try:
            existing = self.find_remote_job(connection, key)
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            existing, error = None, exc
        if existing is not None:
            _log.info("create %r: no answer (%s), but the backend has it: %s (adopted)", title, error, existing)
            return connection.job(existing), True
        delay = CREATES.delay(attempts)
        self.deferred[index] = (attempts, time.monotonic() + delay)
        _log.warning("create %r: %s; not on the backend, created again in %.0f s", title, describe(error), delay)
        raise requests.exceptions.ConnectionError(f"create job {title!r}: {error}") from error

    def start(self, job: BatchJob, title: str, adopted: bool = False, index=None, provider: str = "") -> BatchJob:
        """Start a created job; an adopted job, or one whose start got no answer, only if still "created".

        Refused for concurrency: the job stays created (``on_held``) and is started when a slot frees.
        """
        try:
            return self._start(job, title, adopted)
        except OpenEoApiPlainError as exc:
            if not is_limit_refusal(exc):
                raise
            self.slots.learn(provider, exc)
            if self.on_held is not None:
                self.on_held(index, job.job_id, provider)
            raise JobHeldError(f"{title}: created, waits for a free slot ({exc.message})") from exc

    def _start(self, job: BatchJob, title: str, adopted: bool) -> BatchJob:
        attempt = [0]

        def start_once() -> BatchJob:
            attempt[0] += 1
            if (adopted or attempt[0] > 1) and job.status() != "created":
                return job  # the earlier start went through; its answer was lost
            job.start()
            return job

        return retry_call(start_once, f"start job {title!r}", self.stop, backoff=CALLS, retry_on=is_transient)

    def find_remote_job(self, connection: Connection, key: str) -> Optional[str]:
        """The backend's job whose title carries ``[wac:<key>]``: every page of ``GET /jobs``, following
        ``next`` links (openeo's ``list_jobs`` reads the first page only; real accounts hold thousands)."""
        marker = f"[wac:{key}]"
        path: Optional[str] = f"/jobs?limit={LISTING_PAGE}"
        root = connection.root_url.rstrip("/")
        for _ in range(MAX_LISTING_PAGES):
            page = retry_call(lambda p=path: connection.get(p, expected_status=200).json(), "list jobs", self.stop)
            found = [job for job in page.get("jobs", []) if marker in (job.get("title") or "")]
            if found:
                return max(found, key=lambda job: job.get("created") or "")["id"]  # the newest, if ever two
            href = next((link.get("href") for link in page.get("links", []) if link.get("rel") == "next"), None)
            if not href:
                return None
            if not href.startswith(root):  # never send the token to another host
                _log.warning("job listing's next page %s is not on %s; not followed", href, root)
                return None
            path = href[len(root) :]
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
