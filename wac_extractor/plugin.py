"""QGIS plugin entry: a toolbar button and a Plugins > Web menu entry that toggle the dock.

QGIS does not ship ``openeo``. When it is missing the plugin still loads: the button then offers
to install the pinned requirements into a folder of the plugin's own (see ``dependencies``).
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from .definitions import LOG_TAG, resources_dir
from .qgis_glue import dependencies

MENU = "&WAC Extractor"


class DependencyInstallTask(QgsTask):
    """pip-installs the requirements in the background; pip's output goes to the message log."""

    def __init__(self, target: Path):
        super().__init__("WAC Extractor: installing openeo", QgsTask.Flag.CanCancel)
        self.target = target
        self.exit_code = None
        self.lines = 0

    def _log(self, line: str) -> None:
        self.lines += 1
        self.setProgress(min(95.0, self.lines))  # pip gives no total; lines are a fair pulse
        QgsMessageLog.logMessage(line, LOG_TAG, Qgis.MessageLevel.Info)

    def run(self) -> bool:
        try:
            self.exit_code = dependencies.install(self.target, self._log, self.isCanceled)
        except Exception as exc:  # shown in the message bar by the plugin
            QgsMessageLog.logMessage(f"Installing dependencies failed: {exc}", LOG_TAG, Qgis.MessageLevel.Critical)
            self.exit_code = -1
        return self.exit_code == 0


class WacExtractorPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.action = None
        self.dock = None
        self.provider = None
        self.install_task = None
        self.deps_target = dependencies.default_target()
        dependencies.activate(self.deps_target)

    # --- processing ----------------------------------------------------------------------------
    def initProcessing(self):
        if self.provider is not None or dependencies.missing() or dependencies.openeo_conflict(self.deps_target):
            return
        from .processing.provider import WacProcessingProvider

        self.provider = WacProcessingProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    # --- GUI -----------------------------------------------------------------------------------
    def initGui(self):
        self.initProcessing()
        self.action = QAction(QIcon(str(resources_dir() / "icon.svg")), "WAC Extractor", self.iface.mainWindow())
        self.action.setCheckable(True)
        self.action.setToolTip("Sentinel-1/2 LCFM features or monthly composites for many AOIs through openEO")
        self.action.toggled.connect(self.toggle_dock)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToWebMenu(MENU, self.action)
        if self.show_conflict():
            return
        if dependencies.missing():
            self.offer_install()

    def show_conflict(self) -> bool:
        """Another plugin's openeo of another release is loaded: say so and what to do (no install offer:
        a second copy in our folder would never be imported)."""
        conflict = dependencies.openeo_conflict(self.deps_target)
        if conflict:
            QgsMessageLog.logMessage(conflict, LOG_TAG, Qgis.MessageLevel.Critical)
            self.iface.messageBar().pushMessage(LOG_TAG, conflict, Qgis.MessageLevel.Critical, 0)
        return bool(conflict)

    def offer_install(self) -> None:
        problems = ", ".join(dependencies.missing())
        bar = self.iface.messageBar()
        message = bar.createMessage(LOG_TAG, f"needs Python packages that QGIS does not ship: {problems}.")
        button = QPushButton("Install dependencies")
        button.clicked.connect(self.install_dependencies)
        message.layout().addWidget(button)
        bar.pushWidget(message, Qgis.MessageLevel.Warning)

    def install_dependencies(self) -> None:
        if self.install_task is not None:
            return
        self.iface.messageBar().clearWidgets()
        self.iface.messageBar().pushMessage(
            LOG_TAG,
            f"Installing into {self.deps_target}; pip's output is in the message log.",
            Qgis.MessageLevel.Info,
            5,
        )
        self.install_task = DependencyInstallTask(self.deps_target)
        self.install_task.taskCompleted.connect(self._installed)
        self.install_task.taskTerminated.connect(self._installed)
        QgsApplication.taskManager().addTask(self.install_task)

    def _installed(self) -> None:
        task, self.install_task = self.install_task, None
        if task is None or task.exit_code != 0:
            self.iface.messageBar().pushMessage(
                LOG_TAG,
                "Installing dependencies failed: see the WAC Extractor message log.",
                Qgis.MessageLevel.Critical,
                0,
            )
            return
        problem = dependencies.check_after_install(self.deps_target)
        if problem:
            self.iface.messageBar().pushMessage(LOG_TAG, problem, Qgis.MessageLevel.Warning, 0)
            return
        self.initProcessing()
        self.iface.messageBar().pushMessage(
            LOG_TAG, "openeo is installed: ready, no restart needed.", Qgis.MessageLevel.Success, 8
        )

    def toggle_dock(self, visible: bool):
        if visible and (dependencies.openeo_conflict(self.deps_target) or dependencies.missing()):
            self.action.setChecked(False)
            if not self.show_conflict():
                self.offer_install()
            return
        if self.dock is None:
            if not visible:
                return
            from .ui.dock import WacDock

            self.dock = WacDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self.action.setChecked)
        self.dock.setVisible(visible)

    def unload(self):
        if self.dock is not None:
            self.dock.cancel_run()
            self.dock.disconnect_project()
            self.dock.tile_action.detach()
            self.dock.save_settings()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.iface.removePluginWebMenu(MENU, self.action)
        self.iface.removeToolBarIcon(self.action)
