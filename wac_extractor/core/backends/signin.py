"""Sign in to openEO backends without a terminal: device flow, stored refresh tokens, client credentials, basic.

``Connection.authenticate_oidc()`` prints the device-code link on stdout and cannot be cancelled;
a QGIS user sees neither. Here the device flow still runs through openeo's own
``authenticate_oidc_device`` (PKCE, polling, refresh-token storage, automatic access-token
renewal), but through a ``requests`` session that hands the verification link and user code to a
UI callback and turns a cancel into an exception at the next request. Refresh tokens live in
openeo's ``RefreshTokenStore`` (shared with notebooks); nothing here writes a secret anywhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import openeo
import requests
from openeo.rest import OpenEoApiPlainError, OpenEoClientException
from openeo.rest.auth.config import RefreshTokenStore
from openeo.rest.auth.oidc import OidcException

from ..jobs.openeo_private import close_oidc_renewer_session
from .connect import normalize_url

_log = logging.getLogger(__name__)

SIGN_IN_METHODS = ("oidc", "client_credentials", "basic", "none")
SECRET_METHODS = ("basic", "client_credentials")  # the ones that need a user/client id and a secret
AUTH_ERROR_CODES = ("TokenInvalid", "AuthenticationRequired", "AuthenticationSchemeInvalid")


class SignInCancelledError(Exception):
    """The user cancelled a device-code sign-in."""


class SignInRequiredError(Exception):
    """No stored sign-in could be used and nobody can be asked (no device-flow UI given)."""


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What the user needs to approve a device-code sign-in in a browser."""

    verification_uri: str
    user_code: str
    verification_uri_complete: Optional[str] = None
    expires_in: float = 300.0  # how long this code is polled for, in seconds

    @property
    def link(self) -> str:
        return self.verification_uri_complete or self.verification_uri


@dataclass
class DeviceFlowUi:
    """Callbacks of a device-code sign-in: ``show`` gets the code, ``cancelled`` is polled."""

    show: Callable[[DeviceCodePrompt], None]
    cancelled: Callable[[], bool] = lambda: False


class _DeviceFlowSession(requests.Session):
    """Session for openeo's device authenticator: reports the user code, raises on cancel."""

    def __init__(self, ui: DeviceFlowUi, max_poll_time: float):
        super().__init__()
        self.ui = ui
        self.max_poll_time = max_poll_time

    def post(self, url, *args, **kwargs):
        if self.ui.cancelled():
            raise SignInCancelledError("sign-in cancelled")
        response = super().post(url, *args, **kwargs)
        data = _json(response)
        if response.ok and "user_code" in data and "device_code" in data:
            self.ui.show(
                DeviceCodePrompt(
                    verification_uri=data.get("verification_uri") or data.get("verification_url", ""),
                    user_code=data["user_code"],
                    verification_uri_complete=data.get("verification_uri_complete"),
                    expires_in=min(float(data.get("expires_in") or self.max_poll_time), self.max_poll_time),
                )
            )
        return response


def _json(response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class SignIn:
    """How to sign in to one backend.

    ``username`` is the basic-auth user or the OIDC client id (client credentials); ``secret`` the
    password or client secret, held only in memory for this session (never in ``repr``).
    Without ``device_ui`` an OIDC sign-in only uses a stored refresh token (else
    ``SignInRequiredError``): a background run never blocks on a prompt nobody sees.
    """

    method: str = "oidc"
    username: str = ""
    secret: str = field(default="", repr=False)
    provider_id: Optional[str] = None
    device_ui: Optional[DeviceFlowUi] = None
    max_poll_time: float = 300.0

    def __post_init__(self):
        if self.method not in SIGN_IN_METHODS:
            raise ValueError(f"sign-in: {self.method!r} is not one of {', '.join(SIGN_IN_METHODS)}.")

    def apply(self, connection: openeo.Connection) -> openeo.Connection:
        """Authenticate ``connection`` in place (also used to sign in again during a run)."""
        if self.method == "basic":
            if not self.username or not self.secret:
                raise ValueError("sign-in basic: give a user name and a password.")
            return connection.authenticate_basic(self.username, self.secret)
        if self.method == "client_credentials":
            if not self.username or not self.secret:
                raise ValueError("sign-in client credentials: give the client id and the client secret.")
            return connection.authenticate_oidc_client_credentials(
                client_id=self.username, client_secret=self.secret, provider_id=self.provider_id
            )
        if self.method == "oidc":
            return self._oidc(connection)
        return connection

    def _oidc(self, connection: openeo.Connection) -> openeo.Connection:
        try:
            connection.authenticate_oidc_refresh_token(provider_id=self.provider_id, store_refresh_token=True)
            _log.info("signed in to %s with a stored refresh token", connection.root_url)
            return connection
        except (OidcException, OpenEoClientException) as exc:  # none stored, expired or revoked
            _log.info("no usable stored refresh token for %s (%s)", connection.root_url, type(exc).__name__)
        if self.device_ui is None:
            raise SignInRequiredError(f"sign in to {connection.root_url} first (no stored sign-in could be used).")
        session = _DeviceFlowSession(self.device_ui, self.max_poll_time)
        try:
            return connection.authenticate_oidc_device(
                provider_id=self.provider_id,
                store_refresh_token=True,
                max_poll_time=self.max_poll_time,
                display=lambda *args, **kwargs: None,  # openeo's text progress bar; the UI shows its own
                requests_session=session,
            )
        finally:
            session.close()


@dataclass
class BackendLogin:
    """A backend URL and how to sign in: the ``connect`` callable the runner takes, and re-sign-in."""

    url: str
    sign_in: SignIn = field(default_factory=SignIn)
    timeout: float = 60.0
    refresh_token_store: Optional[RefreshTokenStore] = field(default=None, repr=False)  # None: openeo's default
    retry: Optional[Union[dict, bool]] = None  # openeo's HTTP retry settings; None: its defaults (about 30 s)

    def __post_init__(self):
        self.url = normalize_url(self.url)

    def __call__(self) -> openeo.Connection:
        connection = open_connection(
            self.url,
            default_timeout=self.timeout,
            auto_validate=False,
            refresh_token_store=self.refresh_token_store,
            retry=self.retry,
        )
        return self.sign_in.apply(connection)

    def sign_in_again(self, connection: openeo.Connection) -> openeo.Connection:
        return self.sign_in.apply(connection)


def open_connection(url: str, **kwargs) -> openeo.Connection:
    """``openeo.Connection`` with one HTTP session we own (close it with ``connection.session.close()``).

    Without a session, openeo's version discovery opens one of its own and never closes it: an
    unclosed socket (a ResourceWarning) per connection.
    """
    return openeo.Connection(url, session=requests.Session(), **kwargs)


def close_connection(connection: openeo.Connection) -> None:
    """Close a connection's HTTP sessions: its own and its OIDC token renewer's.

    openeo's OIDC authenticators open a session of their own for the token endpoint (reached through a
    private name: ``jobs.openeo_private``). Closed sessions stay usable: a later request opens new
    sockets, so a connection kept for a re-sign-in still works.
    """
    connection.session.close()
    close_oidc_renewer_session(connection)


def is_auth_error(exc: BaseException) -> bool:
    """Whether an error means the backend no longer accepts our sign-in."""
    if not isinstance(exc, OpenEoApiPlainError):  # JSON errors and plain ones (a proxy's 401 page)
        return False
    return getattr(exc, "code", None) in AUTH_ERROR_CODES or exc.http_status_code == 401


def signed_in_as(connection: openeo.Connection) -> str:
    """'Name (user id)' of the signed-in account, for the UI."""
    account = connection.describe_account()
    user_id, name = account.get("user_id", "?"), account.get("name")
    return f"{name} ({user_id})" if name and name != user_id else str(user_id)


def sign_out(url: str, store: Optional[RefreshTokenStore] = None) -> int:
    """Forget the stored refresh tokens of every OIDC provider of ``url``; returns how many went."""
    connection = open_connection(normalize_url(url), auto_validate=False)
    store = store or RefreshTokenStore()
    forgotten = 0
    providers = connection.get("/credentials/oidc", expected_status=200).json().get("providers", [])
    close_connection(connection)
    for provider in providers:
        issuer = str(provider.get("issuer", "")).rstrip("/")
        clients = store.get(issuer, default={})
        if clients:
            forgotten += len(clients)
            store.set(issuer, value={})  # openeo's public API: the issuer keeps no token
    return forgotten


def connect(
    url: str, method: str = "oidc", username: str = "", secret: str = "", device_ui: Optional[DeviceFlowUi] = None
) -> openeo.Connection:
    """A signed-in connection (shorthand for ``BackendLogin(url, SignIn(...))()``)."""
    return BackendLogin(url, SignIn(method, username or "", secret or "", device_ui=device_ui))()
