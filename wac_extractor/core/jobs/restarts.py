"""Picking up what an earlier run (or a lost answer) left, and starting jobs that wait for a free slot."""

from __future__ import annotations

import logging
from typing import Callable, Optional

import pandas as pd
import requests
from openeo import Connection
from openeo.rest import OpenEoApiPlainError

from .concurrency import BackendSlots, is_limit_refusal
from .creation import JobCreator
from .downloads import ResultFetcher
from .job_database import RunDatabase
from .retry import describe
from .tracker import Tracker

_log = logging.getLogger(__name__)


class Restarts:
    def __init__(self, tracker: Tracker, db: RunDatabase, connection_of: Callable[[str], Optional[Connection]],
                 fetcher: ResultFetcher, creator: JobCreator, slots: BackendSlots, on_error: Callable):  # fmt: skip
        self.tracker = tracker
        self.db = db
        self.connection_of = connection_of
        self.fetcher = fetcher
        self.creator = creator
        self.slots = slots
        self.on_error = on_error  # (job, row): store the failed job's log

    def resume(self) -> None:
        """Undownloaded results of finished jobs; jobs whose start was lost (``queued_for_start``) or failed."""
        for _, row in self.tracker.get_by_status(["finished"]).iterrows():
            if row.get("result_status") != "ok" and isinstance(row.get("id"), str):
                connection = self.connection_of(row.get("backend_name"))
                if connection is not None:
                    self.fetcher.submit(connection.job(row["id"]), row)
        self.restart_jobs(["queued_for_start", "start_failed"])
        for index, row in self.tracker.get_by_status(["skipped"]).iterrows():
            if "concurrent job limit" in str(row.get("error_message") or "").lower():
                # An earlier release marked a start refused for concurrency as skipped; its job (found by
                # its key, not created again) runs now.
                self.tracker.update_row(index, error_message=None)
                self.db.set_status(index, "not_started")

    def start_created_jobs(self) -> None:
        """Jobs created but not started (their backend ran as many as it allows) start as slots free."""
        created = self.tracker.get_by_status(["created"])
        for backend in created.get("backend_name", pd.Series(dtype=object)).dropna().unique():
            connection, free = self.connection_of(backend), self.slots.free(backend)
            waiting = created[(created["backend_name"] == backend) & created["id"].map(lambda v: isinstance(v, str))]
            for index, row in waiting.head(free if connection is not None else 0).iterrows():
                try:
                    connection.job(row["id"]).start()
                except OpenEoApiPlainError as exc:
                    if is_limit_refusal(exc):  # a job started elsewhere took the slot: next poll
                        self.slots.learn(backend, exc)
                        break
                    _log.warning("could not start job %s: %s", row["id"], describe(exc))
                    continue
                except requests.RequestException as exc:
                    _log.warning("could not start job %s: %s", row["id"], describe(exc))
                    break
                self.db.set_status(index, "queued")

    def restart_jobs(self, statuses) -> None:
        for index, row in self.tracker.get_by_status(statuses).iterrows():
            self._restart(index, row)

    def _restart(self, index: int, row: pd.Series) -> None:
        job_id = row.get("id")
        if not isinstance(job_id, str) or not job_id:
            if self.creator.may_retry(index):
                self.db.set_status(index, "not_started")  # created (again) by the manager
            return
        connection = self.connection_of(row.get("backend_name"))
        if connection is None:
            return
        try:
            job = connection.job(job_id)
            remote_status = job.status()
            if remote_status == "created":
                try:
                    job.start()
                    remote_status = "queued"
                except OpenEoApiPlainError as exc:
                    if not is_limit_refusal(exc):
                        raise
                    self.slots.learn(row.get("backend_name"), exc)  # started when a slot frees
            if remote_status != row.get("status"):
                self.db.set_status(index, remote_status)
            # A job that ended while we were not looking gets what the manager's hooks would have given it.
            if remote_status == "finished":
                self.fetcher.submit(job, row)
            elif remote_status == "error":
                self.on_error(job, row)
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            _log.warning("could not restart job %s: %s", job_id, exc)
