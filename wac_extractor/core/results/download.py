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

from ..platform.hdf5_quiet import quiet_hdf5

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
    except requests.exceptions.ChunkedEncodingError as exc:  # urllib3 2 raises on a short body itself
        raise DownloadError(f"{href}: the connection closed early (download cut off: {exc})") from exc
    except requests.RequestException as exc:
        raise DownloadError(f"GET {href} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


INT16_RANGE = (-32768, 32767)


def check_netcdf(
    path: Path,
    variables: Iterable[str],
    *,
    has_time: Optional[bool] = None,
    int16: bool = False,
    spatial_extent: Optional[dict] = None,
) -> List[str]:
    """Open a result with GDAL and check it is what the job asked for.

    Every expected variable is there and georeferenced; ``has_time`` False: no time dimension
    (one band per variable); ``int16``: values in the int16 range; ``spatial_extent`` (the job's,
    in a projected CRS): the same CRS, and an extent within a pixel of it. Returns the problems
    found (empty when the file is good).
    """
    from osgeo import gdal

    gdal.UseExceptions()
    quiet_hdf5()
    try:
        dataset = gdal.Open(str(path))
    except RuntimeError as exc:
        return [f"GDAL cannot open {path.name}: {exc}"]
    subdatasets = {name.rsplit(":", 1)[-1] for name, _ in (dataset.GetSubDatasets() or [])}
    problems = []
    grid_checked = False
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
            continue
        if has_time is False and (band.RasterCount > 1 or "NETCDF_DIM_EXTRA" in band.GetMetadata()):
            problems.append(f"{path.name}:{variable} has a time dimension ({band.RasterCount} steps); expected none")
        if int16:
            problems.extend(_int16_problems(band, f"{path.name}:{variable}"))
        if spatial_extent and not grid_checked:
            problems.extend(_grid_problems(band, spatial_extent, path.name))
            grid_checked = True
    return problems


def _int16_problems(dataset, name: str) -> List[str]:
    import numpy as np

    values = dataset.ReadAsArray().astype("float64")
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < INT16_RANGE[0] or finite.max() > INT16_RANGE[1]):
        return [f"{name} has values {finite.min():g}..{finite.max():g}, outside the int16 range"]
    return []


def _grid_problems(dataset, spatial_extent: dict, name: str) -> List[str]:
    """The result's CRS and extent against the job's (only for jobs given in a projected CRS)."""
    from osgeo import osr

    crs = spatial_extent.get("crs", 4326)
    wanted = osr.SpatialReference()
    wanted.SetFromUserInput(f"EPSG:{crs}" if str(crs).isdigit() else str(crs))
    if not wanted.IsProjected():
        return []  # degrees: backends answer in their native CRS, not comparable here
    found = osr.SpatialReference(wkt=dataset.GetProjection())
    if not found.IsSame(wanted):
        label = found.GetAuthorityCode(None) or found.GetName()
        return [f"{name} is in CRS {label}, but the job asked for EPSG:{wanted.GetAuthorityCode(None)}"]
    left, size_x, _, top, _, size_y = dataset.GetGeoTransform()
    right, bottom = left + size_x * dataset.RasterXSize, top + size_y * dataset.RasterYSize
    pixel = max(abs(size_x), abs(size_y))
    found_box = (left, min(top, bottom), right, max(top, bottom))
    wanted_box = tuple(float(spatial_extent[k]) for k in ("west", "south", "east", "north"))
    if any(abs(a - b) > pixel for a, b in zip(found_box, wanted_box)):
        shown = ", ".join(f"{v:.0f}" for v in found_box)
        return [f"{name} covers ({shown}), not the job's extent ({', '.join(f'{v:.0f}' for v in wanted_box)})"]
    return []
