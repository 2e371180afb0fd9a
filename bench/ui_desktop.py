"""The UI-responsiveness run inside QGIS Desktop under Xvfb: real main window, layer tree and canvas.

``python -m bench.ui_desktop [JOBS]`` starts a private X server, then ``qgis --code`` with a fresh
profile; the code (``desktop_run``) docks the plugin's dock in QGIS's window, runs the same
measurement as ``bench.ui_watchdog`` while the canvas draws every layer the run adds, writes the
JSON and quits QGIS. Prints the JSON. Needs ``Xvfb`` (``make setup`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = """
import json, os, sys, traceback
from pathlib import Path
from qgis.PyQt.QtCore import QTimer
from qgis.core import QgsApplication
from qgis.utils import iface

def go():
    try:
        from bench.ui_watchdog import run_dock
        iface.mainWindow().setGeometry(0, 0, 1600, 1000)
        result = run_dock({jobs}, Path({work!r}), iface, desktop=True)
    except Exception:
        result = {{"error": traceback.format_exc()[-3000:]}}
    Path({out!r}).write_text(json.dumps(result))
    os._exit(0)  # QGIS 3.22 can crash tearing down a dock with a task and many layers

QTimer.singleShot(5000, go)  # QGIS Desktop finishes starting (plugins, Processing) first
"""


def main(jobs: int = 1000, display: str = os.environ.get("WAC_BENCH_DISPLAY", ":97")) -> dict:
    if shutil.which("Xvfb") is None or shutil.which("qgis") is None:
        return {"error": "Xvfb or qgis is missing: run 'make setup'"}
    work = Path(tempfile.mkdtemp(prefix="wac-bench-desktop-"))
    out = work / "result.json"
    script = work / "run.py"
    script.write_text(CODE.format(jobs=jobs, work=str(work), out=str(out)))
    site = sysconfig.get_paths()["purelib"]  # the dev venv (openeo, pytest) for QGIS's own Python
    env = {
        **os.environ,
        "DISPLAY": display,
        "PYTHONPATH": os.pathsep.join([str(REPO), site]),
        "WAC_BENCH_PYTHON": sys.executable,
        "XDG_DATA_HOME": str(work / "xdg"),  # a private refresh-token store
        "QT_QPA_PLATFORM": "xcb",
    }
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-dpi", "96"], stderr=subprocess.DEVNULL)
    time.sleep(1)
    log = open(work / "qgis.log", "w")
    qgis = subprocess.Popen(
        ["qgis", "--profiles-path", str(work / "profiles"), "--nologo", "--noversioncheck", "--code", str(script)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 3600
        while not out.exists() and qgis.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        if not out.exists():
            return {"error": f"QGIS ended without a result; see {work / 'qgis.log'}"}
        return json.loads(out.read_text())
    finally:
        if qgis.poll() is None:
            qgis.kill()
        xvfb.terminate()
        xvfb.wait(10)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)), flush=True)
