"""QGIS plugin entry: a toolbar button and a Plugins > Web menu entry that toggle the dock."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

MENU = "&WAC Extractor"


def resources_dir() -> Path:
    """``resources/`` inside the installed plugin, or beside the package in a source checkout."""
    here = Path(__file__).resolve().parent
    return here / "resources" if (here / "resources").is_dir() else here.parent / "resources"


class WacExtractorPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.action = None
        self.dock = None
        self.provider = None

    def initProcessing(self):
        from qgis.core import QgsApplication

        from .processing_provider import WacProcessingProvider

        self.provider = WacProcessingProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        self.action = QAction(QIcon(str(resources_dir() / "icon.svg")), "WAC Extractor", self.iface.mainWindow())
        self.action.setCheckable(True)
        self.action.setToolTip("Sentinel-1/2 monthly composites for many AOIs through openEO")
        self.action.toggled.connect(self.toggle_dock)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToWebMenu(MENU, self.action)

    def toggle_dock(self, visible: bool):
        if self.dock is None:
            from .dock import WacDock

            self.dock = WacDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self.action.setChecked)
        self.dock.setVisible(visible)

    def unload(self):
        if self.dock is not None:
            self.dock.cancel_run()
            self.dock.save_settings()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            from qgis.core import QgsApplication

            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.iface.removePluginWebMenu(MENU, self.action)
        self.iface.removeToolBarIcon(self.action)
