"""openEO job options (``executor-memory``, ``python-memory``...): per run, per row, and more memory after
a job ran out of it.

LCFM's own extraction code sets them per row (its ``build_job_options``), as WorldCereal's extractors
do; a row's options win over the run's. CDSE's defaults, from its job configuration documentation:
``executor-memory`` 2G, ``executor-memoryOverhead`` 1800m, ``python-memory`` unset.
"""

from __future__ import annotations

import json
import re
from typing import Dict, Iterable, Optional

import pandas as pd

DEFAULT_MEMORY = {"executor-memory": "2G", "executor-memoryOverhead": "1800m"}
MEMORY_KEYS = ("executor-memory", "executor-memoryOverhead", "python-memory")
MEMORY_STEP = 1.5  # each out-of-memory re-run: 1.5x the memory of the attempt before
DEFAULT_MAX_MEMORY_MB = 16 * 1024  # per memory option, unless the user sets another ceiling
OPTIONS_COLUMN = "job_options"  # a row's own options (JSON), as LCFM's code builds them
USED_COLUMN = "job_options_used"  # what the row's current job was created with
STEPS_COLUMN = "memory_steps"  # out-of-memory re-runs so far


def parse_options(lines: Iterable[str]) -> Dict[str, object]:
    """``["executor-memory=4G", "max-executors=20"]`` (or text with one per line) as job options.

    Values that read as JSON (numbers, true/false) become those; anything else stays text.
    """
    options: Dict[str, object] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"job option {line!r}: write KEY=VALUE, e.g. executor-memory=4G.")
        try:
            options[key.strip()] = json.loads(value.strip())
        except ValueError:
            options[key.strip()] = value.strip()
    return options


def memory_mb(value) -> float:
    """``"2G"``, ``"1800m"``, ``"4096"`` (MB), ``3`` (GB when below 64) as megabytes."""
    found = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)b?\s*", str(value), re.IGNORECASE)
    if not found:
        raise ValueError(f"memory {value!r}: write it like 2G or 1800m.")
    number, unit = float(found.group(1)), found.group(2).lower()
    if not unit:
        return number * 1024 if number < 64 else number
    return number * {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]


def row_options(row: pd.Series) -> Dict[str, object]:
    value = row.get(OPTIONS_COLUMN)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str) and value.strip():
        try:
            loaded = json.loads(value)
        except ValueError:
            raise ValueError(
                f"job_options of row {row.name}: {value[:80]!r} is not JSON; write a JSON object."
            ) from None
        return dict(loaded) if isinstance(loaded, dict) else {}
    return {}


def options_for(row: pd.Series, run_options: Optional[Dict[str, object]] = None,
                max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> Dict[str, object]:  # fmt: skip
    """The job options a row's job is created with: the run's, the row's own over them, and after an
    out-of-memory failure each memory option raised 1.5x per re-run (from CDSE's default where unset),
    never above ``max_memory_mb``."""
    options = {**(run_options or {}), **row_options(row)}
    steps = memory_steps(row)
    if steps > 0:
        for key in MEMORY_KEYS:
            base = options.get(key, DEFAULT_MEMORY.get(key))
            if base is None:
                continue
            raised = min(max_memory_mb, memory_mb(base) * MEMORY_STEP**steps)
            options[key] = f"{int(round(raised))}m"
    return options


def memory_steps(row: pd.Series) -> int:
    """How many times the row's job ran out of memory and was run again with more."""
    steps = pd.to_numeric(row.get(STEPS_COLUMN), errors="coerce")
    return 0 if pd.isna(steps) else int(steps)
