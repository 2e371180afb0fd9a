"""Backend URLs and "Test connection": what a backend offers the WAC jobs (sign-in lives in ``signin``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlparse

import openeo

from ..recipes import RECIPES
from ..recipes.process_graphs import COLLECTIONS, RESULT_FORMAT, backend_capabilities, required_processes

_log = logging.getLogger(__name__)

CDSE_URL = "https://openeo.dataspace.copernicus.eu"
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
    if insecure_url_warning(url):
        _log.warning(insecure_url_warning(url))
    return url.rstrip("/")


def insecure_url_warning(url: str) -> str:
    """A warning for plain-HTTP URLs of hosts other than this machine, else ""."""
    parsed = urlparse(url)
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
        return f"backend {url} is not HTTPS: sign-in tokens, passwords and results travel unencrypted."
    return ""


@dataclass
class BackendReport:
    """What "Test connection" found: can this backend run WAC jobs, and for which dates?"""

    url: str
    api_version: str = ""
    user: str = ""  # who is signed in, empty when not signed in
    # collection id -> (first, last) ISO dates (None for an open end); missing collections are absent
    collections: Dict[str, Tuple[Optional[str], Optional[str]]] = field(default_factory=dict)
    missing_collections: List[str] = field(default_factory=list)
    missing_processes: List[str] = field(default_factory=list)
    netcdf: bool = False
    budget: Optional[float] = None  # credits left, where the backend reports it (GET /me -> budget)

    @property
    def ok(self) -> bool:
        return not (self.missing_collections or self.missing_processes) and self.netcdf

    def lines(self) -> List[str]:
        out = [f"openEO API {self.api_version} at {self.url}" + (f", signed in as {self.user}" if self.user else "")]
        for collection_id, (first, last) in self.collections.items():
            out.append(f"{collection_id}: {first or 'open'} to {last or 'open'}")
        if self.missing_collections:
            out.append("missing collections: " + ", ".join(self.missing_collections))
        if self.missing_processes:
            out.append("missing processes: " + ", ".join(self.missing_processes))
        out.append("save_result as netCDF: " + ("yes" if self.netcdf else "NO"))
        if self.budget is not None:
            out.append(f"budget left: {self.budget:,.1f} credits")
        return out


def check_backend(connection: openeo.Connection, user: str = "") -> BackendReport:
    """Read capabilities, collections, processes and output formats: what the WAC jobs need."""
    report = BackendReport(url=connection.root_url, user=user)
    report.api_version = connection.capabilities().api_version()
    listed = {c["id"] for c in connection.list_collections()}
    present = [c for c in COLLECTIONS.values() if c in listed]
    report.missing_collections = [c for c in COLLECTIONS.values() if c not in listed]
    capabilities = backend_capabilities(connection, present)
    report.collections = dict(capabilities.temporal_extents)
    needed = sorted({p for recipe in RECIPES for sentinel in COLLECTIONS for p in required_processes(sentinel, recipe)})
    report.missing_processes = [p for p in needed if p not in capabilities.processes]
    formats = connection.list_output_formats()
    report.netcdf = any(name.lower() == RESULT_FORMAT.lower() for name in formats)
    if user and connection.capabilities().supports_endpoint("/me", "GET"):
        budget = connection.describe_account().get("budget")
        report.budget = float(budget) if isinstance(budget, (int, float)) else None
    return report
