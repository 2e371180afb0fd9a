"""'Open this tile's layers' on the job-tile layer: in Identify results and the attribute table."""

from __future__ import annotations

from typing import Callable, Optional

from qgis.core import Qgis, QgsMapLayer
from qgis.gui import QgsGui, QgsMapLayerAction
from qgis.PyQt.QtCore import QObject


class TileLayersAction(QObject):
    """A map-layer action on the current run's job-tile layer; ``open_tile`` gets the job's index."""

    def __init__(self, open_tile: Callable[[int], None], parent: Optional[QObject] = None):
        super().__init__(parent)
        self._open_tile = open_tile
        self._action: Optional[QgsMapLayerAction] = None

    def attach(self, layer: QgsMapLayer) -> None:
        self.detach()
        action = QgsMapLayerAction("Open this tile's layers", self, layer, Qgis.MapLayerActionTarget.SingleFeature)
        # The job index is the GeoPackage fid - 1, as in the tracker.
        action.triggeredForFeatureV2.connect(lambda _layer, feature, _context: self._open_tile(feature.id() - 1))
        QgsGui.mapLayerActionRegistry().addMapLayerAction(action)
        self._action = action

    def detach(self) -> None:
        if self._action is not None:
            QgsGui.mapLayerActionRegistry().removeMapLayerAction(self._action)
            self._action = None
