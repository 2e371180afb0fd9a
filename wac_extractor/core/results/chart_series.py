"""Which columns of a sampled table the field chart draws: S2 NDVI monthly medians, its P10..P90, S1 VV/VH percentiles.

Column names as ``sampling.column_name`` writes them: ``S2_NDVI_M2_mean``, or with several windows
``S2_2023-04_NDVI_M2_mean``. ``M<k>`` is the k-th month of its window, so a point on the chart is the
window's first month plus k - 1. Without a window in the name (one window), the windows are taken from
what the sampling recorded (``windows``), else the months stay ``M1..Mn``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .zonal import POINT_STAT, STATS

NDVI_SCALE = 10000.0  # the LCFM recipe writes NDVI x 10000 (int16 range)
LINE_STATS = ("mean", "median", POINT_STAT)  # statistics that make sense as a field's line, in order of preference
S1_BANDS = ("VV", "VH")
PERCENTILE_NAMES = ("P10", "P25", "P50", "P75", "P90")  # recipes.lcfm's (not imported: it needs openeo)
_STAT = "|".join(sorted(set(STATS) | {POINT_STAT}, key=len, reverse=True))
_COLUMN = re.compile(rf"^(?P<sensor>S[12])_(?:(?P<window>\d{{4}}-\d{{2}})_)?(?P<variable>.+)_(?P<stat>{_STAT})$")


def parse_column(name: str) -> Optional[Tuple[str, Optional[str], str, str]]:
    """(sensor, window or None, variable, stat) of a sampled column; None for any other column."""
    match = _COLUMN.match(name)
    return None if match is None else (match["sensor"], match["window"], match["variable"], match["stat"])


def to_db(value: float) -> float:
    """Linear backscatter (the LCFM recipe's S1 percentiles) in dB; NaN where not positive."""
    return 10 * math.log10(value) if value > 0 else math.nan


def add_months(month: str, k: int) -> str:
    """``2023-11`` plus k months: ``2024-01`` for k = 2."""
    year, mon = int(month[:4]), int(month[5:7]) - 1 + k
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


@dataclass
class WindowSeries:
    """The columns of one window for one statistic."""

    window: Optional[str]  # first month (YYYY-MM), or None when not known
    months: List[Tuple[str, str]] = field(default_factory=list)  # (x label, NDVI column) in month order
    band: Optional[Tuple[str, str]] = None  # (NDVI P10 column, NDVI P90 column)
    s1: Dict[str, List[str]] = field(default_factory=dict)  # "VV" -> [P10..P90 columns], those present


@dataclass
class ChartColumns:
    stat: str
    windows: List[WindowSeries]

    def columns(self) -> List[str]:
        out: List[str] = []
        for series in self.windows:
            out += (
                [c for _, c in series.months] + list(series.band or ()) + [c for cs in series.s1.values() for c in cs]
            )
        return out


def line_stats(names: Sequence[str]) -> List[str]:
    """The statistics with NDVI monthly columns, best first (mean, median, value)."""
    found = {p[3] for p in map(parse_column, names) if p and p[0] == "S2" and re.fullmatch(r"NDVI_M\d+", p[2])}
    return [s for s in LINE_STATS if s in found]


def chart_columns(names: Sequence[str], stat: str, windows: Sequence[str] = ()) -> ChartColumns:
    """The NDVI months, band and S1 percentiles per window for ``stat``; ``windows``: the run's, when one."""
    present = set(names)
    by_window: Dict[Optional[str], Dict[int, str]] = {}
    for name in names:
        parsed = parse_column(name)
        if parsed and parsed[0] == "S2" and parsed[3] == stat:
            month = re.fullmatch(r"NDVI_M(\d+)", parsed[2])
            if month:
                by_window.setdefault(parsed[1], {})[int(month[1])] = name
    out = []
    for window in sorted(by_window, key=lambda w: w or ""):
        first = window or (windows[0] if len(windows) == 1 else None)
        series = WindowSeries(first)
        for k in sorted(by_window[window]):
            series.months.append((add_months(first, k - 1) if first else f"M{k}", by_window[window][k]))
        prefix = f"_{window}" if window else ""
        low, high = (f"S2{prefix}_NDVI_{p}_{stat}" for p in ("P10", "P90"))
        series.band = (low, high) if low in present and high in present else None
        for band in S1_BANDS:
            cols = [f"S1{prefix}_{band}_{p}_{stat}" for p in PERCENTILE_NAMES]
            if all(c in present for c in cols):
                series.s1[band] = cols
        out.append(series)
    return ChartColumns(stat, out)
