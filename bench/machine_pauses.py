"""Reference for the UI bench: when did this machine stop running processes at all?

``python -m bench.machine_pauses LOG`` ticks every 1 ms at real-time priority (SCHED_FIFO, when it
may) and appends "epoch_end gap_ms" to LOG for every tick that came over 15 ms late. At real-time
priority no ordinary process can delay it, so such a gap means the machine itself did not run: a
virtual machine's vCPUs paused by its host (hypervisor steal), or the kernel busy. Laid over the UI
watchdog's stalls, it tells a stall of QGIS's main thread from one of the whole machine. It exits
when its parent does.
"""

from __future__ import annotations

import os
import sys
import time

LATE_MS = 15


def raise_priority() -> str:
    """SCHED_FIFO if allowed (root or CAP_SYS_NICE), else the ordinary policy; returns which."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        return "SCHED_FIFO"
    except (AttributeError, OSError):  # not Linux, or not permitted
        return "SCHED_OTHER"


def main(log_path: str) -> None:
    parent = os.getppid()
    with open(log_path, "w") as log:
        log.write(f"# policy {raise_priority()}\n")
        log.flush()
        last = time.perf_counter()
        ticks = 0
        while True:
            time.sleep(0.001)
            now = time.perf_counter()
            if now - last > LATE_MS / 1000:
                log.write(f"{time.time():.4f} {1000 * (now - last):.1f}\n")
                log.flush()
            last = now
            ticks += 1
            if ticks % 500 == 0 and os.getppid() != parent:
                return


if __name__ == "__main__":
    main(sys.argv[1])
