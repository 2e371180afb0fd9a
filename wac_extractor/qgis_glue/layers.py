"""Results as styled, time-aware QGIS layers, grouped by run, sensor and month."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from qgis.core import (
    Qgis,
    QgsCategorizedSymbolRenderer,
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
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QDate, QDateTime, Qt, QTime, QTimer
from qgis.PyQt.QtGui import QColor

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
# NDVI x 10000 (the LCFM scale): bare soil brown, sparse vegetation yellow, dense vegetation dark green.
NDVI_RAMP = [(-2000, "#8c510a"), (2000, "#dfc27d"), (4000, "#d9ef8b"), (6000, "#66bd63"), (9000, "#00441b")]


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
        ramp.setColorRampItemList(
            [QgsColorRampShader.ColorRampItem(v, QColor(c), f"{v / 10000:g}") for v, c in NDVI_RAMP]
        )
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


def _child_group(parent: QgsLayerTreeGroup, name: str) -> QgsLayerTreeGroup:
    """The group ``name`` under ``parent``; a new one starts collapsed (a run adds groups by the dozen)."""
    group = parent.findGroup(name)
    if group is None:
        group = parent.addGroup(name)
        group.setExpanded(False)
    return group


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

    def __init__(self, run_name: str, project: Optional[QgsProject] = None):
        self.project = project or QgsProject.instance()
        self.run_name = run_name
        self._by_source: Optional[Dict[Path, QgsRasterLayer]] = None  # layers under the run group, read once
        self._stale: Dict[str, Tuple[QgsRasterLayer, bool]] = {}  # layer id: (layer, its grid grew)
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

    def month_group(self, sentinel: int, month: str) -> QgsLayerTreeGroup:
        return _child_group(_child_group(self.run_group(), SENSOR_GROUPS[int(sentinel)]), month)

    def _add_layer(self, layer: QgsRasterLayer, group: QgsLayerTreeGroup, source: Path) -> None:
        self.project.addMapLayer(layer, False)
        group.addLayer(layer).setExpanded(False)  # no legend rows in the Layers panel
        self._layers_by_source()[source] = layer

    def show(self, shown: Iterable[Tuple[object, Optional[QgsRasterLayer]]]) -> List[QgsRasterLayer]:
        """Mosaic updates from :class:`~wac_extractor.qgis_glue.mosaic_feed.MosaicFeed`: new layers, or a reload."""
        added = []
        for update, layer in shown:
            composite = update.composite
            existing = self._layers_by_source().get(composite.path)
            if existing is not None:
                _, grew = self._stale.get(existing.id(), (existing, False))
                self._stale[existing.id()] = (existing, grew or update.regridded)
                continue
            layer = layer or composite_layer(composite, mosaic_layer_name(composite), read_only=True)
            layer.setName(mosaic_layer_name(composite))
            self._add_layer(layer, self.month_group(composite.sentinel, composite.period), composite.path)
            added.append(layer)
            first, end = self.months or (composite.start, composite.end)
            self.months = (min(first, composite.start), max(end, composite.end))
        if self._stale and not self._timer.isActive():
            self._timer.start(self.REFRESH_MS)
        return added

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
        group = _child_group(_child_group(self.run_group(), "Tiles"), tile_label)
        for item in composites:
            composite, layer = item if isinstance(item, tuple) else (item, None)
            if composite.path in self._layers_by_source():
                continue  # already open
            kind = "S2" if composite.sentinel == 2 else "S1"
            layer = layer or composite_layer(composite, "")
            layer.setName(f"{kind} {composite.period} {composite.label} {tile_label}")
            self._add_layer(layer, group, composite.path)
            layers.append(layer)
        return layers


Prepared = Tuple[WindowComposite, QgsRasterLayer]


def prepare_layers(composites: Iterable[WindowComposite]) -> List[Prepared]:
    """Open and style composite layers in a worker thread, then hand them to the UI thread."""
    return [(composite, to_ui_thread(composite_layer(composite, composite.path.stem))) for composite in composites]


def to_ui_thread(layer: QgsMapLayer) -> QgsMapLayer:
    """Give a layer opened in a worker thread to the UI thread, where the project will own it."""
    layer.moveToThread(QCoreApplication.instance().thread())
    return layer


JOB_TILES_NAME = "WAC job tiles"


def job_tiles_uri(tracker_path: Path) -> str:
    """The OGR source of a GeoPackage tracker's job table."""
    return f"{tracker_path}|layername={TABLE}"


def job_tiles_layer(tracker_path: Path, name: str = JOB_TILES_NAME) -> QgsVectorLayer:
    """The tracker GeoPackage itself as a layer, coloured by job status."""
    layer = QgsVectorLayer(job_tiles_uri(tracker_path), name, "ogr")
    style_job_tiles(layer)
    return layer


def style_job_tiles(layer: QgsVectorLayer) -> None:
    """Colour a tracker's job tiles by status (the dock's tile layer and the Processing output alike)."""
    categories = []
    for status, colour in STATUS_COLOURS.items():
        fill = f"{colour.red()},{colour.green()},{colour.blue()},50"  # QGIS reads "#RRGGBBAA" as ARGB: use r,g,b,a
        symbol = QgsFillSymbol.createSimple({"color": fill, "outline_color": colour.name(), "outline_width": "0.6"})
        categories.append(QgsRendererCategory(status, symbol, status.replace("_", " ")))
    layer.setRenderer(QgsCategorizedSymbolRenderer("status", categories))


def band_layers(result: Path, variables: Iterable[str], month_index: int, month: str) -> List[QgsRasterLayer]:
    """Single-band layers of one month of a result NetCDF (``NETCDF:"file":VAR``), grey, NaN transparent."""
    quiet_hdf5()
    layers = []
    for variable in variables:
        layer = QgsRasterLayer(f'NETCDF:"{result}":{variable}', f"{variable} {month}", "gdal")
        if layer.isValid():
            renderer = layer.renderer()
            if hasattr(renderer, "setGrayBand"):
                renderer.setGrayBand(month_index)
            layers.append(layer)
    return layers
