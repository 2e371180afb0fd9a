"""The dock's "Sample at features" step: a run's results at a polygon or point layer, as a new layer and a chart.

The tracker is the Output panel's (after a run, or a tracker only opened there); the features are a
project layer (the AOI layer by default) or a file. The work runs in a ``SampleTask``; the sampled
layer goes on top of the layer tree (over the run's mosaics) and the field chart follows it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional

from qgis.core import Qgis, QgsApplication, QgsProject, QgsVectorLayer
from qgis.gui import QgsCheckableComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ...core.results.zonal import STATS
from ...definitions import LOG_TAG
from ...qgis_glue.layers import is_job_tiles
from ...qgis_glue.sample_task import LayerCopy, SampleRequest, SampleTask, plain_file
from ..field_chart import WINDOWS_PROPERTY, FieldChartDock
from .base import SectionPanel, shrinkable

VECTOR_FILES = "Vector files (*.gpkg *.geojson *.json *.shp *.fgb *.kml *.gml);;All files (*)"


class SamplePanel(SectionPanel):
    def __init__(self, iface, output_panel, aoi_layers: Optional[QgsMapLayerComboBox] = None, parent=None):
        super().__init__("Sample at features", parent)
        self.iface = iface
        self.output_panel = output_panel
        self.task: Optional[SampleTask] = None
        self.chart_dock: Optional[FieldChartDock] = None
        self.sampled_layer: Optional[QgsVectorLayer] = None
        self._build()
        self._chose_layer = False  # the AOI layer is followed until the user picks one here
        self.layer_combo.activated.connect(lambda *_: setattr(self, "_chose_layer", True))
        if aoi_layers is not None:
            self._follow_aoi(aoi_layers.currentLayer())
            aoi_layers.layerChanged.connect(self._follow_aoi)
        self.sample_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.chart_button.clicked.connect(lambda: self.show_chart(self.iface.activeLayer() or self.sampled_layer))
        self.load_settings()

    def _build(self) -> None:
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(Qgis.LayerFilters(Qgis.LayerFilter.PolygonLayer | Qgis.LayerFilter.PointLayer))
        self.layer_combo.setToolTip("Fields (polygons) or points of the project; the AOI layer by default")
        self.form.addRow("Fields or points", self.layer_combo)
        self.features_file = QgsFileWidget(filter=VECTOR_FILES)
        self.features_file.setToolTip("A vector file instead of a project layer (its first layer)")
        self.form.addRow("or a file", self.features_file)
        self.stats = QgsCheckableComboBox()
        self.stats.addItems(list(STATS))
        self.stats.setCheckedItems(list(STATS))
        self.stats.setToolTip("Per field; a point layer gets the pixel value (column ..._value)")
        self.form.addRow("Statistics", self.stats)
        self.out_file = QgsFileWidget(
            storageMode=QgsFileWidget.StorageMode.SaveFile, filter="GeoPackage (*.gpkg);;CSV (*.csv)"
        )
        self.out_file.setToolTip("A new file; empty: <features>_sampled.gpkg beside the tracker")
        self.form.addRow("Output", self.out_file)
        # short: "Also a CSV (no geometry)" needed 262 px at 12 pt, more than the dock's 300 px leave
        self.csv_too = QCheckBox("Also a CSV", toolTip="A CSV copy beside the output, without geometry")
        self.form.addRow(self.csv_too)
        shrinkable(self.layer_combo, self.features_file, self.stats, self.out_file)
        buttons = QHBoxLayout()
        self.sample_button = QPushButton("Sample")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.chart_button = QPushButton("Chart", toolTip="The chart of the selected fields of a sampled layer")
        for button in (self.sample_button, self.cancel_button, self.chart_button):
            shrinkable(button)  # three at their minimum needed 276 px and clipped every section at 300 px
            buttons.addWidget(button)
        self.form.addRow(buttons)
        self.progress = QProgressBar(maximum=100, visible=False)
        self.form.addRow(self.progress)
        self.status = QLabel(wordWrap=True)
        self.form.addRow(self.status)

    def problem_fields(self) -> Dict[str, QWidget]:
        return {"Fields or points": self.layer_combo, "Output": self.out_file, "Statistics": self.stats}

    def _follow_aoi(self, layer) -> None:
        if layer is not None and not self._chose_layer and not is_job_tiles(layer):  # not the run's tiles
            self.layer_combo.setLayer(layer)

    # --- start, cancel, end ------------------------------------------------------------------------
    def _default_out(self, tracker: Path, stem: str) -> Path:
        stem = re.sub(r"[^\w.-]+", "_", stem).strip("_") or "features"
        number, out = 1, tracker.parent / f"{stem}_sampled.gpkg"
        while out.exists() or out.with_suffix(".csv").exists():
            number += 1
            out = tracker.parent / f"{stem}_sampled_{number}.gpkg"
        return out

    def request(self) -> SampleRequest:
        """What the fields say; raises ValueError naming the field to change."""
        tracker = Path(self.output_panel.tracker_path())
        if not tracker.is_file():
            raise ValueError(f"Job tracker: {tracker} does not exist; run first, or choose a tracker under Output.")
        stats = self.stats.checkedItems()
        if not stats:
            raise ValueError("Statistics: tick at least one.")
        file_path, layer = self.features_file.filePath(), self.layer_combo.currentLayer()
        if not file_path and layer is None:
            raise ValueError("Fields or points: choose a polygon or point layer, or a file.")
        features = Path(file_path) if file_path else plain_file(layer)
        copy = None if features else LayerCopy(layer, QgsProject.instance().transformContext())
        out = Path(self.out_file.filePath()) if self.out_file.filePath() else None
        out = out or self._default_out(tracker, Path(file_path).stem if file_path else layer.name())
        if out.suffix.lower() not in (".gpkg", ".csv"):
            out = out.with_suffix(".gpkg")
        request = SampleRequest(tracker, [Path(self.output_panel.output.filePath()), tracker.parent], stats, out,
                                features, copy, self.csv_too.isChecked())  # fmt: skip
        for path, _ in request.outputs():
            if path.exists():
                raise ValueError(f"Output: {path} already exists; choose a new file name.")
            if not path.parent.is_dir():
                raise ValueError(f"Output: the folder {path.parent} does not exist; choose another.")
        return request

    def start(self) -> None:
        if self.task is not None:
            return
        try:
            request = self.request()
        except ValueError as exc:
            return self.status.setText(str(exc))
        self.out_file.setFilePath(str(request.out))
        self.task = SampleTask(request)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.task.sample_finished.connect(self.on_finished)
        self._set_running(True)
        self.status.setText(f"Sampling {request.tracker.name} at {request.features or 'the layer'}…")
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _set_running(self, running: bool) -> None:
        self.sample_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        self.progress.setValue(0)

    def on_finished(self, request: Optional[SampleRequest]) -> None:
        task, self.task = self.task, None
        self._set_running(False)
        if request is None:
            cancelled = task is None or task.cancelled or not task.error
            text = "Sample cancelled; nothing was written." if cancelled else f"Sample failed: {task.error}"
            self.status.setText(text)
            if not cancelled:
                self.iface.messageBar().pushMessage(LOG_TAG, text, Qgis.MessageLevel.Warning, 0)
            return
        self.out_file.setFilePath("")  # the next sample gets a new default name
        layer = self.add_layer(request)
        where = ", ".join(str(p) for p in request.written)
        text = f"Sampled {task.summary}: layer '{layer.name()}' added ({where})."
        self.status.setText(text)
        self.iface.messageBar().pushMessage(LOG_TAG, text, Qgis.MessageLevel.Success, 8)
        self.show_chart(layer)

    def add_layer(self, request: SampleRequest) -> QgsVectorLayer:
        """The sampled table on top of the layer tree: inside the run's group it was drawn under the mosaics of
        a group above it (seen in QGIS Desktop on the demo's project), the selected fields hidden."""
        out = request.out
        if out.suffix.lower() == ".csv":
            layer = QgsVectorLayer(f"{out.as_uri()}?type=csv&geomType=none&detectTypes=yes", out.stem, "delimitedtext")
        else:
            layer = QgsVectorLayer(str(out), out.stem, "ogr")
        layer.setCustomProperty(WINDOWS_PROPERTY, ",".join(request.windows))
        project = QgsProject.instance()
        project.addMapLayer(layer, False)
        project.layerTreeRoot().insertLayer(0, layer)
        self.sampled_layer = layer
        return layer

    def show_chart(self, layer) -> None:
        if self.chart_dock is None:
            self.chart_dock = FieldChartDock(self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.chart_dock)
            self.iface.currentLayerChanged.connect(self.chart_dock.follow)
        self.chart_dock.follow(layer)
        self.chart_dock.show()
        self.chart_dock.raise_()
