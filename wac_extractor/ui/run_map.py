"""A run on the map and in the project: its job-tile layer, the project's framing, month mosaics, tile and band layers.

The dock hands the task's signals here; the job table's menu asks for zoom and layers by row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, List, Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, QTimer

from ..core.jobs.tracker import TrackerError
from ..definitions import LOG_TAG
from ..qgis_glue.band_task import BandRequest, BandTask
from ..qgis_glue.layers import ResultLoader
from ..qgis_glue.mosaic_feed import row_composites
from ..qgis_glue.project_view import give_crs, set_default_view, set_month_steps, utm_crs
from ..qgis_glue.tile_action import TileLayersAction
from .job_model import JobTableModel

FRAME_AFTER_MS = 20  # after QGIS Desktop's layer tree has set the project up for its first layer


class RunMap(QObject):
    """``output_folder()``: where the results are, read when a layer opens (the user may have changed it)."""

    def __init__(self, iface, model: JobTableModel, output_folder: Callable[[], str], parent=None):
        super().__init__(parent)
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.model = model
        self.output_folder = output_folder
        self.tracker = None
        self.loader: Optional[ResultLoader] = None
        self.jobs_layer = None
        self.tile_action = TileLayersAction(self.open_tile_layers_of, parent)
        self.band_tasks: list = []  # Add band's tasks still running

    def start(self, tracker, tracker_path: str) -> None:
        """A run of this tracker begins: its layers go into a group of its own."""
        self.tracker = tracker
        self.loader = ResultLoader(f"WAC {Path(tracker_path).stem}")

    # --- the job-tile layer and the project's view -------------------------------------------------
    def show_jobs_layer(self, tiles_layer) -> None:
        """The task created (or opened) the tracker and its job-tile layer: show the layer, frame the run.

        An empty project gets the AOI's UTM zone (not the tiles' EPSG:4326, which draws UTM tiles
        skewed) and the run's extent as its view; a project with layers keeps its own CRS and view.
        """
        if tiles_layer is None:
            return
        project = QgsProject.instance()
        was_empty = not project.mapLayers()
        same = [layer for layer in project.mapLayers().values() if layer.source() == tiles_layer.source()]
        if same:  # opened before, or in a saved project: the layer there is the run's, never a second one
            self.jobs_layer = same[0]
        else:
            self.jobs_layer = tiles_layer
            project.addMapLayer(self.jobs_layer)
        self.tile_action.attach(self.jobs_layer)
        if was_empty:  # QGIS Desktop's layer tree gives a new project its first layer's CRS and extent on
            # the next event loop: frame the run after that, once, in a pass of its own (framing here too,
            # as before, held QGIS Desktop's UI thread 94 ms with the layer's own addition)
            QTimer.singleShot(FRAME_AFTER_MS, lambda: self._frame_run(True))
        else:
            self._frame_run(False)

    def _frame_run(self, was_empty: bool) -> None:
        project = QgsProject.instance()
        if self.jobs_layer is None or sip.isdeleted(self.jobs_layer):
            return
        give_crs(project, self._run_utm_crs(), was_empty)
        set_default_view(project, self.jobs_layer.extent(), self.jobs_layer.crs())
        if was_empty:
            self.canvas.setDestinationCrs(project.crs())
            self.canvas.setExtent(project.viewSettings().defaultViewExtent())
            self.canvas.refresh()

    def _run_utm_crs(self) -> QgsCoordinateReferenceSystem:
        """The UTM zone of the run's first tile."""
        try:
            return utm_crs(self.tracker.get_by_indices([0]).iloc[0].get("tile_id"))
        except (IndexError, KeyError, TrackerError, OSError):
            return QgsCoordinateReferenceSystem()

    def repaint_jobs(self) -> None:
        # The layer reads the tracker GeoPackage in WAL mode, so a repaint shows the new statuses;
        # reopening it (reloadData) cost 0.1-1 s on the UI thread per snapshot.
        if self.jobs_layer is not None and not sip.isdeleted(self.jobs_layer):  # a new project removed it
            self.jobs_layer.triggerRepaint()

    def show_mosaics(self, shown) -> None:
        """New month mosaics as layers (then the time steps cover their months), or a reload of those there."""
        if self.loader is None:
            return
        if self.loader.show(shown) and self.loader.months:
            set_month_steps(QgsProject.instance(), *self.loader.months, canvas=self.canvas)

    def zoom_to_job(self, row: int) -> None:
        job = self.model.job(row)
        if job is None:
            return
        footprint = self.model.tracker.get_by_indices([job.name]).iloc[0].get("geometry")
        if not isinstance(footprint, str):
            return
        geometry = QgsGeometry.fromWkt(footprint)
        transform = QgsCoordinateTransform(
            QgsCoordinateReferenceSystem("EPSG:4326"), self.canvas.mapSettings().destinationCrs(), QgsProject.instance()
        )
        geometry.transform(transform)
        extent = geometry.boundingBox()
        extent.scale(1.2)
        self.canvas.setExtent(extent)
        self.canvas.refresh()

    # --- a tile's own layers -------------------------------------------------------------------------
    def open_tile_layers(self, row: int) -> None:
        """One tile's own layers (the map shows month mosaics), from the job table or the job-tile layer."""
        job = self.model.job(row)
        if job is not None:
            self.open_tile_layers_of(int(job.name))

    def open_tile_layers_of(self, index: int) -> None:
        if self.model.tracker is None:
            return
        job = self.model.tracker.get_by_indices([index]).iloc[0]
        label = str(job.get("tile_id") or job.get("title") or index)
        if job.get("result_status") != "ok":
            self.iface.messageBar().pushMessage(
                LOG_TAG, f"{label}: no result yet (status {job.get('status')}).", Qgis.MessageLevel.Info, 5
            )
            return
        loader = self._loader()
        try:
            layers = loader.add(row_composites(job, Path(self.output_folder())), tile_label=label)
        except (OSError, RuntimeError, ValueError) as exc:
            message = f"{label}: its layers could not be opened: {exc}. Retry the job to download it again."
            self.iface.messageBar().pushMessage(LOG_TAG, message, Qgis.MessageLevel.Warning, 0)
            return
        if not layers:
            group = loader.run_group().findGroup(f"Tile {label}")
            if group is None:
                self.iface.messageBar().pushMessage(
                    LOG_TAG, f"{label}: no result files found.", Qgis.MessageLevel.Info, 5
                )
                return
            loader.on_demand_group(group.name())  # already open: back to the top, shown
            layers = [node.layer() for node in loader.run_group().findGroup(group.name()).findLayers()]
        self._show_added(layers, f"Tile {label}")

    def _loader(self) -> ResultLoader:
        if self.loader is None:
            self.loader = ResultLoader(f"WAC {Path(str(self.model.tracker.path)).stem}")
        return self.loader

    def _show_added(self, layers: list, where: str) -> None:
        """Layers a user asked for: the first selected in the Layers panel, and a line naming them."""
        if layers:
            self.iface.setActiveLayer(layers[0])  # the current layer in the Layers panel
        names = ", ".join(layer.name() for layer in layers[:3])
        more = f" and {len(layers) - 3} more" if len(layers) > 3 else ""
        self.iface.messageBar().pushMessage(
            LOG_TAG, f"Added at the top of the run's group ({where}): {names}{more}.", Qgis.MessageLevel.Info, 8
        )
        self.canvas.refresh()

    def add_band_layers(self, row: int, variables: Optional[List[str]] = None) -> None:
        """Single-band layers of a job's result (every variable, or those given); the first time step.

        Each band is read from its display copy (written once, from the NetCDF, in a ``BandTask``: for
        *Add all bands* that is 56 files), named ``<variable> <tile> <window>`` and stretched on its 2-98 %
        cumulative cut; the layers are added when all are open.
        """
        job = self.model.job(row)
        if job is None or self.model.tracker is None:
            return
        from ..core.planning.timewindows import months_in
        from ..core.recipes.process_graphs import decode_cell, expected_variables

        variables = variables or expected_variables(job)
        months = months_in(tuple(decode_cell(job["temporal_extent"])))
        window = months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
        tile = str(job.get("tile_id") or job.get("title") or "")
        results = [Path(self.output_folder()) / relative for relative in json.loads(job.get("result_files") or "[]")]
        requests = [
            BandRequest(path, v, f"{v} {tile} {window}")
            for path in results
            if path.suffix.lower() in (".nc", ".nc4")
            for v in variables
        ]
        if not requests:
            message = f"{tile}: no NetCDF result to take bands from. Retry the job to download it again."
            self.iface.messageBar().pushMessage(LOG_TAG, message, Qgis.MessageLevel.Info, 8)
            return
        group = f"Bands {tile} S{job.get('sentinel')} {window}"
        task, tracker = BandTask(requests, group), self.model.tracker
        task.ready.connect(
            lambda layers, name: self._bands_ready(layers, name) if self.model.tracker is tracker else None
        )
        task.failed.connect(
            lambda error: self.iface.messageBar().pushMessage(
                LOG_TAG,
                f"{tile}: its bands could not be opened: {error}. Retry the job to download it again.",
                Qgis.MessageLevel.Warning,
                0,
            )
        )
        task.done.connect(lambda: self._forget_band_task(task))  # after finished(): Python's wrapper lives till then
        self.band_tasks.append(task)  # held here: the task manager does not keep Python's wrapper alive
        QgsApplication.taskManager().addTask(task)

    def _bands_ready(self, layers: list, group: str) -> None:
        self._show_added(self._loader().add_bands(layers, group), group)

    def _forget_band_task(self, task: BandTask) -> None:
        if task in self.band_tasks:
            self.band_tasks.remove(task)
