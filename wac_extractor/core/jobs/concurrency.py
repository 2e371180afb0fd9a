"""A backend's limit of concurrent jobs, learned from its refusal, and the jobs it keeps waiting.

A CDSE free-tier account runs 2 batch jobs at once; a third start gets HTTP 400 ``ConcurrentJobLimit``
("Job was not started because concurrent job limit (2) is reached.", openeo-python-client #838), and
jobs started elsewhere (a notebook, the Web Editor) count too. Such a refusal is not a failure: the
job stays created and is started when a slot frees, the run uses at most that many slots on that
backend, and the user is told once.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Dict, Optional

import requests
from openeo.rest import OpenEoApiPlainError

from .tracker import Tracker

_log = logging.getLogger(__name__)

LIMIT_CODE = "ConcurrentJobLimit"
_LIMIT_IN_MESSAGE = re.compile(r"concurrent job limit\D{0,5}(\d+)", re.IGNORECASE)
STARTED = ("queued", "queued_for_start", "running")  # what counts against the limit on the backend


class JobHeldError(requests.exceptions.ConnectionError):
    """A job created but not started: its backend runs as many of the user's jobs as it allows.

    A ``ConnectionError`` so that openeo's job manager marks the row "not started now" (``start_failed``),
    never a refused row; the job database records it as ``created`` with its job (``RunDatabase.hold``)."""


def is_limit_refusal(error: BaseException) -> bool:
    if not isinstance(error, OpenEoApiPlainError):
        return False
    return getattr(error, "code", None) == LIMIT_CODE or "concurrent job limit" in (error.message or "").lower()


class BackendSlots:
    """How many of the run's jobs each backend may run at once: what was asked, lowered to what it allows."""

    def __init__(self, tracker: Tracker, asked: Dict[str, int]):
        self.tracker = tracker
        self.asked = dict(asked)
        self.limits: Dict[str, int] = {}  # learned from refusals
        self.on_lowered: Optional[Callable[[str, int], None]] = None  # (backend, slots): the manager's slots
        self.on_notice: Optional[Callable[[str, str], None]] = None  # (backend, message): said once

    def learn(self, backend: str, refusal: OpenEoApiPlainError) -> None:
        """The backend refused a start for concurrency: its limit is in the message, or what runs there now."""
        found = _LIMIT_IN_MESSAGE.search(refusal.message or "")
        limit = int(found.group(1)) if found else max(1, self.started(backend))
        if backend in self.limits and self.limits[backend] <= limit:
            return
        self.limits[backend] = limit
        asked = self.asked.get(backend, limit)
        _log.info("%s refused a start: concurrent job limit %d (%d asked)", backend, limit, asked)
        if limit < asked:
            if self.on_notice is not None:
                self.on_notice(backend, f"{backend} runs at most {limit} of your jobs at once ({asked} asked): "
                                        f"running {limit} at a time")  # fmt: skip
            if self.on_lowered is not None:
                self.on_lowered(backend, limit)

    def allowed(self, backend: str) -> int:
        asked = self.asked.get(backend, 1)
        return min(asked, self.limits.get(backend, asked))

    def started(self, backend: str) -> int:
        jobs = self.tracker.get_by_status(list(STARTED))
        return int((jobs.get("backend_name") == backend).sum()) if len(jobs) else 0

    def full(self, backend: str) -> bool:
        """Only once a limit is known: no slot free for another job there (no pile of created jobs)."""
        return backend in self.limits and self.started(backend) >= self.allowed(backend)

    def free(self, backend: str) -> int:
        return max(0, self.allowed(backend) - self.started(backend))
