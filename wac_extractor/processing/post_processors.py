"""What Processing loads when the algorithm ends: the job tiles styled as in the dock, the month mosaics."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsVectorLayer,
)

from ..qgis_glue.layers import style_job_tiles
from ..qgis_glue.mosaic_feed import MosaicFeed, finished_rows
from ..qgis_glue.project_view import give_crs, set_default_view, set_month_steps, utm_crs


def load_mosaics(tracker, output: Path, run: str, context, feedback) -> None:
    """The run's month mosaics as layers when the algorithm ends (a layer per sensor, month and style)."""
    jobs = tracker.snapshot()
    feed = MosaicFeed(output, jobs, to_ui=False)  # Processing moves its context's layers to the UI
    layers = [layer for batch in feed.add_rows(jobs) for _, layer in batch if layer is not None]
    shown = feed.mosaics.mosaics()
    months = (min(c.start for c in shown), max(c.end for c in shown)) if shown else None
    for layer in layers:
        context.temporaryLayerStore().addMapLayer(layer)
        details = QgsProcessingContext.LayerDetails(layer.name(), context.project(), "")
        details.groupName = f"WAC {run}"
        details.setPostProcessor(ShowMosaic.create(months))
        context.addLayerToLoadOnCompletion(layer.id(), details)
    if layers:
        feedback.pushInfo(f"{len(layers)} month-mosaic layers over {len(finished_rows(jobs))} results")


class StyleJobTiles(QgsProcessingLayerPostProcessorInterface):
    """Colours the job-tile layer that Processing loads when the algorithm ends; frames the project on it."""

    instance = None  # QGIS takes the post-processor but not its Python object: keep that alive here

    def __init__(self, tracker=None):
        super().__init__()
        self.tracker = tracker

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802  (QGIS signature)
        if isinstance(layer, QgsVectorLayer):
            style_job_tiles(layer)
            project = context.project() or QgsProject.instance()
            tile = self.tracker.get_by_indices([0]).iloc[0].get("tile_id") if self.tracker is not None else ""
            was_empty = set(project.mapLayers()) <= {layer.id()}  # the tiles are the project's first layer
            give_crs(project, utm_crs(tile), was_empty)
            set_default_view(project, layer.extent(), layer.crs())

    @staticmethod
    def create(tracker=None) -> StyleJobTiles:
        StyleJobTiles.instance = StyleJobTiles(tracker)
        return StyleJobTiles.instance


class ShowMosaic(QgsProcessingLayerPostProcessorInterface):
    """A month mosaic loaded by Processing: read again (tiles came after it opened), months as time steps."""

    instances = []  # kept alive, as StyleJobTiles.instance

    def __init__(self, months):
        super().__init__()
        self.months = months

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802  (QGIS signature)
        layer.reload()
        set_month_steps(context.project() or QgsProject.instance(), *self.months)

    @staticmethod
    def create(months) -> ShowMosaic:
        processor = ShowMosaic(months)
        ShowMosaic.instances.append(processor)
        return processor
