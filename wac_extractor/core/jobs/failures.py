"""Why a job failed, in a few causes a user can act on, and which of them a new attempt may cure.

Sentinel-1 jobs on CDSE get lost (4-5 % of WorldCereal's S1 extractions ended in backend errors, some
finished with no result assets; a re-run usually succeeds) and jobs run out of memory (more memory is the
remedy): those are run again. A graph the backend refuses, or a job stuck in a queue, is not.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable

import pandas as pd

OUT_OF_MEMORY = "out_of_memory"
NO_ASSETS = "no_assets"
REFUSED = "refused"
BACKEND_ERROR = "backend_error"
STUCK = "stuck"
OVER_BUDGET = "over_budget"  # the backend stopped the job at its budget: a new job would cost as much
BAD_RESULT = "bad_result"  # downloaded, but the files fail the result check
DOWNLOAD = "download"  # the files could not be downloaded (network, disk)

LABELS = {
    OUT_OF_MEMORY: "out of memory",
    NO_ASSETS: "no assets",
    REFUSED: "refused graph",
    BACKEND_ERROR: "backend error",
    STUCK: "stuck in the queue",
    OVER_BUDGET: "over its budget",
    BAD_RESULT: "result check failed",
    DOWNLOAD: "download failed",
}
RERUN = (OUT_OF_MEMORY, NO_ASSETS, BACKEND_ERROR, BAD_RESULT)  # a new job may succeed
CAUSE_COLUMN = "failure_cause"

# geopyspark's wordings: "workers used too much (Python) memory", YARN's "Container killed ... Exit code is
# 143", the JVM's OutOfMemoryError, and the remedy it names (executor-memoryOverhead).
_MEMORY = re.compile(r"too much (python )?memory|out ?of ?memory|memoryoverhead|exit code is 143|oomkilled", re.I)


def cause_of_error(messages: Iterable[str]) -> str:
    """The cause of a job that ended in ``error``, from its log messages."""
    messages = [str(m) for m in messages]
    if any(_MEMORY.search(m) for m in messages):
        return OUT_OF_MEMORY
    return OVER_BUDGET if any("budget" in m.lower() for m in messages) else BACKEND_ERROR


def failure_counts(jobs: pd.DataFrame) -> Dict[str, int]:
    """Failed jobs (ended in error, skipped, or finished without a usable result) per cause, most first."""
    if jobs.empty or CAUSE_COLUMN not in jobs.columns:
        return {}
    failed = jobs["status"].isin(["error", "skipped", "canceled"]) | (
        (jobs["status"] == "finished") & (jobs.get("result_status") == "failed")
    )
    causes = jobs.loc[failed, CAUSE_COLUMN].fillna(BACKEND_ERROR)
    return {str(k): int(v) for k, v in causes.value_counts().items()}


def failure_summary(jobs: pd.DataFrame) -> str:
    """``"3 failed: 2 out of memory, re-run with more memory; 1 no assets"`` ('' when nothing failed)."""
    counts = failure_counts(jobs)
    if not counts:
        return ""
    parts = []
    for cause, count in counts.items():
        text = f"{count} {LABELS.get(cause, cause)}"
        if cause == OUT_OF_MEMORY:
            text += ", re-run with more memory"
        parts.append(text)
    return f"{sum(counts.values())} failed: " + "; ".join(parts)
