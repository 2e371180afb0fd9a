"""Results as styled, time-aware QGIS layers, grouped by run, sensor and month."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from qgis.core import (
    Qgis,
    QgsBasicNumericFormat,
    QgsCategorizedSymbolRenderer,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsDataProvider,
    QgsDateTimeRange,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QDate, QDateTime, Qt, QTime, QTimer
from qgis.PyQt.QtGui import QColor, QPainter

from ..core.jobs.tracker import TABLE
from ..core.platform.hdf5_quiet import quiet_hdf5
from ..core.results.composites import NDVI_P50, S1_DB, S1_P50_DB, TRUE_COLOUR, TRUE_COLOUR_P50, WindowComposite
from .job_rows import STATUS_COLOURS

SENSOR_GROUPS = {1: "Sentinel-1", 2: "Sentinel-2"}
# Display ranges: S2 reflectance DN 0..2500 (a bright-enough true colour), S1 backscatter in dB
# (VV, VH, and the ratio: VV-VH for monthly composites, VH/VV for LCFM P50, which is negative).
STRETCH = {
    TRUE_COLOUR: [(0, 2500)] * 3,
    TRUE_COLOUR_P50: [(0, 2500)] * 3,
    S1_DB: [(-20, 0), (-28, -8), (0, 15)],
    S1_P50_DB: [(-20, 0), (-28, -8), (-12, -4)],
}
# NDVI in NDVI units (the display copy undoes the files' x 10000): bare soil brown, sparse vegetation
# yellow, dense vegetation dark green.
NDVI_RAMP = [(-0.2, "#8c510a"), (0.2, "#dfc27d"), (0.4, "#d9ef8b"), (0.6, "#66bd63"), (0.9, "#00441b")]
BAND_CUT = (0.02, 0.98)  # an added band's stretch: its 2-98 % cumulative cut


def _stretch(renderer: QgsMultiBandColorRenderer, layer: QgsRasterLayer, ranges) -> None:
    for band, (low, high), setter in zip(
        (1, 2, 3),
        ranges,
        (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement, renderer.setBlueContrastEnhancement),
    ):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum, True
        )
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)


def style_composite(layer: QgsRasterLayer, composite: WindowComposite) -> None:
    """Three-band colour with a fixed stretch, or NDVI on a green ramp; NaN/NoData stays transparent."""
    if composite.kind == NDVI_P50:
        ramp = QgsColorRampShader(NDVI_RAMP[0][0], NDVI_RAMP[-1][0])
        ramp.setColorRampType(Qgis.ShaderInterpolationMethod.Linear)
        ramp.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, QColor(c), f"{v:g}") for v, c in NDVI_RAMP])
        shader = QgsRasterShader()
        shader.setRasterShaderFunction(ramp)
        renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
        renderer.setClassificationMin(NDVI_RAMP[0][0])  # the legend's range (NaN otherwise)
        renderer.setClassificationMax(NDVI_RAMP[-1][0])
        layer.setRenderer(renderer)
        return
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
    _stretch(renderer, layer, STRETCH[composite.kind])
    layer.setRenderer(renderer)


def set_month(layer: QgsRasterLayer, composite: WindowComposite) -> None:
    """Give the layer its month as fixed temporal range, so the temporal controller animates months."""
    properties = layer.temporalProperties()
    properties.setIsActive(True)
    properties.setMode(Qgis.RasterTemporalMode.FixedTemporalRange)
    start = QDateTime(QDate(composite.start.year, composite.start.month, 1), QTime(0, 0), Qt.TimeSpec.UTC)
    end = QDateTime(QDate(composite.end.year, composite.end.month, 1), QTime(0, 0), Qt.TimeSpec.UTC)
    properties.setFixedTemporalRange(QgsDateTimeRange(start, end, True, False))


# GDAL (3.6) writes the statistics QGIS has it compute back into a VRT when closing it, even one opened
# read-only: reloading a mosaic then overwrote its newer file with the old one. Through the ``vrt://``
# wrapper the statistics stay in memory; the file is only read.
READ_ONLY_VRT = "vrt://"


def layer_path(layer: QgsMapLayer) -> Path:
    """The file a layer shows (without the ``vrt://`` of a mosaic)."""
    source = layer.source()
    return Path(source[len(READ_ONLY_VRT) :] if source.startswith(READ_ONLY_VRT) else source)


def composite_layer(composite: WindowComposite, name: str, read_only: bool = False) -> QgsRasterLayer:
    quiet_hdf5()  # opened in worker threads too
    source = f"{READ_ONLY_VRT}{composite.path}" if read_only else str(composite.path)
    layer = QgsRasterLayer(source, name, "gdal")
    if not layer.isValid():
        raise ValueError(f"{composite.path} does not open as a raster layer.")
    style_composite(layer, composite)
    set_month(layer, composite)
    return layer


def _child_group(parent: QgsLayerTreeGroup, name: str, index: int = -1) -> QgsLayerTreeGroup:
    """The group ``name`` under ``parent``; a new one starts collapsed (a run adds groups by the dozen) at
    ``index`` (-1: last)."""
    group = parent.findGroup(name)
    if group is None:
        group = parent.insertGroup(index, name) if index >= 0 else parent.addGroup(name)
        group.setExpanded(False)
    return group


def _month_index(sensor_group: QgsLayerTreeGroup, period: str) -> int:
    """Where a new period's group goes: months in order, above the windows (``2023-01..2023-03``)."""
    names = [child.name() for child in sensor_group.children()]
    single = ".." not in period
    for index, name in enumerate(names):
        if (single and ".." in name) or ((".." in name) == (not single) and name > period):
            return index
    return -1


def mosaic_layer_name(composite: WindowComposite) -> str:
    """``S2 2023-01 true colour UTM 31N``: the zone is in the mosaic's file name (``..._32631.vrt``)."""
    kind = "S2" if composite.sentinel == 2 else "S1"
    code = composite.path.stem.rsplit("_", 1)[-1]
    zone = f" UTM {int(code[3:])}{'N' if code[:3] == '326' else 'S'}" if re.fullmatch(r"32[67]\d\d", code) else ""
    return f"{kind} {composite.period} {composite.label}{zone}"


class ResultLoader:
    """A run's results in a project: month mosaics under ``<run> / <sensor> / <month>``, tiles on demand.

    A mosaic is one layer however many tiles it holds. When tiles arrive its VRT is rewritten and
    the layer reloaded :data:`REFRESH_MS` later, one mosaic at a time, so that a burst of results
    costs the UI thread one reload per mosaic, not one per tile.
    """

    REFRESH_MS = 250  # after the first change: a burst of results costs one reload per mosaic
    NEXT_MS = 60  # between the reloads of two mosaics
    LAYER_WAIT_S = 10.0  # an update may wait this long for the one that brings the mosaic's layer

    def __init__(self, run_name: str, project: Optional[QgsProject] = None):
        self.project = project or QgsProject.instance()
        self.run_name = run_name
        self._by_source: Optional[Dict[Path, QgsRasterLayer]] = None  # layers under the run group, read once
        self._stale: Dict[str, Tuple[QgsRasterLayer, bool]] = {}  # layer id: (layer, its grid grew)
        self._waiting: Dict[Path, Tuple[float, bool]] = {}  # mosaics updated before their layer: since, grid grew
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self.months: Optional[Tuple[dt.date, dt.date]] = None  # the run's months so far: first day, end

    def _layers_by_source(self) -> Dict[Path, QgsRasterLayer]:
        """Layers already in the run's groups (a resumed run, a reopened project), then kept up to date.

        Scanning the groups for every result made adding the n-th layer cost O(n) on the UI thread.
        """
        if self._by_source is None:
            self._by_source = {
                layer_path(node.layer()): node.layer() for node in self.run_group().findLayers() if node.layer()
            }
        return self._by_source

    def run_group(self) -> QgsLayerTreeGroup:
        return _child_group(self.project.layerTreeRoot(), self.run_name)

    def sensor_group(self, sentinel: int) -> QgsLayerTreeGroup:
        """Sentinel-2 above Sentinel-1 (the radar would hide the optical); Sentinel-1 starts unticked."""
        run = self.run_group()
        name = SENSOR_GROUPS[int(sentinel)]
        group = run.findGroup(name)
        if group is None:
            s1 = run.findGroup(SENSOR_GROUPS[1])
            index = run.children().index(s1) if int(sentinel) == 2 and s1 is not None else -1
            group = _child_group(run, name, index)
            group.setItemVisibilityChecked(int(sentinel) == 2)
        return group

    def month_group(self, sentinel: int, month: str) -> QgsLayerTreeGroup:
        sensor = self.sensor_group(sentinel)
        return _child_group(sensor, month, _month_index(sensor, month))

    def _add_layer(self, layer: QgsRasterLayer, group: QgsLayerTreeGroup, source: Path, index: int = -1) -> None:
        self.project.addMapLayer(layer, False)
        node = group.insertLayer(index, layer) if index >= 0 else group.addLayer(layer)
        node.setExpanded(False)  # no legend rows in the Layers panel
        self._layers_by_source()[source] = layer

    def on_demand_group(self, name: str) -> QgsLayerTreeGroup:
        """A group for layers a user asked for (a tile's, a band): at the top of the run's group, shown, open."""
        run = self.run_group()
        group = run.findGroup(name)
        if group is None:
            group = run.insertGroup(0, name)
        elif run.children().index(group) != 0:  # asked again: back to the top
            clone = group.clone()
            run.insertChildNode(0, clone)
            run.removeChildNode(group)
            group = clone
            self._by_source = None  # the moved layers' nodes are new
        group.setItemVisibilityChecked(True)
        group.setExpanded(True)
        return group

    def show(self, shown: Iterable[Tuple[object, Optional[QgsRasterLayer]]]) -> List[QgsRasterLayer]:
        """Mosaic updates from :class:`~wac_extractor.qgis_glue.mosaic_feed.MosaicFeed`: new layers, or a reload."""
        added = []
        for update, layer in shown:
            composite = update.composite
            existing = self._layers_by_source().get(composite.path)
            if existing is not None:
                self._mark_stale(existing, update.regridded)
                continue
            if layer is None and not update.created and self._wait_for_layer(update):
                continue
            layer = layer or composite_layer(composite, mosaic_layer_name(composite), read_only=True)
            layer.setName(mosaic_layer_name(composite))
            self._add_layer(layer, self.month_group(composite.sentinel, composite.period), composite.path)
            added.append(layer)
            if composite.path in self._waiting:  # updates that overtook this one: their tiles may be newer
                self._mark_stale(layer, self._waiting.pop(composite.path)[1])
            first, end = self.months or (composite.start, composite.end)
            self.months = (min(first, composite.start), max(end, composite.end))
        if self._stale and not self._timer.isActive():
            self._timer.start(self.REFRESH_MS)
        return added

    def _wait_for_layer(self, update) -> bool:
        """Whether a mosaic's update, come before the one that created it, waits for that one's layer.

        Two download threads: the second tile's update can overtake the first's, which brings the layer
        opened in the worker. Opening the mosaic here instead cost the UI thread 107 ms in the Desktop
        bench. After :data:`LAYER_WAIT_S` (the creating update failed in the worker) it is opened here.
        """
        path = update.composite.path
        since, grew = self._waiting.get(path, (time.monotonic(), False))
        if time.monotonic() - since > self.LAYER_WAIT_S:
            self._waiting.pop(path)
            return False
        self._waiting[path] = (since, grew or update.regridded)
        return True

    def _mark_stale(self, layer: QgsRasterLayer, regridded: bool) -> None:
        _, grew = self._stale.get(layer.id(), (layer, False))
        self._stale[layer.id()] = (layer, grew or regridded)

    def refresh(self) -> None:
        """Reload one mosaic whose VRT changed, the next one a tick later.

        Reopening a mosaic (through ``vrt://``) costs the UI thread 4-30 ms; all six of a run at once
        stalled it up to 185 ms in the 1,000-tile bench.
        """
        if not self._stale:
            return
        layer_id = next(iter(self._stale))
        layer, grew = self._stale.pop(layer_id)
        if not sip.isdeleted(layer):
            if grew:  # a new extent: the provider is made anew; the style is kept
                layer.setDataSource(layer.source(), layer.name(), "gdal", QgsDataProvider.ProviderOptions())
            else:
                layer.reload()
            layer.triggerRepaint()
        if self._stale:
            self._timer.start(self.NEXT_MS)

    def refresh_all(self) -> None:
        """Reload every changed mosaic now (a script, the demo: nobody is waiting on the UI thread)."""
        self._timer.stop()
        while self._stale:
            self.refresh()
        self._timer.stop()

    def add(self, composites: Iterable[Union[WindowComposite, Prepared]], tile_label: str) -> List[QgsRasterLayer]:
        """One tile's own composites under ``<run> / Tiles / <tile>`` (opened on demand).

        Items may be ``(composite, layer)`` pairs prepared off the UI thread (:func:`prepare_layers`):
        opening a 3-band VRT makes QGIS read the data for its default stretch.
        """
        layers = []
        group = self.on_demand_group(f"Tile {tile_label}")
        top = 0  # S2 layers in their order at the top, S1 below them
        for item in composites:
            composite, layer = item if isinstance(item, tuple) else (item, None)
            existing = self._layers_by_source().get(composite.path)
            if existing is not None and not sip.isdeleted(existing) and self.project.mapLayer(existing.id()):
                continue  # already open
            kind = "S2" if composite.sentinel == 2 else "S1"
            layer = layer or composite_layer(composite, "")
            layer.setName(f"{kind} {composite.period} {composite.label} {tile_label}")
            self._add_layer(layer, group, composite.path, top if composite.sentinel == 2 else -1)
            top += composite.sentinel == 2
            layers.append(layer)
        return layers

    def add_bands(self, layers: List[QgsRasterLayer], group_name: str) -> List[QgsRasterLayer]:
        """Band layers (:func:`band_layer`) at the top of ``group_name``, itself at the top of the run's group."""
        group = self.on_demand_group(group_name)
        shown = []
        for layer in reversed(layers):  # each on top: the first ends first
            source = layer_path(layer)
            existing = self._layers_by_source().get(source)
            if existing is not None and not sip.isdeleted(existing) and self.project.mapLayer(existing.id()):
                shown.append(existing)
                continue
            self._add_layer(layer, group, source, 0)
            shown.append(layer)
        return list(reversed(shown))


Prepared = Tuple[WindowComposite, QgsRasterLayer]


def prepare_layers(composites: Iterable[WindowComposite]) -> List[Prepared]:
    """Open and style composite layers in a worker thread, then hand them to the UI thread."""
    return [(composite, to_ui_thread(composite_layer(composite, composite.path.stem))) for composite in composites]


def to_ui_thread(layer: QgsMapLayer) -> QgsMapLayer:
    """Give a layer opened in a worker thread to the UI thread, where the project will own it."""
    layer.moveToThread(QCoreApplication.instance().thread())
    return layer


JOB_TILES_NAME = "WAC job tiles"
JOB_TILES_PROPERTY = "wac_extractor/job_tiles"


def job_tiles_uri(tracker_path: Path) -> str:
    """The OGR source of a GeoPackage tracker's job table."""
    return f"{tracker_path}|layername={TABLE}"


def job_tiles_layer(tracker_path: Path, name: str = JOB_TILES_NAME) -> QgsVectorLayer:
    """The tracker GeoPackage itself as a layer, coloured by job status."""
    layer = QgsVectorLayer(job_tiles_uri(tracker_path), name, "ogr")
    style_job_tiles(layer)
    return layer


def project_tracker(project: QgsProject, preferred: str = "") -> Optional[str]:
    """The tracker GeoPackage of a run whose job tiles the project holds (and that is on disk), if any:
    ``preferred`` when it is one of them, else the first in the Layers panel's order."""
    found = []
    for node in project.layerTreeRoot().findLayers():
        layer = node.layer()
        path = layer.source().split("|")[0] if layer is not None else ""
        if is_job_tiles(layer) and path.lower().endswith(".gpkg") and Path(path).is_file():
            found.append(str(Path(path).resolve()))
    preferred = str(Path(preferred).resolve()) if preferred else ""
    return preferred if preferred in found else (found[0] if found else None)


def is_job_tiles(layer: Optional[QgsMapLayer]) -> bool:
    """A run's job-tile layer (this plugin's or the Processing algorithm's output), not one of the user's: marked
    when styled; an older project's layer by its name and its tracker table."""
    if layer is None:
        return False
    options = layer.source().split("|")[1:]
    return bool(layer.customProperty(JOB_TILES_PROPERTY)) or (
        layer.name() == JOB_TILES_NAME and f"layername={TABLE}" in options
    )


# A job's status, or "download failed" for a finished job whose result was refused (then it is filled red).
TILE_STATUS = "CASE WHEN \"result_status\" = 'failed' THEN 'download_failed' ELSE \"status\" END"
OUTLINE_ONLY = {"finished"}  # its result is on the map: nothing drawn over the imagery but the outline


def style_job_tiles(layer: QgsVectorLayer) -> None:
    """Colour a tracker's job tiles by status (the dock's tile layer and the Processing output alike).

    Finished tiles are outlines only (their results are under them); pending, running and failed ones
    are filled. A tile has a job per sensor and window, drawn on the same square: features replace
    what is under them in the layer's own image (feature blending "source"), so a tile is tinted once,
    not once per job; the layer's image is then drawn over the map as usual.
    """
    categories = []
    colours = {**STATUS_COLOURS, "download_failed": STATUS_COLOURS["error"]}
    for status, colour in colours.items():
        rgb = f"{colour.red()},{colour.green()},{colour.blue()}"  # QGIS reads "#RRGGBBAA" as ARGB: use r,g,b,a
        fill = f"{rgb},0" if status in OUTLINE_ONLY else f"{rgb},50"
        style = "no" if status in OUTLINE_ONLY else "solid"
        symbol = QgsFillSymbol.createSimple(
            {"color": fill, "style": style, "outline_color": colour.name(), "outline_width": "0.6"}
        )
        categories.append(QgsRendererCategory(status, symbol, status.replace("_", " ")))
    layer.setRenderer(QgsCategorizedSymbolRenderer(TILE_STATUS, categories))
    layer.setCustomProperty(JOB_TILES_PROPERTY, True)  # saved with the project: not a layer of AOIs
    layer.setFeatureBlendMode(QPainter.CompositionMode.CompositionMode_Source)


def _legend_format() -> QgsBasicNumericFormat:
    """Three significant figures: "-250" and "6,560", not "-253.110352" and "6,561.15332"."""
    number = QgsBasicNumericFormat()
    number.setRoundingType(QgsBasicNumericFormat.RoundingType.SignificantFigures)
    number.setNumberDecimalPlaces(3)
    number.setShowTrailingZeros(False)
    return number


def band_layer(path: Path, name: str) -> QgsRasterLayer:
    """One band's display copy, grey on its 2-98 % cumulative cut, a legend of rounded numbers; NaN transparent."""
    layer = QgsRasterLayer(str(path), name, "gdal")
    if not layer.isValid():
        raise ValueError(f"{path} does not open as a raster layer.")
    low, high = layer.dataProvider().cumulativeCut(1, *BAND_CUT)
    enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(1))
    enhancement.setContrastEnhancementAlgorithm(
        QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum, True
    )
    enhancement.setMinimumValue(low)
    enhancement.setMaximumValue(high)
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)
    renderer.setContrastEnhancement(enhancement)
    legend = QgsColorRampLegendNodeSettings()
    legend.setNumericFormat(_legend_format())
    renderer.setLegendSettings(legend)
    layer.setRenderer(renderer)
    return layer
