"""An existing tracker opened to look at or resume: where its results are, what is left, what to say.

A tracker lists its results relative to the run's output folder, which it does not record: the
folder is the first candidate (the dock's output folder, the tracker's own folder) that holds the
results it lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from .progress import RunProgress


def listed_results(jobs: pd.DataFrame) -> list:
    """The result files the tracker lists for checked results, relative to the output folder."""
    if "result_files" not in jobs.columns or "result_status" not in jobs.columns:
        return []
    checked = jobs[jobs["result_status"] == "ok"]["result_files"]
    return [relative for cell in checked if isinstance(cell, str) for relative in json.loads(cell or "[]")]


def results_folder(jobs: pd.DataFrame, candidates: Sequence[Path]) -> Optional[Path]:
    """The candidate holding the most of the listed results (None when the tracker lists none)."""
    listed = listed_results(jobs)[:50]  # enough to tell folders apart, cheap for 10,000 jobs
    if not listed:
        return None
    found = [(sum((Path(folder) / relative).exists() for relative in listed), i) for i, folder in enumerate(candidates)]
    count, best = max(found, key=lambda pair: (pair[0], -pair[1]), default=(0, 0))
    return Path(candidates[best]) if count else None


@dataclass(frozen=True)
class RunState:
    """What an opened (or just ended) run says in the dock."""

    progress: RunProgress
    folder: Optional[Path]

    @property
    def work_left(self) -> int:
        """Jobs a Run would still do: waiting, active, finished but not downloaded, to be created again."""
        return self.progress.total - self.progress.done

    @property
    def results(self) -> Optional[Path]:
        """The folder to open, once it holds a result."""
        return self.folder if self.progress.downloaded else None

    def text(self) -> str:
        p, where = self.progress, f", results in {self.results}" if self.results else ""
        if self.work_left:
            return f"{p.done} of {p.total} jobs done, {self.work_left} left: Run resumes them{where}."
        failed = p.total - p.downloaded
        if not failed:
            return f"Finished: {p.downloaded} of {p.total}{where}."
        return (f"Ended: {p.downloaded} of {p.total} with results, {failed} failed (right-click a job: "
                f"Retry job){where}.")  # fmt: skip
