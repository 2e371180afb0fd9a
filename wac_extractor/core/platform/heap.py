"""Keep Python's full garbage collections out of the UI thread's way while runs are going."""

from __future__ import annotations

import contextlib
import gc
import threading

_frozen_runs = 0
_frozen_lock = threading.Lock()


@contextlib.contextmanager
def heap_frozen():
    """Hide the objects that exist when the first run starts from full collections, until the last run ends.

    A full (generation 2) collection walks every object of QGIS's Python heap while holding the GIL,
    whichever thread triggers it; the run's allocations triggered one every ~2 minutes and each
    stalled the UI thread for 55-100 ms. ``gc.freeze()`` moves the objects that exist when the
    first run starts out of the collector's sight (constant time); ``gc.unfreeze()`` after the
    last run hands them back, so garbage among them is still collected then.
    """
    global _frozen_runs
    with _frozen_lock:
        if _frozen_runs == 0:
            gc.freeze()
        _frozen_runs += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0:
                gc.unfreeze()
