"""The background ``QgsTask`` that samples a run's results at fields or points (the dock's *Sample at features*).

The same core calls as the CLI and ``wac_extractor:sample`` (read the tracker, ``sample_results``,
``write_table``), with the task's progress and cancel. A project layer that is not a plain one-layer
file (a memory layer, a filtered layer, one layer of several in a GeoPackage) is copied to a
temporary GeoPackage first, from a feature source taken on the UI thread (thread-safe to iterate).
A cancelled or failed sample leaves no output: ``write_table`` renames a complete file into place,
and what this task wrote before a cancel is removed.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from osgeo import ogr
from qgis.core import (
    Qgis,
    QgsCoordinateTransformContext,
    QgsMessageLog,
    QgsProviderRegistry,
    QgsTask,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsVectorLayerFeatureSource,
)
from qgis.PyQt.QtCore import pyqtSignal

from ..core.jobs.tracker import TrackerError, open_tracker
from ..core.platform.priority import call_in_background_thread
from ..core.recipes.process_graphs import decode_cell
from ..core.results.features import read_features, write_table
from ..core.results.result_tiles import finished_tiles
from ..core.results.sampling import SamplingCancelledError, sample_results
from ..definitions import LOG_TAG

_log = logging.getLogger(__name__)
# The core's messages name the CLI's options; the dock names its own fields.
FIELD_NAMES = {
    "--jobs": "Job tracker",
    "--features": "Fields or points",
    "--out": "Output",
    "--output": "Output folder",
}


def dock_message(text: str) -> str:
    for option, label in FIELD_NAMES.items():
        text = text.replace(f"{option}:", f"{label}:")
    return text


def plain_file(layer: QgsVectorLayer) -> Optional[Path]:
    """The file of an unfiltered OGR layer that is its file's first layer (what ``read_features`` reads)."""
    if layer.providerType() != "ogr" or layer.subsetString():
        return None
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    path = Path(parts.get("path") or "")
    if not path.is_file() or parts.get("layerId") not in (None, 0):
        return None
    name = parts.get("layerName")
    if name:
        dataset = ogr.Open(str(path))
        if dataset is None or dataset.GetLayerCount() == 0 or dataset.GetLayer(0).GetName() != name:
            return None
    return path


class LayerCopy:
    """What the task needs to copy a project layer, taken on the UI thread (the layer is never touched after)."""

    def __init__(self, layer: QgsVectorLayer, context: QgsCoordinateTransformContext):
        self.source = QgsVectorLayerFeatureSource(layer)
        self.fields, self.wkb_type, self.crs, self.name = layer.fields(), layer.wkbType(), layer.crs(), layer.name()
        self.context = context

    def write(self, folder: Path) -> Path:
        path = folder / "features.gpkg"
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName, options.layerName = "GPKG", self.name or "features"
        writer = QgsVectorFileWriter.create(str(path), self.fields, self.wkb_type, self.crs, self.context, options)
        if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
            raise OSError(f"Fields or points: the layer could not be copied ({writer.errorMessage()})")
        for feature in self.source.getFeatures():
            writer.addFeature(feature)
        del writer  # closes the file
        return path


@dataclass
class SampleRequest:
    tracker: Path
    output_dirs: Sequence[Path]  # the first holding finished results is the run's output folder
    stats: Sequence[str]
    out: Path  # GeoPackage, or CSV (``.csv``)
    features: Optional[Path] = None  # a file, or
    layer: Optional[LayerCopy] = None  # a project layer to copy
    csv_too: bool = False  # a CSV beside the GeoPackage, from the same table
    written: List[Path] = field(default_factory=list)
    windows: List[str] = field(default_factory=list)  # first months of the run's windows, from the tracker

    def outputs(self) -> List[tuple]:
        if self.out.suffix.lower() == ".csv":
            return [(self.out, True)]
        return [(self.out, False)] + ([(self.out.with_suffix(".csv"), True)] if self.csv_too else [])


class SampleTask(QgsTask):
    """``sample_finished`` (on the UI thread): the request (``written`` lists the files), or None with ``error``."""

    sample_finished = pyqtSignal(object)

    def __init__(self, request: SampleRequest):
        super().__init__(f"WAC Extractor: sample at {request.out.name}", QgsTask.Flag.CanCancel)
        self.request = request
        self.error: Optional[str] = None
        self.cancelled = False
        self.summary = ""

    def run(self) -> bool:
        try:
            return call_in_background_thread(self._run, "wac-sample")
        except SamplingCancelledError:
            self.cancelled = True
        except (ValueError, FileExistsError, OSError, TrackerError, RuntimeError) as exc:
            self.error = dock_message(str(exc))
        except Exception as exc:  # told in the message bar; the run's files are untouched
            _log.exception("sample failed")
            self.error = f"{type(exc).__name__}: {exc}"
        self._remove_written()
        return False

    def _run(self) -> bool:
        request = self.request
        tracker = open_tracker(request.tracker)
        if not tracker.exists():
            raise ValueError(f"Job tracker: {request.tracker} does not exist; run first or choose a tracker.")
        jobs = tracker.read()
        request.windows = sorted({decode_cell(cell)[0][:7] for cell in jobs["temporal_extent"]})
        folders = [Path(d) for d in request.output_dirs if d and Path(d).is_dir()]
        output_dir = next((d for d in folders if finished_tiles(jobs, d)), folders[0] if folders else None)
        if output_dir is None:
            raise ValueError("Output folder: none found; choose the run's output folder.")
        with tempfile.TemporaryDirectory(prefix="wac-sample-") as scratch:
            path = request.features or request.layer.write(Path(scratch))
            features = read_features(path, option="Fields or points")
        table = sample_results(
            jobs,
            output_dir,
            features,
            request.stats,
            progress=lambda p: self.setProgress(0.95 * p),
            cancelled=self.isCanceled,
        )
        for out, as_csv in request.outputs():
            if self.isCanceled():
                raise SamplingCancelledError("sampling cancelled")
            request.written.append(write_table(table, out, as_csv=as_csv))
        if self.isCanceled():  # cancelled while the last file was written: it goes too
            raise SamplingCancelledError("sampling cancelled")
        self.summary = f"{len(table.features)} features x {len(table.columns)} columns"
        self.setProgress(100)
        return True

    def _remove_written(self) -> None:
        for path in self.request.written:
            path.unlink(missing_ok=True)
        self.request.written.clear()

    def finished(self, result: bool) -> None:
        if self.error:
            QgsMessageLog.logMessage(f"Sample failed: {self.error}", LOG_TAG, Qgis.MessageLevel.Warning)
        self.sample_finished.emit(self.request if result else None)
