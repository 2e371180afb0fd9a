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
MAX_MESSAGE_CHARS = 300  # a problem goes into the tracker, the log and the dock: one line, not a list of 56 names
SHOWN_NAMES = 3


def _names(names: Iterable[str], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c and 4 more``: the first few of a list, and how many were left out."""
    names = list(names)
    if not names:
        return "nothing"
    head = ", ".join(names[:shown])
    return f"{head} and {len(names) - shown} more" if len(names) > shown else head


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 3] + "..."


def _variables_in(dataset) -> List[str]:
    """The data variables GDAL sees in a NetCDF file, in file order."""
    names = [name.rsplit(":", 1)[-1] for name, _ in (dataset.GetSubDatasets() or [])]
    if not names and dataset.RasterCount:  # a file of one variable opens as that variable
        name = dataset.GetRasterBand(1).GetMetadataItem("NETCDF_VARNAME")
        names = [name] if name else []
    return names


def check_netcdf(
    path: Path,
    variables: Iterable[str],
    *,
    has_time: Optional[bool] = None,
    int16: bool = False,
    spatial_extent: Optional[dict] = None,
) -> List[str]:
    """Open a result with GDAL and check it is what the job asked for.

    Exactly the expected variables are there (none missing, none more), each georeferenced;
    ``has_time`` False: no time dimension (one band per variable); ``int16``: values in the int16
    range; ``spatial_extent`` (the job's, in a projected CRS): the same CRS, and an extent within a
    pixel of it. Returns the problems found (empty when the file is good), each one short line that
    names the first few variables concerned and how many there are.
    """
    from osgeo import gdal

    gdal.UseExceptions()
    quiet_hdf5()
    try:
        dataset = gdal.Open(str(path))
    except RuntimeError as exc:
        return [_short(f"GDAL cannot open {path.name}: {exc}")]
    expected = list(dict.fromkeys(variables))
    held = _variables_in(dataset)
    missing = [v for v in expected if v not in held]
    extra = [v for v in held if v not in expected]
    problems = []
    if missing:
        problems.append(
            f"{path.name} lacks {len(missing)} of {len(expected)} expected variables ({_names(missing)}); "
            f"it holds {_names(held)}"
        )
    if extra:
        problems.append(f"{path.name} has {_count(len(extra), 'variable')} the job does not make ({_names(extra)})")
    unopened, unreferenced, timed, outside = [], [], [], []
    steps = 0
    grid_checked = False
    for variable in expected:
        if variable in missing:
            continue
        try:
            band = gdal.Open(f'NETCDF:"{path}":{variable}')
        except RuntimeError:
            unopened.append(variable)
            continue
        if band.RasterCount < 1 or not band.GetProjection():
            unreferenced.append(variable)
            continue
        if has_time is False and (band.RasterCount > 1 or "NETCDF_DIM_EXTRA" in band.GetMetadata()):
            timed.append(variable)
            steps = max(steps, band.RasterCount)
        if int16:
            outside.extend(_int16_problems(band, variable))
        if spatial_extent and not grid_checked:
            problems.extend(_short(p) for p in _grid_problems(band, spatial_extent, path.name))
            grid_checked = True
    if unopened:
        problems.append(f"{path.name}: {_count(len(unopened), 'variable')} GDAL cannot open ({_names(unopened)})")
    if unreferenced:
        problems.append(
            f"{path.name}: {_count(len(unreferenced), 'variable')} without time steps or CRS ({_names(unreferenced)})"
        )
    if timed:
        problems.append(
            f"{path.name}: {_count(len(timed), 'variable')} with a time dimension ({_names(timed)}; "
            f"{_count(steps, 'step')}); expected none"
        )
    if outside:
        problems.append(
            f"{path.name}: {_count(len(outside), 'variable')} outside the int16 range ({_names(outside, 2)})"
        )
    return [_short(problem) for problem in problems]


def _int16_problems(dataset, name: str) -> List[str]:
    """``[name min..max]`` when the values leave the int16 range, else []."""
    import numpy as np

    values = dataset.ReadAsArray().astype("float64")
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < INT16_RANGE[0] or finite.max() > INT16_RANGE[1]):
        return [f"{name} {finite.min():g}..{finite.max():g}"]
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
