"""openEO's ``MultiBackendJobManager`` with the plugin's result handling, through its public hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from openeo import BatchJob
from openeo.extra.job_management import MultiBackendJobManager

from .downloads import ResultFetcher


class WacJobManager(MultiBackendJobManager):
    """Finished jobs go to checked downloads, failed ones to the run's error logs."""

    def __init__(self, fetcher: ResultFetcher, on_error: Callable, on_cancel: Callable, **kwargs):
        super().__init__(**kwargs)
        self._fetcher = fetcher
        self._on_error = on_error  # (job, row)
        self._on_cancel = on_cancel  # (job, row)

    def get_job_dir(self, job_id: str) -> Path:
        return self._fetcher.job_dir(job_id)

    def on_job_done(self, job: BatchJob, row):
        self._fetcher.submit(job, row)

    def on_job_error(self, job: BatchJob, row):
        self._on_error(job, row)

    def on_job_cancel(self, job: BatchJob, row):
        self._on_cancel(job, row)
