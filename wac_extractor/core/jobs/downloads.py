"""Results into ``<output>/<sensor>_<tile>_<window>_<job id>/``, checked with GDAL before a job counts as done.

A job's assets are streamed to disk (our token never goes to another host: signed URLs on a storage
host are fetched without it), then each NetCDF is checked against what the row's recipe must give.
A bad file is deleted at once, so the map never shows it; the download is tried again after a backoff.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pandas as pd
import requests
from openeo import BatchJob
from openeo.rest import OpenEoApiPlainError

from ..backends.signin import is_auth_error
from ..recipes.process_graphs import decode_cell, expected_result
from ..results.composites import result_composites
from ..results.download import (
    DownloadCancelled,
    DownloadError,
    check_netcdf,
    safe_asset_name,
    same_origin,
    stream_to_file,
)
from .failures import BAD_RESULT, CAUSE_COLUMN, DOWNLOAD, NO_ASSETS
from .retry import DOWNLOADS
from .tracker import Tracker

_log = logging.getLogger(__name__)


def result_folder_name(row: pd.Series, job_id: str) -> str:
    """``S2_31UFS_0_0_2023-01-01_2023-04-01_j-123``: a folder a user can find a job's result in by eye."""
    # The window's dates however the cell holds them (a list, JSON, a notebook CSV's Python repr).
    window = re.findall(r"\d{4}-\d{2}-\d{2}", str(row.get("temporal_extent")))
    parts = [f"S{row.get('sentinel')}", row.get("tile_id"), *window]
    name = "_".join(str(part) for part in parts if part not in (None, "") and not pd.isna(part))
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}_{job_id}").strip("._") or safe_asset_name(job_id)


class ResultFetcher:
    """Downloads and checks finished jobs' results in a small thread pool; one download per row at a time."""

    def __init__(self, tracker: Tracker, output_dir: Path, stop: threading.Event,
                 emit: Callable[..., None], retries: int = 3, workers: int = 2,
                 on_bad_result: Optional[Callable[[int, pd.Series, str, str], bool]] = None):  # fmt: skip
        self.tracker = tracker
        self.output_dir = output_dir
        self.stop = stop
        self.emit = emit  # (index, row, status, message=...)
        self.retries = retries
        self.on_bad_result = on_bad_result  # (row, cause, reason) -> whether the job is run again
        self._lock = threading.Lock()
        self._downloads: Dict[int, Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wac-download")

    def job_dir(self, job_id: str, row: Optional[pd.Series] = None) -> Path:
        """Where a job's result goes; a result already downloaded (an older tracker: ``<job id>/``) stays put."""
        cell = row.get("result_files") if row is not None else None
        earlier = json.loads(cell) if isinstance(cell, str) and cell else []  # a CSV's empty cell is NaN
        if earlier:
            return self.output_dir / Path(earlier[0]).parts[0]
        by_id = self.output_dir / safe_asset_name(job_id)
        if row is None or by_id.is_dir():
            return by_id
        return self.output_dir / result_folder_name(row, job_id)

    def submit(self, job: BatchJob, row: pd.Series) -> None:
        index = row.name
        with self._lock:
            if index in self._downloads and not self._downloads[index].done():
                return
            self._downloads[index] = self._pool.submit(self._download_or_say_why, job, row)

    def _download_or_say_why(self, job: BatchJob, row: pd.Series) -> None:
        """A download thread's unexpected error would stay in its future, unseen: the row says it instead."""
        try:
            self._download(job, row)
        except Exception as exc:  # noqa: BLE001 (anything: the job keeps its result on the backend)
            _log.exception("download of job %s", job.job_id)
            message = f"download failed: {type(exc).__name__}: {exc}"[:300]
            self.tracker.update_row(row.name, result_status="failed", error_message=message,
                                    **{CAUSE_COLUMN: DOWNLOAD})  # fmt: skip
            self.emit(row.name, row, "download_failed", message=message)

    def busy(self) -> bool:
        with self._lock:
            return any(not future.done() for future in self._downloads.values())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _download(self, job: BatchJob, row: pd.Series) -> None:
        index = row.name
        job_dir = self.job_dir(job.job_id, row)
        job_dir.mkdir(parents=True, exist_ok=True)
        self.tracker.update_row(index, result_status="downloading")
        problems: List[str] = []
        cause = DOWNLOAD
        for attempt in range(1, self.retries + 1):
            try:
                files = self._fetch_assets(job, job_dir)
                if not files:  # the backend lost the result: nothing to download again
                    problems, cause = ["the job finished without result assets"], NO_ASSETS
                    break
                problems = self._check(files, row)
                if not problems:
                    self._display_copies(files, row)
                    relative = [str(f.relative_to(self.output_dir)) for f in files]
                    self.tracker.update_row(index, result_status="ok", result_files=json.dumps(relative))
                    self.emit(index, row, "downloaded", message=", ".join(relative))
                    return
                cause = BAD_RESULT
                for f in files:
                    if f.suffix.lower() in (".nc", ".nc4"):
                        f.unlink(missing_ok=True)  # never leave a bad file where the loader could pick it up
            except DownloadCancelled:
                self.tracker.update_row(index, result_status=None)
                return
            except OpenEoApiPlainError as exc:
                if is_auth_error(exc):  # downloaded again after the new sign-in
                    self.tracker.update_row(index, result_status=None)
                    return
                problems, cause = [str(exc)], DOWNLOAD
            except (DownloadError, requests.RequestException) as exc:
                problems, cause = [str(exc)], DOWNLOAD
            except OSError as exc:  # read-only or full disk: say so, keep the job for a later retry
                problems, cause = [f"cannot write into {job_dir}: {exc.strerror or exc}"], DOWNLOAD
            if attempt == 1 or cause == DOWNLOAD:  # a bad result is said once per job, not per attempt
                _log.warning("download of job %s, attempt %d: %s", job.job_id, attempt, "; ".join(problems)[:300])
            if self.stop.wait(DOWNLOADS.delay(attempt)):
                self.tracker.update_row(index, result_status=None)
                return
        reason = "; ".join(problems)
        if self.on_bad_result is not None and self.on_bad_result(index, row, cause, reason):
            self.tracker.update_row(index, result_status=None)
            return
        message = "download failed: " + reason
        self.tracker.update_row(index, result_status="failed", error_message=message[:1000], **{CAUSE_COLUMN: cause})
        self.emit(index, row, "download_failed", message=message)

    @staticmethod
    def _display_copies(files: List[Path], row: pd.Series) -> None:
        """The COGs the map shows, written once here (the map then never opens the NetCDF in a render thread).

        A failure costs the job nothing: the result is good, and the map writes them when it first needs them.
        """
        for f in files:
            if f.suffix.lower() in (".nc", ".nc4"):
                try:
                    result_composites(f, row)
                except (OSError, RuntimeError, ValueError) as exc:
                    _log.warning("display copies of %s not written yet: %s", f, exc)

    @staticmethod
    def _check(files: List[Path], row: pd.Series) -> List[str]:
        """What is wrong with a job's files for its row's recipe; [] when they are what it must give."""
        expected = expected_result(row)
        extent = decode_cell(row["spatial_extent"]) if isinstance(row.get("spatial_extent"), (str, dict)) else None
        netcdfs = [f for f in files if f.suffix.lower() in (".nc", ".nc4")]
        if not netcdfs:
            return ["the job has no NetCDF result"]
        return [
            problem
            for f in netcdfs
            for problem in check_netcdf(
                f, expected.variables, has_time=expected.has_time, int16=expected.int16, spatial_extent=extent
            )
        ]

    def _fetch_assets(self, job: BatchJob, job_dir: Path) -> List[Path]:
        connection = job.connection
        files = []
        for asset in job.get_results().get_assets():
            key = getattr(asset, "key", None) or asset.name  # openeo < 0.50 calls it name
            target = job_dir / safe_asset_name(key)
            if not target.resolve().is_relative_to(job_dir.resolve()):
                raise DownloadError(f"asset {key!r} would be written outside {job_dir}; refused.")
            if same_origin(asset.href, connection.root_url):
                stream_to_file(connection.session, asset.href, target, auth=connection.auth, stop=self.stop)
            else:  # never send our token to another host
                with requests.Session() as session:
                    stream_to_file(session, asset.href, target, auth=None, stop=self.stop)
            files.append(target)
        return files
