"""A lost sign-in (refresh token revoked or expired) pauses the run while it signs in again.

openeo renews an expired access token by itself (refresh token or client credentials); this is for
when that failed. Each backend's session reports 401/403 answers here; between polls the runner asks
the backend whether it still accepts the sign-in and, if not, signs in again through the backend's
``sign_in_again`` (the plugin shows the device code). Statuses are not polled meanwhile, so nothing
is marked failed.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Dict, Optional

import requests
from openeo import Connection
from openeo.rest import OpenEoApiPlainError, OpenEoClientException

from ..backends.signin import SignInCancelledError, SignInRequiredError, is_auth_error

_log = logging.getLogger(__name__)


class SignInLostError(RuntimeError):
    """A backend stopped accepting our sign-in and signing in again failed; every job is kept."""


class SignInWatch:
    def __init__(self, logins: Dict[str, Callable[[], Connection]]):
        self._logins = logins  # backend name -> connect(); with sign_in_again(connection) where it can
        self._suspects: set = set()  # backends that answered 401/403 since the last check

    def watch(self, name: str, connection: Connection) -> None:
        connection.session.hooks["response"].append(functools.partial(self._on_response, name))

    def _on_response(self, name: str, response: requests.Response, *args, **kwargs) -> None:
        if response.status_code in (401, 403):
            self._suspects.add(name)

    def check(self, connections: Dict[str, Connection]) -> bool:
        """Sign in again where a backend no longer accepts us; True when that happened (the caller resumes
        what failed on the lost sign-in). Raises ``SignInLostError`` when signing in again fails."""
        renewed = False
        while self._suspects:
            name = self._suspects.pop()
            connection = connections.get(name)
            if connection is None:
                continue
            reason = self._refusal(connection)
            if reason is None:
                continue
            _log.warning("%s: the backend no longer accepts the sign-in (%s); the run waits for a new sign-in.",
                         name, reason)  # fmt: skip
            sign_in_again = getattr(self._logins.get(name), "sign_in_again", None)
            try:
                if sign_in_again is None:
                    raise SignInRequiredError("this backend's sign-in cannot be renewed during a run")
                sign_in_again(connection)
                still = self._refusal(connection)
                if still is not None:  # a sign-in that changes nothing (none) would loop for ever
                    raise SignInRequiredError(f"the backend still refuses it ({still}); it needs a sign-in")
            except (SignInRequiredError, SignInCancelledError, OpenEoClientException) as exc:
                raise SignInLostError(
                    f"{name}: signing in again failed ({exc}); the run stopped. Sign in and run again: "
                    "every job is kept in the tracker and resumes."
                ) from exc
            self._suspects.discard(name)
            _log.info("%s: signed in again; the run carries on", name)
            renewed = True
        return renewed

    @staticmethod
    def _refusal(connection: Connection) -> Optional[str]:
        """Why the backend refuses our sign-in, or None when it accepts it (renews the access token if it can)."""
        try:
            connection.describe_account()
        except OpenEoApiPlainError as exc:
            if is_auth_error(exc):
                return exc.message
        return None
