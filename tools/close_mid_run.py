"""Close QGIS Desktop in the middle of a run, then reopen it and resume (issue 18), under Xvfb.

``.venv/bin/python tools/close_mid_run.py [OUT_DIR]`` starts the local backend and a private X
server, then QGIS Desktop twice with the plugin's code:

1. the dock runs 12 jobs of 20 s; once some have finished and others run, the main window is
   closed as a user would: QGIS asks whether to cancel the running task, the user says Yes, QGIS
   cancels it (the task stops its runner) and keeps the window; the user closes it again;
2. QGIS is started again on the same tracker; Run resumes it to the end.

It writes ``result.json`` (exit codes, statuses, jobs the backend got) and two screenshots in
OUT_DIR, and exits 1 if QGIS crashed, a job was created twice or the resumed run did not finish.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SESSION = """
import json, os, subprocess, sys, time, traceback
from pathlib import Path
from qgis.PyQt.QtCore import QTimer
from qgis.core import QgsApplication, QgsProject, QgsSettings
from qgis.utils import iface

WORK, URL, PHASE = Path({work!r}), {url!r}, {phase!r}
state = {{}}

def shot(name):
    subprocess.run(["import", "-window", "root", str(WORK / name)], check=False)

def note(**values):
    state.update(values)
    (WORK / f"{{PHASE}}.json").write_text(json.dumps(state))

def start():
    try:
        from wac_extractor.ui.panels.backends import BackendEntry
        from wac_extractor.core.backends.connect import CDSE_URL
        from wac_extractor.core.planning.job_table import PlanRequest, plan_grid
        from qgis.utils import plugins
        iface.mainWindow().setGeometry(0, 0, 1600, 1000)
        QgsSettings().remove("wac_extractor")
        plugin = plugins["wac_extractor"]  # the installed plugin: QGIS unloads it when closing
        plugin.action.setChecked(True)  # the toolbar button opens the dock
        dock = plugin.dock
        dock.backends.set_entries([BackendEntry(CDSE_URL, enabled=False), BackendEntry(URL, 4, True, "oidc")])
        dock.output.setFilePath(str(WORK / "out"))
        dock.tracker_file.setFilePath(str(WORK / "jobs.gpkg"))
        dock.update_preview()
        if PHASE == "first":  # as if drawn: the preview's plan of 12 tiles (the second session resumes)
            request = PlanRequest("2023-01-01", "2023-04-01", ["s1"], 85, 3, recipe="monthly")
            dock.plan = plan_grid(request, 664000, 5611120, "EPSG:32631", window=2000, gap=0, rows=3, cols=4)
        dock.start_run()
        globals()["dock"] = dock
        QTimer.singleShot(1000, watch)
    except Exception:
        note(error=traceback.format_exc()[-3000:])
        os._exit(3)

def answer():
    from qgis.PyQt.QtWidgets import QApplication, QMessageBox
    question = QApplication.activeModalWidget()
    if isinstance(question, QMessageBox):
        shot("1b_close_asks_to_cancel.png")
        note(question=question.text()[:300])
        question.button(QMessageBox.StandardButton.Yes).click()  # the user's answer: cancel the task
        note(cancel_answered_at=time.time())
        QTimer.singleShot(500, close_again)

def close_again():
    # QGIS cancels the task and keeps its window open; once the task ended, the user closes it again.
    if QgsApplication.taskManager().countActiveTasks():
        QTimer.singleShot(200, close_again)
        return
    note(task_ended_after_s=round(time.time() - state["cancel_answered_at"], 1))
    shot("1c_task_cancelled.png")
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(2000, confirm)  # results under /tmp count as "temporary layers": QGIS asks once more
    iface.mainWindow().close()

def confirm():
    from qgis.PyQt.QtWidgets import QApplication, QMessageBox
    question = QApplication.activeModalWidget()
    if isinstance(question, QMessageBox):
        note(second_question=question.text()[:300])
        question.button(QMessageBox.StandardButton.Yes).click()

def watch():
    counts = dock.tracker.count_by_status() if dock.tracker is not None and dock.tracker.exists() else {{}}
    if PHASE == "first" and counts.get("finished", 0) >= 4 and counts.get("running", 0) >= 1:
        shot("1_before_close.png")
        note(counts_at_close=counts, closed_at=time.time())
        QgsProject.instance().setDirty(False)  # no "save the project?" question: the closing is the test
        QTimer.singleShot(2000, answer)  # QGIS asks whether to cancel the running task
        iface.mainWindow().close()  # as the user clicks the window's close button
        return
    if PHASE == "second" and dock.task is None:
        note(counts_at_end=counts)
        QTimer.singleShot(3000, lambda: (shot("2_resumed_and_finished.png"), os._exit(0)))
        return
    QTimer.singleShot(500, watch)

QTimer.singleShot(4000, start)  # QGIS Desktop finishes starting (plugins, Processing) first
"""


def install_plugin(work: Path) -> None:
    """The plugin zip installed and enabled in a fresh QGIS profile, as a user installs it."""
    profile = work / "profiles" / "default"
    subprocess.run(["make", "-s", "deploy", f"QGIS_PROFILE_DIR={profile}"], cwd=REPO, check=True, capture_output=True)
    (profile / "QGIS").mkdir(parents=True, exist_ok=True)
    (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nwac_extractor=true\n")


def run_qgis(work: Path, url: str, phase: str, display: str, timeout: float) -> dict:
    script = work / f"{phase}.py"
    script.write_text(SESSION.format(work=str(work), url=url, phase=phase))
    env = {
        **os.environ,
        "DISPLAY": display,
        "PYTHONPATH": sysconfig.get_paths()["purelib"],  # the dev venv (openeo) for QGIS's Python
        "XDG_DATA_HOME": str(work / "xdg"),  # the refresh token signed in below
        "QT_QPA_PLATFORM": "xcb",
    }
    started = time.monotonic()
    with open(work / f"{phase}_qgis.log", "w") as log:
        qgis = subprocess.Popen(
            ["qgis", "--profiles-path", str(work), "--nologo", "--noversioncheck", "--code", str(script)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            code = qgis.wait(timeout)
        except subprocess.TimeoutExpired:
            qgis.kill()
            code = "timeout"
    state_file = work / f"{phase}.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    ended = time.monotonic() - started
    if "closed_at" in state:
        state["seconds_from_first_close_to_exit"] = round(time.time() - state.pop("closed_at"), 1)
        state.pop("cancel_answered_at", None)
    log_text = (work / f"{phase}_qgis.log").read_text(errors="replace")
    crashed = any(word in log_text for word in ("Segmentation fault", "Aborted", "QGIS died", "Traceback"))
    return {"exit_code": code, "seconds": round(ended, 1), "crash_or_traceback_in_log": crashed, **state}


def main(out: Path) -> int:
    from tests.conftest import LocalBackend, start_backend
    from wac_extractor.core.backends.signin import BackendLogin, DeviceFlowUi, SignIn
    from wac_extractor.core.jobs.tracker import open_tracker

    if shutil.which("Xvfb") is None or shutil.which("qgis") is None:
        print("Xvfb or qgis is missing: run 'make setup'", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wac-close-mid-run-"))
    os.environ["XDG_DATA_HOME"] = str(work / "xdg")
    process, url = start_backend(work, "--queue-seconds", "0", "0", "--run-seconds", "20", "20")
    backend = LocalBackend(url)
    display = ":95"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-dpi", "96"], stderr=subprocess.DEVNULL)
    try:
        approve = DeviceFlowUi(
            show=lambda prompt: threading.Timer(0.2, backend.oidc, kwargs={"approve": prompt.user_code}).start()
        )
        BackendLogin(url, SignIn("oidc", device_ui=approve))()  # signed in once; both sessions use the token
        install_plugin(work)
        first = run_qgis(work, url, "first", display, timeout=300)
        after_close = open_tracker(work / "jobs.gpkg").count_by_status()
        created_before = len(backend.jobs())
        second = run_qgis(work, url, "second", display, timeout=600)
        titles = [job["title"] for job in backend.jobs()]
        final = open_tracker(work / "jobs.gpkg").count_by_status()
    finally:
        process.terminate()
        xvfb.terminate()
    result = {
        "first_session_closed_mid_run": first,
        "tracker_after_close": after_close,
        "backend_jobs_before_resume": created_before,
        "second_session_resumed": second,
        "tracker_at_end": final,
        "backend_jobs_at_end": len(titles),
        "jobs_created_twice": len(titles) - len(set(titles)),
        "work_dir": str(work),
    }
    for name in (
        "1_before_close.png",
        "1b_close_asks_to_cancel.png",
        "1c_task_cancelled.png",
        "2_resumed_and_finished.png",
    ):
        if (work / name).exists():
            shutil.copy(work / name, out / name)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = (
        first["exit_code"] == 0
        and not first["crash_or_traceback_in_log"]
        and second["exit_code"] == 0
        and result["jobs_created_twice"] == 0
        and set(final) == {"finished"}
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "close_mid_run"))
