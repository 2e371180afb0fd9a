"""What a user meets in the dock (issue 24): the wheel scrolls, texts that are true."""

from __future__ import annotations

from qgis.core import QgsGeometry, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QPoint, QPointF, Qt
from qgis.PyQt.QtGui import QWheelEvent
from qgis.PyQt.QtWidgets import QApplication, QScrollArea

from wac_extractor.qgis_glue.layers import JOB_TILES_NAME, style_job_tiles

from .test_dock import fresh_dock


def wheel_down(widget) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)  # fmt: skip
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_an_unfocused_field_scrolls_the_dock_and_changes_nothing(qgis_iface, qgis_canvas, qtbot):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    dock.resize(300, 400)  # shorter than its contents: the dock scrolls
    dock.show()
    qtbot.waitExposed(dock)
    scroll = dock.scroll
    assert isinstance(scroll, QScrollArea) and scroll.verticalScrollBar().maximum() > 0
    before = (dock.cloud.value(), dock.window_months.value(), dock.recipe.currentIndex())
    for field in (dock.cloud, dock.window_months, dock.recipe):
        wheel_down(field)
    assert (dock.cloud.value(), dock.window_months.value(), dock.recipe.currentIndex()) == before
    assert scroll.verticalScrollBar().value() > 0  # the wheel went to the dock
    dock.cloud.setFocus()
    qtbot.waitUntil(dock.cloud.hasFocus, timeout=2000)
    wheel_down(dock.cloud)  # clicked or tabbed into, the field takes the wheel as usual
    assert dock.cloud.value() != before[0]


def test_the_preview_counts_tiles_windows_and_sensors(qgis_iface, qgis_canvas):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    dock.add_aoi(QgsGeometry.fromWkt("POLYGON((5.30 50.60, 5.50 50.60, 5.50 50.72, 5.30 50.72, 5.30 50.60))"))
    dock.update_preview()
    tiles = dock.plan["tile_id"].nunique()
    assert tiles > 1
    assert dock.summary.text().startswith(f"{2 * tiles} jobs: {tiles} tiles x 1 window of 1 month x 2 sensors")


def test_the_aoi_layer_picker_shows_the_users_polygons_not_the_runs_job_tiles(
    qgis_iface, qgis_canvas, qgis_new_project
):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    combo = dock.aoi_panel.layer_combo
    tiles = QgsVectorLayer("Polygon?crs=EPSG:4326", JOB_TILES_NAME, "memory")
    style_job_tiles(tiles)  # as the run's (and Processing's) job-tile layer is
    QgsProject.instance().addMapLayer(tiles)
    assert combo.currentLayer() is None  # never the run's own job tiles by default
    fields = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
    QgsProject.instance().addMapLayer(fields)
    assert combo.currentLayer() is fields
    combo.setLayer(tiles)
    combo.activated.emit(combo.currentIndex())  # the user picks the job tiles: kept from then on
    QgsProject.instance().addMapLayer(QgsVectorLayer("Polygon?crs=EPSG:4326", "more fields", "memory"))
    assert combo.currentLayer() is tiles
    QgsProject.instance().removeMapLayer(fields)
    reopened = fresh_dock(qgis_iface, qgis_canvas).aoi_panel.layer_combo  # a dock made on a project with layers
    assert reopened.currentLayer() is not tiles and reopened.currentLayer().name() == "more fields"
