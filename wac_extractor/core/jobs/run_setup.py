"""One run, set up in one place: the dock's task, the Processing algorithm and the command line all call
:func:`prepare_run` with a tracker (or a new tracker's plan), the backends and the run's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pandas as pd

from ..backends.signin import BackendLogin, SignIn
from .backend_spec import BackendSpec
from .job_options import DEFAULT_MAX_MEMORY_MB
from .progress import JobEvent, RunProgress
from .reruns import DEFAULT_RERUNS
from .runner import ExtractionRunner
from .tracker import Tracker, open_tracker


@dataclass
class RunOptions:
    """What a run is told besides its jobs and backends; the same fields in the dock, Processing and the CLI."""

    poll_interval: float = 10.0
    max_queued_seconds: Optional[float] = None  # a job queued longer is cancelled and ends as an error
    max_credits: Optional[float] = None  # the credit cap
    job_budget: Optional[float] = None  # each job's openEO budget
    job_options: Dict[str, object] = field(default_factory=dict)  # sent with every job; a row's own win
    reruns: int = DEFAULT_RERUNS  # more attempts for a job the backend lost
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB  # the ceiling of out-of-memory re-runs' memory options


Backends = List[Tuple[BackendSpec, BackendLogin]]


def backend_logins(urls: Sequence[str], parallel: Sequence[int], sign_in: SignIn) -> Backends:
    """A run's backends: each URL with its parallel jobs and a login with the run's sign-in."""
    return [(BackendSpec(url, jobs), BackendLogin(url, sign_in)) for url, jobs in zip(urls, parallel)]


def prepare_run(
    tracker: Union[Tracker, str, Path],
    output_dir: Union[str, Path],
    backends: Sequence[tuple],
    options: Optional[RunOptions] = None,
    *,
    plan: Optional[pd.DataFrame] = None,
    on_progress: Optional[Callable[[RunProgress], None]] = None,
    on_event: Optional[Callable[[JobEvent], None]] = None,
    cancel_check: Optional[Callable[[], bool]] = None,
) -> ExtractionRunner:
    """The runner of one run, ready to ``run()`` (in the caller's worker thread).

    ``tracker``: an existing tracker (resumed), or a new one with its ``plan`` (the job table), which
    the runner writes when it starts (:meth:`ExtractionRunner.write_plan`), off the UI thread.
    ``backends``: ``(BackendSpec, connect)`` pairs (:func:`backend_logins`, or the dock's panel).
    """
    options = options or RunOptions()
    tracker = open_tracker(tracker) if isinstance(tracker, (str, Path)) else tracker
    if plan is None and not tracker.exists():
        path = getattr(tracker, "path", tracker)
        raise ValueError(f"jobs: {path} does not exist; plan the jobs first (or choose an existing tracker).")
    return ExtractionRunner(
        tracker,
        Path(output_dir),
        backends,
        poll_interval=options.poll_interval,
        max_queued_seconds=options.max_queued_seconds,
        max_credits=options.max_credits,
        job_budget=options.job_budget,
        job_options=options.job_options,
        reruns=options.reruns,
        max_memory_mb=options.max_memory_mb,
        on_progress=on_progress,
        on_event=on_event,
        cancel_check=cancel_check,
        plan=plan,
    )
