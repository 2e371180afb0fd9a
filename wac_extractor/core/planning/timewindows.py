"""Split a date range into job time windows of whole months.

openEO temporal extents are half-open: ``[start, end)``. A window of N months
starting on 2023-01-01 is therefore ``["2023-01-01", "2023-04-01"]``.
"""

from __future__ import annotations

import datetime as dt
from typing import List, Tuple, Union

DateLike = Union[str, dt.date]


def parse_date(value: DateLike, field: str) -> dt.date:
    """Parse an ISO date, raising a ``ValueError`` that names ``field``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a date; use the form YYYY-MM-DD, e.g. 2023-01-01.") from None


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` shifted by ``months`` calendar months (clamped to the month's last day)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    next_month_first = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month_first - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def month_windows(start: DateLike, end: DateLike, window_months: int = 3) -> List[Tuple[str, str]]:
    """Half-open ``[start, end)`` windows of ``window_months`` months covering the range.

    The last window is cut at ``end`` when the range is not a whole number of windows.
    """
    start_date = parse_date(start, "start_date")
    end_date = parse_date(end, "end_date")
    if isinstance(window_months, bool) or not isinstance(window_months, int) or window_months < 1:
        raise ValueError(f"window_months: {window_months!r} is not a positive whole number of months; use 1 or more.")
    if end_date <= start_date:
        raise ValueError(
            f"end_date ({end_date.isoformat()}) is not after start_date ({start_date.isoformat()}): "
            "choose an end date after the start date."
        )
    windows = []
    window_start = start_date
    while window_start < end_date:
        window_end = min(add_months(window_start, window_months), end_date)
        windows.append((window_start.isoformat(), window_end.isoformat()))
        window_start = window_end
    return windows


def months_in(temporal_extent: Tuple[str, str]) -> List[str]:
    """The calendar months (``YYYY-MM``) touched by a half-open temporal extent."""
    start = parse_date(temporal_extent[0], "temporal_extent[0]")
    end = parse_date(temporal_extent[1], "temporal_extent[1]")
    months = []
    current = dt.date(start.year, start.month, 1)
    while current < end:
        months.append(f"{current.year:04d}-{current.month:02d}")
        current = add_months(current, 1)
    return months
