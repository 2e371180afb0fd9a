"""Running again, as a new job, what the backend lost: up to N more attempts per row, every attempt kept.

A job that failed for the backend's reasons (an error that is not a refused graph), finished without
result assets, or gave files that fail the result check is created again; an out-of-memory failure
also raises the job's memory options one step (``job_options.options_for``). The row keeps every
earlier attempt in its ``attempts`` column (JSON): the job id, the cause, the reason, the costs (credits
count every attempt) and the job options. After the last attempt the row ends with its cause and reason.
"""

from __future__ import annotations

import json
import queue
from typing import Callable, List, Tuple

import pandas as pd

from .failures import CAUSE_COLUMN, LABELS, OUT_OF_MEMORY, RERUN
from .job_database import RunDatabase
from .job_options import STEPS_COLUMN, USED_COLUMN, memory_steps
from .tracker import Tracker

ATTEMPTS_COLUMN = "attempts"
DEFAULT_RERUNS = 2


def earlier_attempts(row: pd.Series) -> List[dict]:
    value = row.get(ATTEMPTS_COLUMN)
    if isinstance(value, list):
        return value
    try:
        loaded = json.loads(value) if isinstance(value, str) and value else []
    except ValueError:
        return []
    return loaded if isinstance(loaded, list) else []


class Reruns:
    """Decides (from any thread) and applies (between polls, on the manager's thread) the re-runs."""

    def __init__(self, tracker: Tracker, db: RunDatabase, max_reruns: int, emit: Callable[..., None]):
        if max_reruns < 0:
            raise ValueError(f"reruns: {max_reruns} is not a number of attempts; give 0 or more.")
        self.tracker = tracker
        self.db = db
        self.max_reruns = max_reruns
        self.emit = emit
        self._wanted: queue.SimpleQueue[Tuple[int, str, str]] = queue.SimpleQueue()

    def request(self, index: int, row: pd.Series, cause: str, reason: str) -> bool:
        """Whether the row's job is run again (then the caller reports nothing more for this attempt)."""
        if cause not in RERUN or len(earlier_attempts(row)) >= self.max_reruns:
            return False
        self._wanted.put((index, cause, reason))
        return True

    def pending(self) -> bool:
        return not self._wanted.empty()

    def apply(self) -> None:
        while not self._wanted.empty():
            index, cause, reason = self._wanted.get()
            row = self.tracker.get_by_indices([index]).iloc[0]
            attempts = earlier_attempts(row)
            used = row.get(USED_COLUMN)
            attempts.append({
                "id": row.get("id"), "cause": cause, "reason": reason[:300],
                "costs": None if pd.isna(row.get("costs")) else row.get("costs"),
                "job_options": json.loads(used) if isinstance(used, str) and used else None,
            })  # fmt: skip
            steps = memory_steps(row) + (cause == OUT_OF_MEMORY)
            values = {ATTEMPTS_COLUMN: json.dumps(attempts), CAUSE_COLUMN: None, STEPS_COLUMN: steps, "costs": None}
            self.tracker.update_row(index, **values)
            self.tracker.reset_job(index)
            self.db.remember({index: "not_started"})
            more = " with more memory" if cause == OUT_OF_MEMORY else ""
            message = (f"{LABELS[cause]} ({reason[:120]}): run again as a new job{more}, "
                       f"attempt {len(attempts) + 1} of {self.max_reruns + 1}")  # fmt: skip
            self.emit(index, row, "rerun", message=message)
