"""The dock's *Sample at features* step and the field chart, on a local-backend LCFM run.

One run: 1 km tiles at 20 m, S1 and S2, two windows of two months (January-April 2023), so the columns
name their window (``S2_2023-03_NDVI_M1_mean``) and the chart spans four months. Expected values come
from the core (``sample_results``, itself checked against numpy in test_sampling.py) and from the
sampled layer's own attributes.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr
from pyproj import Transformer
from qgis.core import QgsFeatureRequest, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from shapely.geometry import box

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.cli import main as cli_main
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import create_tracker, open_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_aois
from wac_extractor.core.results.chart_series import NDVI_SCALE, chart_columns, to_db
from wac_extractor.core.results.features import FeatureSet, read_features, write_table
from wac_extractor.core.results.sampling import SampleTable, sample_results
from wac_extractor.ui.dock import WacDock
from wac_extractor.ui.field_chart import FieldChart
from wac_extractor.ui.panels.sample import SamplePanel

from .test_sampling import write_features

REPO = Path(__file__).resolve().parent.parent
AOI = box(5.990, 50.6035, 5.996, 50.6065)  # inside the tiles of UTM 31 at 711000, 5609000..5610000


@pytest.fixture(scope="module")
def run(local_backend, tmp_path_factory):
    """(tracker, fields file): LCFM, two windows of two months, S1 and S2; 12 fields inside the AOI."""
    local_backend.reset()
    folder = tmp_path_factory.mktemp("lcfm2")
    request = PlanRequest("2023-01-01", "2023-05-01", [1, 2], 85, 2, recipe="lcfm")
    tracker = create_tracker(folder / "jobs.gpkg", plan_aois(request, [(AOI, "EPSG:4326")], tile_size=1000))
    url = local_backend.url
    login = (BackendSpec(url=url, parallel_jobs=2), lambda: connect(url, "basic", "demo", "demo"))
    assert ExtractionRunner(tracker, folder, [login], poll_interval=0.5).run().counts == {
        "finished": len(tracker.read())
    }
    x0, y0, x1, y1 = Transformer.from_crs(4326, 32631, always_xy=True).transform_bounds(*AOI.bounds)
    step = (x1 - x0) / 4
    fields = [box(x0 + i * step + 5, y0 + j * 120 + 5, x0 + i * step + step - 5, y0 + j * 120 + 100)
              for i in range(4) for j in range(3)]  # fmt: skip
    yield folder / "jobs.gpkg", write_features(folder / "fields.gpkg", fields)
    local_backend.reset()


def columns_of(path: Path):
    """{column: [values]} of a GeoPackage's first layer (OGR, no QGIS)."""
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    rows = [[f.GetField(n) for n in names] for f in layer]
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def same(a, b, rel: float = 1e-12) -> bool:
    """Equal values; a NULL (GeoPackage), an empty CSV cell and NaN are the same missing value."""
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    return a == pytest.approx(b, rel=rel) if isinstance(a, float) or isinstance(b, float) else a == b


def sample_panel(dock: WacDock) -> SamplePanel:
    return next(p for p in dock.panels if isinstance(p, SamplePanel))


def open_tracker_in(dock: WacDock, tracker: Path, qtbot) -> None:
    """The tracker named in Output: the dock opens the run (a task); the test goes on once it is shown."""
    dock.tracker_file.setFilePath(str(tracker))
    qtbot.waitUntil(lambda: dock.opener.task is None, timeout=60_000)


def opened_tracker_dock(qgis_iface, tracker: Path, tmp_path: Path, qtbot) -> WacDock:
    """A dock whose Output names the tracker only (opened, not run here) and another, empty output folder."""
    dock = WacDock(qgis_iface)
    (tmp_path / "other_output").mkdir()
    dock.output.setFilePath(str(tmp_path / "other_output"))
    open_tracker_in(dock, tracker, qtbot)
    return dock


def test_the_dock_samples_the_aoi_layer_into_a_layer_on_top_of_the_tree_with_its_attributes_and_a_same_csv(
    run, tmp_path, qgis_iface, qgis_new_project, qtbot
):
    tracker, fields_file = run
    project = QgsProject.instance()
    fields = QgsVectorLayer(str(fields_file), "fields", "ogr").materialize(QgsFeatureRequest())  # a memory layer
    project.addMapLayer(fields)
    dock = opened_tracker_dock(qgis_iface, tracker, tmp_path, qtbot)
    dock.aoi_panel.layer_combo.setLayer(fields)
    panel = sample_panel(dock)
    assert panel.layer_combo.currentLayer() is fields  # the AOI layer by default
    out = tmp_path / "sampled.gpkg"
    panel.out_file.setFilePath(str(out))
    panel.csv_too.setChecked(True)
    panel.sample_button.click()
    qtbot.waitUntil(lambda: panel.task is None, timeout=120_000)

    layer = panel.sampled_layer
    assert layer is not None and layer.isValid(), panel.status.text()
    assert project.layerTreeRoot().children()[0].layer() is layer  # over the run's group and mosaics
    said = qgis_iface.messageBar().get_messages(3)  # Qgis.MessageLevel.Success
    assert any(f"layer '{layer.name()}' added" in m for m in said), said
    got = columns_of(out)
    expected = sample_results(open_tracker(tracker).read(), tracker.parent, read_features(fields_file))
    assert list(got)[:2] == ["label", "field_id"]
    assert got["label"] == [f"field {i} é" for i in range(12)] and got["field_id"] == list(range(100, 112))
    assert list(got)[2:] == expected.columns and "S2_2023-03_NDVI_M2_mean" in got
    for column in expected.columns:
        assert all(same(a, b) for a, b in zip(got[column], expected.values[column].tolist())), column
    with open(out.with_suffix(".csv"), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and [r["label"] for r in rows] == got["label"]
    for column in expected.columns:
        from_csv = [float(r[column]) if r[column] else None for r in rows]
        assert all(same(a, b) for a, b in zip(from_csv, got[column])), column
    assert [layer.getFeature(fid)["label"] for fid in sorted(layer.allFeatureIds())] == got["label"]


def test_a_cancelled_dock_sample_leaves_no_file_and_no_layer(run, tmp_path, qgis_iface, qgis_new_project, qtbot):
    tracker, fields_file = run
    dock = opened_tracker_dock(qgis_iface, tracker, tmp_path, qtbot)
    panel = sample_panel(dock)
    panel.features_file.setFilePath(str(fields_file))
    out = tmp_path / "out" / "cancelled.gpkg"
    out.parent.mkdir()
    panel.out_file.setFilePath(str(out))
    panel.csv_too.setChecked(True)
    panel.sample_button.click()
    # Cancel as soon as the first tile is sampled, from the task's own thread: no race with a fast sample.
    panel.task.progressChanged.connect(lambda p: p > 0 and panel.cancel(), Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: panel.task is None, timeout=120_000)
    assert "cancelled; nothing was written" in panel.status.text()
    assert list(out.parent.iterdir()) == []
    assert not [layer for layer in QgsProject.instance().mapLayers().values() if str(out.parent) in layer.source()]
    assert panel.sample_button.isEnabled() and not panel.cancel_button.isEnabled()


def chart_layer(run, tmp_path) -> QgsVectorLayer:
    tracker, fields_file = run
    out = tmp_path / "sampled.gpkg"
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(fields_file), "--out", str(out)]) == 0
    layer = QgsVectorLayer(str(out), "sampled", "ogr")
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_the_chart_draws_one_line_per_selected_field_with_its_values_and_exports_a_png(
    run, tmp_path, qgis_new_project, qtbot
):
    layer = chart_layer(run, tmp_path)
    chart = FieldChart()
    chart.set_layer(layer)
    assert chart.stat.currentText() == "mean"
    ids = sorted(layer.allFeatureIds())
    layer.selectByIds(ids[3:6])
    qtbot.waitUntil(lambda: len(chart.ndvi_lines) == 3)
    assert [t.get_text() for t in chart.ndvi_axes.get_xticklabels()] == ["2023-01", "2023-02", "2023-03", "2023-04"]
    for fid in ids[3:6]:
        feature = layer.getFeature(fid)
        ndvi = np.concatenate([line.get_ydata() for line in chart.ndvi_lines[fid]])
        expected = [feature[f"S2_{w}_NDVI_M{k}_mean"] / NDVI_SCALE for w in ("2023-01", "2023-03") for k in (1, 2)]
        np.testing.assert_allclose(ndvi, expected, rtol=1e-12)
        s1 = [line.get_ydata().tolist() for line in chart.s1_lines[fid]]
        assert s1[-2:] == [[to_db(feature[f"S1_2023-03_{b}_{p}_mean"]) for p in ("P10", "P25", "P50", "P75", "P90")]
                           for b in ("VV", "VH")]  # fmt: skip
    legend = [t.get_text() for t in chart.ndvi_axes.get_legend().get_texts()]
    assert legend == [f"{fid}: {layer.getFeature(fid)['label']}" for fid in ids[3:6]]

    layer.selectByIds(ids)  # 12 selected: the first 10 drawn, and said
    qtbot.waitUntil(lambda: len(chart.ndvi_lines) == 10)
    assert "the first 10 of 12 selected" in chart.note.text()
    png = chart.export_png(str(tmp_path / "chart.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(png).stat().st_size > 20_000


def test_the_chart_of_a_10000_field_layer_reads_only_the_selected_fields_once_the_selection_settles(
    run, tmp_path, qgis_new_project, qtbot
):
    """Responsiveness: the read is by id (10 of 10,000 fields x 640 columns) and 20 quick changes redraw once."""
    names = list(chart_layer(run, tmp_path).fields().names())[2:]
    n = 10_000
    geometries = np.array([box(i % 100 * 50, i // 100 * 50, i % 100 * 50 + 40, i // 100 * 50 + 40) for i in range(n)])
    features = FeatureSet(geometries, "EPSG:32631", [{"label": f"f{i}"} for i in range(n)],
                          [("label", ogr.OFTString)], ogr.wkbPolygon, "fields")  # fmt: skip
    rng = np.random.default_rng(0)
    table = SampleTable(features, names, {c: rng.uniform(1000, 8000, n) for c in names})
    big = QgsVectorLayer(str(write_table(table, tmp_path / "big.gpkg")), "big", "ogr")
    chart = FieldChart()
    chart.set_layer(big)
    before = chart.redraws
    for fid in range(1, 21):  # a rubber band growing over the map
        big.selectByIds(list(range(1, fid + 1)))
    qtbot.waitUntil(lambda: len(chart.ndvi_lines) == 10)
    qtbot.wait(2 * chart.DEBOUNCE_MS)
    assert chart.redraws == before + 1
    big.selectAll()
    started = time.perf_counter()
    chart.redraw()
    redraw = time.perf_counter() - started
    series = chart_columns(big.fields().names(), "mean")
    started = time.perf_counter()
    rows = chart._read(sorted(big.selectedFeatureIds())[: chart.MAX_FIELDS], series)
    read = time.perf_counter() - started
    print(f"10,000 fields, all selected: read {read * 1000:.0f} ms, redraw {redraw * 1000:.0f} ms")
    assert len(rows) == 10 and "the first 10 of 10000 selected" in chart.note.text()
    assert read < 0.2, f"reading the 10 fields drawn took {read:.2f} s"


def plugin_folder(tmp_path: Path) -> Path:
    """The plugin as QGIS finds it (what ``make zip`` packs): the package, metadata.txt, resources."""
    target = tmp_path / "plugins" / "wac_extractor"
    shutil.copytree(REPO / "wac_extractor", target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "resources", target / "resources")
    shutil.copy(REPO / "metadata.txt", target)
    return target.parent


@pytest.mark.skipif(shutil.which("qgis_process") is None, reason="qgis_process (QGIS's command line) is not installed")
def test_qgis_process_writes_the_same_table_as_the_cli(run, tmp_path):
    tracker, fields_file = run
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(plugin_folder(tmp_path)),
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "config"),  # a profile of its own, the user's untouched
           "PYTHONPATH": sysconfig.get_paths()["purelib"]}  # fmt: skip
    subprocess.run(["qgis_process", "plugins", "enable", "wac_extractor"], env=env, check=True, capture_output=True)
    qgis_out, cli_out = tmp_path / "qgis_process.gpkg", tmp_path / "cli.gpkg"
    done = subprocess.run(["qgis_process", "run", "wac_extractor:sample", "--", f"TRACKER={tracker}",
                           f"FEATURES={fields_file}", f"OUTPUT={qgis_out}"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert cli_main(["sample", "--jobs", str(tracker), "--features", str(fields_file), "--out", str(cli_out)]) == 0
    tables = [columns_of(path) for path in (cli_out, qgis_out)]
    assert list(tables[0]) == list(tables[1]) and len(tables[0]) == 642
    # qgis_process links Debian's GEOS, so it takes the shapely coverage weights; this process may use
    # exactextract's (zonal.py): the two agree within 3e-8 per pixel, hence rel=1e-6 and not bit for bit.
    for column, values in tables[0].items():
        worst = max(
            (
                abs(a - b) / max(abs(a), 1e-9)
                for a, b in zip(values, tables[1][column])
                if isinstance(a, float) and isinstance(b, float) and not (missing(a) or missing(b))
            ),
            default=0,
        )
        assert all(same(a, b, rel=1e-6) for a, b in zip(values, tables[1][column])), (column, worst)


def test_bad_input_is_named_at_its_field_and_a_csv_name_gives_a_csv_layer_the_chart_reads(
    run, tmp_path, qgis_iface, qgis_new_project, qtbot
):
    tracker, fields_file = run
    dock = WacDock(qgis_iface)
    panel = sample_panel(dock)
    dock.tracker_file.setFilePath(str(tmp_path / "none.gpkg"))
    panel.features_file.setFilePath(str(fields_file))
    panel.sample_button.click()
    assert panel.status.text().startswith("Job tracker: ") and "choose a tracker under Output" in panel.status.text()
    open_tracker_in(dock, tracker, qtbot)
    panel.stats.deselectAllOptions()
    panel.sample_button.click()
    assert panel.status.text() == "Statistics: tick at least one."
    panel.stats.setCheckedItems(["mean"])
    taken = tmp_path / "taken.gpkg"
    taken.write_bytes(b"")
    panel.out_file.setFilePath(str(taken))
    panel.sample_button.click()
    assert panel.status.text() == f"Output: {taken} already exists; choose a new file name." and panel.task is None

    panel.out_file.setFilePath(str(tmp_path / "table.csv"))
    panel.sample_button.click()
    qtbot.waitUntil(lambda: panel.task is None, timeout=120_000)
    layer = panel.sampled_layer
    assert layer.providerType() == "delimitedtext" and layer.featureCount() == 12, panel.status.text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv", "taken.gpkg"]
    assert panel.chart_dock.chart.layer is layer and panel.chart_dock.chart.stat.currentText() == "mean"
