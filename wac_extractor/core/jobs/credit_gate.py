"""A run's credits: the cap that decides which jobs may start, the backends' budgets and estimates.

Nothing here fails a run: a backend without ``/me`` budget or ``/jobs/{id}/estimate`` (CDSE has
neither) simply gives no figure, and the projection waits for the first reported costs.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Iterable, Optional, Tuple

import pandas as pd
import requests
from openeo import BatchJob, Connection
from openeo.rest import OpenEoApiPlainError, OpenEoClientException

from ..backends.signin import SignInRequiredError
from .credits import ESTIMATE_COLUMN, CreditCap, CreditReport, JobMeasures, cost_key, credit_report
from .tracker import Tracker

_log = logging.getLogger(__name__)


class CreditGate:
    """The credit cap (``max_credits``: spent + running + the candidate's projection stay within it)."""

    def __init__(self, tracker: Tracker, max_credits: Optional[float] = None):
        if max_credits is not None and max_credits <= 0:
            raise ValueError(f"max credits: {max_credits} is not a cap; give a positive number, or none.")
        self.tracker = tracker
        self.measures = JobMeasures()
        self.cap = CreditCap(max_credits, self.measures) if max_credits else None
        self.held_by_cap = 0
        self._budgets: Dict[str, float] = {}  # remaining budget per backend (GET /me), where reported
        self._estimated_kinds: set = set()  # (backend, recipe and sensor) asked for an estimate already
        self._budget_warned = False
        self._budget_sources: Optional[Tuple[list, Callable[[str], Optional[Connection]]]] = None
        self._costs_at_read = 0  # jobs with costs when the budgets were read: more, and they are read again

    def admit(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """The ``not_started`` rows that may start now; remembers how many the cap holds back."""
        if self.cap is None:
            return candidates
        admitted, self.held_by_cap = self.cap.admit(candidates, self.tracker.snapshot())
        return admitted

    def ends_run(self) -> bool:
        """With nothing running: whether the cap admits none of the jobs left (the run ends at the cap)."""
        return self.cap is not None and self.admit(self.tracker.get_by_status(["not_started"])).empty

    def read_budgets(self, names: Iterable[str], connection_of: Callable[[str], Optional[Connection]]) -> None:
        """Each backend's remaining budget, where it reports one (``GET /me`` -> ``budget``)."""
        names = list(names)
        self._budget_sources = (names, connection_of)
        for name in names:
            try:
                connection = connection_of(name)
                if connection is None or not connection.capabilities().supports_endpoint("/me", "GET"):
                    continue
                budget = connection.describe_account().get("budget")
                if isinstance(budget, (int, float)):
                    self._budgets[name] = float(budget)
            except (OpenEoClientException, OpenEoApiPlainError, requests.RequestException, SignInRequiredError) as exc:
                _log.info("no budget from %s: %s", name, exc)

    def estimate(self, connection: Connection, job: BatchJob, row: pd.Series, provider: str) -> None:
        """The backend's estimate of the first job of each kind (recipe, sensor), where it has the
        endpoint: a projection before any job of that kind has finished."""
        kind = (provider, cost_key(row))
        if kind in self._estimated_kinds:
            return
        self._estimated_kinds.add(kind)
        try:
            if not connection.capabilities().supports_endpoint("/jobs/{job_id}/estimate", "GET"):
                return
            costs = job.estimate().get("costs")
        except (OpenEoClientException, OpenEoApiPlainError, requests.RequestException) as exc:
            _log.info("no estimate for %s from %s: %s", cost_key(row), provider, exc)
            return
        if isinstance(costs, (int, float)):
            self.tracker.update_row(row.name, **{ESTIMATE_COLUMN: float(costs)})

    def report(self, jobs: Optional[pd.DataFrame] = None) -> CreditReport:
        """Credits spent and projected for this tracker, with the cap and the backends' budget left."""
        frame = self.tracker.snapshot() if jobs is None else jobs
        with_costs = int(pd.to_numeric(frame.get("costs", pd.Series(dtype=float)), errors="coerce").notna().sum())
        if self._budgets and self._budget_sources and with_costs > self._costs_at_read:
            self._costs_at_read = with_costs  # jobs ended and were charged: the budget left is the backend's to say
            self.read_budgets(*self._budget_sources)
        budget = sum(self._budgets.values()) if self._budgets else None
        cap = self.cap.max_credits if self.cap is not None else None
        report = credit_report(frame, budget, cap, self.held_by_cap, self.measures)
        if report.over_budget and not self._budget_warned:
            self._budget_warned = True
            _log.warning("projected %.1f credits still to spend, more than the %.1f left in the budget",
                         report.projected_total - report.spent, report.budget_left)  # fmt: skip
        return report
