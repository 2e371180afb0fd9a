"""The dock's credits line: spent, projected, cap and budget left; a projection over the budget said once.

Where the backend reports no budget (CDSE), the balance the user typed, less what this run spent.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional

from qgis.core import Qgis

from ..core.jobs.credits import CreditReport, credit_report
from ..core.jobs.tracker import TrackerError, open_tracker
from ..definitions import LOG_TAG


class CreditsLine:
    """``running()``: whether a run is on (its first report gives the credits spent before it)."""

    def __init__(self, iface, backends, output_panel, run_controls, running: Callable[[], bool]):
        self.iface = iface
        self.backends = backends
        self.output_panel = output_panel
        self.run_controls = run_controls
        self.running = running
        self.warned = False  # a projection over the budget is said once per run, and once before it
        self._checked_for: Optional[tuple] = None
        self._spent_at_start: Optional[float] = None

    def run_started(self) -> None:
        self.warned = False
        self._spent_at_start = None  # the run's first report gives it (no tracker read on the UI thread)

    def show_for_tracker(self, tracker_path: str, shown: Optional[CreditReport] = None) -> None:
        """Before resuming: what the tracker's jobs cost so far and what the rest is projected to cost.

        ``shown``: the report of the run's last snapshot (opened or just ended), used instead of reading
        the whole tracker again on the UI thread (99 ms at 1,000 jobs when a run ended, in the UI bench).
        """
        try:
            report = copy.copy(shown) if shown is not None else credit_report(open_tracker(tracker_path).snapshot())
        except (TrackerError, OSError, ValueError, KeyError) as exc:
            self.run_controls.credits.setText(f"Credits: the tracker cannot be read ({exc})")
            return
        budgets = [r.budget for url, r in self.backends.reports.items() if r.budget is not None]
        report.budget_left = sum(budgets) if budgets else None  # known after Test connection
        report.cap = self.output_panel.credit_cap()
        if self._checked_for != (tracker_path, report.budget_left):
            self._checked_for = (tracker_path, report.budget_left)
            self.warned = False  # warned before Run, once per tracker and budget
        self.show(report)

    def show(self, report) -> None:
        balance = self.output_panel.balance()
        running = self.running()
        if report is not None and report.budget_left is None and balance is not None:
            if running and self._spent_at_start is None:
                self._spent_at_start = report.spent
            spent_now = report.spent - (self._spent_at_start if running else report.spent)
            report.budget_left = balance - max(0.0, spent_now)
        self.run_controls.show_credits(report)
        if report is not None and report.over_budget and not self.warned:
            self.warned = True
            self.iface.messageBar().pushMessage(
                LOG_TAG,
                f"This run is projected to need {report.projected_total - report.spent:,.1f} more credits, "
                f"more than the {report.budget_left:,.1f} left in your budget: set a credit cap, or cancel.",
                Qgis.MessageLevel.Warning,
                0,
            )
