"""Let the UI thread win the CPU over a run's worker threads."""

from __future__ import annotations

import logging
import os
import sys
import threading

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
