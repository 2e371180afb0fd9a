"""The dock's set-up at 300 px in each sign-in mode, and a run in progress, in QGIS Desktop under Xvfb.

``.venv/bin/python tools/setup_shots.py [OUT_DIR]`` starts the local backend, a private X server with a
window manager (openbox, when installed: dialogs get their title bars, as on a desktop), and QGIS
Desktop with the plugin installed by ``make deploy`` into a fresh profile, the dock at 300 px. A user's
steps are real X events (``xdotool``): *Add backend…* and the URL typed into its dialog, *Sign in with*
chosen from its list by its initial, the credentials editor's "+", *Sign in* (OIDC: the device code),
the AOI dragged on the map, *Run*. Set by code through the plugin: the dates, recipe, output folder and
tracker, the QGIS master password and the configuration's secret (demo/demo), the parallel jobs.
Screenshots (whole screen) in OUT_DIR (default ``docs/``):

- ``add_backend_dialog.png``: the *Add backend* dialog with its title bar;
- ``auth_editor_basic.png``: QGIS's credentials editor opened by the picker's "+" (Basic);
- ``dock_300px_<method>.png`` for oidc (a device code shown), client_credentials, basic and none, and
  ``dock_300px_sign_in_modes.png``: the top of the dock in the four, side by side (ImageMagick);
- ``run_in_progress.png``: a run on the local backend, the sections collapsed by clicks on their titles,
  some jobs finished, others running, the job tiles' legend open.

Then, in the work dir only, the other dialogs the dock opens: a finished job's log (double-click on its
row) and *Open run…*; ``result.json`` there has every dialog's title and width.
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
sys.path.insert(0, str(REPO))

from tools.cdse_limit_run import Driver, center  # noqa: E402 (the same file protocol and clicks)

SESSION = """
import json, traceback
from pathlib import Path
from qgis.PyQt.QtCore import QTimer, Qt, QDate, QPoint
from qgis.PyQt.QtWidgets import QApplication, QToolButton
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsRectangle, QgsSettings, QgsPointXY
from qgis.utils import iface

WORK = Path({work!r})
done = set()

def rect(widget):
    top_left = widget.mapToGlobal(QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]

def positions():
    dock = globals().get("dock")
    if dock is None:
        return {{}}
    b = dock.backends
    add_cfg = next(t for t in b.authcfg.findChildren(QToolButton) if t.objectName() == "btnConfigAdd")
    out = {{name: rect(w) for name, w in {{"add": b.add_button, "method": b.method, "add_cfg": add_cfg,
            "sign_in": b.sign_in_button, "cancel_code": b.cancel_button, "draw_rect": dock.draw_rect,
            "run": dock.run_button, "canvas": iface.mapCanvas(), "dock": dock,
            "open_run": dock.run_controls.open_run_button}}.items()}}
    cell = dock.table.visualRect(dock.model.index(0, 0))
    corner = dock.table.viewport().mapToGlobal(cell.topLeft())
    out["row_0"] = [corner.x(), corner.y(), cell.width(), cell.height()]
    for number, panel in enumerate(dock.panels):
        if hasattr(panel, "box"):
            out[f"box_{{number}}"] = rect(panel.box)
    modal = QApplication.activeModalWidget() or QApplication.activeWindow()
    out["modal"] = rect(modal) if modal is not None else None
    return out

def state():
    dock = globals().get("dock")
    if dock is None:
        return {{}}
    b = dock.backends
    model = dock.model
    rows = [[model.item(r, c).text() for c in range(model.columnCount())] for r in range(model.rowCount())]
    modal = QApplication.activeModalWidget() or QApplication.activeWindow()
    return {{"open_box": globals().get("open_box"), "entries": [vars(e) for e in b.entries],
            "method": b.method.currentData(), "status": b.status.text(),
            "authcfg_label": b.authcfg_label.text() if b.authcfg_label.isVisible() else "",
            "code_shown": b.device_box.isVisible(), "code": b.code_label.text(),
            "modal": [type(modal).__name__, modal.metaObject().className(), modal.windowTitle(), modal.width()]
            if modal is not None else None,
            "running": dock.task is not None, "rows": rows,
            "columns": [dock.model.headerData(c, Qt.Orientation.Horizontal) for c in range(dock.model.columnCount())],
            "progress": dock.progress.text(), "summary": dock.summary.text(), "problem": dock.problem.text(),
            "dock_width": dock.width(), "h_scroll_max": dock.scroll.horizontalScrollBar().maximum(),
            "backends_min_width": b.minimumSizeHint().width(), "viewport": dock.scroll.viewport().width(),
            "too_wide": too_wide(dock)}}

def too_wide(dock):
    # visible widgets of the scrolled form whose minimum reaches past the viewport (what clips the dock)
    from qgis.PyQt.QtWidgets import QWidget
    body, width = dock.scroll.widget(), dock.scroll.viewport().width()
    out = {{type(p).__name__: p.minimumSizeHint().width() for p in dock.panels}}
    wide = []
    for w in body.findChildren(QWidget):
        hint = max(w.minimumSizeHint().width(), w.minimumWidth())
        left = w.mapTo(body, QPoint(0, 0)).x()
        if w.isVisible() and left + hint > width:
            text = w.text() if hasattr(w, "text") and callable(w.text) else ""
            wide.append([type(w).__name__, str(text)[:40], left, hint])
    out["widgets"] = wide[:30]
    return out

def setup():
    global dock
    from qgis.utils import plugins
    from wac_extractor.qgis_glue.credentials import save_credentials
    win = iface.mainWindow()
    win.showMaximized()
    iface.newProject(False)
    iface.messageBar().clearWidgets()  # "Open Sans font installation failed": QGIS without network, not ours
    QgsSettings().remove("wac_extractor")
    plugin = plugins["wac_extractor"]
    plugin.action.setChecked(True)
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
    dock.start_date.setDate(QDate(2023, 1, 1))
    dock.end_date.setDate(QDate(2023, 4, 1))
    dock.window_months.setValue(3)
    dock.recipe.setCurrentIndex(dock.recipe.findData("monthly"))
    dock.output.setFilePath(str(WORK / "out"))
    dock.tracker_file.setFilePath(str(WORK / "jobs.gpkg"))
    show_backends()

def show_backends():
    # the backends section at the top of the dock's scrolled form
    body = dock.scroll.widget()
    dock.scroll.verticalScrollBar().setValue(dock.backends.mapTo(body, QPoint(0, 0)).y())

def use_authcfg():
    # set by code: the configuration holding the secret (typing a password into QGIS's editor is not shown)
    dock.backends.authcfg.setConfigId(authcfg)

def parallel_four():
    table = dock.backends.table
    table.cellWidget(table.rowCount() - 1, 1).setValue(4)

def show_aoi():
    dock.scroll.verticalScrollBar().setValue(0)

def show_jobs():
    dock.scroll.verticalScrollBar().setValue(dock.scroll.verticalScrollBar().maximum())

def show_legend():
    # set by code: the job tiles' legend (their status categories) open in the Layers panel
    from qgis.core import QgsProject
    for node in QgsProject.instance().layerTreeRoot().findLayers():
        node.setExpanded(node.name() == "WAC job tiles")

def collapse_next():
    # the top-most open section other than the job table, its title scrolled into view (a click collapses it)
    for number, panel in enumerate(dock.panels):
        if hasattr(panel, "box") and panel is not dock.run_panel and not panel.box.isCollapsed():
            dock.scroll.ensureWidgetVisible(panel.box, 0, 0)
            body = dock.scroll.widget()
            dock.scroll.verticalScrollBar().setValue(panel.box.mapTo(body, QPoint(0, 0)).y())
            globals()["open_box"] = number
            return
    globals()["open_box"] = None

COMMANDS = {{"setup": setup, "state": lambda: None, "show_backends": show_backends, "use_authcfg": use_authcfg,
            "parallel_four": parallel_four, "show_aoi": show_aoi, "show_jobs": show_jobs,
            "show_legend": show_legend, "collapse_next": collapse_next}}

def corners():
    canvas = iface.mapCanvas()
    to_pixel = canvas.getCoordinateTransform()
    out = []
    for x, y in ((662000, 5606000), (681500, 5625500)):
        p = to_pixel.transform(QgsPointXY(x, y))
        g = canvas.mapToGlobal(QPoint(round(p.x()), round(p.y())))
        out.append([g.x(), g.y()])
    return out

def poll():
    try:
        from qgis.utils import plugins
        cmd_file = WORK / "cmd.json"
        if cmd_file.exists() and "wac_extractor" in plugins:
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

INITIALS = {"oidc": "o", "client_credentials": "c", "basic": "b", "none": "n"}


def control(url: str, path: str, payload: dict) -> dict:
    request = urllib.request.Request(f"{url}/_control/{path}", json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    return json.loads(urllib.request.urlopen(request, timeout=10).read() or b"{}")


def choose_method(d: Driver, method: str) -> dict:
    """Click *Sign in with*, type the method's initial in its open list, Return: as a user picks it."""
    pos = d.ask("show_backends")["positions"]
    d.click(*center(pos["method"]))
    time.sleep(0.5)
    d.xdo("type", INITIALS[method])
    d.xdo("key", "Return")
    answer = d.ask("state")
    assert answer["state"]["method"] == method, answer["state"]
    return answer


def sign_in_modes(d: Driver, out: Path, log: dict) -> None:
    # OIDC: Sign in shows the device code (the local backend's provider), then Cancel
    choose_method(d, "oidc")
    pos = d.ask("show_backends")["positions"]
    d.click(*center(pos["sign_in"]))
    deadline = time.monotonic() + 60
    while not d.ask("state")["state"]["code_shown"] and time.monotonic() < deadline:
        time.sleep(0.5)
    d.ask("show_backends")
    d.shot(out / "dock_300px_oidc.png")
    log["oidc"] = d.ask("state")["state"]
    pos = d.ask("state")["positions"]
    d.click(*center(pos["cancel_code"]))
    for method in ("client_credentials", "basic", "none"):
        choose_method(d, method)
        if method == "basic":  # the picker's "+": QGIS's editor, on Basic
            pos = d.ask("show_backends")["positions"]
            d.click(*center(pos["add_cfg"]))
            time.sleep(1.5)
            log["auth_editor"] = d.ask("state")["state"]["modal"]
            d.shot(out / "auth_editor_basic.png")
            d.xdo("key", "Escape")
        if method != "none":
            d.ask("use_authcfg")
        d.ask("show_backends")
        d.shot(out / f"dock_300px_{method}.png")
        log[method] = d.ask("state")["state"]
    x, y = d.ask("state")["positions"]["dock"][:2]
    crops = []
    for method in ("oidc", "client_credentials", "basic", "none"):
        crops += ["(", str(out / f"dock_300px_{method}.png"), "-crop", f"300x540+{x}+{y}", "+repage", ")"]
    subprocess.run(["convert", *crops, "+append", str(out / "dock_300px_sign_in_modes.png")], check=True)


def run_in_progress(d: Driver, out: Path, work: Path, log: dict) -> None:
    choose_method(d, "basic")
    d.ask("use_authcfg")
    d.ask("parallel_four")
    answer = d.ask("show_aoi")
    pos, (a, b) = answer["positions"], answer["corners"]
    d.click(*center(pos["draw_rect"]))
    d.xdo("mousemove", *a, "mousedown", 1)
    d.xdo("mousemove", (a[0] + b[0]) // 2, (a[1] + b[1]) // 2)
    d.xdo("mousemove", *b, "mouseup", 1)
    time.sleep(1)
    log["before_run"] = d.ask("state")["state"]
    pos = d.ask("show_jobs")["positions"]
    d.click(*center(pos["run"]))
    for _ in range(len(pos)):  # while it runs, the sections collapse by clicks on their titles: the job table grows
        answer = d.ask("collapse_next")
        number = answer["state"]["open_box"]
        if number is None:
            break
        box = answer["positions"][f"box_{number}"]
        d.click(box[0] + 60, box[1] + 8)
    d.ask("show_legend")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = d.ask("show_jobs")["state"]
        statuses = [r[state["columns"].index("Status")] for r in state["rows"]] if "Status" in state["columns"] else []
        done = int(state["progress"].split("/")[0]) if "/" in state["progress"] else 0
        if done >= 4 and "running" in statuses:
            time.sleep(3)  # the finished jobs' mosaics drawn
            d.shot(out / "run_in_progress.png")
            log["run_shot"] = d.ask("state")["state"]
            break
        if not state["running"] and state["rows"]:
            break
        time.sleep(0.5)
    else:
        log["run_shot"] = "missed"
    while d.ask("state")["state"]["running"] and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)
    # the other dialogs the dock opens, looked at (not for the README): a job's log, Open run…
    pos = d.ask("show_jobs")["positions"]
    d.xdo("mousemove", *center(pos["row_0"]), "click", "--repeat", "2", "--delay", "80", "1")
    time.sleep(1)
    log["job_log"] = d.ask("state")["state"]["modal"]
    d.shot(work / "dialog_job_log.png")
    d.xdo("key", "Escape")
    pos = d.ask("state")["positions"]
    d.click(*center(pos["open_run"]))
    time.sleep(1.5)
    log["open_run"] = d.ask("state")["state"]["modal"]
    d.shot(work / "dialog_open_run.png")
    d.xdo("key", "Escape")


def main(out: Path) -> int:
    for tool in ("Xvfb", "qgis", "xdotool", "import"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wac-setup-shots-"))
    print("work dir", work, flush=True)
    port_file = work / "port"
    backend = subprocess.Popen(
        [str(REPO / ".venv-backend" / "bin" / "python"), "-m", "tests.local_backend", "--port", "0",
         "--port-file", str(port_file), "--work-dir", str(work / "backend")],
        cwd=REPO, stdout=open(work / "backend.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    display = os.environ.get("WAC_DISPLAY", ":64")
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-dpi", "96"], stderr=subprocess.DEVNULL)
    time.sleep(1)
    xenv = {**os.environ, "DISPLAY": display}
    wm = subprocess.Popen(["openbox"], env=xenv, stderr=subprocess.DEVNULL) if shutil.which("openbox") else None
    qgis = None
    log: dict = {"window_manager": bool(wm)}
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        control(url, "config", {"queue_seconds": [2, 4], "run_seconds": [10, 16]})
        profile = work / "profiles" / "default"
        subprocess.run(["make", "-s", "deploy", f"QGIS_PROFILE_DIR={profile}"], cwd=REPO, check=True,
                       capture_output=True)  # fmt: skip
        (profile / "QGIS").mkdir(parents=True, exist_ok=True)
        (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nwac_extractor=true\n")
        script = work / "session.py"
        script.write_text(SESSION.format(work=str(work), url=url))
        env = {**xenv, "PYTHONPATH": sysconfig.get_paths()["purelib"], "XDG_DATA_HOME": str(work / "xdg"),
               "XDG_CONFIG_HOME": str(work / "xdg_config"), "QT_QPA_PLATFORM": "xcb"}  # fmt: skip
        qgis = subprocess.Popen(
            ["qgis", "--profiles-path", str(work), "--nologo", "--noversioncheck", "--code", str(script)],
            env=env, stdout=open(work / "qgis.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        d = Driver(work, display)
        d.ask("setup", timeout=120)
        time.sleep(2)
        pos = d.ask("show_backends")["positions"]
        d.click(*center(pos["add"]))  # Add backend…: QGIS's dialog, the URL typed
        time.sleep(1)
        d.xdo("type", "--delay", "20", url)
        log["add_dialog"] = d.ask("state")["state"]["modal"]
        d.shot(out / "add_backend_dialog.png")
        d.xdo("key", "Return")
        log["added"] = d.ask("state")["state"]["entries"]
        sign_in_modes(d, out, log)
        run_in_progress(d, out, work, log)
    finally:
        (work / "result.json").write_text(json.dumps(log, indent=2, default=str))
        for process in (qgis, wm):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        backend.terminate()
        backend.wait(10)
        xvfb.terminate()
        xvfb.wait(10)
    print(json.dumps(log, indent=1, default=str)[:8000])
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"))
