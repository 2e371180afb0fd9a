"""Download job result assets safely and check them before a job counts as done.

Written by hand on purpose (instead of ``ResultAsset.download``): we need a size check against
``Content-Length``, a hard size cap, cancellation between chunks, no auth header sent to other
hosts, and asset names that can never escape the job folder.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Iterable, List, Optional
from urllib.parse import urlparse

import requests

_log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_ASSET_BYTES = 20 << 30  # 20 GiB: far above a 10 km tile, far below a full disk
FREE_SPACE_MARGIN = 200 << 20  # keep 200 MiB free for the tracker, logs and QGIS


class DownloadError(Exception):
    """An asset could not be downloaded or is not a usable result."""


class DownloadCancelled(Exception):  # noqa: N818  (a stop, not an error)
    """The run was cancelled while downloading."""


def safe_asset_name(name: str) -> str:
    """A file name for an asset that stays inside the job folder (no separators, no ``..``)."""
    base = re.split(r"[\\/]", str(name or ""))[-1].strip()
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base)
    if base in ("", ".", "..") or base.startswith("."):
        raise DownloadError(f"asset name {name!r} is not a plain file name; the backend's result is refused.")
    return base[:200]


def same_origin(url: str, root_url: str) -> bool:
    a, b = urlparse(url), urlparse(root_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def stream_to_file(
    session: requests.Session,
    href: str,
    target: Path,
    *,
    auth=None,
    stop: Optional[threading.Event] = None,
    max_bytes: int = DEFAULT_MAX_ASSET_BYTES,
    timeout: float = 60,
) -> int:
    """Download ``href`` to ``target`` through ``target.part``; the file appears only when complete."""
    partial = target.with_name(target.name + ".part")
    try:
        with session.get(href, stream=True, auth=auth, timeout=timeout) as response:
            if response.status_code != 200:
                raise DownloadError(f"GET {href} answered HTTP {response.status_code}")
            expected = int(response.headers.get("Content-Length") or -1)
            if expected > max_bytes:
                raise DownloadError(f"{href} is {expected} bytes, above the limit of {max_bytes}; refused.")
            free = shutil.disk_usage(target.parent).free
            if expected > 0 and expected > free - FREE_SPACE_MARGIN:
                raise DownloadError(
                    f"{href} needs {expected / 1e6:,.0f} MB but {target.parent} has {free / 1e6:,.0f} MB free; "
                    "free some space or choose another output folder, then retry."
                )
            written = 0
            with open(partial, "wb") as stream:
                for chunk in response.iter_content(CHUNK_BYTES):
                    if stop is not None and stop.is_set():
                        raise DownloadCancelled(href)
                    written += len(chunk)
                    if written > max_bytes:
                        raise DownloadError(f"{href} exceeds the limit of {max_bytes} bytes; refused.")
                    stream.write(chunk)
        if expected >= 0 and written != expected:
            raise DownloadError(f"{href}: got {written} of {expected} bytes (download cut off)")
        partial.replace(target)
        return written
    except requests.RequestException as exc:
        raise DownloadError(f"GET {href} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def check_netcdf(path: Path, variables: Iterable[str]) -> List[str]:
    """Open a result with GDAL and check that every expected variable is there and georeferenced.

    Returns the problems found (empty when the file is good).
    """
    from osgeo import gdal

    gdal.UseExceptions()
    try:
        dataset = gdal.Open(str(path))
    except RuntimeError as exc:
        return [f"GDAL cannot open {path.name}: {exc}"]
    subdatasets = {name.rsplit(":", 1)[-1] for name, _ in (dataset.GetSubDatasets() or [])}
    problems = []
    for variable in variables:
        if variable not in subdatasets:
            problems.append(f"{path.name} has no variable {variable}")
            continue
        try:
            band = gdal.Open(f'NETCDF:"{path}":{variable}')
        except RuntimeError as exc:
            problems.append(f"{path.name}:{variable} does not open: {exc}")
            continue
        if band.RasterCount < 1 or not band.GetProjection():
            problems.append(f"{path.name}:{variable} has no time steps or no CRS")
    return problems
