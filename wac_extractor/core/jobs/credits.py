"""Credits: what the jobs cost, what the run will cost, and a cap that holds. QGIS-free.

openEO backends report a job's ``costs`` (in the backend's currency, credits on CDSE) once it has
finished or failed; openeo's job manager stores them in the tracker with the job's ``usage``
fields. A job's cost grows with the area and the months it covers, and with what it computes
(recipe, sensor): the projection is a rate in credits per km2·month for each recipe and sensor,
taken from the jobs that reported costs (or, before any has, from the backends' estimates of
created jobs), times each remaining job's km2·months. With no rate for a kind of job there is no
projection: "no estimate yet", never a guess.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import pandas as pd

from ..recipes import DEFAULT_RECIPE

ACTIVE = ("created", "queued", "queued_for_start", "running")
NOT_RUN = ("canceled", "skipped")  # will not cost anything more (unless retried)
ESTIMATE_COLUMN = "estimated_costs"


def _cell(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def job_size(row: pd.Series) -> float:
    """km2 x months of a job: its tile's area (UTM metres or degrees) times its time window."""
    extent = _cell(row.get("spatial_extent"))
    window = _cell(row.get("temporal_extent"))
    if not isinstance(extent, dict) or not isinstance(window, (list, tuple)) or len(window) != 2:
        return float("nan")
    width, height = extent["east"] - extent["west"], extent["north"] - extent["south"]
    if str(extent.get("crs", 4326)) in ("4326", "EPSG:4326"):  # degrees: a local approximation
        latitude = math.radians((extent["north"] + extent["south"]) / 2)
        km2 = width * 111.32 * math.cos(latitude) * height * 110.57
    else:
        km2 = width * height / 1e6
    start, end = (dt.date.fromisoformat(str(day)[:10]) for day in window)
    return km2 * (end - start).days / (365.25 / 12)


def cost_key(row: pd.Series) -> str:
    """``"lcfm S2"``: jobs of one recipe and sensor cost alike per km2·month."""
    recipe = row.get("recipe") if isinstance(row.get("recipe"), str) else DEFAULT_RECIPE
    return f"{recipe} S{int(row.get('sentinel') or 0)}"


class JobMeasures:
    """Each job's km2·months and cost key, computed once per job (a run asks every poll)."""

    def __init__(self) -> None:
        self._sizes: Dict[int, float] = {}
        self._keys: Dict[int, str] = {}

    def of(self, frame: pd.DataFrame) -> Tuple[pd.Series, pd.Series]:
        for index, row in frame.loc[~frame.index.isin(list(self._sizes))].iterrows():
            self._sizes[index], self._keys[index] = job_size(row), cost_key(row)
        return (pd.Series([self._sizes[i] for i in frame.index], index=frame.index, dtype=float),
                pd.Series([self._keys[i] for i in frame.index], index=frame.index, dtype=object))  # fmt: skip


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def earlier_attempts_costs(frame: pd.DataFrame) -> float:
    """Credits of the jobs that were run again (kept in each row's ``attempts``): every attempt is paid."""
    if "attempts" not in frame.columns:
        return 0.0
    total = 0.0
    for cell in frame["attempts"].dropna():
        for attempt in _cell(cell) if isinstance(_cell(cell), list) else []:
            costs = attempt.get("costs") if isinstance(attempt, dict) else None
            total += float(costs) if isinstance(costs, (int, float)) else 0.0
    return total


def cost_rates(frame: pd.DataFrame, measures: Optional[JobMeasures] = None) -> Dict[str, float]:
    """Credits per km2·month for each recipe and sensor: from reported costs, else from estimates."""
    rates: Dict[str, float] = {}
    if frame.empty:
        return rates
    sizes, keys = (measures or JobMeasures()).of(frame)
    for column in ("costs", ESTIMATE_COLUMN):  # reported costs win over estimates
        values = _numeric(frame, column)
        known = values.notna() & (sizes > 0) & ~keys.isin(list(rates))
        if known.any():
            totals = (
                pd.DataFrame({"key": keys[known], "cost": values[known], "size": sizes[known]}).groupby("key").sum()
            )
            rates.update((totals["cost"] / totals["size"]).to_dict())
    return rates


def projected_costs(frame: pd.DataFrame, rates: Dict[str, float], measures: Optional[JobMeasures] = None) -> pd.Series:
    """Each job's projected cost (NaN where its kind has no rate yet)."""
    sizes, keys = (measures or JobMeasures()).of(frame)
    return keys.map(rates).astype(float) * sizes


@dataclass
class CreditReport:
    """Credits of a tracker: spent so far, and the projection for every job of the run."""

    spent: float
    jobs_with_costs: int
    projected_total: Optional[float]  # None: some kind of job has no rate yet
    without_estimate: int  # jobs still to run whose kind has no rate
    budget_left: Optional[float] = None  # as the backend reports it (GET /me -> budget)
    cap: Optional[float] = None
    held_by_cap: int = 0
    rates: Dict[str, float] = field(default_factory=dict)

    @property
    def over_budget(self) -> bool:
        """The credits still to spend (projected) exceed what the backend says is left."""
        return (
            self.budget_left is not None
            and self.projected_total is not None
            and self.projected_total - self.spent > self.budget_left
        )

    def text(self) -> str:
        parts = [f"{self.spent:,.1f} credits spent ({self.jobs_with_costs} jobs)"]
        if self.projected_total is None:
            parts.append(f"no estimate yet for {self.without_estimate} jobs")
        else:
            parts.append(f"projected {self.projected_total:,.1f} for the run")
        if self.cap is not None:
            parts.append(f"cap {self.cap:,.1f}")
        if self.budget_left is not None:
            parts.append(f"budget left {self.budget_left:,.1f}")
        return "; ".join(parts)


def credit_report(
    frame: pd.DataFrame,
    budget_left: Optional[float] = None,
    cap: Optional[float] = None,
    held_by_cap: int = 0,
    measures: Optional[JobMeasures] = None,
) -> CreditReport:
    measures = measures or JobMeasures()
    costs = _numeric(frame, "costs")
    rates = cost_rates(frame, measures)
    todo = frame[costs.isna() & ~frame["status"].isin(NOT_RUN)] if not frame.empty else frame
    projections = projected_costs(todo, rates, measures)
    missing = int(projections.isna().sum())
    spent = (float(costs.sum()) if costs.notna().any() else 0.0) + earlier_attempts_costs(frame)
    total = None if missing else spent + float(projections.sum())
    return CreditReport(spent, int(costs.notna().sum()), total, missing, budget_left, cap, held_by_cap, rates)


class CreditCap:
    """Admits new jobs only while spent + the projected cost of running jobs + the new job's stay within the cap.

    Running jobs are never cancelled for it. A job whose cost cannot be projected yet (no job of its
    kind has reported costs or been estimated) is admitted alone, when nothing of unknown cost is
    running: it is what gives the projection. The per-job ``budget`` bounds that one too.
    """

    def __init__(self, max_credits: float, measures: Optional[JobMeasures] = None):
        self.max_credits = float(max_credits)
        self.measures = measures or JobMeasures()

    def admit(self, candidates: pd.DataFrame, frame: pd.DataFrame) -> Tuple[pd.DataFrame, int]:
        """The candidates (not started, in order) that may start now, and how many are held back."""
        if candidates.empty:
            return candidates, 0
        rates = cost_rates(frame, self.measures)
        costs = _numeric(frame, "costs")
        spent = (float(costs.sum()) if costs.notna().any() else 0.0) + earlier_attempts_costs(frame)
        running = projected_costs(frame[frame["status"].isin(ACTIVE) & costs.isna()], rates, self.measures)
        left = self.max_credits - spent - float(running.sum())
        unknown_running = bool(running.isna().any())
        admitted = []
        for index, cost in projected_costs(candidates, rates, self.measures).items():
            if pd.isna(cost):
                if not unknown_running and left > 0:
                    admitted.append(index)
                    unknown_running = True
            elif cost <= left:
                admitted.append(index)
                left -= cost
        return candidates.loc[admitted], len(candidates) - len(admitted)
