"""Load a whole run into a project and render it to an image (demo, reports, headless use)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from qgis.core import (
    QgsMapLayer,
    QgsMapRendererCustomPainterJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

from ..core.jobs.tracker import open_tracker
from ..core.platform.hdf5_quiet import quiet_hdf5
from .layers import ResultLoader, job_tiles_layer
from .mosaic_feed import MosaicFeed
from .project_view import give_crs, set_default_view, set_month_steps, utm_crs


def load_run(name: str, tracker_path: Path, output_dir: Path) -> List[QgsMapLayer]:
    """Job tiles on top, then the run's month mosaics grouped by sensor and month; the project framed.

    A project without a CRS gets the tiles' UTM zone, the run's extent as its view and the run's
    months as time steps, so the saved project opens on the map.
    """
    project = QgsProject.instance()
    tracker = open_tracker(tracker_path)
    jobs = tracker.snapshot()
    first_tile = str(jobs["tile_id"].iloc[0]) if "tile_id" in jobs.columns and len(jobs) else ""
    was_empty = not project.mapLayers()
    tiles = job_tiles_layer(tracker_path)
    project.addMapLayer(tiles)
    give_crs(project, utm_crs(first_tile), was_empty)
    set_default_view(project, tiles.extent(), tiles.crs())
    loader = ResultLoader(name, project)
    feed = MosaicFeed(output_dir, jobs)
    layers = [layer for shown in feed.add_rows(jobs) for layer in loader.show(shown)]
    loader.refresh_all()  # mosaics that got tiles after their layer was opened
    if loader.months:
        set_month_steps(project, *loader.months)
    return [tiles] + layers


def save_project(path: Path) -> None:
    if not QgsProject.instance().write(str(path)):
        raise OSError(f"could not write the QGIS project {path}")


def _render(layers: Sequence[QgsMapLayer], extent: QgsRectangle, size: QSize) -> QImage:
    """Render ``layers`` (first on top) in the CRS of the first one; ``extent`` is in that CRS."""
    settings = QgsMapSettings()
    settings.setLayers(list(layers))
    settings.setDestinationCrs(layers[0].crs())
    settings.setExtent(extent)
    settings.setOutputSize(size)
    settings.setBackgroundColor(QColor("white"))
    image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor("white"))
    painter = QPainter(image)
    quiet_hdf5()  # drawn in this thread (a parallel or sequential job draws in Qt's pool, where HDF5 prints)
    QgsMapRendererCustomPainterJob(settings, painter).renderSynchronously()
    painter.end()
    return image


def render_map(layers: Sequence[QgsMapLayer], path: Path, panel: QSize = QSize(800, 800)) -> Path:
    """One panel per sensor (first month, all tiles) over the job tiles, side by side, with titles."""
    tiles, composites = layers[0], layers[1:]
    panels = []
    for sensor, title in (("S2", "Sentinel-2 true colour"), ("S1", "Sentinel-1 VV / VH / VV-VH")):
        mine = [layer for layer in composites if layer.name().split()[0] == sensor]
        if sensor == "S2":  # the first month's true colour (LCFM results also have P50 and NDVI layers)
            mine = [layer for layer in mine if " true colour " in f"{layer.name()} " and "P50" not in layer.name()]
        if not mine:
            continue
        if any("P50" in layer.name() for layer in mine):
            title = "Sentinel-1 VV / VH / VH/VV P50 (dB)"
        month = min(layer.name().split()[1] for layer in mine)
        shown = [layer for layer in mine if layer.name().split()[1] == month]
        extent = QgsRectangle()
        for layer in shown:
            extent.combineExtentWith(layer.extent())
        extent.scale(1.08)
        panels.append((f"{title}, {month}", _render(shown + [tiles], extent, panel)))  # tiles below
    header = 40
    image = QImage(panel.width() * max(1, len(panels)), panel.height() + header, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setFont(QFont("Sans", 16))
    for number, (title, picture) in enumerate(panels):
        painter.drawText(number * panel.width() + 12, 28, title)
        painter.drawImage(number * panel.width(), header, picture)
    painter.end()
    image.save(str(path))
    return path
