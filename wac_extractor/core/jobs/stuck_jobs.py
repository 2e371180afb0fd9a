"""Jobs a backend keeps queued for too long, and cancelling a run's jobs on the backend."""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, List, Optional

import requests
from openeo import Connection
from openeo.rest import OpenEoApiPlainError

from .failures import CAUSE_COLUMN, STUCK
from .job_database import RunDatabase
from .tracker import Tracker

_log = logging.getLogger(__name__)


class StuckJobs:
    def __init__(self, tracker: Tracker, db: RunDatabase, connection_of: Callable[[str], Optional[Connection]],
                 emit: Callable, max_queued_seconds: Optional[float] = None):  # fmt: skip
        self.tracker = tracker  # read directly: the job database shows a stopping run no rows
        self.db = db
        self.connection_of = connection_of
        self.emit = emit  # (index, row, status, previous=..., message=...)
        self.max_queued_seconds = max_queued_seconds
        self._queued_since: Dict[int, float] = {}  # row -> monotonic time it was first seen queued

    def status_changed(self, index: int, status: Optional[str]) -> None:
        if status == "queued":
            self._queued_since.setdefault(index, time.monotonic())
        else:  # a job queued again later (Retry) counts from then
            self._queued_since.pop(index, None)

    def cancel_stuck_jobs(self) -> None:
        """Jobs queued past ``max_queued_seconds`` (a backend that never starts them) end as errors."""
        if self.max_queued_seconds is None:
            return
        now = time.monotonic()
        for index, row in self.tracker.get_by_status(["queued"]).iterrows():
            since = self._queued_since.setdefault(index, now)  # resumed runs count from now
            if now - since <= self.max_queued_seconds:
                continue
            self._stop_remote(row)
            message = (f"still queued on the backend after {self.max_queued_seconds / 60:.1f} min: cancelled there; "
                       "use Retry to queue it again")  # fmt: skip
            self.tracker.update_row(index, error_message=message, **{CAUSE_COLUMN: STUCK})
            self.db.remember({index: "error"})  # one event, the one with the reason
            self.db.set_status(index, "error")
            self.emit(index, row, "error", previous="queued", message=message)

    def cancel_remote_jobs(self, statuses: List[str]) -> None:
        """Cancel on the backend every job of the run in these statuses (Cancel with 'stop backend jobs')."""
        for index, row in self.tracker.get_by_status(statuses).iterrows():
            if self._stop_remote(row):
                self.db.set_status(index, "canceled")

    def _stop_remote(self, row) -> bool:
        connection = self.connection_of(row.get("backend_name"))
        if connection is None or not isinstance(row.get("id"), str):
            return False
        try:
            connection.job(row["id"]).stop()
            return True
        except (OpenEoApiPlainError, requests.RequestException) as exc:
            _log.warning("could not cancel job %s: %s", row["id"], exc)
            return False
