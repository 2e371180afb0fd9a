"""A small OpenID Connect provider for the local backend: discovery, device flow, refresh, client credentials.

Enough of RFC 8628 (device authorization grant, with PKCE as openEO clients use it) and RFC 6749
(refresh_token and client_credentials grants) for the unmodified ``openeo`` client to log in. A
person "approves" a user code on the verification page (``GET/POST /oidc/device``) or a test does
it through ``POST /_control/oidc``. Access tokens expire after ``access_token_seconds``; a request
with an expired one gets ``403 TokenInvalid``, which makes the openeo client refresh it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

PROVIDER_ID = "local"
PUBLIC_CLIENT = "wac-extractor"  # device flow + refresh tokens, no secret (like CDSE's default client)
SERVICE_CLIENTS = {"wac-service": "service-secret"}  # client credentials (service accounts)
USERS = {"alice": "Alice Analyst"}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class DeviceCode:
    user_code: str
    client_id: str
    code_challenge: Optional[str]
    expires_at: float
    user: Optional[str] = None  # set when approved


@dataclass
class OidcProvider:
    """State of the provider; every method is called under the backend's lock."""

    access_token_seconds: float = 3600.0
    device_interval: int = 1
    device_codes: Dict[str, DeviceCode] = field(default_factory=dict)
    access_tokens: Dict[str, tuple] = field(default_factory=dict)  # token -> (user, expires_at)
    refresh_tokens: Dict[str, tuple] = field(default_factory=dict)  # token -> (user, client_id)
    grants: Dict[str, int] = field(default_factory=dict)  # grant type -> tokens issued
    lock: threading.RLock = field(default_factory=threading.RLock)

    def discovery(self, issuer: str) -> dict:
        return {
            "issuer": issuer,
            "device_authorization_endpoint": f"{issuer}/device_authorization",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "grant_types_supported": [DEVICE_GRANT, "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "offline_access"],
        }

    def provider_listing(self, issuer: str) -> dict:
        grants = ["urn:ietf:params:oauth:grant-type:device_code+pkce", "refresh_token"]
        return {
            "id": PROVIDER_ID,
            "issuer": issuer,
            "title": "Local OIDC provider (tests and demo)",
            "scopes": ["openid"],
            "default_clients": [{"id": PUBLIC_CLIENT, "grant_types": grants}],
        }

    # --- endpoints ---------------------------------------------------------------------------
    def device_authorization(self, form: dict, issuer: str) -> tuple:
        if form.get("client_id") != PUBLIC_CLIENT:
            return 400, {"error": "invalid_client", "error_description": "unknown client"}
        with self.lock:
            device_code = secrets.token_urlsafe(24)
            user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
            self.device_codes[device_code] = DeviceCode(
                user_code, PUBLIC_CLIENT, form.get("code_challenge"), time.time() + 600
            )
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": f"{issuer}/device",
            "verification_uri_complete": f"{issuer}/device?user_code={user_code}",
            "expires_in": 600,
            "interval": self.device_interval,
        }

    def token(self, form: dict) -> tuple:
        grant = form.get("grant_type")
        with self.lock:
            if grant == DEVICE_GRANT:
                return self._device_token(form)
            if grant == "refresh_token":
                entry = self.refresh_tokens.get(form.get("refresh_token", ""))
                if entry is None or entry[1] != form.get("client_id"):
                    return 400, {"error": "invalid_grant", "error_description": "refresh token unknown or revoked"}
                return self._issue(entry[0], grant, client_id=entry[1], refresh_token=form["refresh_token"])
            if grant == "client_credentials":
                client_id = form.get("client_id", "")
                if SERVICE_CLIENTS.get(client_id) != form.get("client_secret"):
                    return 401, {"error": "invalid_client", "error_description": "wrong client id or secret"}
                return self._issue(f"service-account-{client_id}", grant)
        return 400, {"error": "unsupported_grant_type"}

    def _device_token(self, form: dict) -> tuple:
        code = self.device_codes.get(form.get("device_code", ""))
        if code is None or code.expires_at < time.time():
            return 400, {"error": "expired_token"}
        if code.code_challenge:
            verifier = (form.get("code_verifier") or "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).decode().rstrip("=")
            if challenge != code.code_challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        if code.user is None:
            return 400, {"error": "authorization_pending"}
        del self.device_codes[form["device_code"]]
        return self._issue(code.user, DEVICE_GRANT, client_id=code.client_id, refresh_token=secrets.token_urlsafe(32))

    def _issue(self, user: str, grant: str, client_id: str = "", refresh_token: Optional[str] = None) -> tuple:
        access = secrets.token_urlsafe(32)
        self.access_tokens[access] = (user, time.time() + self.access_token_seconds)
        self.grants[grant] = self.grants.get(grant, 0) + 1
        body = {"access_token": access, "token_type": "Bearer", "expires_in": int(self.access_token_seconds)}
        if refresh_token:
            self.refresh_tokens[refresh_token] = (user, client_id)
            body["refresh_token"] = refresh_token
        return 200, body

    def user_for(self, access_token: str) -> tuple:
        """(user, None) for a valid token, else (None, openEO error code)."""
        with self.lock:
            entry = self.access_tokens.get(access_token)
        if entry is None:
            return None, "TokenInvalid"
        user, expires_at = entry
        if expires_at < time.time():
            return None, "TokenInvalid"
        return user, None

    # --- the person at the browser, or a test ------------------------------------------------
    def approve(self, user_code: str, user: str = "alice") -> bool:
        with self.lock:
            for code in self.device_codes.values():
                if code.user_code == user_code.strip().upper() and user in USERS:
                    code.user = user
                    return True
        return False

    def pending_codes(self) -> list:
        with self.lock:
            return [c.user_code for c in self.device_codes.values() if c.user is None]

    def control(self, body: dict) -> dict:
        """``approve``: a user code; ``access_token_seconds``; ``revoke``: forget every token."""
        with self.lock:
            approved = self.approve(body["approve"], body.get("user", "alice")) if "approve" in body else None
            if "access_token_seconds" in body:
                self.access_token_seconds = float(body["access_token_seconds"])
            if body.get("expire_access_tokens"):
                self.access_tokens = {t: (u, 0.0) for t, (u, _) in self.access_tokens.items()}
            if body.get("revoke"):
                self.access_tokens.clear()
                self.refresh_tokens.clear()
            return {
                "approved": approved,
                "pending": self.pending_codes(),
                "grants": dict(self.grants),
                "access_tokens": list(self.access_tokens),
            }  # fmt: skip  (test-only: for secret greps)

    def reset(self) -> None:
        with self.lock:
            self.access_token_seconds = 3600.0
            self.device_codes.clear()
            self.access_tokens.clear()
            self.refresh_tokens.clear()
            self.grants.clear()


def verification_page(issuer: str, user_code: str = "", message: str = "") -> bytes:
    """The page a user opens from the device-code link: enter (or confirm) the code, approve."""
    user_code, message = html.escape(user_code, quote=True), html.escape(message)
    return f"""<!doctype html><html><head><title>Local OIDC sign-in</title></head>
<body style="font-family:sans-serif;max-width:30em;margin:3em auto">
<h1>Sign in to the local openEO backend</h1><p>{message}</p>
<form method="post" action="{issuer}/device">
<label>Code <input name="user_code" value="{user_code}" style="font-size:150%"></label>
<label>as <select name="user">{"".join(f'<option value="{u}">{n}</option>' for u, n in USERS.items())}</select></label>
<button type="submit">Approve</button></form></body></html>""".encode()
