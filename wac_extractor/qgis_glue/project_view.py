"""A project that opens on the run: its CRS, the run's extent as default view, months as time steps.

Used by the dock, the demo and the Processing algorithm alike, so a saved project reopens right.
"""

from __future__ import annotations

import datetime as dt

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDateTimeRange,
    QgsInterval,
    QgsProject,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsTemporalNavigationObject,
)
from qgis.PyQt.QtCore import QDate, QDateTime, Qt, QTime


def utm_crs(tile_id: str) -> QgsCoordinateReferenceSystem:
    """The CRS of a tile id (``32631_664000_5611120``: EPSG code first), invalid if it has none."""
    code = str(tile_id or "").split("_")[0]
    return QgsCoordinateReferenceSystem(f"EPSG:{code}") if code.isdigit() else QgsCoordinateReferenceSystem()


def give_crs(project: QgsProject, crs: QgsCoordinateReferenceSystem, was_empty: bool) -> None:
    """A project that had no layers (or no CRS) takes ``crs``; a CRS the user chose is kept.

    QGIS gives an empty project the CRS of its first layer: the job tiles' EPSG:4326, which draws the
    UTM tiles skewed. ``was_empty``: the project had no layers before the run's first one was added.
    """
    if crs.isValid() and (was_empty or not project.crs().isValid()):
        project.setCrs(crs)


def set_default_view(project: QgsProject, extent: QgsRectangle, extent_crs: QgsCoordinateReferenceSystem) -> None:
    """The view a saved project opens on: ``extent`` (in ``extent_crs``) in the project's CRS, with a margin."""
    if extent.isEmpty() or not project.crs().isValid():
        return
    transform = QgsCoordinateTransform(extent_crs, project.crs(), project)
    shown = transform.transformBoundingBox(extent)
    shown.scale(1.05)
    project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(shown, project.crs()))


def _utc(day: dt.date) -> QDateTime:
    return QDateTime(QDate(day.year, day.month, day.day), QTime(0, 0), Qt.TimeSpec.UTC)


def set_month_steps(project: QgsProject, first: dt.date, end: dt.date, canvas=None) -> QgsDateTimeRange:
    """The temporal controller over the run's months, one month a step: "play" shows month by month.

    ``first`` is the first month's first day, ``end`` the day after the last month. The project keeps
    it (saved with it); a canvas's running controller (QGIS Desktop) is set too.
    """
    months = QgsDateTimeRange(_utc(first), _utc(end), True, False)
    settings = project.timeSettings()
    settings.setTemporalRange(months)
    settings.setTimeStep(1)
    settings.setTimeStepUnit(Qgis.TemporalUnit.Months)
    settings.setFramesPerSecond(1)
    controller = canvas.temporalController() if canvas is not None else None
    if isinstance(controller, QgsTemporalNavigationObject):
        controller.setTemporalExtents(months)
        controller.setFrameDuration(QgsInterval(1, Qgis.TemporalUnit.Months))
        controller.setFramesPerSecond(1)
    return months
