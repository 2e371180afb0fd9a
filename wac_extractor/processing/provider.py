"""Processing provider "WAC Extractor" (its algorithm: ``processing.extract``)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .extract import ExtractAlgorithm, icon
from .sample import SampleAlgorithm


class WacProcessingProvider(QgsProcessingProvider):
    def id(self):
        return "wac_extractor"

    def name(self):
        return "WAC Extractor"

    def icon(self):
        return icon()

    def loadAlgorithms(self):
        self.addAlgorithm(ExtractAlgorithm())
        self.addAlgorithm(SampleAlgorithm())
