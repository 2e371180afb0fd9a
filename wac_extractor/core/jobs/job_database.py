"""The tracker as openEO's job manager sees it: a ``JobDatabaseInterface`` with two hooks of ours.

- Status changes the manager persists are reported (``on_change``), once per change.
- Columns only the runner writes (job keys, result checks, messages) are never overwritten by the
  manager's copy of a row.
- Which ``not_started`` rows may start is up to a ``gate`` (the credit cap, free slots).
- ``between_polls`` runs each time the manager's ``run_jobs`` loop asks whether work is left: the
  runner paces the polls there (cancel-aware), does its own work between them, and ends the
  manager's loop by answering "nothing left" once it is stopping.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Tuple

import pandas as pd
from openeo.extra.job_management import JobDatabaseInterface

from .credits import ESTIMATE_COLUMN
from .tracker import Tracker

# Columns only the runner writes; the manager's own persist() calls never touch them.
RUNNER_COLUMNS = ("job_key", "create_requested_at", "result_status", "result_files", "error_message", ESTIMATE_COLUMN,
                  "attempts", "failure_cause", "job_options_used", "memory_steps")  # fmt: skip


class RunDatabase(JobDatabaseInterface):
    def __init__(self, tracker: Tracker, on_change: Callable[[int, pd.Series, Optional[str]], None]):
        self._tracker = tracker
        self._on_change = on_change
        self._statuses: Dict[int, str] = {}
        self.gate: Optional[Callable[[pd.DataFrame], pd.DataFrame]] = None  # which new jobs may start
        self.between_polls: Optional[Callable[[], bool]] = None  # returns False when the run is stopping
        self.stopping: Optional[Callable[[], bool]] = None
        self._held: Dict[int, Tuple[str, str]] = {}  # row -> (job id, backend): created, its start refused

    # --- JobDatabaseInterface ------------------------------------------------------------------
    def exists(self) -> bool:
        return self._tracker.exists()

    def count_by_status(self, statuses: Iterable[str] = ()) -> dict:
        statuses = list(statuses)
        if statuses and self.between_polls is not None and not self.between_polls():
            return {}  # the manager's loop ends: the runner is stopping
        return self._tracker.count_by_status(statuses)

    def get_by_status(self, statuses, max=None) -> pd.DataFrame:  # noqa: A002 (openeo's name)
        """The manager launches from ``not_started`` rows: only those the gate lets through."""
        frame = self._tracker.get_by_status(statuses, max=max)
        if self.stopping is not None and self.stopping():
            return frame.iloc[0:0]  # a stopping run polls and starts nothing more
        if self.gate is not None and list(statuses) == ["not_started"]:
            frame = self.gate(frame)
        return frame

    def get_by_indices(self, indices) -> pd.DataFrame:
        return self._tracker.get_by_indices(indices)

    def persist(self, df: pd.DataFrame) -> None:
        df = self._with_held_jobs(df)
        self._tracker.persist(df.drop(columns=[c for c in RUNNER_COLUMNS if c in df.columns]))
        for index, row in df.iterrows():
            previous = self._statuses.get(index)
            if row.get("status") != previous:
                self._statuses[index] = row.get("status")
                self._on_change(index, row, previous)

    # --- ours ----------------------------------------------------------------------------------
    def hold(self, index: int, job_id: str, backend: str) -> None:
        """A job created for the row whose start the backend refused for concurrency: the manager will mark
        the row ``start_failed`` (no job); it is recorded ``created`` with its job, and started later."""
        self._held[index] = (job_id, backend)

    def _with_held_jobs(self, df: pd.DataFrame) -> pd.DataFrame:
        held = [i for i in df.index if i in self._held and df.at[i, "status"] == "start_failed"]
        if not held:
            return df
        df = df.copy()
        for index in held:
            job_id, backend = self._held.pop(index)
            for column, value in (("status", "created"), ("id", job_id), ("backend_name", backend)):
                if column in df.columns and df[column].dtype != object:
                    df[column] = df[column].astype(object)
                df.loc[index, column] = value
        return df

    def remember(self, statuses: Dict[int, str]) -> None:
        """Statuses already known (read at the start, or reported by the runner itself): no event for them."""
        self._statuses.update(statuses)

    def set_status(self, index: int, status: str) -> None:
        self.persist(pd.DataFrame([{"status": status}], index=[index]))

    def __getattr__(self, name):
        return getattr(self._tracker, name)
