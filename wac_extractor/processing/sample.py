"""The Processing algorithm ``wac_extractor:sample``: a run's results sampled at fields or points.

The same call as the CLI's ``sample`` (``core.sample_cli.sample_table``), so both write the same table;
usable in the toolbox, in batch mode and from ``qgis_process``.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from ..core.results.features import write_table
from ..core.results.sampling import SamplingCancelledError
from ..core.results.zonal import STATS
from ..core.sample_cli import sample_table
from .extract import icon


class SampleAlgorithm(QgsProcessingAlgorithm):
    TRACKER, FEATURES, STATS, OUTPUT_FOLDER, OUTPUT = "TRACKER", "FEATURES", "STATS", "OUTPUT_FOLDER", "OUTPUT"

    def name(self):
        return "sample"

    def displayName(self):
        return "Sample results at fields or points"

    def shortHelpString(self):
        return (
            "Statistics of a run's results (its tracker and output folder) at every polygon (mean, median, "
            "standard deviation, count of valid pixels, valid fraction; pixels weighted by the share the field "
            "covers) or point (the pixel value). Columns <sensor>_<variable>_<stat>, with the window after the "
            "sensor when the run has several windows. Every attribute of the input is kept. A .csv output "
            "has no geometry."
        )

    def icon(self):
        return icon()

    def createInstance(self):
        return SampleAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFile(
                self.TRACKER, "Job tracker (GeoPackage or CSV)", fileFilter="Trackers (*.gpkg *.csv)"
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.FEATURES,
                "Fields or points",
                [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint],
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.STATS, "Statistics", options=list(STATS), allowMultiple=True, defaultValue=list(range(len(STATS)))
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.OUTPUT_FOLDER,
                "Output folder of the run (default: the tracker's folder)",
                behavior=QgsProcessingParameterFile.Behavior.Folder,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "Sampled table", fileFilter="GeoPackage (*.gpkg);;CSV (*.csv)"
            )
        )
        self.addOutput(QgsProcessingOutputVectorLayer("LAYER", "Sampled table layer"))

    def processAlgorithm(self, parameters, context, feedback):
        tracker = Path(self.parameterAsFile(parameters, self.TRACKER, context))
        features = self.parameterAsCompatibleSourceLayerPath(
            parameters, self.FEATURES, context, ["gpkg", "shp", "geojson"], "gpkg", feedback
        )
        stats = [STATS[i] for i in self.parameterAsEnums(parameters, self.STATS, context)]
        folder = self.parameterAsFile(parameters, self.OUTPUT_FOLDER, context) or None
        out = Path(self.parameterAsFileOutput(parameters, self.OUTPUT, context))
        if out.exists():
            raise QgsProcessingException(f"OUTPUT: {out} already exists; choose a new file name.")
        try:
            table = sample_table(
                tracker, Path(features), folder, stats, progress=feedback.setProgress, cancelled=feedback.isCanceled
            )
            write_table(table, out, as_csv=out.suffix.lower() == ".csv")
        except SamplingCancelledError:
            feedback.reportError("Sampling cancelled; nothing was written.")
            return {}
        except (ValueError, FileExistsError) as exc:
            message = str(exc).replace("--jobs", "TRACKER").replace("--features", "FEATURES")
            raise QgsProcessingException(message) from None
        feedback.pushInfo(f"{len(table.features)} features x {len(table.columns)} columns -> {out}")
        return {self.OUTPUT: str(out), "LAYER": str(out)}
