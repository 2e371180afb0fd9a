"""Map tools to draw AOIs: a rectangle (drag) and a polygon (click vertices, right-click to finish)."""

from __future__ import annotations

from qgis.core import Qgis, QgsGeometry, QgsPointXY, QgsRectangle
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

RUBBER_COLOUR = QColor(255, 120, 0, 200)
RUBBER_FILL = QColor(255, 120, 0, 50)


def _rubber_band(canvas) -> QgsRubberBand:
    band = QgsRubberBand(canvas, Qgis.GeometryType.Polygon)
    band.setStrokeColor(RUBBER_COLOUR)
    band.setFillColor(RUBBER_FILL)
    band.setWidth(2)
    return band


class RectangleTool(QgsMapTool):
    """Press, drag, release: one rectangle AOI (in the canvas CRS). Esc cancels."""

    aoi_drawn = pyqtSignal(QgsGeometry)

    def __init__(self, canvas):
        super().__init__(canvas)
        self._band = _rubber_band(canvas)
        self._start = None

    def canvasPressEvent(self, event):
        self._start = self.toMapCoordinates(event.pos())

    def canvasMoveEvent(self, event):
        if self._start is not None:
            rectangle = QgsRectangle(self._start, self.toMapCoordinates(event.pos()))
            self._band.setToGeometry(QgsGeometry.fromRect(rectangle), None)

    def canvasReleaseEvent(self, event):
        if self._start is None:
            return
        rectangle = QgsRectangle(self._start, self.toMapCoordinates(event.pos()))
        self._start = None
        self._band.reset(Qgis.GeometryType.Polygon)
        if rectangle.width() > 0 and rectangle.height() > 0:
            self.aoi_drawn.emit(QgsGeometry.fromRect(rectangle))

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Escape:
            self._start = None
            self._band.reset(Qgis.GeometryType.Polygon)

    def deactivate(self):
        self._band.reset(Qgis.GeometryType.Polygon)
        super().deactivate()


class PolygonTool(QgsMapTool):
    """Left-click adds a vertex, right-click finishes (3+ vertices), Esc cancels."""

    aoi_drawn = pyqtSignal(QgsGeometry)

    def __init__(self, canvas):
        super().__init__(canvas)
        self._band = _rubber_band(canvas)
        self._points = []

    def _redraw(self, hover=None):
        points = self._points + ([hover] if hover is not None else [])
        self._band.reset(Qgis.GeometryType.Polygon)
        for point in points:
            self._band.addPoint(point, False)
        self._band.show()
        if points:
            self._band.addPoint(points[-1], True)

    def canvasMoveEvent(self, event):
        if self._points:
            self._redraw(self.toMapCoordinates(event.pos()))

    def canvasReleaseEvent(self, event):
        if event.button() == Qt.MouseButton.RightButton:
            self._finish()
        else:
            self._points.append(QgsPointXY(self.toMapCoordinates(event.pos())))
            self._redraw()

    def _finish(self):
        points, self._points = self._points, []
        self._band.reset(Qgis.GeometryType.Polygon)
        if len(points) >= 3:
            self.aoi_drawn.emit(QgsGeometry.fromPolygonXY([points + [points[0]]]))

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Escape:
            self._points = []
            self._band.reset(Qgis.GeometryType.Polygon)

    def deactivate(self):
        self._points = []
        self._band.reset(Qgis.GeometryType.Polygon)
        super().deactivate()
