"""One retry policy for every call a run repeats: backoff, Retry-After, and a stop that cuts the wait short.

Idempotent reads (GET, HEAD, OPTIONS, DELETE) are retried by requests' own ``Retry`` adapter, mounted
on each backend's session (:func:`mount_resilient`). What the adapter must not repeat blindly (POST
/jobs may have created a job whose answer a gateway lost) or what is not one HTTP call (a download, a
connection with its sign-in) goes through :func:`retry_call` or :class:`Backoff`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

import requests
from openeo.rest import OpenEoApiPlainError  # the base: JSON or plain/empty bodies
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

_log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_HTTP = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``first`` seconds, doubled per attempt, never over ``cap``."""

    first: float = 2.0
    cap: float = MAX_RETRY_AFTER_S

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0 ** (attempt - 1))


CALLS = Backoff(2.0, MAX_RETRY_AFTER_S)  # a refused call: 2, 4, 8 ... 30 s
DOWNLOADS = Backoff(1.0, 10.0)  # a failed or bad download: 1, 2, 4, 8, 10 s
CREATES = Backoff(2.0, 60.0)  # a create whose job is not on the backend: 2, 4 ... 60 s, other rows run meanwhile


class RunStoppedError(Exception):
    """A request of a run that is stopping, given up between two retries (not a connection error: openeo's
    job manager would sleep 5 s on one before the run could end)."""


class _CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After but never sleeps longer than 30 s, nor backs off over 10 s,
    and gives up at once when its run stops."""

    BACKOFF_MAX = 10  # urllib3 1.26 name
    DEFAULT_BACKOFF_MAX = 10
    stop: Optional[threading.Event] = None

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.stop = self.stop
        return retry

    def get_retry_after(self, response):
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER_S)

    def sleep(self, response=None):
        if self.stop is None:
            return super().sleep(response)
        seconds = (self.get_retry_after(response) if response is not None else None) or self.get_backoff_time()
        if seconds > 0 and self.stop.wait(seconds):  # an immediate retry still goes (e.g. cancelling jobs)
            raise RunStoppedError("the run is stopping")


def resilient_adapter(stop: Optional[threading.Event] = None) -> HTTPAdapter:
    retry = _CappedRetry(
        total=5,
        backoff_factor=0.5,
        status_forcelist=TRANSIENT_HTTP,
        allowed_methods=["HEAD", "GET", "OPTIONS", "DELETE"],  # POST /jobs: the job creator decides
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.stop = stop
    return HTTPAdapter(max_retries=retry)


def mount_resilient(session: requests.Session, root_url: str, stop: Optional[threading.Event] = None) -> None:
    """Our retry adapter for every request under ``root_url``.

    requests picks the adapter with the longest matching prefix, so this one wins over the
    ``http://``/``https://`` adapters that openeo's job manager mounts (they also retry POST, which
    would create a job twice when a gateway loses the answer). The session's default adapters are
    closed first: their pooled sockets (sign-in, capabilities) would be left to the garbage collector.
    """
    for adapter in session.adapters.values():
        adapter.close()
    session.mount(root_url.rstrip("/") + "/", resilient_adapter(stop))


def is_transient(error: BaseException) -> bool:
    if isinstance(error, OpenEoApiPlainError):
        return error.http_status_code in TRANSIENT_HTTP
    return isinstance(error, requests.RequestException)


def retry_call(
    call: Callable[[], T],
    what: str,
    stop: threading.Event,
    attempts: int = 4,
    backoff: Backoff = CALLS,
    retry_on: Callable[[BaseException], bool] = lambda e: isinstance(e, OpenEoApiPlainError) and is_transient(e),
) -> T:
    """``call()``, again after a backoff while it fails with an error ``retry_on`` accepts.

    The last transient failure, or a stop during a wait, is raised as ``requests.ConnectionError``:
    to openeo's job manager that means "not started, try again later" (``start_failed``), never a
    refused row.
    """
    error: Optional[BaseException] = None
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not retry_on(exc):
                raise
            error = exc
        if attempt == attempts:
            break
        delay = backoff.delay(attempt)
        _log.warning("%s: %s, retrying in %.0fs", what, describe(error), delay)
        if stop.wait(delay):
            raise requests.exceptions.ConnectionError(f"{what}: cancelled") from error
    raise requests.exceptions.ConnectionError(f"{what}: {describe(error)}") from error


def describe(error: BaseException) -> str:
    """An HTTP error as a person reads it: a gateway's empty or HTML page says nothing useful itself."""
    if isinstance(error, OpenEoApiPlainError):
        body = (error.message or "").strip()
        if not body or body.lstrip().startswith("<"):
            return f"HTTP {error.http_status_code} with {'an HTML page' if body else 'an empty answer'} (a gateway)"
        return f"HTTP {error.http_status_code}: {body[:200]}"
    return f"{type(error).__name__}: {error}"
