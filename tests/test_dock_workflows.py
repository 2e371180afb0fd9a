"""More of what users do in the dock: polygons, layer selections, cancel, resume, retry, mosaics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsMapLayerActionContext
from qgis.PyQt.QtCore import QEvent, Qt
from qgis.PyQt.QtWidgets import QApplication, QPlainTextEdit

from wac_extractor.qgis_glue.layers import SENSOR_GROUPS

from .test_dock import fresh_dock, mouse, use_local_backend


@pytest.fixture
def dock(qgis_iface, qgis_canvas, qgis_new_project, backend, tmp_path):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    use_local_backend(dock, backend.url, tmp_path)
    yield dock
    QgsApplication.taskManager().cancelAll()


def add_lonlat_layer(*polygons) -> QgsVectorLayer:
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
    features = []
    for polygon in polygons:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromWkt(polygon))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_polygon_tool_right_click_finishes_and_esc_cancels(dock, qgis_canvas):
    dock.draw_poly.click()
    tool = qgis_canvas.mapTool()
    to_pixel = qgis_canvas.getCoordinateTransform()
    corners = [to_pixel.transform(QgsPointXY(x, y)) for x, y in [(665e3, 5612e3), (675e3, 5612e3), (670e3, 5620e3)]]
    for corner in corners:
        tool.canvasReleaseEvent(mouse(qgis_canvas, QEvent.Type.MouseButtonRelease, corner.x(), corner.y()))
    tool.canvasReleaseEvent(mouse(qgis_canvas, QEvent.Type.MouseButtonRelease, 10, 10, Qt.MouseButton.RightButton))
    assert len(dock.aois) == 1
    assert dock.aois[0].type() == 2  # polygon
    # Esc throws away a polygon that is being drawn
    tool.canvasReleaseEvent(mouse(qgis_canvas, QEvent.Type.MouseButtonRelease, corners[0].x(), corners[0].y()))
    tool.keyPressEvent(type("Key", (), {"key": lambda self: Qt.Key.Key_Escape})())
    tool.canvasReleaseEvent(mouse(qgis_canvas, QEvent.Type.MouseButtonRelease, 10, 10, Qt.MouseButton.RightButton))
    assert len(dock.aois) == 1


def test_selected_features_of_a_lonlat_layer_become_aois(dock):
    layer = add_lonlat_layer(
        "POLYGON((5.30 50.65, 5.36 50.65, 5.36 50.69, 5.30 50.65))",
        "POLYGON((5.50 50.70, 5.55 50.70, 5.55 50.74, 5.50 50.74, 5.50 50.70))",
        "POLYGON((9.0 45.0, 9.1 45.0, 9.1 45.1, 9.0 45.0))",
    )
    dock.layer_combo.setLayer(layer)
    layer.selectByIds([1, 2])
    dock.from_selection.click()
    assert dock.aoi_list.count() == 2
    dock.update_preview()
    assert {int(t.split("_")[0]) for t in dock.plan["tile_id"]} == {32631}
    dock.aoi_list.setCurrentRow(0)
    dock.remove_aoi.click()
    assert dock.aoi_list.count() == 1
    dock.clear_aois.click()
    dock.update_preview()
    assert not dock.run_button.isEnabled() and "area of interest" in dock.run_button.toolTip()


def test_cancel_in_the_dock_then_reopen_resumes_and_retry(dock, backend, qtbot, tmp_path):
    dock.add_aoi(QgsGeometry.fromWkt("POLYGON((5.30 50.65, 5.50 50.65, 5.50 50.75, 5.30 50.75, 5.30 50.65))"))
    dock.s1.setChecked(False)
    dock.update_preview()
    jobs = len(dock.plan)
    assert jobs >= 2
    backend.configure(run_seconds=[60, 60])
    dock.run_button.click()
    qtbot.waitUntil(lambda: any(j["status"] == "running" for j in backend.jobs()), timeout=30_000)
    dock.update_preview()  # as a changed input would: the tracker exists now, but it is this run's
    assert dock.summary.text() == "Running jobs.gpkg: changes here apply to the next run."
    assert not dock.run_button.isEnabled()
    cancelled_at = time.monotonic()
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=10_000)
    assert time.monotonic() - cancelled_at < 5
    created = len(backend.jobs())

    # Reopen: the tracker exists, Run resumes it; nothing is created twice.
    backend.configure(run_seconds=[0.3, 0.3], fail_title="S2 32631_670000")
    dock.update_preview()
    assert "Run resumes them" in dock.outcome.text() and dock.run_button.isEnabled()
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    counts = dock.tracker.count_by_status()
    assert sum(counts.values()) == jobs and counts.get("error", 0) >= 1 and "not_started" not in counts
    titles = [j["title"] for j in backend.jobs()]
    assert len(titles) == len(set(titles)) and len(titles) >= created

    # Retry the failed jobs from the table's context menu action, after the backend recovered.
    failed_rows = [r for r in range(dock.model.rowCount()) if dock.model.job(r)["status"] == "error"]
    assert "synthetic processing error" in dock.job_log_text(dock.model.job(failed_rows[0]))
    backend.configure(fail_title=None)
    for row in failed_rows:
        dock.retry_job(row)
        assert dock.model.job(row)["status"] == "not_started"
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    assert dock.tracker.count_by_status() == {"finished": jobs}

    run_group = QgsProject.instance().layerTreeRoot().findGroup("WAC jobs")
    # A run adds its groups and layers collapsed: the Layers panel gets one row per run, not three per tile.
    assert not run_group.isExpanded() and not run_group.findGroup(SENSOR_GROUPS[2]).isExpanded()
    assert run_group.findLayers() and not any(node.isExpanded() for node in run_group.findLayers())
    # One month mosaic per sensor and month holds every tile (the runs before added the others).
    (january,) = [node.layer() for node in run_group.findGroup(SENSOR_GROUPS[2]).findGroup("2023-01").findLayers()]
    assert january.name() == "S2 2023-01 true colour UTM 31N"
    qtbot.waitUntil(lambda: all(_shows(january, row) for _, row in dock.tracker.get_by_status(["finished"]).iterrows()
                                if row["sentinel"] == 2), timeout=5_000)  # fmt: skip
    # A tile's own layers open on demand: from the table, and from the job-tile layer's action (Identify).
    layer_count = len(QgsProject.instance().mapLayers())
    dock.open_tile_layers(0)
    tile = str(dock.model.job(0)["tile_id"])
    months = len(run_group.findGroup(SENSOR_GROUPS[2]).children())
    assert len(run_group.findGroup(f"Tile {tile}").findLayers()) == months  # a layer a month
    dock.open_tile_layers(0)
    assert len(QgsProject.instance().mapLayers()) == layer_count + months  # not twice
    feature = next(f for f in dock.jobs_layer.getFeatures() if f.id() == 2)  # fid 2: the job of row 1
    dock.tile_action._action.triggerForFeature(dock.jobs_layer, feature, QgsMapLayerActionContext())
    second = str(dock.model.job(1)["tile_id"])
    assert run_group.findGroup(f"Tile {second}").findLayers()

    # Zoom to a job's tile from the table.
    tile = dock.model.job(0)["spatial_extent"]
    dock.zoom_to_job(0)
    extent = dock.canvas.extent()
    assert extent.contains(QgsPointXY((tile["west"] + tile["east"]) / 2, (tile["south"] + tile["north"]) / 2))
    assert min(extent.width(), extent.height()) < 3 * (tile["east"] - tile["west"])  # zoomed in on one tile


def test_a_tracker_that_cannot_be_written_is_marked_at_its_field_before_anything_starts(dock, backend, tmp_path):
    """The tracker is written by the task (off the UI thread), so the click checks its folder first."""
    dock.add_aoi(QgsGeometry.fromWkt("POLYGON((5.30 50.65, 5.40 50.65, 5.40 50.70, 5.30 50.70, 5.30 50.65))"))
    dock.update_preview()
    (tmp_path / "a file").write_text("not a folder")
    dock.tracker_file.setFilePath(str(tmp_path / "a file" / "jobs.gpkg"))
    dock.run_button.click()
    assert dock.task is None and backend.jobs() == []
    assert dock.problem.text().startswith("tracker folder") and "choose another folder" in dock.problem.text()
    assert "c62828" in dock.tracker_file.styleSheet()
    assert (tmp_path / "a file").read_text() == "not a folder"


def small_s2_run(dock) -> int:
    """Two Sentinel-2 jobs: a 20 x 10 km AOI on the 10 km grid."""
    dock.add_aoi(QgsGeometry.fromWkt("POLYGON((5.30 50.65, 5.40 50.65, 5.40 50.70, 5.30 50.70, 5.30 50.65))"))
    dock.s1.setChecked(False)
    dock.update_preview()
    return len(dock.plan)


def test_max_time_queued_cancels_jobs_the_backend_never_starts(dock, backend, qtbot, monkeypatch):
    """The dock's "Max. time queued" reaches the runner: stuck jobs end as errors with the reason."""
    import wac_extractor.ui.dock as dock_module

    monkeypatch.setattr(dock_module, "HOUR_SECONDS", 1.0)  # the field's hours as seconds, to wait seconds
    backend.configure(queue_seconds=[300, 300])  # the backend never gets to them
    jobs = small_s2_run(dock)
    dock.max_queued.setValue(2)
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=60_000)
    table = dock.tracker.read()
    assert list(table["status"]) == ["error"] * jobs
    assert table["error_message"].str.contains("still queued on the backend").all()
    assert {j["status"] for j in backend.jobs()} == {"canceled"} and len(backend.jobs()) == jobs
    shown = {dock.model.job(row)["status"] for row in range(dock.model.rowCount())}
    assert shown == {"error"}
    assert QgsSettings().value("wac_extractor/max_queued_hours", type=int) == 2  # kept for the next session


def test_cancel_keeps_backend_jobs_unless_asked_to_stop_them_too(dock, backend, qtbot):
    jobs = small_s2_run(dock)
    backend.configure(run_seconds=[60, 60])
    assert not dock.cancel_remote.isChecked()  # the default: a cancelled QGIS run spends nothing it has not started
    dock.run_button.click()
    qtbot.waitUntil(lambda: sum(j["status"] == "running" for j in backend.jobs()) == jobs, timeout=30_000)
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=10_000)
    assert {j["status"] for j in backend.jobs()} == {"running"}  # still running there; Run picks them up

    dock.update_preview()
    dock.run_button.click()  # resume, then cancel with the box ticked
    qtbot.waitUntil(lambda: dock.task is not None and dock.model.rowCount() == jobs, timeout=10_000)
    dock.cancel_remote.setChecked(True)
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=20_000)
    assert {j["status"] for j in backend.jobs()} == {"canceled"} and len(backend.jobs()) == jobs
    assert list(dock.tracker.read()["status"]) == ["canceled"] * jobs
    assert all(dock.can_retry(dock.model.job(row)) for row in range(jobs))  # Retry restarts them


def test_double_click_on_a_failed_job_shows_its_log(dock, backend, qtbot):
    from qgis.PyQt.QtTest import QTest

    small_s2_run(dock)
    backend.configure(run_seconds=[0.3, 0.3], fail_title="S2 32631_660000")
    dock.resize(420, 1000)
    dock.show()
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=60_000)
    row = next(r for r in range(dock.model.rowCount()) if dock.model.job(r)["status"] == "error")
    job_id = dock.model.job(row)["id"]
    dock.scroll.ensureWidgetVisible(dock.table)  # the table sits at the bottom of the scrolling form
    dock.table.scrollTo(dock.model.index(row, 0))
    QApplication.processEvents()
    cell = dock.table.visualRect(dock.model.index(row, 0)).center()
    assert dock.table.viewport().rect().contains(cell)
    # What a double-click delivers: press and release, then the double-click event.
    QTest.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, cell)
    QTest.mouseDClick(dock.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, cell)
    dialog = dock._log_dialog
    assert dialog.isVisible() and job_id in dialog.windowTitle()
    text = dialog.findChild(QPlainTextEdit).toPlainText()
    assert "status: error" in text and "synthetic processing error" in text
    assert (dock.tracker.path.parent / "jobs_logs" / f"{job_id}.json").read_text() in text  # the backend's logs
    dialog.close()


def test_an_empty_project_gets_the_aois_utm_zone_and_a_users_crs_is_kept(dock, backend, qtbot):
    """QGIS gives an empty project its first layer's CRS (the tiles' EPSG:4326): the UTM tiles were drawn skewed."""
    from qgis.core import QgsCoordinateReferenceSystem

    project = QgsProject.instance()
    project.setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))  # what an empty project has until a layer sets it
    small_s2_run(dock)
    backend.configure(run_seconds=[0.2, 0.2])
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=60_000)
    assert project.crs().authid() == "EPSG:32631" and dock.canvas.mapSettings().destinationCrs() == project.crs()
    view = project.viewSettings().defaultViewExtent()
    assert view.crs() == project.crs() and view.width() < 20_000  # the run's tiles, in metres
    assert dock.canvas.extent().contains(view.buffered(-view.width() / 10))  # shown on the run
    # The temporal controller's range is the run's months, one month a step.
    assert project.timeSettings().temporalRange().begin().toString("yyyy-MM") == dock.start_date.date().toString(
        "yyyy-MM"
    )
    assert project.timeSettings().timeStepUnit() == Qgis.TemporalUnit.Months

    # A project the user set up (layers, their CRS): the run adds its layers and leaves the CRS alone.
    add_lonlat_layer("POLYGON((5.30 50.65, 5.36 50.65, 5.36 50.69, 5.30 50.65))")
    project.setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    dock.tracker_file.setFilePath(str(Path(dock.tracker_file.filePath()).with_name("second.gpkg")))
    dock.update_preview()
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=60_000)
    assert project.crs().authid() == "EPSG:3857"


def test_cancel_with_backend_jobs_before_the_task_started_still_stops_them(dock, backend, qtbot, tmp_path):
    """QGIS drops a queued task without running it: a Cancel (box ticked) that came before the task
    started left the backend's jobs running (seen in CI on a busy machine)."""
    from qgis.core import QgsTask

    from wac_extractor.core.jobs.tracker import open_tracker
    from wac_extractor.qgis_glue.task import ExtractionTask

    jobs = small_s2_run(dock)
    backend.configure(run_seconds=[60, 60])
    dock.run_button.click()
    qtbot.waitUntil(lambda: sum(j["status"] == "running" for j in backend.jobs()) == jobs, timeout=30_000)
    dock.cancel_button.click()  # box unticked: the jobs go on on the backend
    qtbot.waitUntil(lambda: dock.task is None, timeout=10_000)

    tracker = open_tracker(dock.tracker_file.filePath())
    task = ExtractionTask(
        "resume", tracker, tmp_path / "out", dock.backends.backends_for_run(cancelled=lambda: False), cancel_remote=True
    )
    assert task.status() == QgsTask.TaskStatus.Queued
    task.cancel()  # before the task manager started it
    assert task.status() == QgsTask.TaskStatus.Queued  # kept, to run and cancel the backend's jobs
    task.run()  # what the task manager does next
    assert {j["status"] for j in backend.jobs()} == {"canceled"} and len(backend.jobs()) == jobs


def _shows(layer, row) -> bool:
    """The mosaic layer has data in the middle of the job's tile."""
    extent = json.loads(row["spatial_extent"]) if isinstance(row["spatial_extent"], str) else row["spatial_extent"]
    centre = QgsPointXY((extent["west"] + extent["east"]) / 2, (extent["south"] + extent["north"]) / 2)
    value, ok = layer.dataProvider().sample(centre, 1)
    return ok and value == value
