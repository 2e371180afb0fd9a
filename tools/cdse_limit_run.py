"""The dock on a CDSE-like account in QGIS Desktop under Xvfb: the 2-job limit, then failures by cause.

``.venv/bin/python tools/cdse_limit_run.py [OUT_DIR]`` starts the local backend with the ``cdse``
profile, a private X server and QGIS Desktop with the plugin installed from ``make deploy`` into a
fresh profile, the dock docked at 300 px. A user's steps are real X events (``xdotool``): drawing
the AOI on the map, unticking Sentinel-1, adding the local backend (typed into the dialog; the one added
is the ticked one, CDSE unticked), 4 parallel jobs, Re-run lost jobs 0, Run. Set by code through the
plugin's dock (hard to click):
the dates, the recipe, the output folder and tracker, the QGIS auth configuration (demo/demo) and the
sign-in method. Screenshots (whole screen) go to OUT_DIR (default ``docs/``):

1. ``cdse_limit_run_dock_300px.png``: the run while 2 jobs run and the others wait, with the
   message bar's "... runs at most 2 of your jobs at once (4 asked)";
2. ``cdse_limit_run_finished.png``: that run at its end;
3. ``cdse_failures_by_cause.png``: a second run where every Sentinel-2 job runs out of memory.
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
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SESSION = """
import json, os, time, traceback
from pathlib import Path
from qgis.PyQt.QtCore import QTimer, Qt, QDate, QPoint
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsRectangle, QgsSettings, QgsPointXY
from qgis.utils import iface

WORK = Path({work!r})
done = set()

def keep_log(message, tag, level):
    with open(WORK / "message_log.txt", "a") as log:
        log.write(f"[{{tag}}] {{int(level)}} {{message}}\\n")

QgsApplication.messageLog().messageReceived.connect(keep_log)

def rect(widget):
    top_left = widget.mapToGlobal(QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]

def positions():
    dock = globals().get("dock")
    out = {{}}
    if dock is None:
        return out
    for name, widget in {{"draw_rect": dock.draw_rect, "s1": dock.s1, "s2": dock.s2, "add": dock.backends.add_button,
                         "run": dock.run_button, "reruns": dock.output_panel.reruns, "table": dock.table,
                         "canvas": iface.mapCanvas(), "dock": dock, "progress": dock.progress}}.items():
        out[name] = rect(widget)
    table = dock.backends.table
    for row in range(table.rowCount()):
        cell = table.visualItemRect(table.item(row, 0))
        corner = table.viewport().mapToGlobal(cell.topLeft())
        out[f"backend_{{row}}"] = [corner.x(), corner.y(), cell.width(), cell.height()]
        out[f"parallel_{{row}}"] = rect(table.cellWidget(row, 1))
    return out

def state():
    dock = globals().get("dock")
    bar = iface.messageBar()
    rows = []
    if dock is not None:
        for r in range(dock.model.rowCount()):
            rows.append([dock.model.item(r, c).text() for c in range(dock.model.columnCount())])
    return {{
        "running": dock is not None and dock.task is not None,
        "rows": rows,
        "columns": [dock.model.headerData(c, Qt.Orientation.Horizontal) for c in range(dock.model.columnCount())]
        if dock is not None else [],
        "bar": [(w.title(), w.text()) for w in bar.items()],
        "progress": dock.progress.text() if dock is not None else "",
        "failures": dock.run_controls.failures.text() if dock is not None else "",
        "failures_visible": dock.run_controls.failures.isVisible() if dock is not None else False,
        "credits": dock.credits.text() if dock is not None else "",
        "summary": dock.summary.text() if dock is not None else "",
        "problem": dock.problem.text() if dock is not None else "",
        "backend_status": dock.backends.status.text() if dock is not None else "",
        "entries": [vars(e) for e in dock.backends.entries] if dock is not None else [],
        "aois": dock.aoi_list.item(0).text() if dock is not None and dock.aoi_list.count() else "",
        "dock_width": dock.width() if dock is not None else 0,
        "reruns": dock.output_panel.reruns.value() if dock is not None else None,
        "s1": dock.s1.isChecked() if dock is not None else None,
        "s2": dock.s2.isChecked() if dock is not None else None,
        "widths": widths() if dock is not None else None,
    }}

def setup():
    global dock
    from qgis.utils import plugins
    from wac_extractor.qgis_glue.credentials import save_credentials
    win = iface.mainWindow()
    win.setGeometry(0, 0, 1600, 1000)
    iface.newProject(False)  # a new empty project (not the welcome page): the map canvas shows
    QgsSettings().remove("wac_extractor")
    plugin = plugins["wac_extractor"]
    plugin.action.setChecked(True)  # the toolbar button opens the dock
    dock = plugin.dock
    win.resizeDocks([dock], [300], Qt.Orientation.Horizontal)
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    canvas.setExtent(QgsRectangle(650000, 5598000, 692000, 5636000))
    canvas.refresh()
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        manager.setMasterPassword("wac-desktop-master-password", True)
    globals()["authcfg"] = save_credentials("WAC local backend", "demo", "demo", {url!r})
    # set by code: dates, months per job, recipe, output folder and tracker
    dock.start_date.setDate(QDate(2023, 1, 1))
    dock.end_date.setDate(QDate(2023, 4, 1))
    dock.window_months.setValue(3)
    dock.recipe.setCurrentIndex(dock.recipe.findData("monthly"))
    dock.output.setFilePath(str(WORK / "out"))
    dock.tracker_file.setFilePath(str(WORK / "jobs.gpkg"))
    scroll_to(dock.draw_rect)

def corners():
    canvas = iface.mapCanvas()
    to_pixel = canvas.getCoordinateTransform()
    out = []
    for x, y in ((662000, 5606000), (681500, 5625500)):  # about 20 x 20 km near 5.3-5.5 E, 50.6-50.72 N
        p = to_pixel.transform(QgsPointXY(x, y))
        g = canvas.mapToGlobal(QPoint(round(p.x()), round(p.y())))
        out.append([g.x(), g.y()])
    return out

def scroll_to(widget):
    # vertically only, as a user scrolls the dock; the dock has no horizontal scroll bar
    scroll = dock.scroll
    scroll.ensureWidgetVisible(widget, 10, 10)
    scroll.horizontalScrollBar().setValue(0)

def widths():
    scroll = dock.scroll
    body = scroll.widget()
    out = {{"viewport": scroll.viewport().width(), "body": body.width(),
           "body_min_hint": body.minimumSizeHint().width(),
           "h_scroll_max": scroll.horizontalScrollBar().maximum(), "h_scroll": scroll.horizontalScrollBar().value()}}
    from qgis.PyQt.QtWidgets import QWidget
    wide = []
    for w in body.findChildren(QWidget):
        if not w.isVisible():
            continue
        hint = w.minimumSizeHint().width() if w.minimumSize().width() == 0 else w.minimumSize().width()
        left = w.mapTo(body, QPoint(0, 0)).x()
        if left + hint > scroll.viewport().width() - 2 and w.parent() is not None:
            text = w.text() if hasattr(w, "text") and callable(w.text) else ""
            wide.append([type(w).__name__, w.objectName(), str(text)[:40], left, hint, w.width()])
    out["too_wide"] = wide[:40]
    for panel in dock.panels:
        out[type(panel).__name__] = panel.minimumSizeHint().width()
    return out

def basic_auth():
    # set by code: the sign-in method of the selected (local) backend and its QGIS auth configuration
    backends = dock.backends
    row = len(backends.entries) - 1
    backends.table.selectRow(row)
    backends.method.setCurrentIndex(backends.method.findData("basic"))
    backends.authcfg.setConfigId(authcfg)

def prepare_failures():
    dock.tracker_file.setFilePath(str(WORK / "jobs_failures.gpkg"))  # set by code: a new tracker
    dock.update_preview()

def run_bottom():
    scroll = dock.scroll
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    scroll.horizontalScrollBar().setValue(0)

def table_right():
    dock.table.horizontalScrollBar().setValue(dock.table.horizontalScrollBar().maximum())

def table_left():
    dock.table.horizontalScrollBar().setValue(0)

COMMANDS = {{"setup": setup, "basic_auth": basic_auth, "prepare_failures": prepare_failures, "run_bottom": run_bottom,
            "table_right": table_right, "table_left": table_left, "state": lambda: None,
            "show_reruns": lambda: scroll_to(dock.output_panel.reruns),
            "show_s1": lambda: scroll_to(dock.s2),
            "show_backends": lambda: scroll_to(dock.backends.add_button),
            "show_parallel": lambda: scroll_to(dock.backends.table),
            "corners": lambda: None}}

def poll():
    try:
        from qgis.utils import plugins
        cmd_file = WORK / "cmd.json"
        if cmd_file.exists() and "wac_extractor" in plugins:  # QGIS Desktop has loaded the plugin
            cmd = json.loads(cmd_file.read_text())
            if cmd["n"] not in done:
                done.add(cmd["n"])
                result = {{"n": cmd["n"]}}
                try:
                    COMMANDS[cmd["do"]]()
                    QgsApplication.processEvents()
                    result.update(positions=positions(), state=state())
                    if "dock" in globals():
                        result["corners"] = corners()
                except Exception:
                    result["error"] = traceback.format_exc()[-3000:]
                tmp = WORK / "ack.tmp"
                tmp.write_text(json.dumps(result, default=str))
                tmp.replace(WORK / "ack.json")
    finally:
        QTimer.singleShot(200, poll)

QTimer.singleShot(5000, poll)
"""


class Driver:
    def __init__(self, work: Path, display: str):
        self.work, self.display, self.n = work, display, 0

    def ask(self, do: str, timeout: float = 60) -> dict:
        self.n += 1
        (self.work / "cmd.tmp").write_text(json.dumps({"n": self.n, "do": do}))
        (self.work / "cmd.tmp").replace(self.work / "cmd.json")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ack = self.work / "ack.json"
            if ack.exists():
                try:
                    answer = json.loads(ack.read_text())
                except ValueError:
                    answer = {}
                if answer.get("n") == self.n:
                    if "error" in answer:
                        raise RuntimeError(answer["error"])
                    return answer
            time.sleep(0.1)
        raise TimeoutError(do)

    def xdo(self, *args) -> None:
        subprocess.run(["xdotool", *map(str, args)], env={**os.environ, "DISPLAY": self.display}, check=True)
        time.sleep(0.4)

    def click(self, x, y) -> None:
        self.xdo("mousemove", x, y, "click", 1)

    def shot(self, path: Path) -> None:
        subprocess.run(["xdotool", "mousemove", "700", "850"], env={**os.environ, "DISPLAY": self.display}, check=True)
        time.sleep(0.3)  # the pointer off the dock: no hover highlight
        subprocess.run(
            ["import", "-window", "root", str(path)], env={**os.environ, "DISPLAY": self.display}, check=True
        )


def center(r):
    return r[0] + r[2] // 2, r[1] + r[3] // 2


def control(url: str, config: dict) -> None:
    request = urllib.request.Request(f"{url}/_control/config", json.dumps(config).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    urllib.request.urlopen(request, timeout=10).read()


def backend_jobs(url: str) -> list:
    return json.loads(urllib.request.urlopen(f"{url}/_control/jobs", timeout=10).read())


def main(out: Path) -> int:
    for tool in ("Xvfb", "qgis", "xdotool", "import"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wac-cdse-limit-"))
    print("work dir", work, flush=True)
    port_file = work / "port"
    backend = subprocess.Popen(
        [str(REPO / ".venv-backend" / "bin" / "python"), "-m", "tests.local_backend", "--profile", "cdse",
         "--port", "0", "--port-file", str(port_file), "--work-dir", str(work / "backend")],
        cwd=REPO, stdout=open(work / "backend.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    display = os.environ.get("WAC_DISPLAY", ":93")
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-dpi", "96"], stderr=subprocess.DEVNULL)
    qgis = None
    log: dict = {}
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        control(url, {"queue_seconds": [2, 2], "run_seconds": [6, 6], "s1_error_share": 0, "s1_lost_share": 0})
        profile = work / "profiles" / "default"
        subprocess.run(["make", "-s", "deploy", f"QGIS_PROFILE_DIR={profile}"], cwd=REPO, check=True,
                       capture_output=True)  # fmt: skip
        (profile / "QGIS").mkdir(parents=True, exist_ok=True)
        (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nwac_extractor=true\n")
        script = work / "session.py"
        script.write_text(SESSION.format(work=str(work), url=url))
        env = {**os.environ, "DISPLAY": display, "PYTHONPATH": sysconfig.get_paths()["purelib"],
               "XDG_DATA_HOME": str(work / "xdg"), "QT_QPA_PLATFORM": "xcb"}  # fmt: skip
        qgis = subprocess.Popen(
            ["qgis", "--profiles-path", str(work), "--nologo", "--noversioncheck", "--code", str(script)],
            env=env, stdout=open(work / "qgis.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        d = Driver(work, display)
        answer = d.ask("setup", timeout=120)
        time.sleep(2)
        pos, (a, b) = answer["positions"], answer["corners"]
        # the AOI: Draw rectangle, then a drag on the map
        d.click(*center(pos["draw_rect"]))
        d.xdo("mousemove", *a, "mousedown", 1)
        d.xdo("mousemove", (a[0] + b[0]) // 2, (a[1] + b[1]) // 2)
        d.xdo("mousemove", *b, "mouseup", 1)
        answer = d.ask("show_s1")
        pos = answer["positions"]
        if answer["state"]["s1"]:
            d.click(pos["s1"][0] + 9, pos["s1"][1] + pos["s1"][3] // 2)  # untick Sentinel-1 at its box
        if not d.ask("state")["state"]["s2"]:
            d.click(pos["s2"][0] + 9, pos["s2"][1] + pos["s2"][3] // 2)
        # Add backend…: type the URL into QGIS's dialog
        pos = d.ask("show_backends")["positions"]
        d.click(*center(pos["add"]))
        time.sleep(1)
        d.xdo("type", "--delay", "20", url)
        d.xdo("key", "Return")
        answer = d.ask("basic_auth")
        answer = d.ask("show_parallel")
        pos = answer["positions"]
        if answer["state"]["entries"][0]["enabled"]:  # the backend added is the ticked one: CDSE should be off
            d.click(pos["backend_0"][0] + 11, pos["backend_0"][1] + pos["backend_0"][3] // 2)  # untick CDSE
        d.click(pos["parallel_1"][0] + 12, pos["parallel_1"][1] + pos["parallel_1"][3] // 2)
        d.xdo("key", "ctrl+a", "type", "4")
        d.xdo("key", "Tab")
        pos = d.ask("state")["positions"]
        d.click(pos["backend_1"][0] + 60, pos["backend_1"][1] + pos["backend_1"][3] // 2)  # select the local row
        state = d.ask("state")["state"]
        log["before_run"] = state
        print(json.dumps({k: state[k] for k in ("entries", "aois", "summary", "problem", "s1", "s2")}), flush=True)
        pos = d.ask("run_bottom")["positions"]
        d.click(*center(pos["run"]))
        # while it runs: 2 jobs running or queued, the others waiting, the notice in the message bar
        shot1 = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = d.ask("state")["state"]
            statuses = [
                r[state["columns"].index("Status")] if "Status" in state["columns"] else r for r in state["rows"]
            ]
            notice = any("at most 2" in str(m) for m in state["bar"])
            active = sum(s in ("queued", "running") for s in statuses)
            if notice and "running" in statuses and active == 2 and len(statuses) - active > 1:
                time.sleep(0.3)
                d.shot(out / "cdse_limit_run_dock_300px.png")
                shot1 = state
                break
            if not state["running"] and state["rows"]:
                break
            time.sleep(0.5)
        log["limit_shot"] = shot1
        while d.ask("state")["state"]["running"]:
            time.sleep(1)
        time.sleep(4)
        d.ask("run_bottom")
        d.shot(out / "cdse_limit_run_finished.png")
        log["finished"] = d.ask("state")["state"]
        log["backend_jobs_limit_run"] = backend_jobs(url)
        # the second run: every Sentinel-2 job out of memory, no re-runs
        control(url, {"memory_check": True, "memory_scale": 8, "concurrent_job_limit": 0})
        d.ask("prepare_failures")
        pos = d.ask("show_reruns")["positions"]
        d.click(pos["reruns"][0] + 20, pos["reruns"][1] + pos["reruns"][3] // 2)
        d.xdo("key", "ctrl+a", "type", "0")
        d.xdo("key", "Tab")
        log["before_failures"] = d.ask("state")["state"]
        pos = d.ask("run_bottom")["positions"]
        d.click(*center(pos["run"]))
        time.sleep(2)
        deadline = time.monotonic() + 240
        while d.ask("state")["state"]["running"] and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(3)
        d.ask("run_bottom")
        d.shot(out / "cdse_failures_by_cause.png")
        log["failures"] = d.ask("state")["state"]
        d.ask("table_right")
        time.sleep(0.5)
        d.shot(out / "cdse_failures_by_cause_messages.png")
    finally:
        (work / "result.json").write_text(json.dumps(log, indent=2, default=str))
        if qgis is not None and qgis.poll() is None:
            qgis.kill()
            qgis.wait(10)
        backend.terminate()
        backend.wait(10)
        xvfb.terminate()
        xvfb.wait(10)
    print(json.dumps(log, indent=1, default=str)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"))
