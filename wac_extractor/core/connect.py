"""Open authenticated openEO connections (command line and runner; the plugin adds its own UI)."""

from __future__ import annotations

import logging
from typing import Optional
from urllib.parse import urlparse

import openeo

_log = logging.getLogger(__name__)

CDSE_URL = "https://openeo.dataspace.copernicus.eu"
AUTH_METHODS = ("oidc", "basic", "none")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def normalize_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ValueError("backend: no URL given; use e.g. openeo.dataspace.copernicus.eu.")
    if "://" not in url:
        url = "https://" + url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"backend: {url!r} is not an http(s) URL; use e.g. https://openeo.dataspace.copernicus.eu.")
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
        _log.warning("backend %s is not HTTPS: credentials and results travel unencrypted.", url)
    return url.rstrip("/")


def connect(
    url: str,
    auth: str = "oidc",
    username: Optional[str] = None,
    password: Optional[str] = None,
    timeout: float = 60,
) -> openeo.Connection:
    """An authenticated connection; ``oidc`` uses openeo's stored refresh tokens or the device flow."""
    if auth not in AUTH_METHODS:
        raise ValueError(f"auth: {auth!r} is not one of {', '.join(AUTH_METHODS)}.")
    connection = openeo.connect(normalize_url(url), default_timeout=timeout, auto_validate=False)
    if auth == "basic":
        if not username or password is None:
            raise ValueError("auth basic: give a user name (--username) and the password (WAC_PASSWORD or prompt).")
        connection.authenticate_basic(username, password)
    elif auth == "oidc":
        connection.authenticate_oidc()
    return connection
