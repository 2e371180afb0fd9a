"""*Add band* in the background: each band's display copy written and its layer opened and styled off the UI thread.

Writing a band's COG takes 0.1-1 s (56 for *Add all bands*), and opening it reads the data for its
2-98 % cut: done on the UI thread, QGIS froze for as long. Only the adding of the layers stays there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, NamedTuple

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.results.composites import band_copy
from .layers import band_layer, to_ui_thread

_log = logging.getLogger(__name__)


class BandRequest(NamedTuple):
    result: Path  # the NetCDF
    variable: str
    name: str  # the layer's name: ``<variable> <tile> <window>``


class BandTask(QgsTask):
    """``ready(layers, group)`` on the UI thread when every band is open; ``failed(message)`` else; then ``done``."""

    ready = pyqtSignal(object, str)
    failed = pyqtSignal(str)
    done = pyqtSignal()  # last, whatever the outcome (cancelled too)

    def __init__(self, requests: List[BandRequest], group: str):
        super().__init__(f"WAC Extractor: {group} ({len(requests)} band(s))", QgsTask.Flag.CanCancel)
        self.requests = list(requests)
        self.group = group
        self.layers: list = []
        self.error = ""

    def run(self) -> bool:
        try:
            for done, request in enumerate(self.requests, start=1):
                if self.isCanceled():
                    return False
                layer = band_layer(band_copy(request.result, request.variable), request.name)
                self.layers.append(to_ui_thread(layer))
                self.setProgress(100 * done / len(self.requests))
            return True
        except (OSError, RuntimeError, ValueError) as exc:  # a damaged or missing download: said, nothing lost
            _log.warning("%s: %s", self.group, exc)
            self.error = str(exc)
            return False

    def finished(self, result: bool) -> None:
        if result:
            self.ready.emit(self.layers, self.group)
        elif self.error:
            self.failed.emit(self.error)
        self.done.emit()
