"""What a run reports: per-job events, progress counts, the summary, and what became of the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional

import pandas as pd

from .credits import CreditReport
from .tracker import PENDING_STATUSES, Tracker


@dataclass
class JobEvent:
    index: int
    title: str
    status: str
    previous: Optional[str]
    message: str = ""


@dataclass
class RunProgress:
    counts: Dict[str, int]
    total: int
    downloaded: int
    downloads_failed: int
    jobs: Optional[pd.DataFrame] = None  # the snapshot the counts come from (no footprints)
    credits: Optional[CreditReport] = None

    @property
    def downloading(self) -> int:
        """Jobs finished on the backend whose results are not checked here yet (the table says "finished")."""
        return self.counts.get("finished", 0) - self.downloaded - self.downloads_failed

    @property
    def done(self) -> int:
        """Jobs that need nothing more: results checked, or ended in error/canceled/skipped.

        Not "start_failed": the runner creates those again (after a backoff, or once signed in)."""
        waiting = (*PENDING_STATUSES, "finished", "start_failed")
        ended = sum(v for k, v in self.counts.items() if k not in waiting)
        return self.downloaded + self.downloads_failed + ended


def progress_of(jobs: pd.DataFrame, credits: Optional[CreditReport] = None) -> RunProgress:
    """Counts per status and of checked downloads, from one snapshot of the tracker."""
    counts = {str(k): int(v) for k, v in jobs["status"].value_counts().items()}
    results = jobs[jobs["status"] == "finished"].get("result_status", pd.Series(dtype=object))
    return RunProgress(counts, len(jobs), int((results == "ok").sum()), int((results == "failed").sum()), jobs,
                       credits)  # fmt: skip


@dataclass
class RunSummary:
    counts: Dict[str, int]
    downloaded: int
    downloads_failed: int
    cancelled: bool
    seconds: float
    stats: Dict[str, int] = field(default_factory=dict)
    credits: Optional[CreditReport] = None

    @property
    def cap_reached(self) -> bool:
        return bool(self.credits and self.credits.held_by_cap)

    def cap_message(self) -> str:
        """What the user reads when the credit cap ended the run, and what to do."""
        report = self.credits
        if report is None or not report.held_by_cap:
            return ""
        return (f"Credit cap reached: {report.held_by_cap} jobs not started (spent {report.spent:,.1f} of "
                f"{report.cap:,.1f} credits); raise the cap and run again to go on.")  # fmt: skip


def iter_failed(tracker: Tracker) -> Iterable[pd.Series]:
    """Jobs that ended without a usable result: failed on the backend, or finished but not downloaded."""
    failed = tracker.get_by_status(["error", "start_failed", "skipped", "canceled"])
    for _, row in failed.iterrows():
        yield row
    for _, row in tracker.get_by_status(["finished"]).iterrows():
        if row.get("result_status") == "failed":
            yield row


@dataclass
class ResultCounts:
    """What became of the finished jobs' results (a job can be finished on the backend, its result not here)."""

    downloaded: int
    failed: int
    waiting: int
    first_error: str = ""

    def __str__(self) -> str:
        text = f"results of {self.downloaded + self.failed + self.waiting} finished jobs: {self.downloaded} downloaded"
        text += f", {self.failed} failed, {self.waiting} not downloaded yet"
        return text + (f"; first error: {self.first_error}" if self.first_error else "")


def result_counts(tracker: Tracker) -> ResultCounts:
    finished = tracker.get_by_status(["finished"])
    status = finished.get("result_status", pd.Series(index=finished.index, dtype=object))
    failed = finished[status == "failed"]
    messages = [m for m in failed.get("error_message", pd.Series(dtype=object)) if isinstance(m, str) and m]
    downloaded, failures = int((status == "ok").sum()), len(failed)
    return ResultCounts(downloaded, failures, len(finished) - downloaded - failures, messages[0] if messages else "")
