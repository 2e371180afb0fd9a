"""A chart per field: select fields of a sampled layer (map or attribute table) and see their time series.

Top: each field's monthly Sentinel-2 NDVI (the ``NDVI_M1..Mn`` columns of the chosen statistic) as a
line over the P10..P90 band of its window; bottom: Sentinel-1 VV and VH percentiles (P10..P90).
Several selected fields overlay, the first ``MAX_FIELDS`` by feature id (the chart says so). Only the
selected features are read (by id, no geometry, only the chart's columns) and selection changes are
debounced, so a layer of 10,000 fields costs what the few selected ones cost.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from qgis.core import QgsFeatureRequest, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.results.chart_series import NDVI_SCALE, ChartColumns, chart_columns, line_stats, parse_column, to_db

WINDOWS_PROPERTY = "wac_extractor/windows"  # the run's windows (first months), set on a sampled layer
LABEL_NAMES = ("label", "name", "class", "crop", "id")
PERCENT_X = [10, 25, 50, 75, 90]


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):  # NULL (a QVariant), empty
        return math.nan


def label_field(layer: QgsVectorLayer) -> Optional[str]:
    """The input attribute that names a field in the legend: label, name... or the first text field."""
    names = [f.name() for f in layer.fields() if parse_column(f.name()) is None and f.name().lower() != "fid"]
    for wanted in LABEL_NAMES:
        found = [n for n in names if n.lower() == wanted]
        if found:
            return found[0]
    texts = [f.name() for f in layer.fields() if f.name() in names and f.typeName().lower() in ("string", "text")]
    return texts[0] if texts else None


class FieldChart(QWidget):
    MAX_FIELDS = 10
    DEBOUNCE_MS = 150

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layer: Optional[QgsVectorLayer] = None
        self.ndvi_lines: Dict[int, List[Line2D]] = {}  # feature id -> its NDVI line per window (what tests read)
        self.s1_lines: Dict[int, List[Line2D]] = {}
        self.redraws = 0  # how often the chart was drawn (the debounce is tested by it)
        self.figure = Figure(figsize=(5, 6), dpi=96, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ndvi_axes, self.s1_axes = self.figure.subplots(2, 1, height_ratios=[3, 2])
        self.stat = QComboBox(toolTip="Which statistic of the field the lines show")
        self.note = QLabel(wordWrap=True)
        self.export_button = QPushButton("Export PNG", toolTip="Save the chart as a PNG image")
        top = QHBoxLayout()
        top.addWidget(QLabel("Statistic"))
        top.addWidget(self.stat, 1)
        top.addWidget(self.export_button)
        column = QVBoxLayout(self)
        column.addLayout(top)
        column.addWidget(self.canvas, 1)
        column.addWidget(self.note)
        self.timer = QTimer(self, singleShot=True, interval=self.DEBOUNCE_MS, timeout=self.redraw)
        self.stat.currentIndexChanged.connect(self.redraw)
        self.export_button.clicked.connect(self._ask_export)
        self.redraw()

    # --- the layer ---------------------------------------------------------------------------------
    @staticmethod
    def can_chart(layer) -> bool:
        return isinstance(layer, QgsVectorLayer) and bool(line_stats(layer.fields().names()))

    def set_layer(self, layer: Optional[QgsVectorLayer]) -> None:
        if self.layer is not None and not sip.isdeleted(self.layer):
            self.layer.selectionChanged.disconnect(self.schedule)
            self.layer.willBeDeleted.disconnect(self._layer_gone)
        self.layer = layer if self.can_chart(layer) else None
        self.stat.blockSignals(True)
        self.stat.clear()
        if self.layer is not None:
            self.stat.addItems(line_stats(self.layer.fields().names()))
            self.layer.selectionChanged.connect(self.schedule)
            self.layer.willBeDeleted.connect(self._layer_gone)
        self.stat.blockSignals(False)
        self.redraw()

    def _layer_gone(self) -> None:
        self.layer = None
        self.redraw()

    def schedule(self, *args) -> None:
        """Selection changed: redraw once it settles (a rubber-band selection emits many changes)."""
        self.timer.start()

    # --- drawing -----------------------------------------------------------------------------------
    def _windows(self) -> Sequence[str]:
        text = str(self.layer.customProperty(WINDOWS_PROPERTY, "") or "")
        return [w for w in text.split(",") if w]

    def _read(self, ids: List[int], series: ChartColumns) -> Dict[int, Dict[str, object]]:
        label = label_field(self.layer)
        wanted = series.columns() + ([label] if label else [])
        request = QgsFeatureRequest().setFilterFids(ids).setFlags(QgsFeatureRequest.Flag.NoGeometry)
        request.setSubsetOfAttributes(wanted, self.layer.fields())
        out = {}
        for feature in self.layer.getFeatures(request):
            values = {name: feature[name] for name in wanted}
            values["_legend"] = f"{feature.id()}: {values[label]}" if label else f"fid {feature.id()}"
            out[feature.id()] = values
        return out

    def redraw(self, *args) -> None:
        self.redraws += 1
        self.ndvi_lines, self.s1_lines = {}, {}
        for axes in (self.ndvi_axes, self.s1_axes):
            axes.clear()
        selected = sorted(self.layer.selectedFeatureIds()) if self.layer is not None else []
        if self.layer is None or not self.stat.currentText():
            self.note.setText("Sample a run at fields (LCFM recipe) and select fields of the sampled layer.")
        elif not selected:
            self.note.setText(f"Select fields of '{self.layer.name()}' on the map or in its attribute table.")
        else:
            shown = selected[: self.MAX_FIELDS]
            more = f" (the first {len(shown)} of {len(selected)} selected)" if len(selected) > len(shown) else ""
            self.note.setText(f"{len(shown)} field{'s' if len(shown) > 1 else ''} of '{self.layer.name()}'{more}.")
            series = chart_columns(self.layer.fields().names(), self.stat.currentText(), self._windows())
            self._draw(self._read(shown, series), series)
        self.canvas.draw_idle()

    def _draw(self, rows: Dict[int, Dict[str, object]], series: ChartColumns) -> None:
        ndvi, s1 = self.ndvi_axes, self.s1_axes
        months = sorted({label for w in series.windows for label, _ in w.months})
        x_of = {label: x for x, label in enumerate(months)}
        several = len(series.windows) > 1
        for n, (fid, row) in enumerate(rows.items()):
            color = f"C{n % 10}"
            for w in series.windows:
                xs = [x_of[label] for label, _ in w.months]
                if w.band:
                    low, high = (_number(row[c]) / NDVI_SCALE for c in w.band)
                    ndvi.fill_between([xs[0] - 0.3, xs[-1] + 0.3], low, high, color=color, alpha=0.12, linewidth=0)
                ys = [_number(row[c]) / NDVI_SCALE for _, c in w.months]
                line = ndvi.plot(xs, ys, "o-", color=color, label=row["_legend"] if w is series.windows[0] else None)
                self.ndvi_lines.setdefault(fid, []).append(line[0])
                for band, style in (("VV", "o-"), ("VH", "s--")):
                    if band in w.s1:
                        ys = [to_db(_number(row[c])) for c in w.s1[band]]
                        alpha = 1.0 if not several else 0.4 + 0.6 * (w is series.windows[-1])
                        self.s1_lines.setdefault(fid, []).extend(
                            s1.plot(PERCENT_X, ys, style, color=color, alpha=alpha)
                        )
        stat = series.stat
        ndvi.set_title(f"S2 NDVI, monthly medians (field {stat})\nshaded: P10..P90 of the window", fontsize=9)
        ndvi.set_xticks(range(len(months)), months, fontsize=8)
        ndvi.set_ylabel("NDVI", fontsize=8)
        ndvi.grid(alpha=0.3)
        ndvi.legend(fontsize=7, loc="best")
        windows = "\nfaded: earlier windows" if several else ""
        s1.set_title(f"S1 percentiles of the window (field {stat}){windows}", fontsize=9)
        for axes in (ndvi, s1):
            axes.tick_params(labelsize=8)
        s1.set_xticks(PERCENT_X, [f"P{p}" for p in PERCENT_X], fontsize=8)
        s1.set_ylabel("backscatter (dB)", fontsize=8)
        s1.grid(alpha=0.3)
        s1.legend(
            [Line2D([], [], color="gray", marker="o"), Line2D([], [], color="gray", marker="s", linestyle="--")],
            ["VV", "VH"], fontsize=7, loc="best",
        )  # fmt: skip

    # --- export ------------------------------------------------------------------------------------
    def export_png(self, path: str) -> str:
        self.figure.savefig(path, dpi=150)
        return path

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the chart", "field_chart.png", "PNG image (*.png)")
        if path:
            self.export_png(path if path.lower().endswith(".png") else path + ".png")


class FieldChartDock(QgsDockWidget):
    """The chart in a dock of its own, beside the map; it follows the layer it is given (or made current)."""

    def __init__(self, parent=None):
        super().__init__("WAC field chart", parent)
        self.setObjectName("WacFieldChartDock")
        self.chart = FieldChart()
        self.setWidget(self.chart)

    def follow(self, layer) -> None:
        """The current layer changed: chart it when it is a sampled layer, else keep the one charted."""
        if FieldChart.can_chart(layer) and layer is not self.chart.layer:
            self.chart.set_layer(layer)
