"""The dock's "Areas of interest" section: draw on the map, take its extent or a layer's selection; the AOI list.

The panel also owns the map's rubber bands: the AOIs (orange) and the previewed job tiles (blue).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import shapely
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsMapLayerComboBox, QgsRubberBand
from qgis.PyQt.QtCore import pyqtSlot
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QGridLayout, QHBoxLayout, QListWidget, QPushButton, QWidget

from ...core.planning.tiling import area_km2
from ...definitions import LOG_TAG
from ...qgis_glue.layers import is_job_tiles
from ..maptools import PolygonTool, RectangleTool
from .base import SectionPanel, shrinkable

WGS84 = "EPSG:4326"


class AoiPanel(SectionPanel):
    """AOIs in EPSG:4326 (``aois``, one list for the panel's life: the dock shares it)."""

    def __init__(self, iface, parent=None):
        super().__init__("Areas of interest", parent)
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.aois: List[QgsGeometry] = []
        self._build()
        self.rect_tool = RectangleTool(self.canvas)
        self.poly_tool = PolygonTool(self.canvas)
        self.rect_tool.aoi_drawn.connect(self.add_canvas_geometry)
        self.poly_tool.aoi_drawn.connect(self.add_canvas_geometry)
        self.draw_rect.clicked.connect(lambda: self.canvas.setMapTool(self.rect_tool))
        self.draw_poly.clicked.connect(lambda: self.canvas.setMapTool(self.poly_tool))
        self.from_extent.clicked.connect(lambda: self.add_canvas_geometry(QgsGeometry.fromRect(self.canvas.extent())))
        self.from_selection.clicked.connect(self.add_selected_features)
        self.remove_aoi.clicked.connect(self.remove_selected_aoi)
        self.clear_aois.clicked.connect(self.clear_all_aois)
        self.tile_band = self._rubber_band(QColor(30, 90, 200, 220), QColor(30, 90, 200, 30))
        self.aoi_band = self._rubber_band(QColor(255, 120, 0, 230), QColor(255, 120, 0, 40), width=2)

    def _build(self) -> None:
        buttons = QGridLayout()
        self.draw_rect = QPushButton("Draw rectangle", toolTip="Drag a rectangle on the map (Esc cancels)")
        self.draw_poly = QPushButton("Draw polygon", toolTip="Click vertices, right-click to finish (Esc cancels)")
        self.from_extent = QPushButton("Map extent", toolTip="Use the current map extent as AOI")
        self.from_selection = QPushButton("Selected features", toolTip="Add the selected polygons of the layer below")
        for number, button in enumerate((self.draw_rect, self.draw_poly, self.from_extent, self.from_selection)):
            shrinkable(button)
            buttons.addWidget(button, number // 2, number % 2)
        self.form.addRow(buttons)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(Qgis.LayerFilter.PolygonLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_picked = False  # by the user: then kept, whatever is added
        self.layer_combo.activated.connect(lambda _index: setattr(self, "layer_picked", True))
        QgsProject.instance().layersAdded.connect(self._prefer_the_users_layers)
        QgsProject.instance().cleared.connect(self._forget_pick)
        self._prefer_the_users_layers()  # a dock opened on a project (or after a restart): its layers are there
        shrinkable(self.layer_combo)
        self.form.addRow("Layer", self.layer_combo)
        self.aoi_list = QListWidget()
        self.aoi_list.setMaximumHeight(90)
        self.form.addRow(self.aoi_list)
        edit = QHBoxLayout()
        self.remove_aoi = QPushButton("Remove")
        self.clear_aois = QPushButton("Clear all")
        edit.addWidget(self.remove_aoi)
        edit.addWidget(self.clear_aois)
        edit.addStretch(1)
        self.form.addRow(edit)

    def _forget_pick(self) -> None:
        self.layer_picked = False  # a new project: its layers are new to the user's pick

    def _prefer_the_users_layers(self, added: Optional[list] = None) -> None:
        """The combo takes the first polygon layer there is, often the run's own job tiles: while the user
        has not picked one, it shows their polygon layer instead (one just added first), or none."""
        if self.layer_picked:
            return
        current = self.layer_combo.currentLayer()
        if current is not None and not is_job_tiles(current):
            return
        polygons = [
            layer
            for layer in [*(added or []), *QgsProject.instance().mapLayers().values()]
            if isinstance(layer, QgsVectorLayer)
            and layer.geometryType() == Qgis.GeometryType.Polygon
            and not is_job_tiles(layer)
        ]
        self.layer_combo.setLayer(polygons[0] if polygons else None)

    def _rubber_band(self, stroke: QColor, fill: QColor, width: int = 0) -> QgsRubberBand:
        band = QgsRubberBand(self.canvas, Qgis.GeometryType.Polygon)
        band.setStrokeColor(stroke)
        band.setFillColor(fill)
        if width:
            band.setWidth(width)
        return band

    def problem_fields(self) -> Dict[str, QWidget]:
        return {"AOI": self.aoi_list, "Add at least one area": self.aoi_list}

    # --- AOIs ----------------------------------------------------------------------------------
    @staticmethod
    def to_wgs84(geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> QgsGeometry:
        geometry = QgsGeometry(geometry)
        transform = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem(WGS84), QgsProject.instance())
        geometry.transform(transform)
        return geometry

    @pyqtSlot(QgsGeometry)
    def add_canvas_geometry(self, geometry: QgsGeometry) -> None:
        self.add_aoi(self.to_wgs84(geometry, self.canvas.mapSettings().destinationCrs()))

    def add_selected_features(self) -> None:
        layer = self.layer_combo.currentLayer()
        if layer is None or layer.selectedFeatureCount() == 0:
            self.iface.messageBar().pushMessage(
                LOG_TAG, "Select polygons in the chosen layer first.", Qgis.MessageLevel.Warning, 5
            )
            return
        for feature in layer.selectedFeatures():
            self.add_aoi(self.to_wgs84(feature.geometry(), layer.crs()))

    def add_aoi(self, geometry_wgs84: QgsGeometry) -> None:
        self.aois.append(geometry_wgs84)
        self._refresh_aoi_list()

    def remove_selected_aoi(self) -> None:
        for item in sorted(self.aoi_list.selectedIndexes(), key=lambda i: -i.row()):
            del self.aois[item.row()]
        self._refresh_aoi_list()

    def clear_all_aois(self) -> None:
        self.aois.clear()  # in place: the dock's ``aois`` is this list
        self._refresh_aoi_list()

    def _refresh_aoi_list(self) -> None:
        self.aoi_list.clear()
        self.aoi_band.reset(Qgis.GeometryType.Polygon)
        for number, geometry in enumerate(self.aois, start=1):
            try:
                area = f"{area_km2([(shapely.from_wkt(geometry.asWkt()), 4326)]):,.1f} km²"
            except Exception:
                area = "invalid"
            self.aoi_list.addItem(f"AOI {number}: {area}")
            self.aoi_band.addGeometry(geometry, QgsCoordinateReferenceSystem(WGS84))
        self.changed.emit()

    def shapely_aois(self) -> List[Tuple[shapely.Geometry, int]]:
        """The AOIs as the planner takes them; raises ValueError (named at the AOI list) when there is none."""
        if not self.aois:
            raise ValueError("Add at least one area of interest (draw, select or use the map extent).")
        return [(shapely.from_wkt(g.asWkt()), 4326) for g in self.aois]

    # --- the job tiles of the preview ------------------------------------------------------------
    def clear_tiles(self) -> None:
        self.tile_band.reset(Qgis.GeometryType.Polygon)

    def show_tiles(self, plan) -> None:
        """Outline each tile of the plan once (a tile has a job per window and sensor)."""
        for wkt in plan.drop_duplicates("tile_id")["geometry"]:
            self.tile_band.addGeometry(QgsGeometry.fromWkt(wkt), QgsCoordinateReferenceSystem(WGS84))

    def reset_bands(self) -> None:
        self.tile_band.reset(Qgis.GeometryType.Polygon)
        self.aoi_band.reset(Qgis.GeometryType.Polygon)
