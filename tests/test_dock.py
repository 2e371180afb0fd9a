"""Drive the dock as a user would: draw an AOI on the canvas, pick settings, run, see layers."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsSettings,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QDate, QEvent, QPoint, Qt
from qgis.PyQt.QtWidgets import QApplication

from wac_extractor.core.backends.connect import CDSE_URL
from wac_extractor.qgis_glue.credentials import save_credentials
from wac_extractor.qgis_glue.layers import SENSOR_GROUPS
from wac_extractor.ui.dock import WacDock
from wac_extractor.ui.panels.backends import BackendEntry

from .conftest import unlock_auth_database

ARTIFACTS = Path(__file__).parent / "artifacts"


def fresh_dock(iface, canvas) -> WacDock:
    """A dock from default settings over a UTM 31N map near the notebook's grid: January 2023, 1-month jobs.

    It plans the light ``monthly`` recipe: these tests are about the dock; the default ``lcfm`` recipe
    runs in test_draw_a_rectangle_preview_and_run and in the recipe's own tests.
    """
    QgsSettings().remove("wac_extractor")
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    canvas.setExtent(QgsRectangle(660000, 5605000, 680000, 5625000))
    dock = WacDock(iface)
    dock.start_date.setDate(QDate(2023, 1, 1))
    dock.end_date.setDate(QDate(2023, 2, 1))
    dock.window_months.setValue(1)
    dock.recipe.setCurrentIndex(dock.recipe.findData("monthly"))
    return dock


def use_backend(dock: WacDock, url: str, method: str = "oidc", authcfg: str = "") -> None:
    """CDSE unticked, ``url`` added and selected with this sign-in method."""
    dock.backends.set_entries([BackendEntry(CDSE_URL, enabled=False), BackendEntry(url, 2, True, method, authcfg)])
    dock.backends.table.selectRow(1)


def use_local_backend(dock: WacDock, url: str, folder: Path) -> None:
    """Fill in the backend and output part of the dock as a user of the local backend would:
    the local backend with basic auth from a QGIS auth configuration, output and tracker in ``folder``."""
    unlock_auth_database()
    use_backend(dock, url, "basic", save_credentials("WAC local backend", "demo", "demo", url))
    dock.output.setFilePath(str(folder / "out"))
    dock.tracker_file.setFilePath(str(folder / "jobs.gpkg"))


def mouse(canvas, kind, x, y, button=Qt.MouseButton.LeftButton):
    return QgsMapMouseEvent(canvas, kind, QPoint(round(x), round(y)), button, button, Qt.KeyboardModifier.NoModifier)


def test_draw_a_rectangle_preview_and_run(backend, tmp_path, qgis_iface, qgis_canvas, qgis_new_project, qtbot):
    QgsSettings().remove("wac_extractor")  # start from defaults, not from an earlier session's choices
    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    qgis_canvas.resize(600, 600)
    qgis_canvas.setExtent(QgsRectangle(660000, 5605000, 680000, 5625000))
    dock = WacDock(qgis_iface)
    dock.resize(420, 900)
    dock.show()

    # An AOI drawn with the mouse: press, drag, release on the canvas.
    dock.draw_rect.click()
    tool = qgis_canvas.mapTool()
    assert tool is dock.rect_tool
    to_pixel = qgis_canvas.getCoordinateTransform()
    corner_a = to_pixel.transform(QgsPointXY(665_000, 5_613_000))
    corner_b = to_pixel.transform(QgsPointXY(676_000, 5_619_000))
    middle = to_pixel.transform(QgsPointXY(670_000, 5_616_000))
    tool.canvasPressEvent(mouse(qgis_canvas, QEvent.Type.MouseButtonPress, corner_a.x(), corner_a.y()))
    tool.canvasMoveEvent(mouse(qgis_canvas, QEvent.Type.MouseMove, middle.x(), middle.y()))
    tool.canvasReleaseEvent(mouse(qgis_canvas, QEvent.Type.MouseButtonRelease, corner_b.x(), corner_b.y()))
    assert len(dock.aois) == 1 and dock.aoi_list.count() == 1
    drawn = dock.aois[0].boundingBox()  # EPSG:4326
    assert 5.3 < drawn.xMinimum() < drawn.xMaximum() < 5.5 and 50.6 < drawn.yMinimum() < drawn.yMaximum() < 50.75
    label = dock.aoi_list.item(0).text()  # 11 km x 6 km, give or take a pixel (~120 m) per edge
    assert label.startswith("AOI 1: ") and label.endswith(" km²") and 60 < float(label[7:-4]) < 75

    dock.start_date.setDate(QDate(2023, 1, 1))
    dock.end_date.setDate(QDate(2023, 4, 1))
    dock.s1.setChecked(False)
    dock.s2.setChecked(True)
    dock.update_preview()
    assert dock.run_button.isEnabled(), dock.problem.text()
    assert dock.summary.text().startswith(f"{len(dock.plan)} jobs")
    assert dock.recipe.currentData() == "lcfm" and set(dock.plan["recipe"]) == {"lcfm"}  # the default recipe

    # Invalid input is shown at the field and blocks Run, with the reason as tooltip.
    dock.end_date.setDate(QDate(2022, 12, 1))
    dock.update_preview()
    assert not dock.run_button.isEnabled()
    assert "end_date" in dock.run_button.toolTip() and dock.problem.isVisibleTo(dock)
    assert "c62828" in dock.end_date.styleSheet() and "end_date" in dock.end_date.toolTip()
    dock.end_date.setDate(QDate(2023, 2, 1))
    dock.window_months.setValue(1)
    dock.update_preview()
    assert dock.run_button.isEnabled() and dock.end_date.styleSheet() == ""

    use_local_backend(dock, backend.url, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    dock.grab().save(str(ARTIFACTS / "dock_before_run.png"))
    jobs = len(dock.plan)
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)

    assert dock.tracker.count_by_status() == {"finished": jobs}
    assert dock.model.rowCount() == jobs
    run_group = QgsProject.instance().layerTreeRoot().findGroup("WAC jobs")
    s2_group = run_group.findGroup(SENSOR_GROUPS[2])
    assert [g.name() for g in s2_group.children()] == ["2023-01"]
    names = sorted(layer.name() for layer in s2_group.findLayers())
    # One month mosaic per style over all the run's tiles, not a layer per tile.
    assert names == sorted(f"S2 2023-01 {style} UTM 31N" for style in ("NDVI P50", "true colour", "true colour P50"))
    assert dock.jobs_layer is not None and dock.jobs_layer.featureCount() == jobs
    # opened by the task, off the UI thread, and handed to it (a layer left in the worker's thread breaks)
    assert dock.jobs_layer.thread() is QgsApplication.instance().thread()
    # The tile layer is the tracker itself, opened before the run and never reloaded: it shows the end state.
    assert [f["status"] for f in dock.jobs_layer.getFeatures()] == ["finished"] * jobs
    saved = {key: QgsSettings().value(key) for key in QgsSettings().allKeys() if key.startswith("wac_extractor/")}
    assert '"method": "basic"' in saved["wac_extractor/backends"]
    assert not any("password" in key for key in saved) and "demo" not in str(saved)
    dock.grab().save(str(ARTIFACTS / "dock_after_run.png"))
    dock.scroll.verticalScrollBar().setValue(10_000)
    dock.grab().save(str(ARTIFACTS / "dock_after_run_jobs.png"))
    dock.resize(300, 900)
    QApplication.processEvents()
    dock.grab().save(str(ARTIFACTS / "dock_narrow.png"))
    qgis_canvas.setLayers([layer.layer() for layer in s2_group.findLayers()] + [dock.jobs_layer])
    qgis_canvas.zoomToFullExtent()


@pytest.fixture(autouse=True)
def _no_leftover_tasks(qgis_app):
    """A failed test must not leave a running task behind (QGIS would wait for it at exit)."""
    yield
    QgsApplication.taskManager().cancelAll()


def test_the_recipe_choice_goes_into_the_plan_and_the_settings(qgis_iface, qgis_canvas, qgis_new_project):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    dock.from_extent.click()
    dock.update_preview()
    assert set(dock.plan["recipe"]) == {"monthly"}
    assert [dock.recipe.itemData(i) for i in range(dock.recipe.count())] == ["lcfm", "monthly"]
    assert "percentiles" in dock.recipe.itemData(0, Qt.ItemDataRole.ToolTipRole)
    dock.recipe.setCurrentIndex(dock.recipe.findData("lcfm"))
    dock.update_preview()
    assert set(dock.plan["recipe"]) == {"lcfm"}
    dock.save_settings()
    assert WacDock(qgis_iface).recipe.currentData() == "lcfm"
    dock.recipe.setCurrentIndex(dock.recipe.findData("monthly"))
    dock.save_settings()
    assert WacDock(qgis_iface).recipe.currentData() == "monthly"


def test_the_add_band_menu_lists_every_variable_of_a_result_by_band():
    import pandas as pd

    lcfm_s2 = pd.Series({"sentinel": 2, "recipe": "lcfm", "temporal_extent": '["2023-01-01", "2023-04-01"]'})
    bands = WacDock.band_list(lcfm_s2)
    assert list(bands) == ["B02", "B03", "B04", "B08", "B11", "B12", "NDVI"]
    assert bands["NDVI"] == [f"NDVI_{s}" for s in ("P10", "P25", "P50", "P75", "P90", "M1", "M2", "M3")]
    assert sum(map(len, bands.values())) == 56
    lcfm_s1 = pd.Series({"sentinel": 1, "recipe": "lcfm", "temporal_extent": '["2023-01-01", "2023-04-01"]'})
    assert list(WacDock.band_list(lcfm_s1)) == ["VV", "VH", "VH_VV"]
    monthly_s1 = pd.Series({"sentinel": 1, "recipe": "monthly", "temporal_extent": '["2023-01-01", "2023-04-01"]'})
    assert WacDock.band_list(monthly_s1) == {"VV": ["VV"], "VH": ["VH"]}


def test_map_extent_becomes_an_aoi_and_the_preview_draws_its_tiles(qgis_iface, qgis_canvas, qgis_new_project):
    """'Map extent' adds the canvas extent (here 20 km x 20 km in UTM 31N) and the preview shows the job tiles."""
    dock = fresh_dock(qgis_iface, qgis_canvas)
    dock.from_extent.click()
    assert len(dock.aois) == 1
    drawn = QgsGeometry(dock.aois[0])
    utm = qgis_canvas.mapSettings().destinationCrs()
    to_utm = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), utm, QgsProject.instance())
    drawn.transform(to_utm)
    assert abs(drawn.area() - qgis_canvas.extent().area()) < 0.01 * qgis_canvas.extent().area()
    dock.update_preview()
    tiles = dock.plan.drop_duplicates("tile_id")
    assert dock.summary.text().startswith(f"{len(dock.plan)} jobs: {len(tiles)} tiles")
    assert dock.tile_band.numberOfVertices() >= 4 * len(tiles)  # every tile outlined on the map
    dock.clear_all_aois()
    dock.update_preview()
    assert dock.plan is None and not dock.run_button.isEnabled() and dock.tile_band.numberOfVertices() == 0
