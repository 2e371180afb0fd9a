"""Let the UI thread win the CPU over a run's worker threads."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from typing import Callable, Optional, TypeVar

T = TypeVar("T")
BACKGROUND_NICE = 10
_log = logging.getLogger(__name__)


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Give the calling thread (and the threads it starts later) a lower CPU priority; Linux only.

    Why: with both CPUs busy, the kernel let QGIS's UI thread wait 20-30 ms in a run queue while the
    run's thread turned a snapshot into table rows (perf sched events of a 1,000-job run): the UI
    stalled although it had nothing to wait for. Linux keeps the nice value per thread (and new
    threads inherit it), so only the run's threads yield; an unprivileged thread cannot raise it
    back, so call this only in a thread of your own. Returns whether the priority was lowered.
    """
    if not sys.platform.startswith("linux"):
        return False  # elsewhere setpriority() would change the whole QGIS process
    thread_id = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, thread_id) < nice:
            os.setpriority(os.PRIO_PROCESS, thread_id, nice)
        return True
    except OSError as exc:  # a sandbox that forbids it: the run works as before
        _log.debug("could not lower the run thread's priority: %s", exc)
        return False


def call_in_background_thread(function: Callable[[], T], name: str, calls: Optional[queue.SimpleQueue] = None) -> T:
    """Call ``function`` in a new thread at a lower CPU priority, wait for it and return its result.

    Why a new thread: QGIS runs tasks and Processing algorithms in pooled threads, which would keep
    a lowered priority for every later task. An exception raised by ``function`` is raised here.
    Callables put on ``calls`` (from any thread) run in the calling thread while it waits: a
    Processing algorithm's feedback reports through Qt signals and belongs to that thread.
    """
    outcome: list = []

    def target() -> None:
        lower_thread_priority()  # threads that function starts inherit it
        try:
            outcome.append((True, function()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    def run_calls(timeout: Optional[float]) -> None:
        try:
            calls.get(timeout=timeout)()
        except queue.Empty:
            pass
        except Exception:  # a report that failed must not leave the run unwatched
            _log.exception("a callback from %s failed", name)

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    while calls is not None and worker.is_alive():
        run_calls(0.05)
    worker.join()
    while calls is not None and not calls.empty():
        run_calls(None)
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value
