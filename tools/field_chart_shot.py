"""Sample the demo's run at 10,000 fields in QGIS Desktop (under Xvfb) and chart three of them (issue 25).

``.venv/bin/python tools/field_chart_shot.py [OUT_DIR]`` needs ``make demo`` first (``demo/out``: the
tracker, the results, ``demo.qgz``). It writes 10,000 fields (parcels of 100-180 m on a 200 m grid,
crop labels) over the demo's four tiles, starts a private X server and QGIS Desktop with the plugin
from ``make deploy`` in a fresh profile, opens ``demo.qgz``, fills the dock's Output (tracker,
results folder) and *Sample at features* (the fields layer) by code, then as a user (``xdotool``):
clicks Sample, waits, picks the Select tool and clicks three fields on the map (Shift for the second
and third). It writes ``OUT_DIR/field_chart.png`` (the whole screen) and ``OUT_DIR/field_chart.json``
(timings, texts shown).
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
DEMO = REPO / "demo" / "out"
CROPS = ["wheat", "maize", "grassland", "potato", "sugar beet", "forest"]

SESSION = r"""
import json, os, subprocess, time, traceback
from pathlib import Path
from qgis.PyQt.QtCore import QTimer, Qt, QPoint
from qgis.core import QgsGeometry, QgsPointXY, QgsProject, QgsRectangle, QgsSettings, QgsVectorLayer, QgsFeatureRequest
from qgis.utils import iface

WORK, DEMO = Path(WORK_DIR), Path(DEMO_DIR)
state = {}

def note(**values):
    state.update(values)
    (WORK / "state.json").write_text(json.dumps(state, indent=1, default=str))

def xdo(*args):
    subprocess.run(["xdotool", *map(str, args)], check=True)

def center(widget):
    point = widget.mapToGlobal(QPoint(widget.width() // 2, widget.height() // 2))
    return point.x(), point.y()

def guard(step):
    def run():
        try:
            step()
        except Exception:
            note(error=traceback.format_exc()[-3000:])
            os._exit(3)
    return run

def setup():
    global dock, panel
    from qgis.utils import plugins
    from wac_extractor.ui.panels.sample import SamplePanel
    win = iface.mainWindow()
    win.setGeometry(0, 0, 1600, 1000)
    QgsSettings().remove("wac_extractor")
    iface.addProject(str(DEMO / "demo.qgz"))
    plugin = plugins["wac_extractor"]
    plugin.action.setChecked(True)
    dock = plugin.dock
    win.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    win.resizeDocks([dock], [330], Qt.Orientation.Horizontal)
    from qgis.PyQt.QtWidgets import QDockWidget
    browser = win.findChild(QDockWidget, "Browser")
    if browser is not None:
        browser.hide()  # room for the dock under the Layers panel
    win.resizeDocks([dock], [640], Qt.Orientation.Vertical)
    dock.output.setFilePath(str(DEMO / "results"))
    dock.tracker_file.setFilePath(str(DEMO / "jobs.gpkg"))
    fields = QgsVectorLayer(str(WORK / "fields.gpkg"), "fields", "ogr")
    QgsProject.instance().addMapLayer(fields)
    panel = next(p for p in dock.panels if isinstance(p, SamplePanel))
    panel.layer_combo.setLayer(fields)
    for section in dock.panels:  # the other sections folded: the step shows whole in the dock
        if hasattr(section, "box"):
            section.box.setCollapsed(section is not panel)
    QTimer.singleShot(1500, guard(click_sample))

def click_sample():
    dock.scroll.ensureWidgetVisible(panel.sample_button)
    QTimer.singleShot(500, guard(press_sample))

def press_sample():
    xdo("mousemove", *center(panel.sample_button), "click", 1)
    note(sample_clicked=time.time())
    QTimer.singleShot(500, guard(wait_sample))

def wait_sample():
    if panel.task is not None or panel.sampled_layer is None:
        QTimer.singleShot(500, guard(wait_sample))
        return
    layer = panel.sampled_layer
    root = QgsProject.instance().layerTreeRoot()
    note(sample_seconds=round(time.time() - state["sample_clicked"], 1), status=panel.status.text(),
         bar=[w.text() for w in iface.messageBar().items()], top_of_tree=root.children()[0].name())
    root.findLayer(QgsProject.instance().mapLayersByName("fields")[0].id()).setItemVisibilityChecked(False)
    # three fields near each other with valid monthly NDVI and different labels
    request = QgsFeatureRequest().setFilterExpression(
        '"S2_NDVI_M1_mean" IS NOT NULL AND "S2_NDVI_M2_mean" IS NOT NULL AND "S2_NDVI_M3_mean" IS NOT NULL '
        'AND "S2_NDVI_M1_valid_fraction" > 0.9 AND "S2_NDVI_M3_valid_fraction" > 0.9')
    good = list(layer.getFeatures(request))
    middle = QgsGeometry.fromPointXY(QgsPointXY(669000, 5616120))  # of the first tile: the map all imagery
    good.sort(key=lambda f: f.geometry().distance(middle))
    picks = []
    for seed in good:
        near = [f for f in good if f.geometry().distance(seed.geometry()) < 1200]
        chosen, labels = [], set()
        for f in near:
            if f["label"] not in labels:
                chosen.append(f)
                labels.add(f["label"])
        if len(chosen) >= 3:
            picks = chosen[:3]
            break
    box = QgsRectangle(picks[0].geometry().boundingBox())
    for f in picks[1:]:
        box.combineExtentWith(f.geometry().boundingBox())
    box.grow(400)
    iface.setActiveLayer(layer)
    iface.mainWindow().resizeDocks([panel.chart_dock], [560], Qt.Orientation.Horizontal)
    iface.mapCanvas().setExtent(box)
    iface.mapCanvas().refresh()
    globals()["picks"] = picks
    note(picked=[(f.id(), f["label"]) for f in picks])
    QTimer.singleShot(3000, guard(select_fields))

def select_fields():
    canvas = iface.mapCanvas()
    iface.actionSelect().trigger()
    to_pixel = canvas.getCoordinateTransform()
    chart = panel.chart_dock.chart
    note(redraws_before=chart.redraws)
    for n, f in enumerate(picks):
        point = to_pixel.transform(f.geometry().pointOnSurface().asPoint())
        at = canvas.mapToGlobal(QPoint(int(point.x()), int(point.y())))
        if n:
            xdo("mousemove", at.x(), at.y(), "keydown", "shift", "click", 1, "keyup", "shift")
        else:
            xdo("mousemove", at.x(), at.y(), "click", 1)
    QTimer.singleShot(2500, guard(shoot))

def shoot():
    chart = panel.chart_dock.chart
    layer = panel.sampled_layer
    xdo("mousemove", 800, 990)
    subprocess.run(["import", "-window", "root", str(WORK / "field_chart.png")], check=True)
    chart.export_png(str(WORK / "chart_export.png"))
    note(selected=sorted(layer.selectedFeatureIds()), lines=sorted(chart.ndvi_lines), note=chart.note.text(),
         redraws_after=chart.redraws, legend=[t.get_text() for t in chart.ndvi_axes.get_legend().get_texts()])
    layer.selectAll()
    started = time.perf_counter()
    chart.redraw()
    chart.canvas.draw()
    note(all_selected_redraw_ms=round((time.perf_counter() - started) * 1000), note_all=chart.note.text(), done=True)
    os._exit(0)

QTimer.singleShot(5000, guard(setup))
"""


def write_fields(path: Path, n: int = 10_000) -> None:
    import numpy as np
    from osgeo import ogr, osr

    rng = np.random.default_rng(25)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("fields", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("field_id", ogr.OFTInteger))
    layer.StartTransaction()
    # parcels on a 200 m grid over the demo's four 10 km tiles (2,500 each), each shrunk by 10-50 m per side
    corners = [(x, y) for x in (664000, 684000) for y in (5611120, 5631120)]
    for i in range(n):
        x0, y0 = corners[i // 2500 % 4]
        x = x0 + (i % 2500) % 50 * 200
        y = y0 + (i % 2500) // 50 * 200
        left, bottom, right, top = rng.uniform(10, 50, 4)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("label", CROPS[int(rng.integers(len(CROPS)))])
        feature.SetField("field_id", 1000 + i)
        ring = f"{x + left} {y + bottom},{x + 200 - right} {y + bottom},{x + 200 - right} {y + 200 - top},"
        ring += f"{x + left} {y + 200 - top},{x + left} {y + bottom}"
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
        layer.CreateFeature(feature)
    layer.CommitTransaction()


def main(out: Path) -> int:
    for tool in ("Xvfb", "qgis", "xdotool", "import"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    if not (DEMO / "demo.qgz").exists():
        print("run 'make demo' first", file=sys.stderr)
        return 2
    for stale in DEMO.glob("fields_sampled*"):  # an earlier run of this tool
        stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wac-field-chart-"))
    write_fields(work / "fields.gpkg")
    profile = work / "profiles" / "default"
    subprocess.run(["make", "-s", "deploy", f"QGIS_PROFILE_DIR={profile}"], cwd=REPO, check=True, capture_output=True)
    (profile / "QGIS").mkdir(parents=True, exist_ok=True)
    (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nwac_extractor=true\n")
    script = work / "session.py"
    script.write_text(SESSION.replace("WORK_DIR", repr(str(work))).replace("DEMO_DIR", repr(str(DEMO))))
    display = os.environ.get("WAC_DISPLAY", ":57")
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-dpi", "96"], stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    try:
        time.sleep(1)
        with open(work / "qgis.log", "w") as log:
            qgis = subprocess.Popen(
                ["qgis", "--profiles-path", str(work), "--nologo", "--noversioncheck", "--code", str(script)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                code = qgis.wait(600)
            except subprocess.TimeoutExpired:
                qgis.kill()
                code = "timeout"
    finally:
        xvfb.terminate()
    state = json.loads((work / "state.json").read_text()) if (work / "state.json").exists() else {}
    state.update(exit_code=code, work_dir=str(work))
    for name in ("field_chart.png",):
        if (work / name).exists():
            shutil.copy(work / name, out / name)
    (out / "field_chart.json").write_text(json.dumps(state, indent=2, default=str))
    print(json.dumps(state, indent=2, default=str))
    return 0 if code == 0 and state.get("done") else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"))
